import { randomBytes } from 'node:crypto';
import { crc32 } from '@node-rs/crc32';
import { SdfsError } from './errors.js';
import { STORAGE_ADDR_PATTERN, type StorageRef } from './messages.js';

const ADDR = new RegExp(STORAGE_ADDR_PATTERN);

/** Block, upload and storage server ids: 32 lower-case hex digits, safe as file names. */
export const ID_PATTERN = /^[0-9a-f]{32}$/;

/** 128 random bits. */
export function newId(): string {
  return randomBytes(16).toString('hex');
}

let lastMs = 0;
let sequence = 0;

/**
 * A new block's id: the time in ms (12 digits), a sequence within that ms (4), then 64 random bits.
 * Ids made one after another sort one after another, so the name server's indexes of blocks and
 * replicas grow at their end: a file's rows land in the pages the files before it used, which
 * stay in memory, instead of one random page per index per file (as HDFS's sequential block ids).
 * Blocks stored before 2026-11-29 have random ids of the same shape.
 */
export function newBlockId(): string {
  const now = Date.now();
  // A clock set back keeps the last time, so the order holds within a process.
  if (now > lastMs) {
    lastMs = now;
    sequence = 0;
  } else sequence = (sequence + 1) & 0xffff;
  return lastMs.toString(16).padStart(12, '0') + sequence.toString(16).padStart(4, '0') + randomBytes(8).toString('hex');
}

export function validateId(id: unknown, what = 'block id'): string {
  if (typeof id !== 'string' || !ID_PATTERN.test(id)) throw new SdfsError('EINVAL', `invalid ${what}`);
  return id;
}

/**
 * Each block carries a CRC-32 per chunk of this size, so a reader can verify a chunk before it hands
 * the bytes on, and a range read is verified too.
 */
export const CHUNK_SIZE = 1024 * 1024;

/** Computes CRC-32s of consecutive CHUNK_SIZE chunks over a stream of buffers of any size. */
export class ChunkCrcs {
  readonly crcs: number[] = [];
  private current = 0;
  private filled = 0;

  constructor(private readonly chunkSize = CHUNK_SIZE) {}

  update(buf: Uint8Array): void {
    let off = 0;
    while (off < buf.length) {
      const take = Math.min(this.chunkSize - this.filled, buf.length - off);
      this.current = crc32(buf.subarray(off, off + take), this.current);
      this.filled += take;
      off += take;
      if (this.filled === this.chunkSize) this.flushChunk();
    }
  }

  /** Ends the last, partial chunk. */
  finish(): number[] {
    if (this.filled > 0) this.flushChunk();
    return this.crcs;
  }

  private flushChunk(): void {
    this.crcs.push(this.current >>> 0);
    this.current = 0;
    this.filled = 0;
  }
}

export function sameCrcs(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((c, i) => c === b[i]);
}

/**
 * Down a write pipeline, a block's digest (block-digest.ts) is computed once, by the head: it appends
 * the digest's raw bytes to the body it forwards, with the header `x-sdfs-trailer: <algorithm>`, and the
 * servers after it store that digest instead of hashing every byte again. Their copies are tied to the
 * head's bytes by their chunk CRC-32s, which each upstream server compares with its own; the
 * scrubber later recomputes the digest of every copy from its disk.
 *
 * This splits such a body, which ends with a trailer of `size` bytes: the bytes before it come out as
 * they arrive.
 */
export class TrailerSplitter {
  private tail: Buffer = Buffer.alloc(0);

  constructor(private readonly size: number) {}

  /** The data bytes this chunk makes certain (none of the last `size` bytes seen so far). */
  push(chunk: Buffer): Buffer[] {
    if (chunk.length >= this.size) {
      const out = this.tail.length > 0 ? [this.tail] : [];
      const cut = chunk.length - this.size;
      if (cut > 0) out.push(chunk.subarray(0, cut));
      this.tail = chunk.subarray(cut);
      return out;
    }
    const all = Buffer.concat([this.tail, chunk]);
    const cut = Math.max(0, all.length - this.size);
    this.tail = all.subarray(cut);
    return cut > 0 ? [all.subarray(0, cut)] : [];
  }

  /** The trailer, once the body has ended; undefined if the body was shorter than a trailer. */
  end(): Buffer | undefined {
    return this.tail.length === this.size ? this.tail : undefined;
  }
}

/** The pipeline header lists the storage servers that still have to store a block. */
export function formatPipeline(targets: StorageRef[]): string {
  return targets.map((t) => `${t.id}@${t.addr}`).join(',');
}

export function parsePipeline(header: string | undefined): StorageRef[] {
  if (!header) return [];
  const out: StorageRef[] = [];
  for (const item of header.split(',')) {
    const at = item.indexOf('@');
    const id = item.slice(0, at);
    const addr = item.slice(at + 1);
    if (at < 0 || !ID_PATTERN.test(id) || !ADDR.test(addr)) {
      throw new SdfsError('EINVAL', 'invalid pipeline header');
    }
    out.push({ id, addr });
  }
  if (out.length > 16) throw new SdfsError('EINVAL', 'pipeline too long');
  return out;
}
