import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import type { Dispatcher } from 'undici';
import { AUTH_HEADERS } from './auth.js';
import { digestLength, digestToBytes, type DigestAlgorithm } from './block-digest.js';
import { ChunkCrcs, formatPipeline, sameCrcs } from './blocks.js';
import { SdfsError, toSdfsError } from './errors.js';
import { LINK_BODY_MAX, type BlockLinks } from './block-link.js';
import { addrToUrl, parseJson, requestJson } from './http.js';
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
 *
 * Between storage servers the body may end with the head's digest (see TrailerSplitter): the head
 * sends it with `trailer: { mode: 'append' }` and gives the digest to `finish`; a server further down
 * passes the body on as it came, digest included, with `mode: 'passthrough'`.
 */
export interface BlockSenderOptions {
  /** Computes the chunk CRC-32s of what is sent and compares them with the head's (a client does). */
  verify?: boolean;
  /** The block's digest at the end of the body, in `algorithm`'s raw bytes. */
  trailer?: { mode: 'append' | 'passthrough'; algorithm: DigestAlgorithm };
  /** A block sent whole goes through the head's block link, when it has one. */
  links?: BlockLinks;
}

export class BlockSender {
  /** The streamed body, once the block has outgrown WHOLE_LIMIT. */
  private body: PassThrough | undefined;
  private held: Buffer[] = [];
  private response: Promise<PutBlockResponse> | undefined;
  private settled: Promise<void> | undefined;
  private readonly crcs: ChunkCrcs | null;
  private readonly trailer: BlockSenderOptions['trailer'];
  private readonly headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
  private failure: SdfsError | undefined;
  private bytes = 0;
  private readonly links: BlockLinks | undefined;

  constructor(readonly head: StorageRef, readonly rest: StorageRef[], readonly blockId: string, token: string | undefined,
    private readonly dispatcher: Dispatcher, opts: BlockSenderOptions = {}) {
    this.crcs = opts.verify === false ? null : new ChunkCrcs();
    this.trailer = opts.trailer;
    this.links = opts.links;
    if (token !== undefined) this.headers[AUTH_HEADERS.blockToken] = token;
    if (rest.length > 0) this.headers[BLOCK_HEADERS.pipeline] = formatPipeline(rest);
    if (opts.trailer) this.headers[BLOCK_HEADERS.trailer] = opts.trailer.algorithm;
  }

  private send(body: Buffer | PassThrough): Promise<void> {
    const origin = addrToUrl(this.head.addr);
    const overHttp = (): Promise<PutBlockResponse> => requestJson<PutBlockResponse>(origin, `/v1/blocks/${this.blockId}`, {
      method: 'PUT', body, headers: this.headers, dispatcher: this.dispatcher,
    });
    const link = Buffer.isBuffer(body) && body.length <= LINK_BODY_MAX ? this.links?.get(origin) : undefined;
    this.response = link
      ? link.request({ id: this.blockId, headers: this.headers }, body as Buffer).then(
        ({ status, text }) => parseJson<PutBlockResponse>(status, text),
        // A server without links: this block, and the next ones for a while (BlockLinks), by HTTP.
        (err: unknown) => (link.refused ? overHttp() : Promise.reject(err)))
      : overHttp();
    this.settled = this.response.then(() => undefined, (err: unknown) => {
      this.failure = toSdfsError(err);
      this.body?.destroy();
    });
    return this.settled;
  }

  /** The block's bytes sent so far (a passed-on digest not counted once the body is complete). */
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
   * is a head that stored fewer. The block's digest is the head's (hashed once, where it is stored:
   * the sender's CRCs already tie the head's bytes to the ones sent). `digest`: the one to append
   * (`mode: 'append'`), of the trailer's algorithm.
   */
  async finish(digest?: string): Promise<{ reply?: PutBlockResponse; size: number; error?: SdfsError }> {
    const trailer = this.trailer;
    if (trailer?.mode === 'append' && !digest?.startsWith(`${trailer.algorithm}:`)) throw new Error('BlockSender: the digest to append is missing');
    if (trailer?.mode === 'passthrough') this.bytes -= digestLength(trailer.algorithm); // what came through ended with the digest
    if (this.failure) return { size: this.bytes, error: this.failure };
    const tail = trailer?.mode === 'append' ? [digestToBytes(digest!)] : [];
    if (this.body) {
      for (const piece of tail) this.body.write(piece);
      this.body.end();
      await this.settled;
    } else {
      const pieces = [...this.held, ...tail];
      const whole = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
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
