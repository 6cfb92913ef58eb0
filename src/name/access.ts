import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AUTH_HEADERS, checkSession, verifyRequest, type ClusterKeys } from '../protocol/auth.js';
import { SdfsError } from '../protocol/errors.js';
import type { AccessKeys, Role } from './access-keys.js';

/**
 * Who may call each route of the name server. A route says what it needs in its `config.access`;
 * without one, reading (GET, HEAD) needs `read` and anything else `write`.
 * - `public`: anyone (the web UI's files, the API description, logging in);
 * - `cluster`: storage servers only (requests signed with the cluster secret);
 * - `read`, `write`: a client with an access key of that power, when keys are configured;
 *   anyone when none are.
 * Cluster members may call every route; so may the name server itself (classic sessions and the
 * content routes call the API in-process, after checking their own caller).
 */
export type Access = 'public' | 'cluster' | 'read' | 'write';

export const ACCESS = {
  public: { config: { access: 'public' satisfies Access } },
  cluster: { config: { access: 'cluster' satisfies Access } },
  read: { config: { access: 'read' satisfies Access } },
  write: { config: { access: 'write' satisfies Access } },
} as const;

/** The cookie of a web session (set by POST /api/v1/session). */
export const SESSION_COOKIE = 'sdfs_session';

/** The header, with a random value per process, that marks the name server's own in-process calls. */
export const INTERNAL_HEADER = 'x-sdfs-internal';

export interface AccessControl {
  /** Header value for in-process calls (fastify inject). */
  readonly internalToken: string;
  /** Whether clients need an access key. */
  readonly keysRequired: boolean;
  /** The role of a request's access key or session; undefined if it has neither. */
  roleOf(req: FastifyRequest): Role | undefined;
  /** The role of an access key; undefined for an unknown one. */
  roleOfKey(key: string): Role | undefined;
}

export function installAccessControl(app: FastifyInstance, keys: ClusterKeys, accessKeys: AccessKeys): AccessControl {
  const internalToken = randomBytes(24).toString('base64url');
  const roleOf = (req: FastifyRequest): Role | undefined => {
    const auth = req.headers.authorization;
    if (typeof auth === 'string' && auth.startsWith('Bearer ')) return accessKeys.roleOf(auth.slice(7).trim());
    return checkSession(keys, cookie(req, SESSION_COOKIE));
  };

  app.addHook('onRequest', async (req: FastifyRequest) => {
    const access = (req.routeOptions.config as { access?: Access }).access
      ?? (req.method === 'GET' || req.method === 'HEAD' ? 'read' : 'write');
    if (access === 'public') return;
    if (req.headers[INTERNAL_HEADER] === internalToken) return;
    const signed = req.headers[AUTH_HEADERS.cluster];
    if (typeof signed === 'string' && verifyRequest(keys, signed, req.method, req.url)) return;
    if (access === 'cluster') throw new SdfsError('EAUTH', 'storage servers must sign their requests with the cluster secret');
    if (!accessKeys.required) return;
    const role = roleOf(req);
    if (role === undefined) throw new SdfsError('EAUTH', 'an access key is required (sdfs --key, SDFS_KEY, or log in to the web UI)');
    if (access === 'write' && role !== 'rw') throw new SdfsError('EACCES', 'this access key is read-only');
  });

  return { internalToken, keysRequired: accessKeys.required, roleOf, roleOfKey: (key) => accessKeys.roleOf(key) };
}

/** One cookie's value from the Cookie header. */
export function cookie(req: FastifyRequest, name: string): string | undefined {
  const header = req.headers.cookie;
  if (typeof header !== 'string') return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
