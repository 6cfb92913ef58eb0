import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Dispatcher } from 'undici';
import type { ApiCaller } from '../protocol/api-caller.js';
import { createFileReadStream } from '../protocol/file-read-stream.js';
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
export function registerContentRoutes(app: FastifyInstance, deps: { api: ApiCaller; dispatcher: Dispatcher }): void {
  const url = `${API_PREFIX}/fs/content`;

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
    return reply.send(createFileReadStream(located, deps.dispatcher, range));
  });

  app.put(url, { schema: { querystring: ContentQuery } }, async (req: FastifyRequest<{ Querystring: ContentQuery }>) => {
    const path = resolvePath(req.query.path);
    const out = new FileWriteStream(deps.api, deps.dispatcher, path, {
      overwrite: req.query.overwrite, replication: req.query.replication, blockSize: req.query.blockSize,
    });
    // The body is never parsed: it is the request stream itself (see the content type parser below).
    await pipeline(req.raw as Readable, out);
    return out.stat;
  });

  // Bodies that are not JSON are left unread for the route that streams them.
  app.addContentTypeParser('*', (_req, _payload, done) => done(null));
}
