import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { request, type Dispatcher } from 'undici';
import { AUTH_HEADERS } from './auth.js';
import { ChunkCrcs, formatPipeline } from './blocks.js';
import { SdfsError, toSdfsError } from './errors.js';
import { addrToUrl, readJson } from './http.js';
import { BLOCK_HEADERS, type PutBlockResponse, type StorageRef } from './messages.js';

/**
 * Streams one block to the head of a write pipeline (a storage server, which forwards it down the
 * rest), checksumming the bytes on the way (CRC-32 per chunk, as the storage servers do). Used by
 * clients to write blocks and by storage servers to forward them. `write` resolves when the chunk is handed on, so the sender's source is paused
 * while the pipeline is slow; if the pipeline fails, writes resolve at once and `finish` tells why.
 */
export class BlockSender {
  private readonly body = new PassThrough({ highWaterMark: 1024 * 1024 });
  private readonly response: Promise<PutBlockResponse>;
  private readonly settled: Promise<void>;
  private readonly crcs: ChunkCrcs | null;
  private failure: SdfsError | undefined;
  private bytes = 0;

  /** `verify: false` skips the checksums, for a sender that computes them for the same bytes elsewhere already. */
  constructor(readonly head: StorageRef, readonly rest: StorageRef[], readonly blockId: string, token: string | undefined,
    dispatcher: Dispatcher, verify = true) {
    this.crcs = verify ? new ChunkCrcs() : null;
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
    if (token !== undefined) headers[AUTH_HEADERS.blockToken] = token;
    if (rest.length > 0) headers[BLOCK_HEADERS.pipeline] = formatPipeline(rest);
    this.response = request(`${addrToUrl(head.addr)}/v1/blocks/${blockId}`, {
      method: 'PUT', body: this.body, headers, dispatcher,
    }).then((res) => readJson<PutBlockResponse>(res));
    this.settled = this.response.then(() => undefined, (err: unknown) => {
      this.failure = toSdfsError(err);
      this.body.destroy();
    });
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
    if (!this.failure) this.body.end();
    await this.settled;
    if (this.failure) return { size: this.bytes, error: this.failure };
    const reply = await this.response;
    const crcs = this.crcs?.finish();
    if (reply.size !== this.bytes || (crcs && !sameCrcs(crcs, reply.crcs))) {
      return { size: this.bytes, error: new SdfsError('ECHECKSUM', `storage server ${this.head.addr} stored other bytes than were sent`) };
    }
    return { reply, size: this.bytes };
  }

  abort(): void {
    this.body.destroy(new Error('block upload aborted'));
  }
}

function sameCrcs(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((c, i) => c === b[i]);
}
