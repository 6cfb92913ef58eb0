import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Dispatcher } from 'undici';
import { AUTH_HEADERS, checkBlockToken, verifyRequest, type BlockOp, type ClusterKeys } from '../protocol/auth.js';
import { BLOCK_DIGEST, digestAlgorithm, digestFromBytes, digestLength, isDigestAlgorithm } from '../protocol/block-digest.js';
import { parsePipeline, sameCrcs, TrailerSplitter, validateId } from '../protocol/blocks.js';
import { eachChunk } from '../protocol/each-chunk.js';
import { SdfsError, toSdfsError } from '../protocol/errors.js';
import type { BlockChannel } from '../protocol/block-channel.js';
import { readBlock } from '../protocol/file-read-stream.js';
import { parseRange } from '../protocol/range.js';
import { BLOCK_HEADERS, FetchBlockRequest, type PutBlockResponse } from '../protocol/messages.js';
import type { BlockStore, BlockWriter } from './block-store.js';
import type { RangeReader } from './range-reader.js';
import type { BlockLinks, LinkHandler } from '../protocol/block-link.js';
import { BlockSender } from '../protocol/block-sender.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Signed with the cluster secret: another storage server or the name server. */
    clusterMember: boolean;
  }
}

/**
 * Who may call a route: cluster members only (requests signed with the cluster secret), or also the
 * bearer of a block token for the block in the URL and that operation.
 */
type Access = { cluster: true } | { block: BlockOp };
export const CLUSTER_ONLY = { config: { access: { cluster: true } satisfies Access } };
const BLOCK_READ = { config: { access: { block: 'read' } satisfies Access } };
const BLOCK_WRITE = { config: { access: { block: 'write' } satisfies Access } };

/**
 * Checks every request before its body is read: a signed request of a cluster member passes; on block
 * routes, a valid token for that block passes; anything else (and any unknown route) is refused.
 */
export function installStorageAuth(app: FastifyInstance, keys: ClusterKeys): void {
  app.decorateRequest('clusterMember', false);
  app.addHook('onRequest', async (req: FastifyRequest) => {
    if (verifyRequest(keys, header(req, AUTH_HEADERS.cluster), req.method, req.url)) {
      req.clusterMember = true;
      return;
    }
    const access = (req.routeOptions.config as { access?: Access }).access;
    if (access && 'block' in access) {
      const id = validateId((req.params as { id?: string }).id);
      checkBlockToken(keys, header(req, AUTH_HEADERS.blockToken), id, access.block);
      return;
    }
    throw new SdfsError('EAUTH', 'this storage server serves cluster members and holders of block tokens only');
  });
}

/** The block protocol: clients and other storage servers store, read and delete blocks here. */
export function registerBlockRoutes(app: FastifyInstance, deps: {
  store: BlockStore; selfId: string; maxBlockSize: number; dispatcher: Dispatcher; channel: BlockChannel; onWipe: () => Promise<void>;
  keys: ClusterKeys;
  /** This server's links to the next ones of write pipelines. */
  links?: BlockLinks;
  /** Takes the block links of writers to this server (acceptBlockLinks on its HTTP server). */
  acceptLinks?: (handle: LinkHandler) => void;
}): void {
  const { store, selfId, maxBlockSize, dispatcher, channel, keys, links, acceptLinks } = deps;

  // Block bodies are streamed by the handlers, never parsed or buffered by the framework.
  app.addContentTypeParser('*', (_req, _payload, done) => done(null));

  /**
   * Stores a block and passes it down the rest of its pipeline: the body of an HTTP PUT (a stream), or
   * a block link's frame (whole). `h`: the request's headers; `clusterMember`: signed by one.
   */
  async function putBlock(rawId: string, h: (name: string) => string | undefined, clusterMember: boolean,
    body: Readable | Buffer): Promise<PutBlockResponse> {
    const id = validateId(rawId);
    // From an upstream storage server, the body ends with the block's digest as the head computed it,
    // in the algorithm the header names.
    const trailer = h(BLOCK_HEADERS.trailer);
    if (trailer !== undefined && !isDigestAlgorithm(trailer)) throw new SdfsError('EINVAL', `unknown block trailer: ${trailer}`);
    // Only a storage server forwarding a block may name its digest; a client's bytes are hashed here.
    if (trailer && !clusterMember) throw new SdfsError('EACCES', 'a block digest is taken from storage servers only');
    const trailerBytes = trailer ? digestLength(trailer) : 0;
    // A body announced too large is refused before a byte of it is read.
    if (Number(h('content-length') ?? 0) > maxBlockSize + trailerBytes) {
      throw new SdfsError('ETOOBIG', `block larger than ${maxBlockSize} bytes`);
    }
    const pipeline = parsePipeline(h(BLOCK_HEADERS.pipeline));
    const writer = await store.createWriter(id, maxBlockSize, { digest: trailer ? null : BLOCK_DIGEST });
    // The rest of the pipeline is sent the same token (it is valid for this block on any server), and
    // the digest: this server's if it is the head, else the one it was sent.
    const token = h(AUTH_HEADERS.blockToken);
    const forwarder = pipeline.length > 0
      ? new BlockSender(pipeline[0]!, pipeline.slice(1), id, token, dispatcher, {
        links, verify: false, trailer: trailer ? { mode: 'passthrough', algorithm: trailer } : { mode: 'append', algorithm: BLOCK_DIGEST },
      })
      : null;
    const split = trailer ? new TrailerSplitter(trailerBytes) : null;
    let digest: string;
    try {
      const take = (chunk: Buffer): Promise<unknown> => Promise.all([split ? writeAll(writer, split.push(chunk)) : writer.write(chunk), forwarder?.write(chunk)]);
      if (Buffer.isBuffer(body)) await take(body);
      else await eachChunk(body, take);
      if (split) {
        const sent = split.end();
        if (!sent) throw new SdfsError('EINVAL', 'block body shorter than its digest trailer');
        digest = digestFromBytes(trailer!, sent);
      } else digest = writer.digest();
    } catch (err) {
      forwarder?.abort();
      await writer.abort();
      throw toSdfsError(err);
    }
    const [meta, downstream] = await Promise.all([
      writer.commit(digest),
      forwarder?.finish(trailer ? undefined : digest),
    ]);
    const out: PutBlockResponse = { id, size: meta.size, digest: meta.digest, crcs: meta.crcs, stored: [selfId] };
    if (forwarder && downstream) {
      const r = downstream.reply;
      // The next server did not hash: its chunk CRC-32s must be this server's.
      if (r && r.digest === meta.digest && r.size === meta.size && sameCrcs(r.crcs, meta.crcs)) {
        out.stored.push(...r.stored);
        if (r.failed?.length) out.failed = r.failed;
      } else {
        const message = downstream.error?.message ?? 'downstream stored different bytes';
        out.failed = pipeline.map((t) => ({ id: t.id, message }));
      }
    }
    return out;
  }

  app.put('/v1/blocks/:id', BLOCK_WRITE, async (req: FastifyRequest<{ Params: { id: string } }>) =>
    putBlock(req.params.id, (name) => header(req, name), req.clusterMember, req.raw));

  // The same, through block links: a cluster member's link, or the block's write token in each frame.
  acceptLinks?.(async ({ id, headers }, block, clusterMember) => {
    if (!clusterMember) checkBlockToken(keys, headers[AUTH_HEADERS.blockToken], validateId(id), 'write');
    return { status: 200, body: await putBlock(id, (name) => headers[name], clusterMember, block) };
  });

  app.get('/v1/blocks/:id', BLOCK_READ, async (req: FastifyRequest<{ Params: { id: string } }>, reply: FastifyReply) => {
    const id = validateId(req.params.id);
    const meta = await store.readMeta(id);
    const range = parseRange(header(req, 'range'), meta.size);
    const read = await store.read(meta, range.start, range.end);
    const firstChunk = Math.floor(range.start / meta.chunkSize);
    const lastChunk = range.end === range.start ? firstChunk : Math.ceil(range.end / meta.chunkSize);
    const status = range.partial ? 206 : 200;
    const headers: Record<string, string> = {
      'content-type': 'application/octet-stream',
      'content-length': String(range.end - range.start),
      'accept-ranges': 'bytes',
      [BLOCK_HEADERS.blockSize]: String(meta.size),
      [BLOCK_HEADERS.digest]: meta.digest,
      [BLOCK_HEADERS.chunkSize]: String(meta.chunkSize),
      [BLOCK_HEADERS.firstChunk]: String(firstChunk),
      [BLOCK_HEADERS.crcs]: meta.crcs.slice(firstChunk, lastChunk).map((c) => c.toString(16)).join(','),
    };
    if (range.partial) headers['content-range'] = `bytes ${range.start}-${range.end - 1}/${meta.size}`;
    if (read.range) {
      // Written unit by unit by this handler, not by fastify: each lent buffer goes back to the pool
      // only when the socket's write of it is done.
      reply.hijack();
      if (req.method === 'HEAD') {
        await read.range.close();
        reply.raw.writeHead(status, headers).end();
        return;
      }
      await sendUnits(reply.raw, req.raw.socket, status, headers, read.range);
      return;
    }
    // The buffer is lent: back to the store once the answer is handed to the socket, not if it is cut short.
    if (read.release) reply.raw.once('finish', read.release);
    return reply.code(status).headers(headers).send(read.data);
  });

  // Re-replication: the name server asks this server to pull a block from another that holds it.
  app.post('/v1/blocks/:id/fetch', { ...CLUSTER_ONLY, schema: { body: FetchBlockRequest } },
    async (req: FastifyRequest<{ Params: { id: string }; Body: FetchBlockRequest }>) => {
      const id = validateId(req.params.id);
      const { source, size, digest } = req.body;
      // A copy already here is one the name server does not count (damaged, or left to be deleted):
      // replace it with the verified one, hashed as the block was first (it keeps its digest).
      if (store.has(id)) await store.delete(id);
      const writer = await store.createWriter(id, maxBlockSize, { digest: digestAlgorithm(digest) });
      try {
        const located = { id, index: 0, offset: 0, size, digest, replicas: [{ id, addr: source, alive: true }] };
        await eachChunk(readBlock(located, 0, size, channel, undefined), (chunk) => writer.write(chunk));
        if (writer.bytes !== size) throw new SdfsError('ECHECKSUM', `fetched ${writer.bytes} bytes of ${size}`);
      } catch (err) {
        await writer.abort();
        throw err;
      }
      const meta = await writer.commit();
      if (meta.digest !== digest) {
        await store.delete(id);
        throw new SdfsError('ECHECKSUM', `block ${id} fetched from ${source} has another digest`);
      }
      return { id, stored: [selfId] };
    });

  app.delete('/v1/blocks/:id', CLUSTER_ONLY, async (req: FastifyRequest<{ Params: { id: string } }>) => {
    const id = validateId(req.params.id);
    return { deleted: await store.delete(id) };
  });

  app.post('/v1/wipe', CLUSTER_ONLY, async () => {
    await deps.onWipe();
    return { ok: true };
  });
}

/**
 * Answers with a range's units, each buffer given back in its write's callback (once the socket has
 * it), with at most two units handed to the response at a time. Paced by the write callbacks, not by
 * 'drain': an answer on a kept-alive connection whose previous answer has not yet finished is queued
 * inside node:http, and a 'drain' for it was seen never to come (the block file then stayed open).
 * An error after the status line was sent can only cut the answer short: the reader sees fewer bytes
 * than the content-length, or a checksum mismatch, and reads the rest from another replica.
 */
async function sendUnits(res: ServerResponse, socket: Socket, status: number, headers: Record<string, string>, range: RangeReader): Promise<void> {
  // A write's callback never comes for an answer whose connection is gone: the connection's close ends
  // the wait. The socket's own, as well as the answer's: an answer queued behind another is not yet
  // attached to the socket, and hears neither of its close nor of its writes (its file stayed open).
  const gone = (): boolean => res.destroyed || socket.destroyed;
  let onClose!: () => void;
  const closed = new Promise<void>((resolve) => { onClose = resolve; });
  socket.once('close', onClose);
  res.once('close', onClose);
  if (gone()) onClose();
  try {
    res.writeHead(status, headers);
    let previous: Promise<void> | undefined;
    for await (const unit of range.units()) {
      if (gone()) {
        unit.release();
        return;
      }
      const written = new Promise<void>((resolve) => res.write(unit.data, () => {
        unit.release();
        resolve();
      }));
      if (previous) await Promise.race([previous, closed]);
      previous = written;
    }
    if (previous) await Promise.race([previous, closed]);
    res.end();
  } catch {
    res.destroy();
  } finally {
    socket.off('close', onClose);
    res.off('close', onClose);
    // Not iterated if the answer failed before its first unit: the file is still open.
    await range.close();
  }
}

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

async function writeAll(writer: BlockWriter, pieces: Buffer[]): Promise<void> {
  for (const piece of pieces) await writer.write(piece);
}
