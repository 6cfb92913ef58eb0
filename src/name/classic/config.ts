import { SdfsError } from '../../protocol/errors.js';

/**
 * How the name server serves the seed's classic protocol (../shared/seed/PROTOCOL.md) beside HTTP
 * on its port. Part of NameConfig; it enters once, at start.
 */
export interface ClassicConfig {
  /**
   * Where classic clients are served: `shared`, on the name server's HTTP port (told apart from HTTP by
   * the first bytes); an address of its own; or `off`. The protocol has no authentication.
   */
  listen: ClassicListen;
  /**
   * Data ports named to clients for read and write, lowest and highest. The client listens on the port
   * on its own host, and the protocol sends it as 4 digits, so the range lies within 1-9999.
   */
  dataPortMin: number;
  dataPortMax: number;
  /** A connection silent this long before a request (or before its first byte, HTTP or classic) is closed, ms. */
  idleTimeoutMs: number;
  /** A request that has begun must arrive in full within this, and so must a confirmation byte, ms. */
  requestTimeoutMs: number;
  /** How long to keep trying to connect to a client's data port, and the longest silence on a data connection, ms. */
  dataTimeoutMs: number;
  /** Classic sessions served at once; a session beyond this gets an error and is closed. */
  maxSessions: number;
}

export type ClassicListen = 'off' | 'shared' | { host: string; port: number };

export const CLASSIC_DEFAULTS: ClassicConfig = {
  listen: 'shared',
  // The range the seed's client container publishes (`-p 3504-3600:3504-3600`).
  dataPortMin: 3504,
  dataPortMax: 3600,
  // The seed's client connects at start and sends nothing until its user types a command.
  idleTimeoutMs: 60 * 60 * 1000,
  requestTimeoutMs: 30_000,
  dataTimeoutMs: 30_000,
  maxSessions: 256,
};

/** The highest data port the protocol can name: the client reads exactly 4 digits. */
export const MAX_DATA_PORT = 9999;

/** Parses a data port range, `FROM-TO` or a single port, within 1-9999. */
export function parseDataPorts(text: string): { min: number; max: number } {
  const m = /^\s*(\d{1,5})\s*(?:-\s*(\d{1,5})\s*)?$/.exec(text);
  const min = m ? Number(m[1]) : NaN;
  const max = m ? Number(m[2] ?? m[1]) : NaN;
  if (!m || min < 1 || max > MAX_DATA_PORT || min > max) {
    throw new SdfsError('EINVAL', `data ports must be FROM-TO within 1-${MAX_DATA_PORT} (the protocol sends 4 digits): ${text}`);
  }
  return { min, max };
}

/** Parses `--classic`: `shared`, `off`, or `HOST:PORT` (a listener of its own). */
export function parseClassicListen(text: string): ClassicListen {
  if (text === 'shared' || text === 'off') return text;
  const m = /^(.+):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new SdfsError('EINVAL', `--classic is shared, off or HOST:PORT (port 0: any free one): ${text}`);
  return { host: m[1]!.replace(/^\[(.*)\]$/, '$1'), port };
}
