/** Everything a storage server is told at start; it reads no other configuration. */
export interface StorageConfig {
  /** Base URL of the name server, e.g. `http://127.0.0.1:6235`. */
  nameServer: string;
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
}

export const STORAGE_DEFAULTS = {
  host: '0.0.0.0',
  port: 3500,
  maxBlockSize: 1024 * 1024 * 1024,
  heartbeatMs: 3000,
} as const;
