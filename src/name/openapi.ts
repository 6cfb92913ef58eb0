import { Type } from '@sinclair/typebox';
import type { FastifyInstance, RouteOptions } from 'fastify';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ERROR_TABLE, type ErrorCode } from '../protocol/errors.js';
import * as messages from '../protocol/messages.js';
import { API_PREFIX } from '../protocol/messages.js';
import { ACCESS } from './access.js';
import { SessionResponse } from './session-routes.js';

/**
 * The OpenAPI 3.1 description of the name server's API, served at `GET /api/v1/openapi.json`.
 *
 * It is built from the routes themselves: an `onRoute` hook (installed before any route) records
 * each route's method, path and TypeBox schemas (querystring, params, body), so a route added
 * anywhere shows up with the validation it really applies. What a schema cannot say (a summary,
 * the answer's shape, the error codes) comes from the table below, keyed by method and path; a
 * route missing from it is still listed, marked undocumented. Named schemas of
 * `protocol/messages.ts` become `components.schemas` and are referenced by `$ref`.
 */

type Json = Record<string, unknown>;

interface RouteDoc {
  tag: 'files' | 'content' | 'uploads' | 'cluster' | 'storage servers' | 'meta';
  summary: string;
  description?: string;
  /** The JSON answer's schema (200), or the name of a special answer. */
  response?: object | 'bytes' | 'openapi';
  /** Error codes this route may answer with, besides EINVAL for a request that fails validation. */
  errors?: ErrorCode[];
  /** The request body is raw bytes (not JSON). */
  bytesBody?: boolean;
}

const ERRORS_PATH: ErrorCode[] = ['ENOENT', 'ENOTDIR'];

/** Documentation of each route, keyed `METHOD path-after-/api/v1`. */
export const ROUTE_DOCS: Record<string, RouteDoc> = {
  'GET /fs/stat': { tag: 'files', summary: 'A file\'s or directory\'s metadata', response: messages.FileStat, errors: ERRORS_PATH },
  'GET /fs/list': {
    tag: 'files', summary: 'The entries of a directory', response: messages.ListResponse, errors: ['ENOENT', 'ENOTDIR'],
    description: 'Directories first, then files, each group by name (byte order).',
  },
  'GET /fs/blocks': {
    tag: 'files', summary: 'A file\'s blocks and where their replicas live', response: messages.BlocksResponse, errors: ['ENOENT', 'ENOTDIR', 'EISDIR'],
    description: 'Live replicas come first in each block\'s list, each group in random order.',
  },
  'POST /fs/mkdir': { tag: 'files', summary: 'Makes a directory', response: messages.FileStat, errors: ['ENOENT', 'EEXIST', 'ENOTDIR'], description: '`parents: true` makes the missing parents too and accepts an existing directory (`mkdir -p`).' },
  'POST /fs/create': { tag: 'files', summary: 'Creates an empty file', response: messages.FileStat, errors: ['ENOENT', 'EEXIST', 'ENOTDIR'] },
  'POST /fs/move': {
    tag: 'files', summary: 'Moves or renames a file or directory', response: messages.FileStat, errors: ['ENOENT', 'EEXIST', 'ENOTDIR', 'EISDIR', 'ENOTEMPTY', 'EINVAL'],
    description: 'Into `to` if `to` is an existing directory. One transaction. `overwrite: true` replaces an existing file.',
  },
  'POST /fs/copy': {
    tag: 'files', summary: 'Copies a file or a directory tree', response: messages.FileStat, errors: ['ENOENT', 'EEXIST', 'ENOTDIR', 'EISDIR', 'EINVAL'],
    description: 'The copy shares the source\'s blocks (blocks never change): no data moves.',
  },
  'POST /fs/delete': {
    tag: 'files', summary: 'Deletes a file or directory', errors: ['ENOENT', 'ENOTEMPTY', 'EINVAL'],
    response: Type.Object({ deleted: Type.String() }),
    description: 'A non-empty directory needs `recursive: true`. The blocks are removed from the storage servers in the background.',
  },
  'GET /fs/content': {
    tag: 'content', summary: 'Downloads a file\'s bytes', response: 'bytes', errors: ['ENOENT', 'EISDIR', 'ERANGE', 'EUNAVAILABLE', 'ECHECKSUM'],
    description: 'Streamed by the name server from the storage servers, block by block. One `Range: bytes=a-b` range is honoured (206, `Content-Range`). '
      + '`Content-Disposition: attachment` unless `inline=true`.',
  },
  'PUT /fs/content': {
    tag: 'content', summary: 'Uploads a file (the request body is its bytes)', response: messages.FileStat, bytesBody: true,
    errors: ['ENOENT', 'EEXIST', 'ENOTDIR', 'EISDIR', 'ENOSTORAGE', 'ENOSPACE', 'EUNAVAILABLE'],
    description: 'Streamed through to the storage servers as it arrives; the file appears only once every block is stored (atomic commit). '
      + 'The body is never parsed, whatever its content type. `overwrite=true` replaces an existing file.',
  },
  'POST /fs/blocks': {
    tag: 'files', summary: 'Several files\' block lists at once (client library, readers of many files)', response: messages.BlocksBatchResponse, errors: ['EINVAL'],
    description: 'Needs read access only. One answer per path, in order: the block list, or `{ path, error: { code, message } }` for a path that has none. '
      + 'An answer holds 1,024 blocks at most: a file that would go past that gets ETOOBIG in its place (ask for it alone).',
  },
  'POST /uploads': {
    tag: 'uploads', summary: 'Opens an upload (client library)', response: messages.OpenUploadResponse, errors: ['ENOENT', 'EEXIST', 'ENOTDIR', 'EISDIR', 'ENOSTORAGE', 'EUNAVAILABLE'],
    description: 'The client then allocates each block, streams it to the targets\' storage servers, reports it stored, and commits.',
  },
  'POST /uploads/pool': {
    tag: 'uploads', summary: 'Opens uploads ahead, with no path yet, each with its first block placed (client library, small files)',
    response: messages.PoolUploadsResponse, errors: ['ENOSTORAGE', 'ENOSPACE', 'EUNAVAILABLE'],
    description: 'A client writing many small files takes one for each file and gives the path at commit: one call to the name server per file. '
      + 'No block of these uploads may be larger than `maxBlock`.',
  },
  'POST /uploads/:id/blocks': { tag: 'uploads', summary: 'Allocates a block of an upload: its id and target storage servers', response: messages.AllocateBlockResponse, errors: ['ENOENT', 'ENOSTORAGE', 'ENOSPACE'] },
  'POST /uploads/:id/stored': { tag: 'uploads', summary: 'Reports a block stored on its replicas', response: Type.Object({ ok: Type.Literal(true) }), errors: ['ENOENT', 'EINVAL'] },
  'POST /uploads/:id/commit': { tag: 'uploads', summary: 'Commits an upload: the file appears (or replaces the old one) atomically', response: messages.FileStat, errors: ['ENOENT', 'EEXIST', 'EINVAL'] },
  'DELETE /uploads/:id': { tag: 'uploads', summary: 'Aborts an upload; its blocks are cleaned away', response: Type.Object({ aborted: Type.String() }), errors: ['ENOENT'] },
  'GET /cluster': { tag: 'cluster', summary: 'Storage servers, capacity and defaults', response: messages.ClusterResponse },
  'GET /cluster/status': {
    tag: 'cluster', summary: 'The cluster\'s health: storage servers alive or dead, space, counts, under-replicated and missing blocks', response: messages.StatusResponse,
  },
  'POST /cluster/init': { tag: 'cluster', summary: 'Wipes every file and every storage server (the shell\'s `init`)', response: messages.ClusterResponse, errors: ['EUNAVAILABLE'] },
  'GET /fsck': { tag: 'cluster', summary: 'Each file\'s replication health under a path', response: messages.FsckResponse, errors: ['ENOENT'] },
  'GET /cluster/proof': {
    tag: 'storage servers', summary: 'Proves this name server holds the cluster secret: the MAC of a storage server\'s nonce',
    response: messages.ProofResponse, description: 'Asked by a storage server that heard a LAN announcement, before it joins the address it came from.',
  },
  'POST /storages/register': { tag: 'storage servers', summary: 'A storage server registers (at start)', response: messages.HeartbeatResponse },
  'POST /storages/heartbeat': { tag: 'storage servers', summary: 'A storage server\'s heartbeat, with its space', response: messages.HeartbeatResponse },
  'POST /storages/blocks': {
    tag: 'storage servers', summary: 'A storage server\'s full block list', errors: ['ENOENT'],
    response: Type.Object({ added: Type.Integer(), strays: Type.Integer(), lost: Type.Integer() }),
  },
  'POST /blocks/:id/bad': { tag: 'storage servers', summary: 'Reports a damaged replica (failed checksum); it is replaced from a good one', response: Type.Object({ dropped: Type.Boolean() }) },
  'POST /storages/decommission': {
    tag: 'storage servers', summary: 'Drains a storage server before it is stopped (or cancels)', response: messages.StorageInfo, errors: ['ENOENT', 'EINVAL'],
  },
  'POST /storages/forget': {
    tag: 'storage servers', summary: 'Forgets a dead storage server for good, and the replicas it held (they are re-made from the others)',
    response: messages.ForgetResponse, errors: ['ENOENT', 'EINVAL', 'EBUSY'],
    description: 'Refused (EBUSY) while the server is alive, and, unless `force`, when a block has no other replica.',
  },
  'GET /openapi.json': { tag: 'meta', summary: 'This description of the API (OpenAPI 3.1)', response: 'openapi' },
  'GET /session': { tag: 'meta', summary: 'Whether access keys are required, and what the caller may do', response: SessionResponse },
  'POST /session': {
    tag: 'meta', summary: 'Log in: trade an access key for a session cookie (web UI)', response: SessionResponse, errors: ['EAUTH'],
    description: 'Sets the HttpOnly, SameSite=Strict cookie `sdfs_session`, valid for 12 hours. Scripts send `Authorization: Bearer KEY` instead.',
  },
  'DELETE /session': { tag: 'meta', summary: 'Log out: clears the session cookie', response: SessionResponse },
};

interface RecordedRoute {
  method: string;
  url: string;
  schema: { querystring?: Json; params?: Json; body?: Json };
}

/**
 * Records every route registered from now on and serves the description at `/api/v1/openapi.json`.
 * Call it before any route is registered.
 */
export function registerOpenApi(app: FastifyInstance): void {
  const routes: RecordedRoute[] = [];
  app.addHook('onRoute', (route: RouteOptions) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods) {
      if (method === 'HEAD' || !route.url.startsWith(`${API_PREFIX}/`)) continue;
      routes.push({ method, url: route.url, schema: (route.schema ?? {}) as RecordedRoute['schema'] });
    }
  });
  let doc: Json | undefined;
  app.get(`${API_PREFIX}/openapi.json`, ACCESS.public, async (_req, reply) => {
    doc ??= buildOpenApi(routes, packageVersion());
    return reply.header('cache-control', 'no-cache').send(doc);
  });
}

/** The OpenAPI document for the recorded routes. Exported for tests and for docs. */
export function buildOpenApi(routes: RecordedRoute[], version: string): Json {
  const names = namedSchemas();
  const components: Record<string, Json> = {};
  const ref = (schema: unknown): Json => toJsonSchema(schema, names, components);
  components.Error = errorSchema();
  const paths: Record<string, Record<string, Json>> = {};
  for (const r of [...routes].sort((a, b) => a.url.localeCompare(b.url) || a.method.localeCompare(b.method))) {
    const key = r.url.slice(API_PREFIX.length);
    const d = ROUTE_DOCS[`${r.method} ${key}`];
    const op: Json = {
      operationId: operationId(r.method, key),
      tags: [d?.tag ?? 'undocumented'],
      summary: d?.summary ?? 'undocumented',
    };
    if (d?.description) op.description = d.description;
    const parameters: Json[] = [
      ...parametersOf(r.schema.params, 'path', ref),
      ...parametersOf(r.schema.querystring, 'query', ref),
    ];
    if (r.method === 'GET' && key === '/fs/content') {
      parameters.push({ name: 'Range', in: 'header', required: false, schema: { type: 'string', example: 'bytes=0-1023' }, description: 'One byte range.' });
    }
    if (parameters.length > 0) op.parameters = parameters;
    if (d?.bytesBody) {
      op.requestBody = { required: true, content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } };
    } else if (r.schema.body) {
      op.requestBody = { required: true, content: { 'application/json': { schema: ref(r.schema.body) } } };
    }
    op.responses = responsesOf(d, ref);
    (paths[r.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}')] ??= {})[r.method.toLowerCase()] = op;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'sdfs name server API',
      version,
      description: 'Namespace, file content, uploads and cluster health of an sdfs cluster. Every error is JSON `{"error":{"code","message"}}` '
        + 'with a stable code (see the Error schema); its HTTP status follows from the code. Human-readable guide: docs/API.md.',
    },
    paths,
    components: { schemas: components },
  };
}

function responsesOf(d: RouteDoc | undefined, ref: (s: unknown) => Json): Json {
  const out: Record<string, Json> = {};
  if (d?.response === 'bytes') {
    out['200'] = { description: 'The file\'s bytes', content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } };
    out['206'] = { description: 'The requested range', content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } };
  } else if (d?.response === 'openapi') {
    out['200'] = { description: 'An OpenAPI 3.1 document', content: { 'application/json': { schema: { type: 'object' } } } };
  } else {
    out['200'] = { description: 'Done', content: { 'application/json': { schema: d?.response ? ref(d.response) : {} } } };
  }
  // One response per status, naming the codes it carries.
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of new Set<ErrorCode>(['EINVAL', ...(d?.errors ?? []), 'EINTERNAL'])) {
    const status = ERROR_TABLE[code].status;
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  for (const [status, codes] of [...byStatus].sort((a, b) => a[0] - b[0])) {
    out[String(status)] = {
      description: codes.map((c) => `\`${c}\` (${ERROR_TABLE[c].text})`).join(', '),
      content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
    };
  }
  return out;
}

function parametersOf(schema: Json | undefined, where: 'path' | 'query', ref: (s: unknown) => Json): Json[] {
  const props = schema?.properties as Record<string, Json> | undefined;
  if (!props) return [];
  const required = new Set((schema!.required as string[] | undefined) ?? []);
  return Object.entries(props).map(([name, s]) => ({ name, in: where, required: where === 'path' || required.has(name), schema: ref(s) }));
}

/** `GET /fs/list` -> `getFsList`; `POST /uploads/:id/blocks` -> `postUploadsIdBlocks`. */
function operationId(method: string, path: string): string {
  const words = path.split(/[^A-Za-z0-9]+/).filter(Boolean);
  return method.toLowerCase() + words.map((w) => w[0]!.toUpperCase() + w.slice(1)).join('');
}

/** The object schemas exported by protocol/messages.ts, by identity, with their export names. */
function namedSchemas(): Map<unknown, string> {
  const out = new Map<unknown, string>();
  for (const [name, value] of Object.entries(messages)) {
    if (value && typeof value === 'object' && (value as Json).type === 'object') out.set(value, name);
  }
  return out;
}

/** A plain JSON copy of a TypeBox schema (its symbol keys dropped), named schemas replaced by references. */
function toJsonSchema(schema: unknown, names: Map<unknown, string>, components: Record<string, Json>): Json {
  const convert = (child: unknown): unknown => toJsonSchema(child, names, components);
  const name = names.get(schema);
  if (!name) return copy(schema, convert) as Json;
  if (!(name in components)) {
    components[name] = {}; // reserved first, so that a schema that contains itself stays finite
    components[name] = copy(schema, convert) as Json;
  }
  return { $ref: `#/components/schemas/${name}` };
}

function copy(value: unknown, child: (v: unknown) => unknown): unknown {
  if (Array.isArray(value)) return value.map((v) => (v && typeof v === 'object' ? child(v) : v));
  if (!value || typeof value !== 'object') return value;
  const out: Json = {};
  for (const [k, v] of Object.entries(value)) out[k] = v && typeof v === 'object' ? child(v) : v;
  return out;
}

/** This package's version (package.json sits two levels up, from src/name and from dist/name alike). */
function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(resolve(import.meta.dirname, '../../package.json'), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}

function errorSchema(): Json {
  return {
    type: 'object',
    required: ['error'],
    properties: {
      error: {
        type: 'object',
        required: ['code', 'message'],
        properties: {
          code: { type: 'string', enum: Object.keys(ERROR_TABLE), description: Object.entries(ERROR_TABLE).map(([c, e]) => `${c}: HTTP ${e.status}, ${e.text}`).join('; ') },
          message: { type: 'string' },
        },
      },
    },
  };
}
