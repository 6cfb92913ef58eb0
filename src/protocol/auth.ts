import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import type { Dispatcher } from 'undici';
import { SdfsError } from './errors.js';
import { plainHost } from './http.js';

/**
 * Everything the cluster secret signs. Each use has its own key derived from the secret (HKDF), so
 * that a signature made for one purpose is never valid for another:
 * - requests between the name server and storage servers (`x-sdfs-cluster-auth`);
 * - block access tokens, which the name server hands to clients and storage servers check;
 * - web sessions, the cookie the name server gives a browser that logged in with an access key;
 * - LAN announcements, and the name server's answer to a storage server that heard one and checks it.
 */
export interface ClusterKeys {
  readonly request: Buffer;
  readonly blockToken: Buffer;
  readonly session: Buffer;
  readonly announcement: Buffer;
  readonly nameProof: Buffer;
}

export const AUTH_HEADERS = {
  /** `v1.<unix seconds>.<signature>` of the method, path and time: a request from a cluster member. */
  cluster: 'x-sdfs-cluster-auth',
  /** A block access token, signed by the name server for one block, one operation, until a time. */
  blockToken: 'x-sdfs-token',
} as const;

export function deriveKeys(secret: string): ClusterKeys {
  const key = (info: string): Buffer => Buffer.from(hkdfSync('sha256', Buffer.from(secret, 'utf8'), 'sdfs', info, 32));
  return { request: key('cluster request'), blockToken: key('block token'), session: key('web session'), announcement: key('lan announcement'),
    nameProof: key('name server proof') };
}

/** How far a signed request's time may be from the receiver's clock (clocks of a LAN's machines drift). */
const REQUEST_SKEW_S = 300;

/** 32 bytes in base64url: a MAC (HMAC-SHA-256), or a nonce. */
const BASE64URL_32 = /^[A-Za-z0-9_-]{43}$/;

function mac(key: Buffer, text: string): string {
  return createHmac('sha256', key).update(text).digest('base64url');
}

function sameMac(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The header value that authenticates a request to `path` (with its query) as coming from a cluster member. */
export function signRequest(keys: ClusterKeys, method: string, path: string, nowMs = Date.now()): string {
  const ts = Math.floor(nowMs / 1000);
  return `v1.${ts}.${mac(keys.request, `${method.toUpperCase()}\n${path}\n${ts}`)}`;
}

/** Whether `header` authenticates this request as a cluster member's. */
export function verifyRequest(keys: ClusterKeys, header: string | undefined, method: string, path: string, nowMs = Date.now()): boolean {
  const m = header === undefined ? null : /^v1\.(\d{1,12})\.([A-Za-z0-9_-]{43})$/.exec(header);
  if (!m) return false;
  const ts = Number(m[1]);
  if (Math.abs(nowMs / 1000 - ts) > REQUEST_SKEW_S) return false;
  return sameMac(m[2]!, mac(keys.request, `${method.toUpperCase()}\n${path}\n${ts}`));
}

export type BlockOp = 'read' | 'write';

/** A token that lets its bearer `op` block `blockId` on any storage server of the cluster until `ttlMs` from now. */
export function issueBlockToken(keys: ClusterKeys, blockId: string, op: BlockOp, ttlMs: number, nowMs = Date.now()): string {
  const exp = Math.floor((nowMs + ttlMs) / 1000);
  return `${op === 'read' ? 'r' : 'w'}.${exp}.${mac(keys.blockToken, `${op}\n${blockId}\n${exp}`)}`;
}

/** Throws EACCES unless `token` lets its bearer `op` block `blockId` now. */
export function checkBlockToken(keys: ClusterKeys, token: string | undefined, blockId: string, op: BlockOp, nowMs = Date.now()): void {
  if (token === undefined) throw new SdfsError('EACCES', `a block token is required to ${op} block ${blockId}`);
  const m = /^([rw])\.(\d{1,12})\.([A-Za-z0-9_-]{43})$/.exec(token);
  if (!m) throw new SdfsError('EACCES', 'malformed block token');
  if ((m[1] === 'r' ? 'read' : 'write') !== op) throw new SdfsError('EACCES', `the block token is not for ${op}`);
  const exp = Number(m[2]);
  if (!sameMac(m[3]!, mac(keys.blockToken, `${op}\n${blockId}\n${exp}`))) throw new SdfsError('EACCES', `the block token is not valid for block ${blockId}`);
  if (nowMs / 1000 > exp) throw new SdfsError('EACCES', 'the block token has expired');
}

/** How old a LAN announcement may be: a copy sent again later by someone else is refused after this. */
const ANNOUNCEMENT_SKEW_S = 60;

/** The signature of a LAN announcement's fields at time `ts` (unix seconds). */
export function signAnnouncement(keys: ClusterKeys, fields: string, ts: number): string {
  return mac(keys.announcement, `${fields}\n${ts}`);
}

/** Whether a LAN announcement's signature is the cluster's, and recent. */
export function verifyAnnouncement(keys: ClusterKeys, fields: string, ts: unknown, sig: unknown, nowMs = Date.now()): boolean {
  if (typeof ts !== 'number' || !Number.isSafeInteger(ts) || typeof sig !== 'string' || !BASE64URL_32.test(sig)) return false;
  if (Math.abs(nowMs / 1000 - ts) > ANNOUNCEMENT_SKEW_S) return false;
  return sameMac(sig, mac(keys.announcement, `${fields}\n${ts}`));
}

/**
 * The name server's answer to a storage server's nonce, asked at `address` (`host:port`, the name
 * server's own end of the connection): proof that the server at that address holds the cluster
 * secret. A LAN announcement's source address is not signed (the name server cannot know which of
 * its addresses a receiver sees), so a storage server asks the address it heard for this before it
 * joins; the address in the proof makes a relay useless (a machine that passes the question on to
 * the real name server gets a proof for the real one's address, not its own).
 */
export function proveNameServer(keys: ClusterKeys, nonce: string, address: string): string {
  if (!BASE64URL_32.test(nonce)) throw new SdfsError('EINVAL', 'a nonce is 43 base64url characters');
  return mac(keys.nameProof, `${nonce}\n${address}`);
}

/** Whether `proof` is the cluster's answer to `nonce` asked at `address` (see proveNameServer). */
export function checkNameServerProof(keys: ClusterKeys, nonce: string, address: string, proof: unknown): boolean {
  return typeof proof === 'string' && BASE64URL_32.test(proof) && sameMac(proof, proveNameServer(keys, nonce, address));
}

/** `host:port` of one end of a connection, as both ends name it (see plainHost). */
export function connectionAddress(host: string, port: number | string): string {
  return `${plainHost(host)}:${port}`;
}

/** A web session: the role an access key gave, until a time, signed so that the cookie cannot be forged. */
export function issueSession(keys: ClusterKeys, role: 'ro' | 'rw', ttlMs: number, nowMs = Date.now()): string {
  const exp = Math.floor((nowMs + ttlMs) / 1000);
  return `${role}.${exp}.${mac(keys.session, `${role}\n${exp}`)}`;
}

/** The role of a valid, unexpired session cookie; undefined otherwise. */
export function checkSession(keys: ClusterKeys, cookie: string | undefined, nowMs = Date.now()): 'ro' | 'rw' | undefined {
  const m = cookie === undefined ? null : /^(ro|rw)\.(\d{1,12})\.([A-Za-z0-9_-]{43})$/.exec(cookie);
  if (!m) return undefined;
  const role = m[1] as 'ro' | 'rw';
  const exp = Number(m[2]);
  if (!sameMac(m[3]!, mac(keys.session, `${role}\n${exp}`)) || nowMs / 1000 > exp) return undefined;
  return role;
}

/**
 * Wraps a dispatcher so that every request it sends is signed as a cluster member's: the name server's
 * calls to storage servers, and storage servers' calls to the name server and to each other.
 */
/** Headers that sign a request as a cluster member's: for the BlockChannel, which a dispatcher's compose does not reach. */
export function clusterSigner(keys: ClusterKeys): (method: string, path: string) => Record<string, string> {
  return (method, path) => ({ [AUTH_HEADERS.cluster]: signRequest(keys, method, path) });
}

export function clusterDispatcher(inner: Dispatcher, keys: ClusterKeys): Dispatcher {
  return inner.compose((dispatch) => (opts, handler) => {
    const value = signRequest(keys, opts.method, opts.path);
    return dispatch({ ...opts, headers: withHeader(opts.headers, AUTH_HEADERS.cluster, value) }, handler);
  });
}

function withHeader(headers: Dispatcher.DispatchOptions['headers'], name: string, value: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2) out[String(headers[i])] = headers[i + 1] as string;
  } else if (headers && typeof headers === 'object') {
    for (const [k, v] of Object.entries(headers as Record<string, unknown>)) if (v !== undefined) out[k] = v as string | string[];
  }
  out[name] = value;
  return out;
}
