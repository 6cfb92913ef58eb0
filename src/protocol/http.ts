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
  dispatcher?: Dispatcher;
  headers?: Record<string, string>;
  /** Time allowed for the answer's headers, and between two pieces of its body (default: the agent's, 120 s). */
  timeoutMs?: number;
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
  dispatcher?: Dispatcher;
  timeoutMs?: number;
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
  let answer: { status: number; text: string };
  try {
    answer = await fetchText(origin, withQuery(path, opts.query), {
      method: opts.method ?? (opts.body === undefined ? 'GET' : 'POST'),
      headers: opts.body === undefined ? opts.headers : { 'content-type': 'application/json', ...opts.headers },
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      dispatcher: opts.dispatcher,
      timeoutMs: opts.timeoutMs,
    });
  } catch (err) {
    const e = toSdfsError(err);
    if (e.code === 'EUNAVAILABLE') throw new SdfsError('EUNAVAILABLE', `cannot reach ${origin}: ${e.message}`, { cause: err });
    throw e;
  }
  return parseJson<T>(answer.status, answer.text);
}

/** One request to `origin` for `path` whose answer is JSON (a block PUT's, for one); errors as in callJson. */
export async function requestJson<T>(origin: string, path: string, opts: RequestOptions): Promise<T> {
  const answer = await fetchText(origin, path, opts);
  return parseJson<T>(answer.status, answer.text);
}

/**
 * One request whose answer is read whole, as text (a JSON answer), through undici's `dispatch` with a
 * handler of its own: no response stream is made for it, a fifth of a small call's client CPU.
 */
function fetchText(origin: string, path: string, opts: RequestOptions): Promise<{ status: number; text: string }> {
  const { dispatcher = getGlobalDispatcher(), method = 'GET', headers, body, timeoutMs } = opts;
  const timeouts = timeoutMs === undefined ? {} : { headersTimeout: timeoutMs, bodyTimeout: timeoutMs };
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    let status = 0;
    dispatcher.dispatch({ origin, path, method, headers, body, ...timeouts }, {
      // undici takes a handler in this (controller) form only if it has onRequestStart.
      onRequestStart() {},
      onResponseStart(controller, statusCode, responseHeaders) {
        status = statusCode;
        if (Number(responseHeaders['content-length'] ?? 0) > MAX_JSON_RESPONSE) controller.abort(new SdfsError('ETOOBIG', 'response too large'));
      },
      onResponseData(controller, chunk) {
        bytes += chunk.length;
        if (bytes > MAX_JSON_RESPONSE) controller.abort(new SdfsError('ETOOBIG', 'response too large'));
        else chunks.push(chunk);
      },
      onResponseEnd() {
        resolve({ status, text: (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, bytes)).toString('utf8') });
      },
      onResponseError(_controller, err) {
        reject(err);
      },
    });
  });
}

/** An answer's JSON, or the SdfsError that an error answer carries. */
export function parseJson<T>(statusCode: number, text: string): T {
  let parsed: unknown = undefined;
  try {
    parsed = text.length > 0 ? JSON.parse(text) : undefined;
  } catch {
    if (statusCode < 400) throw new SdfsError('EPROTO', 'server sent invalid JSON');
  }
  if (statusCode >= 400) throw errorFromBody(statusCode, parsed);
  return parsed as T;
}

/**
 * A host as sockets and URLs name it, in one form: an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, as
 * a dual-stack socket reports an IPv4 peer) as IPv4, IPv6 without brackets, lower case.
 */
export function plainHost(host: string): string {
  const bare = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return bare.startsWith('::ffff:') && bare.includes('.') ? bare.slice(7) : bare;
}

/** A storage server's address as a URL base: `host:port` is HTTP, `https://host:port` HTTPS; IPv6 hosts arrive already bracketed. */
export function addrToUrl(addr: string): string {
  return addr.startsWith('https://') ? addr : `http://${addr}`;
}
