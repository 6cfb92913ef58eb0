import { Readable } from 'node:stream';
import { crc32 } from '@node-rs/crc32';
import type { Dispatcher } from 'undici';
import { CHUNK_SIZE } from './blocks.js';
import { SdfsError, toSdfsError } from './errors.js';
import { AUTH_HEADERS } from './auth.js';
import { addrToUrl, parseJson } from './http.js';
import { BLOCK_HEADERS, type BlockLocation, type BlocksResponse } from './messages.js';

export interface ReadOptions {
  /** First byte to read (default 0). */
  start?: number;
  /** Byte after the last one to read (default: the end of the file). */
  end?: number;
  signal?: AbortSignal;
}

/** A storage server's error answer is a small JSON object; a larger body is not one. */
const MAX_ERROR_BODY = 64 * 1024;

/** Called when a replica fails a read, so that the caller may report or log it. */
export type ReplicaFailure = (block: BlockLocation, replica: { id: string; addr: string }, err: SdfsError) => void;

/** Asks where a block is anew (its tokens expired); undefined if the file no longer has it. */
type Renew = (block: BlockLocation) => Promise<BlockLocation | undefined>;

/** One block's part of a read: bytes [from, to) of the block. */
interface Span {
  block: BlockLocation;
  from: number;
  to: number;
}

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
  const spans: Span[] = [];
  for (const block of located.blocks) {
    const from = Math.max(start, block.offset) - block.offset;
    const to = Math.min(end, block.offset + block.size) - block.offset;
    if (from < to) spans.push({ block, from, to });
  }
  // Block tokens expire: a read that reaches a block after its token did asks where it is anew.
  const renew: Renew | undefined = relocate && (async (block) => (await relocate()).blocks.find((b) => b.index === block.index && b.id === block.id));
  return new VerifiedReadStream(spans, dispatcher, opts.signal, onFailure, renew);
}

/** Bytes [from, to) of one block, verified and with failover across its replicas, as createFileReadStream. */
export function readBlock(
  block: BlockLocation, from: number, to: number, dispatcher: Dispatcher, signal: AbortSignal | undefined, onFailure?: ReplicaFailure,
): Readable {
  return new VerifiedReadStream(from < to ? [{ block, from, to }] : [], dispatcher, signal, onFailure, undefined);
}

/**
 * The reading machinery. Each replica's answer is read through undici's `dispatch` with a handler of
 * this stream's own: the bytes are checked as the socket delivers them and handed on as the pieces
 * they arrived in (no copy, no response stream between the socket and the reader), and the answer is
 * paused while the reader is full.
 */
class VerifiedReadStream extends Readable {
  /** The answer being read, paused while the reader is full. */
  private answer: Dispatcher.DispatchController | undefined;
  private started = false;

  constructor(
    private readonly spans: Span[],
    private readonly dispatcher: Dispatcher,
    private readonly signal: AbortSignal | undefined,
    private readonly onFailure: ReplicaFailure | undefined,
    private readonly renew: Renew | undefined,
  ) {
    super({ highWaterMark: 1024 * 1024 });
  }

  override _read(): void {
    if (this.answer?.paused) this.answer.resume();
    if (this.started) return;
    this.started = true;
    this.readAll().then(() => this.push(null), (err: unknown) => this.destroy(toSdfsError(err)));
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.answer?.abort(new SdfsError('ECANCELED', 'read cancelled'));
    callback(err);
  }

  private async readAll(): Promise<void> {
    for (const span of this.spans) {
      await this.readSpan(span.block, span.from, span.to, this.renew);
      if (this.destroyed) return;
    }
  }

  private async readSpan(block: BlockLocation, from: number, to: number, renew: Renew | undefined): Promise<void> {
    let pos = from;
    const errors: string[] = [];
    let refused = 0;
    for (const replica of block.replicas) {
      try {
        await this.readReplica(block, replica.addr, pos, to, (n) => { pos += n; });
        return;
      } catch (err) {
        if (this.destroyed) return;
        const e = toSdfsError(err);
        if (e.code === 'ECANCELED') throw e;
        if (e.code === 'EACCES' || e.code === 'EAUTH') refused++;
        errors.push(`${replica.addr}: ${e.message}`);
        this.onFailure?.(block, replica, e);
      }
    }
    const renewed = refused > 0 && renew ? await renew(block) : undefined;
    if (renewed) return this.readSpan(renewed, pos, to, undefined);
    throw new SdfsError('EUNAVAILABLE', `block ${block.index} (${block.id}) could not be read from any replica: ${errors.join('; ') || 'no replicas'}`);
  }

  /**
   * Reads [from, to) of a block from one replica, asking for whole checksum chunks and handing on
   * only bytes of chunks whose CRC-32 matched; `advanced` counts the bytes handed on, so that a
   * failover resumes after them.
   */
  private readReplica(block: BlockLocation, addr: string, from: number, to: number, advanced: (n: number) => void): Promise<void> {
    // Blocks are checksummed in chunks of the protocol's CHUNK_SIZE; ask for whole chunks.
    const chunkSize = CHUNK_SIZE;
    const alignedStart = Math.floor(from / chunkSize) * chunkSize;
    const alignedEnd = Math.min(Math.ceil(to / chunkSize) * chunkSize, block.size);
    const headers: Record<string, string> = { range: `bytes=${alignedStart}-${alignedEnd - 1}` };
    if (block.token !== undefined) headers[AUTH_HEADERS.blockToken] = block.token;

    let status = 0;
    /** An error answer's body (JSON with the storage server's code: ENOENT, EACCES for a refused token...). */
    let errorBody: Buffer[] | undefined;
    let errorBytes = 0;
    let crcs: number[] = [];
    let chunkStart = alignedStart;
    let pieces: Buffer[] = [];
    let filled = 0;
    let crc = 0;
    let chunkNo = 0;

    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (err?: SdfsError): void => {
        if (settled) return;
        settled = true;
        this.answer = undefined;
        this.signal?.removeEventListener('abort', cancel);
        if (err) reject(err);
        else resolve();
      };
      const fail = (controller: Dispatcher.DispatchController, err: SdfsError): void => {
        settle(err);
        controller.abort(err);
      };
      const cancel = (): void => this.answer?.abort(new SdfsError('ECANCELED', 'read cancelled'));
      this.signal?.addEventListener('abort', cancel, { once: true });

      const verify = (controller: Dispatcher.DispatchController, data: Buffer): void => {
        let off = 0;
        let full = false;
        while (off < data.length) {
          const chunkLen = Math.min(chunkSize, alignedEnd - chunkStart);
          const piece = data.subarray(off, off + Math.min(chunkLen - filled, data.length - off));
          if (piece.length === 0) return fail(controller, new SdfsError('EPROTO', 'replica sent more bytes than asked for'));
          off += piece.length;
          crc = crc32(piece, crc);
          pieces.push(piece);
          filled += piece.length;
          if (filled < chunkLen) continue;
          if (crc >>> 0 !== crcs[chunkNo]) return fail(controller, new SdfsError('ECHECKSUM', `chunk ${chunkStart / chunkSize} of block ${block.id} failed its checksum`));
          // The verified chunk goes on as the pieces it arrived in (no copy), trimmed to [from, to).
          const lo = Math.max(from, chunkStart) - chunkStart;
          const hi = Math.min(to, chunkStart + filled) - chunkStart;
          let at = 0;
          for (const p of pieces) {
            const a = Math.max(lo - at, 0);
            const b = Math.min(hi - at, p.length);
            if (b > a) {
              full = !this.push(a === 0 && b === p.length ? p : p.subarray(a, b)) || full;
              advanced(b - a);
            }
            at += p.length;
          }
          chunkStart += filled;
          pieces = [];
          filled = 0;
          crc = 0;
          chunkNo++;
        }
        // The reader is full: wait for its next _read.
        if (full) controller.pause();
      };

      try {
        this.dispatcher.dispatch({ origin: addrToUrl(addr), path: `/v1/blocks/${block.id}`, method: 'GET', headers }, {
          onRequestStart: (controller) => {
            this.answer = controller;
            if (this.destroyed || this.signal?.aborted) controller.abort(new SdfsError('ECANCELED', 'read cancelled'));
          },
          onResponseStart: (controller, statusCode, h) => {
            status = statusCode;
            if (statusCode !== 206 && statusCode !== 200) {
              errorBody = [];
              return;
            }
            if (Number(h[BLOCK_HEADERS.blockSize]) !== block.size || Number(h[BLOCK_HEADERS.chunkSize]) !== chunkSize) {
              return fail(controller, new SdfsError('ECHECKSUM', 'replica holds a block of another size'));
            }
            crcs = String(h[BLOCK_HEADERS.crcs] ?? '').split(',').filter((x) => x !== '').map((x) => parseInt(x, 16));
            if (crcs.length !== Math.ceil((alignedEnd - alignedStart) / chunkSize)) {
              return fail(controller, new SdfsError('EPROTO', 'replica sent the wrong number of checksums'));
            }
          },
          onResponseData: (controller, data) => {
            if (settled) return;
            if (!errorBody) return verify(controller, data);
            errorBytes += data.length;
            if (errorBytes > MAX_ERROR_BODY) return fail(controller, new SdfsError('EPROTO', `replica answered HTTP ${status} with a large body`));
            errorBody.push(data);
          },
          onResponseEnd: () => {
            if (errorBody) {
              let err: SdfsError;
              try {
                parseJson(status, Buffer.concat(errorBody).toString('utf8'));
                err = new SdfsError('EPROTO', `replica answered HTTP ${status}`);
              } catch (e) {
                err = toSdfsError(e);
              }
              return settle(err);
            }
            settle(chunkStart === alignedEnd ? undefined : new SdfsError('EUNAVAILABLE', 'replica closed the connection early'));
          },
          onResponseError: (_controller, err) => settle(toSdfsError(err)),
        });
      } catch (err) {
        settle(toSdfsError(err));
      }
    });
  }
}
