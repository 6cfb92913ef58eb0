import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import { request, type Dispatcher } from 'undici';
import { CHUNK_SIZE } from './blocks.js';
import { SdfsError, toSdfsError } from './errors.js';
import { AUTH_HEADERS } from './auth.js';
import { addrToUrl, readJson } from './http.js';
import { BLOCK_HEADERS, type BlockLocation, type BlocksResponse } from './messages.js';

export interface ReadOptions {
  /** First byte to read (default 0). */
  start?: number;
  /** Byte after the last one to read (default: the end of the file). */
  end?: number;
  signal?: AbortSignal;
}

/** Called when a replica fails a read, so that the caller may report or log it. */
export type ReplicaFailure = (block: BlockLocation, replica: { id: string; addr: string }, err: SdfsError) => void;

/**
 * Streams bytes [start, end) of a file. Each block is read from one replica at a time; every chunk
 * is checked against its CRC-32 before it is passed on, and on any error or mismatch the read
 * continues, from the first unverified byte, on the next replica. Only when every replica of a block
 * has failed does the stream fail.
 */
export function createFileReadStream(
  located: BlocksResponse, dispatcher: Dispatcher, opts: ReadOptions = {}, onFailure?: ReplicaFailure,
  relocate?: () => Promise<BlocksResponse>,
): Readable {
  const size = located.stat.size;
  const start = opts.start ?? 0;
  const end = Math.min(opts.end ?? size, size);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || start > end) {
    throw new SdfsError('EINVAL', `invalid range ${start}-${end}`);
  }
  async function* bytes(): AsyncGenerator<Buffer> {
    for (const block of located.blocks) {
      const from = Math.max(start, block.offset) - block.offset;
      const to = Math.min(end, block.offset + block.size) - block.offset;
      if (from >= to) continue;
      // Block tokens expire: a read that reaches a block after its token did asks where it is anew.
      const renew = relocate && (async () => (await relocate()).blocks.find((b) => b.index === block.index && b.id === block.id));
      yield* readBlock(block, from, to, dispatcher, opts.signal, onFailure, renew);
    }
  }
  return Readable.from(bytes(), { objectMode: false, highWaterMark: 1024 * 1024 });
}

export async function* readBlock(
  block: BlockLocation, from: number, to: number, dispatcher: Dispatcher, signal: AbortSignal | undefined, onFailure?: ReplicaFailure,
  renew?: () => Promise<BlockLocation | undefined>,
): AsyncGenerator<Buffer> {
  let pos = from;
  const errors: string[] = [];
  let refused = 0;
  for (const replica of block.replicas) {
    try {
      for await (const piece of readVerified(block, replica.addr, pos, to, dispatcher, signal)) {
        pos += piece.length;
        yield piece;
      }
      return;
    } catch (err) {
      const e = toSdfsError(err);
      if (e.code === 'ECANCELED') throw e;
      if (e.code === 'EACCES' || e.code === 'EAUTH') refused++;
      errors.push(`${replica.addr}: ${e.message}`);
      onFailure?.(block, replica, e);
    }
  }
  const renewed = refused > 0 && renew ? await renew() : undefined;
  if (renewed) {
    yield* readBlock(renewed, pos, to, dispatcher, signal, onFailure);
    return;
  }
  throw new SdfsError('EUNAVAILABLE', `block ${block.index} (${block.id}) could not be read from any replica: ${errors.join('; ') || 'no replicas'}`);
}

/**
 * Reads [from, to) of a block from one replica, asking for whole checksum chunks and yielding only
 * bytes of chunks whose CRC-32 matched.
 */
async function* readVerified(
  block: BlockLocation, addr: string, from: number, to: number, dispatcher: Dispatcher, signal: AbortSignal | undefined,
): AsyncGenerator<Buffer> {
  // Blocks are checksummed in chunks of the protocol's CHUNK_SIZE; ask for whole chunks.
  const chunkSize = CHUNK_SIZE;
  const alignedStart = Math.floor(from / chunkSize) * chunkSize;
  const alignedEnd = Math.min(Math.ceil(to / chunkSize) * chunkSize, block.size);
  const headers: Record<string, string> = { range: `bytes=${alignedStart}-${alignedEnd - 1}` };
  if (block.token !== undefined) headers[AUTH_HEADERS.blockToken] = block.token;
  const res = await request(`${addrToUrl(addr)}/v1/blocks/${block.id}`, { dispatcher, signal, headers })
    .catch((err: unknown) => { throw toSdfsError(err); });
  if (res.statusCode !== 206 && res.statusCode !== 200) {
    // The storage server's JSON error, with its code (ENOENT, EACCES for a refused token...).
    throw await readJson(res).then(() => new SdfsError('EPROTO', `replica answered HTTP ${res.statusCode}`), (err: unknown) => toSdfsError(err));
  }
  if (Number(res.headers[BLOCK_HEADERS.blockSize]) !== block.size || Number(res.headers[BLOCK_HEADERS.chunkSize]) !== chunkSize) {
    await res.body.dump();
    throw new SdfsError('ECHECKSUM', 'replica holds a block of another size');
  }
  const crcs = String(res.headers[BLOCK_HEADERS.crcs] ?? '').split(',').filter((s) => s !== '').map((s) => parseInt(s, 16));
  const expectedChunks = Math.ceil((alignedEnd - alignedStart) / chunkSize);
  if (crcs.length !== expectedChunks) {
    await res.body.dump();
    throw new SdfsError('EPROTO', 'replica sent the wrong number of checksums');
  }

  let chunkStart = alignedStart;
  let pieces: Buffer[] = [];
  let filled = 0;
  let crc = 0;
  let chunkNo = 0;
  for await (const data of res.body as AsyncIterable<Buffer>) {
    let off = 0;
    while (off < data.length) {
      const want = Math.min(chunkSize, alignedEnd - chunkStart) - filled;
      const piece = data.subarray(off, off + Math.min(want, data.length - off));
      off += piece.length;
      crc = crc32(piece, crc);
      pieces.push(piece);
      filled += piece.length;
      if (filled === Math.min(chunkSize, alignedEnd - chunkStart)) {
        if (crc >>> 0 !== crcs[chunkNo]) throw new SdfsError('ECHECKSUM', `chunk ${chunkStart / chunkSize} of block ${block.id} failed its checksum`);
        // The verified chunk goes on as the pieces it arrived in (no copy), trimmed to [from, to).
        const lo = Math.max(from, chunkStart) - chunkStart;
        const hi = Math.min(to, chunkStart + filled) - chunkStart;
        let at = 0;
        for (const p of pieces) {
          const a = Math.max(lo - at, 0);
          const b = Math.min(hi - at, p.length);
          if (b > a) yield a === 0 && b === p.length ? p : p.subarray(a, b);
          at += p.length;
        }
        chunkStart += filled;
        pieces = [];
        filled = 0;
        crc = 0;
        chunkNo++;
      }
    }
  }
  if (chunkStart !== alignedEnd) throw new SdfsError('EUNAVAILABLE', 'replica closed the connection early');
}
