import { close, open, read } from 'node:fs';
import { promisify } from 'node:util';
import { SdfsError } from '../protocol/errors.js';
import { readAhead } from '../protocol/read-ahead.js';
import type { BufferPool, Lent } from './buffer-pool.js';

const openFile = promisify(open);
const readAt = promisify(read);
const closeFile = promisify(close);

/**
 * Bytes [start, end) of a file, read in units of the pool's buffer size with up to `depth` reads in
 * flight on the thread pool, and handed out in order as lent buffers. One read at a time (as
 * `fs.createReadStream` does) leaves the disk idle while each unit goes to the socket; with several
 * out, a cold read keeps the disk busy. At most `depth` units are read ahead of what the consumer has
 * taken, whatever its pace.
 */
export class RangeReader {
  private iterated = false;

  private constructor(
    private readonly fd: number, private readonly start: number, private readonly end: number,
    private readonly pool: BufferPool, private readonly depth: number,
  ) {}

  /** Opens the file first, so that a missing file is an error of this call and not of the iteration. */
  static async open(path: string, start: number, end: number, pool: BufferPool, depth: number): Promise<RangeReader> {
    return new RangeReader(await openFile(path, 'r'), start, end, pool, depth);
  }

  get length(): number {
    return this.end - this.start;
  }

  /**
   * The units in order; each is the caller's to release. Iterate once, to the end or not: stopping
   * early (break, throw) waits for the reads still out, gives their buffers back and closes the file.
   */
  async *units(): AsyncGenerator<Lent> {
    if (this.iterated) throw new Error('a RangeReader is iterated once');
    this.iterated = true;
    let pos = this.start;
    const readUnit = (): Promise<Lent> | undefined => {
      if (pos >= this.end) return undefined;
      const at = pos;
      const length = Math.min(this.pool.size, this.end - at);
      pos += length;
      const unit = this.pool.lend(length);
      return readAt(this.fd, unit.data, 0, length, at).then(({ bytesRead }) => {
        if (bytesRead !== length) throw new SdfsError('ECHECKSUM', 'block file is shorter than its metadata says');
        return unit;
      }, (err: unknown) => {
        unit.release();
        throw err;
      });
    };
    try {
      yield* readAhead(this.depth, readUnit, (unit) => unit.release());
    } finally {
      // The file is closed only after the reads that use it (readAhead waits for them): a closed
      // descriptor's number is reused.
      await closeFile(this.fd);
    }
  }

  /** Closes the file of a reader that will not be iterated. */
  async close(): Promise<void> {
    if (this.iterated) return;
    this.iterated = true;
    await closeFile(this.fd);
  }
}
