import { SdfsError } from './errors.js';

/**
 * The UDP datagram a name server broadcasts on its LAN so that storage servers started without an
 * address can find it (the seed's "storage discover"). One small JSON object, versioned:
 *
 *   {"type":"sdfs.announce","version":1,"cluster":"sdfs","scheme":"http","port":6235}
 *
 * It names the cluster and the scheme and port of the name server's HTTP API; the host is the
 * datagram's source address, as the receiver sees it. Extra fields are ignored, so that a later
 * version-1 sender may add some; a different version is refused.
 */
export const ANNOUNCEMENT_TYPE = 'sdfs.announce';
export const ANNOUNCEMENT_VERSION = 1;
/** Bound on a datagram, sent or accepted; a real one is under 100 bytes. */
export const MAX_ANNOUNCEMENT_BYTES = 512;
/** A cluster name: 1-64 letters, digits, `.`, `_` or `-`, starting with a letter or digit. */
export const CLUSTER_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export const DISCOVERY_DEFAULTS = {
  /** Cluster name, when none is given. */
  cluster: 'sdfs',
  /** UDP port the announcements go to and storage servers listen on. */
  port: 6236,
  /** Where the name server sends them: the limited broadcast address, i.e. the whole local link. */
  broadcastAddress: '255.255.255.255',
  /** Interval between two announcements, ms. */
  intervalMs: 5000,
} as const;

export type AnnouncedScheme = 'http' | 'https';

export interface Announcement {
  cluster: string;
  scheme: AnnouncedScheme;
  /** Port of the name server's HTTP API. */
  port: number;
}

/** What an announcement's signature covers (its time aside): its cluster, scheme and port. */
export function announcedFields(a: Announcement): string {
  return `${a.cluster}\n${a.scheme}\n${a.port}`;
}

/**
 * An announcement as received: with the time (`ts`, unix seconds) and signature (`sig`) that a name
 * server holding the cluster secret adds, when there are (checked by the receiver, which has the keys).
 */
export interface ReceivedAnnouncement extends Announcement {
  ts?: unknown;
  sig?: unknown;
}

export function validateClusterName(name: string): string {
  if (!CLUSTER_NAME_PATTERN.test(name)) {
    throw new SdfsError('EINVAL', `invalid cluster name ${JSON.stringify(name.slice(0, 80))}: 1-64 letters, digits, '.', '_' or '-'`);
  }
  return name;
}

/** `sign`, given, adds the time and a signature of the cluster secret (see protocol/auth.ts). */
export function encodeAnnouncement(a: Announcement, sign?: (fields: string, ts: number) => string, nowMs = Date.now()): Buffer {
  validateClusterName(a.cluster);
  if (!isPort(a.port)) throw new SdfsError('EINVAL', `invalid port in announcement: ${a.port}`);
  if (a.scheme !== 'http' && a.scheme !== 'https') throw new SdfsError('EINVAL', `invalid scheme in announcement: ${String(a.scheme)}`);
  const ts = Math.floor(nowMs / 1000);
  const signed = sign ? { ts, sig: sign(announcedFields(a), ts) } : {};
  const buf = Buffer.from(JSON.stringify({ type: ANNOUNCEMENT_TYPE, version: ANNOUNCEMENT_VERSION, cluster: a.cluster, scheme: a.scheme, port: a.port, ...signed }));
  if (buf.length > MAX_ANNOUNCEMENT_BYTES) throw new SdfsError('ETOOBIG', 'announcement too large');
  return buf;
}

/** Reads a datagram from the network; anything but a valid version-1 announcement throws EPROTO. */
export function decodeAnnouncement(datagram: Uint8Array): Announcement {
  const { cluster, scheme, port } = decodeReceived(datagram);
  return { cluster, scheme, port };
}

/** As decodeAnnouncement, with the time and signature if the datagram has them (unchecked). */
export function decodeReceived(datagram: Uint8Array): ReceivedAnnouncement {
  if (datagram.length > MAX_ANNOUNCEMENT_BYTES) throw new SdfsError('EPROTO', `datagram too large (${datagram.length} bytes)`);
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(datagram));
  } catch {
    throw new SdfsError('EPROTO', 'datagram is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new SdfsError('EPROTO', 'datagram is not a JSON object');
  const m = value as Record<string, unknown>;
  if (m.type !== ANNOUNCEMENT_TYPE) throw new SdfsError('EPROTO', 'not an sdfs announcement');
  if (m.version !== ANNOUNCEMENT_VERSION) throw new SdfsError('EPROTO', 'unsupported announcement version');
  if (typeof m.cluster !== 'string' || !CLUSTER_NAME_PATTERN.test(m.cluster)) throw new SdfsError('EPROTO', 'invalid cluster name');
  if (m.scheme !== 'http' && m.scheme !== 'https') throw new SdfsError('EPROTO', 'invalid scheme');
  if (!isPort(m.port)) throw new SdfsError('EPROTO', 'invalid port');
  return { cluster: m.cluster, scheme: m.scheme, port: m.port, ts: m.ts, sig: m.sig };
}

function isPort(p: unknown): p is number {
  return typeof p === 'number' && Number.isInteger(p) && p >= 1 && p <= 65535;
}
