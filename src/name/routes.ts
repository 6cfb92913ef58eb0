import type { FastifyInstance, FastifyRequest } from 'fastify';
import { SdfsError } from '../protocol/errors.js';
import {
  AllocateBlockRequest, API_PREFIX, CompleteBlockRequest, CreateRequest, DeleteRequest, MkdirRequest, MoveRequest,
  BadReplicaReport, BlockReport, BlocksBatchRequest, type BlocksBatchResponse, CommitRequest, DecommissionRequest, FileStat, ForgetRequest, ListResponse, OpenUploadRequest, PathQuery, PoolUploadsRequest, StorageReport,
  BlocksResponse, type ClusterResponse, type HeartbeatResponse, ProofQuery, type ProofResponse,
} from '../protocol/messages.js';
import { resolvePath } from '../protocol/paths.js';
import { connectionAddress } from '../protocol/auth.js';
import { plainHost } from '../protocol/http.js';
import { ACCESS } from './access.js';
import type { NameConfig } from './config.js';
import type { Namespace } from './namespace.js';
import type { StorageRegistry } from './storages.js';
import type { Uploads } from './uploads.js';
import { blockReportInterval, reportSlices, type BlockMap } from './block-map.js';
import type { Committer } from './committer.js';
import type { Health } from './health.js';
import type { Replicator } from './replicator.js';

export interface NameServices {
  config: NameConfig;
  ns: Namespace;
  uploads: Uploads;
  storages: StorageRegistry;
  map: BlockMap;
  replicator: Replicator;
  health: Health;
  committer: Committer;
  blocksOf(path: string, maxBlocks?: number): BlocksResponse;
  cluster(): ClusterResponse;
  init(): Promise<ClusterResponse>;
  /** The MAC of a storage server's nonce and this server's address with the cluster secret (GET /cluster/proof). */
  prove(nonce: string, address: string): string;
}

/** Blocks in one answer of POST /fs/blocks at most (about 256 KiB of JSON): batches are for many small files. */
export const BATCH_MAX_BLOCKS = 1024;

type Req<B = unknown, Q = unknown, P = unknown> = FastifyRequest<{ Body: B; Querystring: Q; Params: P }>;
const IdParams = { type: 'object', properties: { id: { type: 'string', pattern: '^[0-9a-f]{32}$' } }, required: ['id'] } as const;

/** The HTTP/JSON API of the name server, for clients and storage servers. */
export function registerApiRoutes(app: FastifyInstance, s: NameServices): void {
  const p = API_PREFIX;

  // The most frequent answers are serialized by a compiled schema (fast-json-stringify), not JSON.stringify.
  app.get(`${p}/fs/stat`, { schema: { querystring: PathQuery, response: { 200: FileStat } } },
    async (req: Req<unknown, PathQuery>) => s.ns.stat(req.query.path));
  app.get(`${p}/fs/list`, { schema: { querystring: PathQuery, response: { 200: ListResponse } } },
    async (req: Req<unknown, PathQuery>) => s.ns.list(req.query.path));
  app.get(`${p}/fs/blocks`, { schema: { querystring: PathQuery, response: { 200: BlocksResponse } } },
    async (req: Req<unknown, PathQuery>) => s.blocksOf(req.query.path));
  // Reading, though a POST (the paths are a body): one answer per path, an error for one path fails
  // only that one. The answer holds BATCH_MAX_BLOCKS blocks at most, so that a batch naming a file of
  // many blocks 256 times costs no more than asking for it once: a file that does not fit gets
  // ETOOBIG, and the client asks for it alone.
  app.post(`${p}/fs/blocks`, { ...ACCESS.read, schema: { body: BlocksBatchRequest } }, async (req: Req<BlocksBatchRequest>): Promise<BlocksBatchResponse> => {
    let room = BATCH_MAX_BLOCKS;
    return {
      files: req.body.paths.map((path) => {
        try {
          const located = s.blocksOf(path, room);
          room -= located.blocks.length;
          return located;
        } catch (err) {
          if (err instanceof SdfsError) return { path, ...err.toJSON() };
          throw err;
        }
      }),
    };
  });
  // Every change goes through the group committer: answered once it is durable.
  const commit = <T>(fn: () => T): Promise<T> => s.committer.run(fn);
  app.post(`${p}/fs/mkdir`, { schema: { body: MkdirRequest, response: { 200: FileStat } } },
    async (req: Req<MkdirRequest>) => commit(() => s.ns.mkdir(req.body.path, req.body.parents)));
  app.post(`${p}/fs/create`, { schema: { body: CreateRequest, response: { 200: FileStat } } },
    async (req: Req<CreateRequest>) => commit(() => s.ns.createEmpty(req.body.path, s.config.replication, s.config.blockSize)));
  app.post(`${p}/fs/move`, { schema: { body: MoveRequest, response: { 200: FileStat } } },
    async (req: Req<MoveRequest>) => commit(() => s.ns.rename(req.body.from, req.body.to, req.body.overwrite)));
  app.post(`${p}/fs/copy`, { schema: { body: MoveRequest, response: { 200: FileStat } } },
    async (req: Req<MoveRequest>) => commit(() => s.ns.copy(req.body.from, req.body.to, req.body.overwrite)));
  app.post(`${p}/fs/delete`, { schema: { body: DeleteRequest } }, async (req: Req<DeleteRequest>) => {
    await commit(() => s.ns.remove(req.body.path, req.body.recursive));
    return { deleted: resolvePath(req.body.path) };
  });

  app.post(`${p}/uploads`, { schema: { body: OpenUploadRequest } }, async (req: Req<OpenUploadRequest>) => s.uploads.open(req.body));
  app.post(`${p}/uploads/pool`, { schema: { body: PoolUploadsRequest } }, async (req: Req<PoolUploadsRequest>) => s.uploads.pool(req.body));
  app.post(`${p}/uploads/:id/blocks`, { schema: { body: AllocateBlockRequest, params: IdParams } },
    async (req: Req<AllocateBlockRequest, unknown, { id: string }>) => s.uploads.allocate(req.params.id, req.body.index, req.body.exclude));
  app.post(`${p}/uploads/:id/stored`, { schema: { body: CompleteBlockRequest, params: IdParams } },
    async (req: Req<CompleteBlockRequest, unknown, { id: string }>) => {
      await s.uploads.completeBlock(req.params.id, req.body);
      return { ok: true };
    });
  app.post(`${p}/uploads/:id/commit`, { schema: { params: IdParams, body: CommitRequest } },
    async (req: Req<CommitRequest, unknown, { id: string }>) => s.uploads.commit(req.params.id, req.body));
  app.delete(`${p}/uploads/:id`, { schema: { params: IdParams } }, async (req: Req<unknown, unknown, { id: string }>) => {
    await s.uploads.abort(req.params.id);
    return { aborted: req.params.id };
  });

  app.get(`${p}/cluster`, async () => s.cluster());
  app.post(`${p}/cluster/init`, async () => s.init());

  // A storage server that found this server by broadcast checks it before it joins (see proveNameServer).
  app.get(`${p}/cluster/proof`, { ...ACCESS.cluster, schema: { querystring: ProofQuery } },
    async (req: Req<unknown, ProofQuery>): Promise<ProofResponse> => {
      const { localAddress, localPort } = req.socket;
      if (!localAddress || !localPort) throw new SdfsError('EINVAL', 'cannot tell the address this request came to');
      return { proof: s.prove(req.query.nonce, connectionAddress(localAddress, localPort)) };
    });
  app.post(`${p}/storages/register`, { ...ACCESS.cluster, schema: { body: StorageReport } }, async (req: Req<StorageReport>): Promise<HeartbeatResponse> => {
    const host = remoteHost(req);
    await commit(() => s.storages.register(req.body, host));
    return { heartbeatMs: s.config.heartbeatMs, blockReportMs: blockReportInterval(s.config.blockReportMs, req.body.blocks) };
  });
  app.post(`${p}/storages/heartbeat`, { ...ACCESS.cluster, schema: { body: StorageReport } }, async (req: Req<StorageReport>): Promise<HeartbeatResponse> => {
    s.storages.heartbeat(req.body);
    return { heartbeatMs: s.config.heartbeatMs, blockReportMs: blockReportInterval(s.config.blockReportMs, req.body.blocks) };
  });
  // A full block list can be large (35 bytes a block, at most 10,000,000 ids: 334 MiB): its own body
  // limit, below what V8 can hold as one string (a body just under 512 MiB crashed the parser).
  app.post(`${p}/storages/blocks`, { ...ACCESS.cluster, schema: { body: BlockReport }, bodyLimit: 400 * 1024 * 1024 }, async (req: Req<BlockReport>) => {
    if (!s.storages.get(req.body.id)) throw new SdfsError('ENOENT', 'unknown storage server: register first');
    // Blocks younger than two report intervals may have been stored after the list was taken.
    const { id, blocks } = req.body;
    const grace = 2 * blockReportInterval(s.config.blockReportMs, blocks.length) + 10_000;
    // Taken once: an upload opened after the server took its list has no block in it.
    const pending = s.uploads.pendingBlocks();
    const result = { added: 0, strays: 0, lost: 0 };
    // A slice at a time, each a change of its own: other requests are served between them (and the
    // server may be forgotten meanwhile: its replicas must not come back).
    for (const slice of reportSlices(blocks)) {
      const r = await commit(() => {
        if (!s.storages.get(id)) throw new SdfsError('ENOENT', 'unknown storage server: register first');
        return s.map.applyReport(id, slice.ids, pending, grace, slice.range);
      });
      result.added += r.added;
      result.strays += r.strays;
      result.lost += r.lost;
    }
    if (result.added + result.lost > 0) s.replicator.markDirty();
    return result;
  });
  // Readers that met a damaged replica say so (a hint: the name server keeps a last copy regardless).
  app.post(`${p}/blocks/:id/bad`, { ...ACCESS.read, schema: { body: BadReplicaReport, params: IdParams } },
    async (req: Req<BadReplicaReport, unknown, { id: string }>) => {
      const dropped = await commit(() => s.map.reportBad(req.params.id, req.body.storage));
      if (dropped) s.replicator.markDirty();
      return { dropped };
    });
  app.post(`${p}/storages/decommission`, { schema: { body: DecommissionRequest } }, async (req: Req<DecommissionRequest>) => {
    const target = s.storages.find(req.body.storage);
    await commit(() => s.storages.setState(target.id, req.body.cancel ? 'normal' : 'draining'));
    return s.storages.get(target.id)!;
  });
  app.post(`${p}/storages/forget`, { schema: { body: ForgetRequest } }, async (req: Req<ForgetRequest>) => {
    const target = s.storages.find(req.body.storage);
    // Both in one change: the storage server and every replica it was known to hold, or neither. The
    // registry changes memory as well as rows, so it goes last, when nothing can fail after it.
    const forgotten = await commit(() => {
      s.storages.checkForgettable(target.id);
      const replicas = s.map.forgetStorage(target.id, req.body.force ?? false);
      s.storages.forget(target.id); // and the registry's onChange sets the replicator to work
      return replicas;
    });
    return { id: target.id, addr: target.addr, ...forgotten };
  });
  app.get(`${p}/cluster/status`, async () => s.health.status());
  app.get(`${p}/fsck`, { schema: { querystring: PathQuery } }, async (req: Req<unknown, PathQuery>) => s.health.fsck(req.query.path));
}

function remoteHost(req: FastifyRequest): string {
  const ip = req.socket.remoteAddress;
  if (!ip) throw new SdfsError('EINVAL', 'cannot tell the storage server address');
  return plainHost(ip);
}
