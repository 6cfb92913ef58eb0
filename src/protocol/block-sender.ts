import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import type { Dispatcher } from 'undici';
import { AUTH_HEADERS } from './auth.js';
import { ChunkCrcs, formatPipeline } from './blocks.js';
import { SdfsError, toSdfsError } from './errors.js';
import { addrToUrl, readJson, requestAt } from './http.js';
import { BLOCK_HEADERS, type PutBlockResponse, type StorageRef } from './messages.js';

/**
 * A block that ends within this many bytes is sent in one piece, with its length, not streamed. Small,
 * since every hop holds these bytes before it forwards them.
 */
const WHOLE_LIMIT = 64 * 1024;

/**
 * Sends one block to the head of a write pipeline (a storage server, which forwards it down the
 * rest), checksumming the bytes on the way (CRC-32 per chunk, as the storage servers do). Used by
 * clients to write blocks and by storage servers to forward them. The first 64 KiB are held: a
 * block that ends within them goes as one body with a content-length (fewer socket writes for a
 * small file, at every hop); a longer one is streamed from there on. `write` resolves when the chunk is
 * handed on, so the sender's source is paused while the pipeline is slow; if the pipeline fails,
 * writes resolve at once and `finish` tells why.
 */
export class BlockSender {
  /** The streamed body, once the block has outgrown WHOLE_LIMIT. */
  private body: PassThrough | undefined;
  private held: Buffer[] = [];
  private response: Promise<PutBlockResponse> | undefined;
  private settled: Promise<void> | undefined;
  private readonly crcs: ChunkCrcs | null;
  private readonly headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
  private failure: SdfsError | undefined;
  private bytes = 0;

  /** `verify: false` skips the checksums, for a sender that computes them for the same bytes elsewhere already. */
  constructor(readonly head: StorageRef, readonly rest: StorageRef[], readonly blockId: string, token: string | undefined,
    private readonly dispatcher: Dispatcher, verify = true) {
    this.crcs = verify ? new ChunkCrcs() : null;
    if (token !== undefined) this.headers[AUTH_HEADERS.blockToken] = token;
    if (rest.length > 0) this.headers[BLOCK_HEADERS.pipeline] = formatPipeline(rest);
  }

  private send(body: Buffer | PassThrough): Promise<void> {
    this.response = requestAt(addrToUrl(this.head.addr), `/v1/blocks/${this.blockId}`, {
      method: 'PUT', body, headers: this.headers, dispatcher: this.dispatcher,
    }).then((res) => readJson<PutBlockResponse>(res));
    this.settled = this.response.then(() => undefined, (err: unknown) => {
      this.failure = toSdfsError(err);
      this.body?.destroy();
    });
    return this.settled;
  }

  get size(): number {
    return this.bytes;
  }

  get failed(): boolean {
    return this.failure !== undefined;
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.failure) return;
    this.bytes += chunk.length;
    this.crcs?.update(chunk);
    if (!this.body) {
      this.held.push(chunk);
      if (this.bytes <= WHOLE_LIMIT) return;
      // Too long to send whole: stream it, starting with what was held.
      this.body = new PassThrough({ highWaterMark: 1024 * 1024 });
      const settled = this.send(this.body);
      for (const piece of this.held) this.body.write(piece);
      this.held = [];
      if (this.body.writableNeedDrain) await Promise.race([once(this.body, 'drain').catch(() => undefined), settled]);
      return;
    }
    if (!this.body.write(chunk)) {
      await Promise.race([once(this.body, 'drain').catch(() => undefined), this.settled]);
    }
  }

  /**
   * Ends the block and waits for the pipeline's answer. The answer is checked against what was sent:
   * a head whose chunk CRC-32s differ from the sender's stored other bytes, and that is a failure, as
   * is a head that stored fewer. The block's SHA-256 is the head's (hashed once, where it is stored:
   * the sender's CRCs already tie the head's bytes to the ones sent).
   */
  async finish(): Promise<{ reply?: PutBlockResponse; size: number; error?: SdfsError }> {
    if (this.failure) return { size: this.bytes, error: this.failure };
    if (this.body) {
      this.body.end();
      await this.settled;
    } else {
      const whole = this.held.length === 1 ? this.held[0]! : Buffer.concat(this.held);
      this.held = [];
      await this.send(whole);
    }
    if (this.failure) return { size: this.bytes, error: this.failure };
    const reply = await this.response!;
    const crcs = this.crcs?.finish();
    if (reply.size !== this.bytes || (crcs && !sameCrcs(crcs, reply.crcs))) {
      return { size: this.bytes, error: new SdfsError('ECHECKSUM', `storage server ${this.head.addr} stored other bytes than were sent`) };
    }
    return { reply, size: this.bytes };
  }

  abort(): void {
    const err = new SdfsError('ECANCELED', 'block upload aborted');
    this.failure ??= err;
    this.held = [];
    this.body?.destroy(err);
  }
}

function sameCrcs(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((c, i) => c === b[i]);
}
