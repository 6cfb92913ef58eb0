import type { FastifyInstance, FastifyRequest } from 'fastify';
import { SdfsError } from '../protocol/errors.js';
import {
  AllocateBlockRequest, API_PREFIX, CompleteBlockRequest, CreateRequest, DeleteRequest, MkdirRequest, MoveRequest,
  OpenUploadRequest, PathQuery, StorageReport,
  type BlocksResponse, type ClusterResponse, type HeartbeatResponse,
} from '../protocol/messages.js';
import { resolvePath } from '../protocol/paths.js';
import type { NameConfig } from './config.js';
import type { Namespace } from './namespace.js';
import type { StorageRegistry } from './storages.js';
import type { Uploads } from './uploads.js';

export interface NameServices {
  config: NameConfig;
  ns: Namespace;
  uploads: Uploads;
  storages: StorageRegistry;
  blocksOf(path: string): BlocksResponse;
  cluster(): ClusterResponse;
  init(): Promise<ClusterResponse>;
}

type Req<B = unknown, Q = unknown, P = unknown> = FastifyRequest<{ Body: B; Querystring: Q; Params: P }>;
const UploadParams = { type: 'object', properties: { id: { type: 'string', pattern: '^[0-9a-f]{32}$' } }, required: ['id'] } as const;

/** The HTTP/JSON API of the name server, for clients and storage servers. */
export function registerApiRoutes(app: FastifyInstance, s: NameServices): void {
  const p = API_PREFIX;

  app.get(`${p}/fs/stat`, { schema: { querystring: PathQuery } }, async (req: Req<unknown, PathQuery>) => s.ns.stat(req.query.path));
  app.get(`${p}/fs/list`, { schema: { querystring: PathQuery } }, async (req: Req<unknown, PathQuery>) => s.ns.list(req.query.path));
  app.get(`${p}/fs/blocks`, { schema: { querystring: PathQuery } }, async (req: Req<unknown, PathQuery>) => s.blocksOf(req.query.path));
  app.post(`${p}/fs/mkdir`, { schema: { body: MkdirRequest } }, async (req: Req<MkdirRequest>) => s.ns.mkdir(req.body.path, req.body.parents));
  app.post(`${p}/fs/create`, { schema: { body: CreateRequest } },
    async (req: Req<CreateRequest>) => s.ns.createEmpty(req.body.path, s.config.replication, s.config.blockSize));
  app.post(`${p}/fs/move`, { schema: { body: MoveRequest } },
    async (req: Req<MoveRequest>) => s.ns.rename(req.body.from, req.body.to, req.body.overwrite));
  app.post(`${p}/fs/copy`, { schema: { body: MoveRequest } },
    async (req: Req<MoveRequest>) => s.ns.copy(req.body.from, req.body.to, req.body.overwrite));
  app.post(`${p}/fs/delete`, { schema: { body: DeleteRequest } }, async (req: Req<DeleteRequest>) => {
    s.ns.remove(req.body.path, req.body.recursive);
    return { deleted: resolvePath(req.body.path) };
  });

  app.post(`${p}/uploads`, { schema: { body: OpenUploadRequest } }, async (req: Req<OpenUploadRequest>) => s.uploads.open(req.body));
  app.post(`${p}/uploads/:id/blocks`, { schema: { body: AllocateBlockRequest, params: UploadParams } },
    async (req: Req<AllocateBlockRequest, unknown, { id: string }>) => s.uploads.allocate(req.params.id, req.body.index, req.body.exclude));
  app.post(`${p}/uploads/:id/stored`, { schema: { body: CompleteBlockRequest, params: UploadParams } },
    async (req: Req<CompleteBlockRequest, unknown, { id: string }>) => {
      s.uploads.completeBlock(req.params.id, req.body);
      return { ok: true };
    });
  app.post(`${p}/uploads/:id/commit`, { schema: { params: UploadParams } },
    async (req: Req<unknown, unknown, { id: string }>) => s.uploads.commit(req.params.id));
  app.delete(`${p}/uploads/:id`, { schema: { params: UploadParams } }, async (req: Req<unknown, unknown, { id: string }>) => {
    s.uploads.abort(req.params.id);
    return { aborted: req.params.id };
  });

  app.get(`${p}/cluster`, async () => s.cluster());
  app.post(`${p}/cluster/init`, async () => s.init());

  app.post(`${p}/storages/register`, { schema: { body: StorageReport } }, async (req: Req<StorageReport>): Promise<HeartbeatResponse> => {
    s.storages.register(req.body, remoteHost(req));
    return { heartbeatMs: s.config.heartbeatMs };
  });
  app.post(`${p}/storages/heartbeat`, { schema: { body: StorageReport } }, async (req: Req<StorageReport>): Promise<HeartbeatResponse> => {
    s.storages.heartbeat(req.body);
    return { heartbeatMs: s.config.heartbeatMs };
  });
}

function remoteHost(req: FastifyRequest): string {
  const ip = req.socket.remoteAddress;
  if (!ip) throw new SdfsError('EINVAL', 'cannot tell the storage server address');
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}
