// The name server's HTTP API (docs/API.md), as the page uses it. The types come from the shared
// protocol definitions as type-only imports: they vanish from the bundle, which holds no server code.
import type { BlocksResponse, FileStat, ListResponse, StatusResponse } from '../protocol/messages.js';

export type { BlockLocation, BlocksResponse, FileStat, ListResponse, StatusResponse } from '../protocol/messages.js';
export type StorageStatus = StatusResponse['storages'][number];

const BASE = '/api/v1';

/** An error the API answered (`{error:{code,message}}`), or EUNAVAILABLE when it could not be reached. */
export class ApiError extends Error {
  constructor(readonly code: string, message: string, readonly status = 0) {
    super(message);
    this.name = 'ApiError';
  }
}

/** Fired when the API asks for an access key (a session that expired, or none yet): the page shows the login. */
export const AUTH_REQUIRED = 'sdfs:auth-required';

export interface Session {
  keysRequired: boolean;
  role: 'rw' | 'ro' | 'none';
}

async function call<T>(method: 'GET' | 'POST' | 'DELETE', path: string, opts: { query?: Record<string, string>; body?: unknown; signal?: AbortSignal } = {}): Promise<T> {
  const url = `${BASE}${path}${opts.query ? `?${new URLSearchParams(opts.query)}` : ''}`;
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers: opts.body === undefined ? { accept: 'application/json' } : { accept: 'application/json', 'content-type': 'application/json' },
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: opts.signal,
    });
  } catch (err) {
    if (opts.signal?.aborted) throw err;
    throw new ApiError('EUNAVAILABLE', 'cannot reach the name server');
  }
  return parse<T>(res.status, await res.text());
}

function parse<T>(status: number, text: string): T {
  if (status === 401) dispatchEvent(new Event(AUTH_REQUIRED));
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (status >= 200 && status < 300) return json as T;
  const e = (json as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  if (typeof e?.code === 'string' && typeof e.message === 'string') throw new ApiError(e.code, e.message, status);
  throw new ApiError('EPROTO', `unexpected answer: HTTP ${status}`, status);
}

export const api = {
  list: (path: string, signal?: AbortSignal) => call<ListResponse>('GET', '/fs/list', { query: { path }, signal }),
  stat: (path: string, signal?: AbortSignal) => call<FileStat>('GET', '/fs/stat', { query: { path }, signal }),
  blocks: (path: string, signal?: AbortSignal) => call<BlocksResponse>('GET', '/fs/blocks', { query: { path }, signal }),
  mkdir: (path: string) => call<FileStat>('POST', '/fs/mkdir', { body: { path } }),
  move: (from: string, to: string) => call<FileStat>('POST', '/fs/move', { body: { from, to } }),
  remove: (path: string, recursive: boolean) => call<{ deleted: string }>('POST', '/fs/delete', { body: { path, recursive } }),
  status: (signal?: AbortSignal) => call<StatusResponse>('GET', '/cluster/status', { signal }),
  session: () => call<Session>('GET', '/session'),
  /** Trades an access key for a session cookie (HttpOnly: the page never sees it again). */
  login: (key: string) => call<Session>('POST', '/session', { body: { key } }),
  logout: () => call<Session>('DELETE', '/session'),
};

/** Where the browser downloads a file from (the server answers `Content-Disposition: attachment`). */
export function contentUrl(path: string): string {
  return `${BASE}/fs/content?${new URLSearchParams({ path })}`;
}

export interface UploadHandle {
  done: Promise<FileStat>;
  abort(): void;
}

/**
 * Uploads `file` to `path` with one streaming PUT. XMLHttpRequest, because it reports upload
 * progress; the browser reads the file from disk as it sends, and the name server relays it to the
 * storage servers as it arrives, so neither holds the file in memory. The body is always sent as
 * application/octet-stream: the server must never try to parse a file as JSON or text.
 */
export function upload(path: string, file: Blob, opts: { overwrite?: boolean; onProgress?: (loaded: number) => void } = {}): UploadHandle {
  const xhr = new XMLHttpRequest();
  const query = new URLSearchParams({ path });
  if (opts.overwrite) query.set('overwrite', 'true');
  const done = new Promise<FileStat>((ok, fail) => {
    xhr.open('PUT', `${BASE}/fs/content?${query}`);
    xhr.setRequestHeader('content-type', 'application/octet-stream');
    xhr.upload.onprogress = (e) => opts.onProgress?.(e.loaded);
    xhr.onload = () => {
      try {
        ok(parse<FileStat>(xhr.status, xhr.responseText));
      } catch (err) {
        fail(err);
      }
    };
    xhr.onerror = () => fail(new ApiError('EUNAVAILABLE', 'the upload was cut off: cannot reach the name server'));
    xhr.onabort = () => fail(new ApiError('ECANCELED', 'canceled'));
    xhr.send(file);
  });
  return { done, abort: () => xhr.abort() };
}
