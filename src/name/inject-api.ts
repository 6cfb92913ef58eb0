import type { FastifyInstance } from 'fastify';
import type { ApiCaller } from '../protocol/api-caller.js';
import { errorFromBody, SdfsError } from '../protocol/errors.js';
import { API_PREFIX } from '../protocol/messages.js';

/**
 * An ApiCaller that calls the name server's own routes in-process (fastify's inject), so that a
 * relayed request (a classic one, or a stream through /fs/content) runs the same code, with the same
 * validation and errors, as an HTTP one.
 */
export function injectApiCaller(app: FastifyInstance): ApiCaller {
  return async <T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown, query?: Record<string, string>): Promise<T> => {
    const res = await app.inject({
      method,
      url: `${API_PREFIX}${path}`,
      ...(query ? { query } : {}),
      ...(body === undefined ? {} : { payload: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
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
