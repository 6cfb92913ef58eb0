import { crc32 } from '@node-rs/crc32';
import { AUTH_HEADERS } from './auth.js';
import type { AnswerHead, BlockChannel, BodySink } from './block-channel.js';
import { CHUNK_SIZE } from './blocks.js';
import { SdfsError, toSdfsError } from './errors.js';
import { readAhead } from './read-ahead.js';
import { BLOCK_HEADERS, type BlockLocation, type BlocksResponse, type FileStat } from './messages.js';

/** Called when a replica fails a read, so that the caller may report or log it (the read goes on from another one). */
export type ReplicaFailure = (block: BlockLocation, replica: { id: string; addr: string }, err: SdfsError) => void;

/** The default memory of `views`: two buffers of 8 MiB, one being read while the caller has the other. */
const VIEW_BUFFER = 8 * 1024 * 1024;
const VIEW_DEPTH = 2;
/**
 * Where bytes outside the asked range land (whole chunks are read to check them). One for the
 * process: each socket read into it is checked and dropped in that read's own callback, before any
 * other read can land.
 */
const DISCARD = 64 * 1024;
let discardBuffer: Buffer | undefined;

export interface ViewOptions {
  /** First byte (default 0) and the byte after the last (default: the end of the file). */
  start?: number;
  end?: number;
  /** Size of each reused buffer (default 8 MiB) and how many (default 2: one read ahead). */
  bufferSize?: number;
  depth?: number;
  signal?: AbortSignal;
}

/**
 * A file opened for reading, in the spirit of a FileHandle: `read` fills the caller's memory with
 * bytes at a position, and `views` walks a range through a few buffers of its own, reused. The bytes
 * go from the socket straight into that memory, and a read resolves only when every chunk it covers
 * has matched its CRC-32; a replica that fails is left for the next, from the first byte not yet
 * checked. Nothing is allocated per byte read, which is what makes it cheaper than a stream.
 */
export class FileReader {
  constructor(
    private located: BlocksResponse,
    private readonly channel: BlockChannel,
    private readonly onFailure?: ReplicaFailure,
    /** Asks where the file's blocks are anew (their read tokens expire). */
    private readonly relocate?: () => Promise<BlocksResponse>,
  ) {}

  get size(): number {
    return this.located.stat.size;
  }

  /** The file as it was when opened. */
  get stat(): FileStat {
    return this.located.stat;
  }

  /**
   * Fills `dest` with the file's bytes from `position` on; resolves to how many (fewer than
   * `dest.length` only at the end of the file). Blocks that the range spans are read at once.
   */
  async read(dest: Uint8Array, position: number, signal?: AbortSignal): Promise<number> {
    if (!Number.isSafeInteger(position) || position < 0) throw new SdfsError('EINVAL', `invalid position ${position}`);
    const end = Math.min(position + dest.length, this.size);
    if (end <= position) return 0;
    const spans: Promise<void>[] = [];
    const blocks = this.located.blocks;
    for (let i = firstBlockEndingAfter(blocks, position); i < blocks.length && blocks[i]!.offset < end; i++) {
      const block = blocks[i]!;
      const from = Math.max(position, block.offset) - block.offset;
      const to = Math.min(end, block.offset + block.size) - block.offset;
      if (from < to) spans.push(this.readSpan(block, from, to, dest.subarray(block.offset + from - position), signal, true));
    }
    if (spans.length === 1) await spans[0];
    else {
      // Every span settles before the read does: none may still be filling `dest` after it failed.
      const failed = (await Promise.allSettled(spans)).find((r) => r.status === 'rejected');
      if (failed) throw toSdfsError((failed as PromiseRejectedResult).reason);
    }
    return end - position;
  }

  /**
   * Bytes [start, end) in order, each a view of one of `depth` buffers that is the caller's until it
   * asks for the next: copy what must outlive that. The next `depth - 1` pieces are read meanwhile.
   */
  async *views(opts: ViewOptions = {}): AsyncGenerator<Uint8Array> {
    const [start, end] = this.range(opts.start, opts.end);
    const size = Math.max(1, Math.min(opts.bufferSize ?? VIEW_BUFFER, end - start));
    const depth = Math.max(1, opts.depth ?? VIEW_DEPTH);
    const buffers: Buffer[] = [];
    let pos = start;
    let turn = 0;
    // The buffer of the view yielded `depth` steps before is refilled: the caller is done with it.
    yield* readAhead(depth, () => {
      if (pos >= end) return undefined;
      const slot = turn++ % depth;
      const buffer = (buffers[slot] ??= Buffer.allocUnsafeSlow(size));
      const view = buffer.subarray(0, Math.min(size, end - pos));
      const at = pos;
      pos += view.length;
      return this.readFully(view, at, opts.signal);
    });
  }

  /** [start, end) checked, the end clamped to the file's size (both default to the whole file). */
  range(start = 0, end = this.size): [number, number] {
    const to = Math.min(end, this.size);
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(to) || start < 0 || start > to) {
      throw new SdfsError('EINVAL', `invalid range ${start}-${end}`);
    }
    return [start, to];
  }

  /**
   * Bytes [start, end) in order, in new buffers of up to `most` bytes, each ending at a checksum
   * chunk's end (so that no chunk is read twice), one read ahead: for a stream, whose consumer keeps
   * what it is given.
   */
  async *pieces(start: number, end: number, most: number, signal?: AbortSignal): AsyncGenerator<Buffer> {
    let pos = start;
    yield* readAhead(2, () => {
      if (pos >= end) return undefined;
      const block = this.located.blocks[firstBlockEndingAfter(this.located.blocks, pos)];
      if (!block) return Promise.reject(new SdfsError('EUNAVAILABLE', `the blocks of ${this.stat.path} end before its size`));
      const limit = Math.min(end, pos + most, block.offset + block.size);
      // The last chunk boundary of the block within the limit; the limit itself if none.
      const boundary = block.offset + Math.floor((limit - block.offset) / CHUNK_SIZE) * CHUNK_SIZE;
      const at = pos;
      pos = boundary > at ? boundary : limit;
      return this.readFully(Buffer.allocUnsafe(pos - at), at, signal);
    });
  }

  /** `read`, for a range known to be inside the file: all of `dest`, or an error. */
  private async readFully<T extends Uint8Array>(dest: T, position: number, signal: AbortSignal | undefined): Promise<T> {
    if (await this.read(dest, position, signal) !== dest.length) throw new SdfsError('EUNAVAILABLE', 'the file ended before its size');
    return dest;
  }

  /** Bytes [from, to) of one block into `dest`, from its replicas in turn. */
  private async readSpan(block: BlockLocation, from: number, to: number, dest: Uint8Array, signal: AbortSignal | undefined, mayRenew: boolean): Promise<void> {
    let pos = from;
    const errors: string[] = [];
    let refused = 0;
    for (const replica of block.replicas) {
      try {
        await this.readReplica(block, replica.addr, pos, to, dest.subarray(pos - from), signal, (n) => { pos += n; });
        return;
      } catch (err) {
        const e = toSdfsError(err);
        if (e.code === 'ECANCELED' || signal?.aborted) throw new SdfsError('ECANCELED', 'read cancelled');
        if (e.code === 'EACCES' || e.code === 'EAUTH') refused++;
        errors.push(`${replica.addr}: ${e.message}`);
        this.onFailure?.(block, replica, e);
      }
    }
    // Refused: the read token expired, most likely. Ask where the block is once more, with new tokens.
    if (refused > 0 && mayRenew && this.relocate) {
      this.located = await this.relocate();
      const renewed = this.located.blocks.find((b) => b.index === block.index && b.id === block.id);
      if (renewed) return this.readSpan(renewed, pos, to, dest.subarray(pos - from), signal, false);
    }
    throw new SdfsError('EUNAVAILABLE', `block ${block.index} (${block.id}) could not be read from any replica: ${errors.join('; ') || 'no replicas'}`);
  }

  /**
   * Bytes [from, to) of a block from one replica into `dest`. Whole checksum chunks are asked for;
   * the bytes of them outside [from, to) land in a discard buffer. `verified` counts the bytes of
   * `dest` whose chunks matched, as they do.
   */
  private readReplica(block: BlockLocation, addr: string, from: number, to: number, dest: Uint8Array,
    signal: AbortSignal | undefined, verified: (n: number) => void): Promise<void> {
    const alignedStart = Math.floor(from / CHUNK_SIZE) * CHUNK_SIZE;
    const alignedEnd = Math.min(Math.ceil(to / CHUNK_SIZE) * CHUNK_SIZE, block.size);
    const headers: Record<string, string> = { range: `bytes=${alignedStart}-${alignedEnd - 1}` };
    if (block.token !== undefined) headers[AUTH_HEADERS.blockToken] = block.token;
    const discard = (discardBuffer ??= Buffer.allocUnsafe(DISCARD));

    let crcs: number[] = [];
    let at = alignedStart;
    let chunkStart = alignedStart;
    let crc = 0;
    let last: Uint8Array = discard;
    const sink: BodySink = {
      space: () => {
        const chunkEnd = Math.min(chunkStart + CHUNK_SIZE, alignedEnd);
        if (at < from) last = discard.subarray(0, Math.min(from - at, DISCARD));
        else if (at < to) last = dest.subarray(at - from, Math.min(chunkEnd, to) - from);
        else last = discard.subarray(0, Math.min(chunkEnd - at, DISCARD));
        return last;
      },
      placed: (n) => {
        crc = crc32(last.subarray(0, n), crc);
        at += n;
        const chunkEnd = Math.min(chunkStart + CHUNK_SIZE, alignedEnd);
        if (at < chunkEnd) return;
        const index = (chunkStart - alignedStart) / CHUNK_SIZE;
        if (crc >>> 0 !== crcs[index]) {
          throw new SdfsError('ECHECKSUM', `chunk ${chunkStart / CHUNK_SIZE} of block ${block.id} failed its checksum`);
        }
        const good = Math.min(chunkEnd, to) - Math.max(chunkStart, from);
        if (good > 0) verified(good);
        chunkStart = chunkEnd;
        crc = 0;
      },
    };
    const sinkFor = (head: AnswerHead): BodySink => {
      if (Number(head.headers.get(BLOCK_HEADERS.blockSize)) !== block.size || Number(head.headers.get(BLOCK_HEADERS.chunkSize)) !== CHUNK_SIZE) {
        throw new SdfsError('ECHECKSUM', 'replica holds a block of another size');
      }
      if (head.length !== alignedEnd - alignedStart) throw new SdfsError('EPROTO', 'replica sent another range than asked for');
      crcs = (head.headers.get(BLOCK_HEADERS.crcs) ?? '').split(',').filter((x) => x !== '').map((x) => parseInt(x, 16));
      if (crcs.length !== Math.ceil((alignedEnd - alignedStart) / CHUNK_SIZE)) throw new SdfsError('EPROTO', 'replica sent the wrong number of checksums');
      return sink;
    };
    return this.channel.get(addr, `/v1/blocks/${block.id}`, headers, sinkFor, signal);
  }
}

/** The index of the first block (in file order) that ends after `position`: a file may have many. */
function firstBlockEndingAfter(blocks: BlockLocation[], position: number): number {
  let lo = 0;
  let hi = blocks.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (blocks[mid]!.offset + blocks[mid]!.size <= position) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
