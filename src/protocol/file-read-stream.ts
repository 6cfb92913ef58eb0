import { Readable } from 'node:stream';
import type { BlockChannel } from './block-channel.js';
import { CHUNK_SIZE } from './blocks.js';
import { SdfsError, toSdfsError } from './errors.js';
import { FileReader, type ReplicaFailure } from './file-reader.js';
import type { BlockLocation, BlocksResponse } from './messages.js';

export type { ReplicaFailure } from './file-reader.js';

export interface ReadOptions {
  /** First byte to read (default 0). */
  start?: number;
  /** Byte after the last one to read (default: the end of the file). */
  end?: number;
  signal?: AbortSignal;
}

/** The most a stream reads at once: a new buffer each time, up to a checksum chunk's end. */
const PIECE = 4 * CHUNK_SIZE;

/**
 * Streams bytes [start, end) of a file, read by a FileReader (checked chunk by chunk, with failover
 * across replicas) in pieces of up to 4 MiB, one read ahead. Each piece is a buffer of its own, as a
 * stream's consumer may keep what it is given: reading into memory that is reused (`FileReader`)
 * costs less, when the reader can use each piece before the next.
 */
export function createFileReadStream(
  located: BlocksResponse, channel: BlockChannel, opts: ReadOptions = {}, onFailure?: ReplicaFailure,
  relocate?: () => Promise<BlocksResponse>,
): Readable {
  const reader = new FileReader(located, channel, onFailure, relocate);
  const [start, end] = reader.range(opts.start, opts.end);
  return new FileReadStream(reader, start, end, opts.signal);
}

/** Bytes [from, to) of one block, checked and with failover across its replicas, as createFileReadStream. */
export function readBlock(
  block: BlockLocation, from: number, to: number, channel: BlockChannel, signal: AbortSignal | undefined, onFailure?: ReplicaFailure,
): Readable {
  const stat = { path: `block ${block.id}`, name: block.id, type: 'file' as const, size: block.size, ctime: 0, mtime: 0, replication: block.replicas.length, blockSize: block.size, blocks: 1 };
  return new FileReadStream(new FileReader({ stat, blocks: [{ ...block, offset: 0 }] }, channel, onFailure), from, Math.max(from, to), signal);
}

class FileReadStream extends Readable {
  /** Cancels the reads out when the stream is destroyed or its caller's signal fires. */
  private readonly cancel = new AbortController();
  private readonly pieces: AsyncGenerator<Buffer>;
  private pulling = false;
  /** Every piece was read: nothing is out. */
  private ended = false;

  constructor(reader: FileReader, start: number, end: number, signal: AbortSignal | undefined) {
    super({ highWaterMark: CHUNK_SIZE });
    this.pieces = reader.pieces(start, end, PIECE, this.cancel.signal);
    if (signal?.aborted) this.destroy(new SdfsError('ECANCELED', 'read cancelled'));
    else signal?.addEventListener('abort', () => this.destroy(new SdfsError('ECANCELED', 'read cancelled')), { once: true });
  }

  override _read(): void {
    if (this.pulling) return;
    this.pulling = true;
    this.pieces.next().then(({ done, value }) => {
      this.pulling = false;
      this.ended = done === true;
      this.push(done ? null : value);
    }, (err: unknown) => this.destroy(toSdfsError(err)));
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    if (this.ended) return callback(err);
    // Reads may be out: cancelled (with a reason of ours: the default one, a DOMException, costs a
    // stack trace), their pieces dropped, their connections closed.
    this.cancel.abort(new SdfsError('ECANCELED', 'read cancelled'));
    this.pieces.return(undefined).then(() => callback(err), () => callback(err));
  }
}
