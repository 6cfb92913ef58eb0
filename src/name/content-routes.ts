import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Dispatcher } from 'undici';
import type { ApiCaller } from '../protocol/api-caller.js';
import type { BlockChannel } from '../protocol/block-channel.js';
import type { BlockLinks } from '../protocol/block-link.js';
import { createFileReadStream, type ReplicaFailure } from '../protocol/file-read-stream.js';
import { FileWriteStream } from '../protocol/file-write-stream.js';
import { API_PREFIX, ContentQuery, type BlocksResponse } from '../protocol/messages.js';
import { resolvePath } from '../protocol/paths.js';
import { parseRange } from '../protocol/range.js';

/**
 * File bytes through the name server, for clients that cannot reach the storage servers (a browser,
 * a host outside the storage LAN): it relays the stream with the same code the client library uses,
 * block by block, never holding a file in memory.
 *
 *   GET /api/v1/fs/content?path=P   the file's bytes (Range supported)
 *   PUT /api/v1/fs/content?path=P   stores the request body as the file (overwrite=true replaces it)
 */
/** `dispatcher` for the uploads, `channel` for the reads of blocks. */
export function registerContentRoutes(app: FastifyInstance, deps: ContentDeps): void {
  void app.register(async (scope) => contentRoutes(scope, deps));
}

interface ContentDeps { api: ApiCaller; dispatcher: Dispatcher; links: BlockLinks; channel: BlockChannel }

async function contentRoutes(app: FastifyInstance, deps: ContentDeps): Promise<void> {
  const url = `${API_PREFIX}/fs/content`;
  // In this scope no body is ever parsed, whatever its content type (JSON and text included): the PUT
  // route streams the request itself.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) => done(null));
  const reportBad: ReplicaFailure = (block, replica, err) => {
    if (err.code === 'ECHECKSUM') deps.api('POST', `/blocks/${block.id}/bad`, { storage: replica.id, reason: err.message }).catch(() => {});
  };

  app.get(url, { schema: { querystring: ContentQuery } }, async (req: FastifyRequest<{ Querystring: ContentQuery }>, reply: FastifyReply) => {
    const located = await deps.api<BlocksResponse>('GET', '/fs/blocks', undefined, { path: req.query.path });
    const size = located.stat.size;
    const range = parseRange(req.headers.range, size);
    void reply
      .code(range.partial ? 206 : 200)
      .header('content-type', 'application/octet-stream')
      .header('accept-ranges', 'bytes')
      .header('content-length', String(range.end - range.start))
      .header('last-modified', new Date(located.stat.mtime).toUTCString())
      .header('content-disposition', `attachment; filename*=UTF-8''${encodeURIComponent(located.stat.name)}`);
    if (range.partial) void reply.header('content-range', `bytes ${range.start}-${range.end - 1}/${size}`);
    if (req.query.inline) void reply.header('content-disposition', 'inline');
    const relocate = (): Promise<BlocksResponse> => deps.api<BlocksResponse>('GET', '/fs/blocks', undefined, { path: located.stat.path });
    return reply.send(createFileReadStream(located, deps.channel, range, reportBad, relocate));
  });

  app.put(url, { schema: { querystring: ContentQuery } }, async (req: FastifyRequest<{ Querystring: ContentQuery }>) => {
    const path = resolvePath(req.query.path);
    const out = new FileWriteStream(deps.api, deps, path, {
      overwrite: req.query.overwrite, replication: req.query.replication, blockSize: req.query.blockSize,
    });
    await pipeline(req.raw as Readable, out);
    return out.stat;
  });
}
