import { DISCOVERY_DEFAULTS } from '../protocol/announcement.js';
import type { TlsFiles } from '../protocol/http-server.js';

/** Everything a storage server is told at start; it reads no other configuration. */
export interface StorageConfig {
  /**
   * Base URL of the name server, e.g. `http://127.0.0.1:6235`. Undefined: the storage server listens
   * for the broadcasts of name servers and joins the first one of its cluster that it hears.
   */
  nameServer?: string;
  /** Name of the cluster to join when the name server is found by broadcast. */
  cluster: string;
  /** UDP port to listen on for name server broadcasts (only without `nameServer`). */
  discoveryPort: number;
  /** Address to listen on. */
  host: string;
  /** Port to listen on; 0 picks a free one. */
  port: number;
  /** Host that clients and other storage servers use to reach this one; by default the name server takes it from the connection. */
  advertiseHost?: string;
  /** Directory of the block files; created if missing. */
  dataDir: string;
  /** Largest block accepted, in bytes. */
  maxBlockSize: number;
  /** Interval between heartbeats to the name server, ms. */
  heartbeatMs: number;
  /** Bytes per second the background scrub may read to verify blocks; 0 turns it off. */
  scrubBytesPerSecond: number;
  /** Pause between two scrub passes over all blocks, ms. */
  scrubPassIntervalMs: number;
  /** The cluster secret: its requests to the name server and to other storage servers are signed with it, and it checks block tokens. */
  secret: string;
  /** Certificate and key (PEM) to serve HTTPS instead of HTTP. */
  tls?: TlsFiles;
  /** A certificate authority (PEM) to trust besides the system's, for a cluster with self-signed certificates. */
  tlsCa?: Buffer;
}

export const STORAGE_DEFAULTS = {
  cluster: DISCOVERY_DEFAULTS.cluster,
  discoveryPort: DISCOVERY_DEFAULTS.port,
  host: '0.0.0.0',
  port: 3500,
  maxBlockSize: 1024 * 1024 * 1024,
  heartbeatMs: 3000,
  scrubBytesPerSecond: 32 * 1024 * 1024,
  scrubPassIntervalMs: 60 * 60 * 1000,
} as const;
