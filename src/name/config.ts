/** Everything a name server is told at start; it reads no other configuration. */
export interface NameConfig {
  /** Address to listen on. */
  host: string;
  /** Port of the HTTP API (and, later, the classic protocol); 0 picks a free one. */
  port: number;
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
  /** An upload untouched this long is aborted, ms. */
  uploadExpiryMs: number;
}

export const NAME_DEFAULTS = {
  host: '0.0.0.0',
  port: 6235,
  replication: 3,
  blockSize: 64 * 1024 * 1024,
  heartbeatMs: 3000,
  deadAfterMs: 15_000,
  gcIntervalMs: 2000,
  uploadExpiryMs: 60 * 60 * 1000,
} as const;
