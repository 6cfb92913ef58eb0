import { setTimeout as sleep } from 'node:timers/promises';
import { createDigester, digestAlgorithm } from '../protocol/block-digest.js';
import { ChunkCrcs } from '../protocol/blocks.js';
import { SdfsError } from '../protocol/errors.js';
import type { BlockStore } from './block-store.js';

/**
 * Reads every block in the background, at a bounded rate, and checks it against its checksums, so
 * that a damaged replica is found even if nobody reads it. A damaged block is moved aside and
 * reported; the name server then copies a good replica here or elsewhere.
 */
export class Scrubber {
  private stopped = false;
  private loop: Promise<void> | undefined;
  private readonly abort = new AbortController();

  constructor(
    private readonly store: BlockStore,
    /** Bytes per second at most; 0 turns scrubbing off. */
    private readonly bytesPerSecond: number,
    /** Reports a damaged block; resolves true if the name server dropped this replica (another copy exists). */
    private readonly onDamaged: (id: string, reason: string) => Promise<boolean>,
    /** Pause between two passes over all blocks, ms. */
    private readonly passIntervalMs = 60_000,
  ) {}

  start(): void {
    if (this.bytesPerSecond > 0) this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    await this.loop;
  }

  private async run(): Promise<void> {
    try {
      while (!this.stopped) {
        for (const id of this.store.list()) {
          if (this.stopped) return;
          await this.scrubOne(id);
        }
        await sleep(this.passIntervalMs, undefined, { signal: this.abort.signal });
      }
    } catch (err) {
      if (!this.stopped) console.error(`scrubber stopped: ${(err as Error).message}`);
    }
  }

  /** Verifies one block; returns false if it was damaged. */
  async scrubOne(id: string): Promise<boolean> {
    let reason: string | undefined;
    try {
      const meta = await this.store.readMeta(id, true);
      const read = await this.store.read(meta, 0, meta.size, true);
      const units = read.range ? read.range.units() : [{ data: read.data, release: read.release }];
      const crcs = new ChunkCrcs(meta.chunkSize);
      const hash = createDigester(digestAlgorithm(meta.digest));
      const started = Date.now();
      let bytes = 0;
      for await (const { data: chunk, release } of units) {
        crcs.update(chunk);
        hash.update(chunk);
        bytes += chunk.length;
        release?.();
        // Rate limit: never ahead of bytesPerSecond since this block started.
        const ahead = bytes / this.bytesPerSecond * 1000 - (Date.now() - started);
        if (ahead > 0) await sleep(ahead, undefined, { signal: this.abort.signal });
      }
      const got = crcs.finish();
      if (bytes !== meta.size || got.length !== meta.crcs.length || got.some((c, i) => c !== meta.crcs[i])) reason = 'chunk checksum mismatch';
      else if (hash.digest() !== meta.digest) reason = 'digest mismatch';
    } catch (err) {
      if (this.stopped) return true;
      // Deleted meanwhile.
      if ((err as { code?: unknown }).code === 'ENOENT') return true;
      if (!(err instanceof SdfsError && err.code === 'ECHECKSUM')) throw err;
      reason = err.message;
    }
    if (!reason) return true;
    // Moved aside only once the name server has dropped it: the last copy of a block stays where it is,
    // since a damaged block may still be partly read. Unreported, it is tried again on the next pass.
    const dropped = await this.onDamaged(id, reason).catch(() => false);
    if (dropped) await this.store.quarantine(id);
    else console.error(`scrubber: block ${id} is damaged (${reason}) and kept: it is the last copy, or the name server could not be told`);
    return false;
  }
}
