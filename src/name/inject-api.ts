import type { FastifyInstance } from 'fastify';
import type { ApiCaller } from '../protocol/api-caller.js';
import { INTERNAL_HEADER } from './access.js';
import { errorFromBody, SdfsError } from '../protocol/errors.js';
import { API_PREFIX } from '../protocol/messages.js';

/**
 * An ApiCaller that calls the name server's own routes in-process (fastify's inject), so that a
 * relayed request (a classic one, or a stream through /fs/content) runs the same code, with the same
 * validation and errors, as an HTTP one.
 */
export function injectApiCaller(app: FastifyInstance, internalToken: string): ApiCaller {
  return async <T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown, query?: Record<string, string>): Promise<T> => {
    // The caller checked its own client's access already; the API lets the name server's own calls in.
    const headers: Record<string, string> = { [INTERNAL_HEADER]: internalToken };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await app.inject({
      method,
      url: `${API_PREFIX}${path}`,
      headers,
      ...(query ? { query } : {}),
      ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
    });
    let parsed: unknown;
    try {
      parsed = res.body.length > 0 ? JSON.parse(res.body) : undefined;
    } catch {
      if (res.statusCode < 400) throw new SdfsError('EPROTO', `${method} ${path}: the route answered invalid JSON`);
    }
    if (res.statusCode >= 400) throw errorFromBody(res.statusCode, parsed);
    return parsed as T;
  };
}
