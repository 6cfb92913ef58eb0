import * as tls from 'node:tls';
import { Agent, getGlobalDispatcher, type Dispatcher } from 'undici';
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

export interface RequestOptions {
  method?: Dispatcher.HttpMethod;
  headers?: Record<string, string>;
  body?: string | Buffer | Dispatcher.DispatchOptions['body'];
  signal?: AbortSignal;
  dispatcher?: Dispatcher;
}

/**
 * One HTTP request to `origin` (`http://host:port`) for `path` (with its query). undici's top-level
 * `request(url)` parses the URL anew on every call, a fifth of the client's CPU for a stat.
 */
export function requestAt(origin: string, path: string, opts: RequestOptions = {}): Promise<Dispatcher.ResponseData> {
  const { dispatcher = getGlobalDispatcher(), method = 'GET', headers, body, signal } = opts;
  return dispatcher.request({ origin, path, method, headers, body, signal });
}

/** The origin of a base URL (a name server's address may come with a path or a slash), parsed once. */
const origins = new Map<string, string>();
export function originOf(baseUrl: string): string {
  let origin = origins.get(baseUrl);
  if (origin === undefined) {
    origin = new URL(baseUrl).origin;
    if (origins.size >= 1024) origins.clear();
    origins.set(baseUrl, origin);
  }
  return origin;
}

/** `path` with `query` appended, each name and value percent-encoded. */
export function withQuery(path: string, query: Record<string, string> | undefined): string {
  if (!query) return path;
  let out = path;
  let sep = path.includes('?') ? '&' : '?';
  for (const [k, v] of Object.entries(query)) {
    out += `${sep}${encodeURIComponent(k)}=${encodeURIComponent(v)}`;
    sep = '&';
  }
  return out;
}

export async function callJson<T>(baseUrl: string, path: string, opts: JsonCallOptions = {}): Promise<T> {
  const origin = originOf(baseUrl);
  let res: Dispatcher.ResponseData;
  try {
    res = await requestAt(origin, withQuery(path, opts.query), {
      method: opts.method ?? (opts.body === undefined ? 'GET' : 'POST'),
      headers: opts.body === undefined ? opts.headers : { 'content-type': 'application/json', ...opts.headers },
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: opts.signal,
      dispatcher: opts.dispatcher,
    });
  } catch (err) {
    const e = toSdfsError(err);
    if (e.code === 'EUNAVAILABLE') throw new SdfsError('EUNAVAILABLE', `cannot reach ${origin}: ${e.message}`, { cause: err });
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
