import type { Dispatcher } from 'undici';
import { callJson } from './http.js';
import { API_PREFIX } from './messages.js';

/**
 * Calls one route of the name server's API; every failure is an SdfsError with a stable code. The
 * client calls over HTTP; the name server, relaying a stream for a client, calls its own routes in-process.
 */
export type ApiCaller = <T = unknown>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown, query?: Record<string, string>) => Promise<T>;

export function apiCaller(baseUrl: string, dispatcher: Dispatcher, headers: Record<string, string> = {}): ApiCaller {
  return <T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown, query?: Record<string, string>) =>
    callJson<T>(baseUrl, `${API_PREFIX}${path}`, { method, body, query, dispatcher, headers });
}
