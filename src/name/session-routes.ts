import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { issueSession, type ClusterKeys } from '../protocol/auth.js';
import { SdfsError } from '../protocol/errors.js';
import { API_PREFIX } from '../protocol/messages.js';
import { ACCESS, SESSION_COOKIE, type AccessControl } from './access.js';

export const LoginRequest = Type.Object({ key: Type.String({ minLength: 1, maxLength: 256 }) });
export type LoginRequest = Static<typeof LoginRequest>;

export const SessionResponse = Type.Object({
  /** Whether this name server asks clients for an access key. */
  keysRequired: Type.Boolean(),
  /** What the caller may do: `rw` (read and write), `ro` (read), or `none` (must log in). */
  role: Type.Union([Type.Literal('rw'), Type.Literal('ro'), Type.Literal('none')]),
});
export type SessionResponse = Static<typeof SessionResponse>;

/** A web session lasts a working day; the browser logs in again after. */
const SESSION_TTL_MS = 12 * 60 * 60 * 1000;

/**
 * Logging in to the web UI: the browser trades an access key for a session cookie (HttpOnly, so
 * scripts cannot read it; SameSite=Strict, so other sites cannot send requests with it).
 */
export function registerSessionRoutes(app: FastifyInstance, deps: { keys: ClusterKeys; access: AccessControl; secureCookie: boolean }): void {
  const url = `${API_PREFIX}/session`;
  const attrs = `Path=/; HttpOnly; SameSite=Strict${deps.secureCookie ? '; Secure' : ''}`;

  app.get(url, ACCESS.public, async (req: FastifyRequest): Promise<SessionResponse> => {
    if (!deps.access.keysRequired) return { keysRequired: false, role: 'rw' };
    return { keysRequired: true, role: deps.access.roleOf(req) ?? 'none' };
  });

  app.post(url, { ...ACCESS.public, schema: { body: LoginRequest } },
    async (req: FastifyRequest<{ Body: LoginRequest }>, reply: FastifyReply): Promise<SessionResponse> => {
      if (!deps.access.keysRequired) return { keysRequired: false, role: 'rw' };
      const role = deps.access.roleOfKey(req.body.key);
      if (!role) throw new SdfsError('EAUTH', 'unknown access key');
      const value = issueSession(deps.keys, role, SESSION_TTL_MS);
      void reply.header('set-cookie', `${SESSION_COOKIE}=${value}; Max-Age=${SESSION_TTL_MS / 1000}; ${attrs}`);
      return { keysRequired: true, role };
    });

  app.delete(url, ACCESS.public, async (_req: FastifyRequest, reply: FastifyReply): Promise<SessionResponse> => {
    void reply.header('set-cookie', `${SESSION_COOKIE}=; Max-Age=0; ${attrs}`);
    return { keysRequired: deps.access.keysRequired, role: deps.access.keysRequired ? 'none' : 'rw' };
  });
}
