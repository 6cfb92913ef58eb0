import { DISCOVERY_DEFAULTS } from '../protocol/announcement.js';
import type { TlsFiles } from '../protocol/http-server.js';
import type { AccessKeys } from './access-keys.js';
import { CLASSIC_DEFAULTS, type ClassicConfig } from './classic/config.js';

/** Everything a name server is told at start; it reads no other configuration. */
export interface NameConfig {
  /** Address to listen on. */
  host: string;
  /** Port of the HTTP API and of the seed's classic protocol; 0 picks a free one. */
  port: number;
  /** The seed's classic protocol on the same port (told apart from HTTP by the first bytes). */
  classic: ClassicConfig;
  /** Directory of the namespace database; created if missing. */
  dataDir: string;
  /** Replicas per block for files that do not ask for another number. */
  replication: number;
  /** Block size in bytes for files that do not ask for another. */
  blockSize: number;
  /** Interval at which storage servers send heartbeats, ms (told to them in each answer). */
  heartbeatMs: number;
  /** A storage server silent this long is dead, ms. */
  deadAfterMs: number;
  /** Interval of the background cleaner, ms. */
  gcIntervalMs: number;
  /** An upload untouched this long is aborted, ms (a pooled upload never taken: a minute at most). */
  uploadExpiryMs: number;
  /** Uploads in progress at most (each holds memory and a placed block): more are refused with EUNAVAILABLE. */
  maxUploads: number;
  /** How often storage servers send their full block list, ms. */
  blockReportMs: number;
  /** How often liveness is checked and, when something changed, replication, ms. */
  replicationIntervalMs: number;
  /** Block copies in flight at once when re-replicating. */
  maxCopies: number;
  /** Name of the cluster, announced in the broadcasts; storage servers join only their own cluster's name server. */
  cluster: string;
  /** Whether to announce this name server on the LAN by UDP broadcast (never while it listens on loopback only). */
  broadcast: boolean;
  /** Where the announcements go: 255.255.255.255 (the local link) or a subnet's broadcast address. */
  broadcastAddress: string;
  /** UDP port the announcements go to (the port storage servers listen on). */
  discoveryPort: number;
  /** Interval between two announcements, ms. */
  broadcastIntervalMs: number;
  /** The file of the cluster secret, made there on the first start; undefined: `cluster.secret` in the data dir. */
  secretFile?: string;
  /** How long a block token the name server hands out stays valid, ms. */
  blockTokenTtlMs: number;
  /** Clients' access keys; with none, clients need no key. */
  accessKeys: AccessKeys;
  /** Certificate and key (PEM) to serve HTTPS (and the classic protocol beside it) instead of HTTP. */
  tls?: TlsFiles;
  /** A certificate authority (PEM) to trust besides the system's, for storage servers with self-signed certificates. */
  tlsCa?: Buffer;
}

export const NAME_DEFAULTS = {
  host: '0.0.0.0',
  port: 6235,
  classic: CLASSIC_DEFAULTS,
  replication: 3,
  blockSize: 64 * 1024 * 1024,
  heartbeatMs: 3000,
  deadAfterMs: 15_000,
  gcIntervalMs: 2000,
  uploadExpiryMs: 60 * 60 * 1000,
  maxUploads: 100_000,
  blockReportMs: 60_000,
  replicationIntervalMs: 1000,
  maxCopies: 8,
  cluster: DISCOVERY_DEFAULTS.cluster,
  broadcast: true,
  broadcastAddress: DISCOVERY_DEFAULTS.broadcastAddress,
  discoveryPort: DISCOVERY_DEFAULTS.port,
  broadcastIntervalMs: DISCOVERY_DEFAULTS.intervalMs,
  blockTokenTtlMs: 10 * 60 * 1000,
} as const;
