import * as tls from 'node:tls';
import { Agent, request, type Dispatcher } from 'undici';
import { SdfsError, errorFromBody, toSdfsError } from './errors.js';

/**
 * A small JSON-over-HTTP caller shared by the client and the storage server (for its calls to the
 * name server). Every error comes back as an SdfsError with the server's stable code.
 */
export interface JsonCallOptions {
  method?: 'GET' | 'POST' | 'PUT' | 'DELETE';
  query?: Record<string, string>;
  body?: unknown;
  signal?: AbortSignal;
  dispatcher?: Dispatcher;
  headers?: Record<string, string>;
}

/** Bound on a JSON response body: listings of big directories are the largest. */
const MAX_JSON_RESPONSE = 256 * 1024 * 1024;

/** An HTTP(S) agent; `ca` (PEM) is trusted besides the system's certificate authorities, for self-signed clusters. */
export function newAgent(ca?: Buffer): Agent {
  return new Agent({
    keepAliveTimeout: 10_000, connections: 64, headersTimeout: 120_000, bodyTimeout: 120_000,
    ...(ca ? { connect: { ca: [...tls.rootCertificates, ca.toString('utf8')] } } : {}),
  });
}

export async function callJson<T>(baseUrl: string, path: string, opts: JsonCallOptions = {}): Promise<T> {
  const url = new URL(path, baseUrl);
  for (const [k, v] of Object.entries(opts.query ?? {})) url.searchParams.set(k, v);
  let res: Dispatcher.ResponseData;
  try {
    res = await request(url, {
      method: opts.method ?? (opts.body === undefined ? 'GET' : 'POST'),
      headers: { ...(opts.body === undefined ? {} : { 'content-type': 'application/json' }), ...opts.headers },
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: opts.signal,
      dispatcher: opts.dispatcher,
    });
  } catch (err) {
    const e = toSdfsError(err);
    if (e.code === 'EUNAVAILABLE') throw new SdfsError('EUNAVAILABLE', `cannot reach ${url.origin}: ${e.message}`, { cause: err });
    throw e;
  }
  return readJson<T>(res);
}

export async function readJson<T>(res: Dispatcher.ResponseData): Promise<T> {
  let text: string;
  try {
    const len = Number(res.headers['content-length'] ?? 0);
    if (len > MAX_JSON_RESPONSE) throw new SdfsError('ETOOBIG', 'response too large');
    text = await res.body.text();
  } catch (err) {
    throw toSdfsError(err);
  }
  let parsed: unknown = undefined;
  try {
    parsed = text.length > 0 ? JSON.parse(text) : undefined;
  } catch {
    if (res.statusCode < 400) throw new SdfsError('EPROTO', 'server sent invalid JSON');
  }
  if (res.statusCode >= 400) throw errorFromBody(res.statusCode, parsed);
  return parsed as T;
}

/** A storage server's address as a URL base: `host:port` is HTTP, `https://host:port` HTTPS; IPv6 hosts arrive already bracketed. */
export function addrToUrl(addr: string): string {
  return addr.startsWith('https://') ? addr : `http://${addr}`;
}
