import { closeSync, fstatSync, openSync, readdirSync, readSync } from 'node:fs';
import type * as fs from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from '@node-rs/crc32';
import { isDigest } from '../protocol/block-digest.js';
import { CHUNK_SIZE, ChunkCrcs, ID_PATTERN } from '../protocol/blocks.js';
import type { BlockMeta } from './block-store.js';

/**
 * The block log's on-disk format (block-log.ts), and the reading of its segments.
 *
 * A segment `log/<seq>.seg` (seq: 10 decimal digits, rising) is a sequence of records:
 *
 *   [magic "SDL1"][kind u8][0 0 0][meta length u32 BE][data length u32 BE][crc u32 BE][meta: UTF-8 JSON][data]
 *
 * crc is the CRC-32 of the first 16 bytes and the meta. Kind 1, a block: meta is its BlockMeta and
 * data its bytes (the meta's one chunk CRC covers them). Kind 2, a tombstone: meta is the `{id, seg,
 * offset}` of the record it deletes; it deletes only that record, so a block deleted and written
 * again (a re-replication) is not deleted by the old tombstone.
 */

/** Blocks of up to this many bytes are kept in the log (one chunk: CHUNK_SIZE). */
export const LOG_BLOCK_MAX = Math.min(1024 * 1024, CHUNK_SIZE);
export const HEADER_BYTES = 20;
const MAGIC = 0x53444c31;
export const KIND_BLOCK = 1;
const KIND_TOMBSTONE = 2;
const MAX_META_BYTES = 64 * 1024;
/** The first read of a record takes its header and this much of its meta (a block's is ~250 bytes). */
export const FIRST_READ = 1024;

/** Where a block's record is: segment, offset of the record, its meta's length and the block's size. */
export interface LogEntry {
  readonly seg: number;
  readonly offset: number;
  readonly metaLen: number;
  readonly size: number;
}

export interface Tombstone { id: string; seg: number; offset: number }

/** One record as read from a segment: kind, meta (parsed) and where its parts are. */
export interface ParsedRecord {
  kind: number;
  meta: BlockMeta | Tombstone;
  metaLen: number;
  size: number;
  /** The record's whole length. */
  bytes: number;
}

export function segmentPath(dir: string, seq: number): string {
  return join(dir, `${String(seq).padStart(10, '0')}.seg`);
}

export function listSegments(dir: string): number[] {
  return readdirSync(dir)
    .filter((name) => /^\d{10}\.seg$/.test(name))
    .map((name) => Number(name.slice(0, 10)))
    .sort((a, b) => a - b);
}

export function recordBytes(entry: LogEntry): number {
  return HEADER_BYTES + entry.metaLen + entry.size;
}

export function encodeRecord(kind: number, meta: BlockMeta | Tombstone, data: readonly Buffer[], size: number): Buffer[] {
  const json = Buffer.from(JSON.stringify(meta));
  const head = Buffer.allocUnsafe(HEADER_BYTES + json.length);
  head.writeUInt32BE(MAGIC, 0);
  head.writeUInt32BE(kind << 24, 4);
  head.writeUInt32BE(json.length, 8);
  head.writeUInt32BE(size, 12);
  json.copy(head, HEADER_BYTES);
  head.writeUInt32BE(headerCrc(head, json.length), 16);
  return [head, ...data];
}

/** A tombstone's record: one buffer, its header and meta. */
export function encodeTombstone(t: Tombstone): Buffer {
  return encodeRecord(KIND_TOMBSTONE, { id: t.id, seg: t.seg, offset: t.offset }, [], 0)[0]!;
}

/** Takes the block a tombstone names out of an index being built, if the index still has that very record. */
export function applyTombstone(index: Map<string, LogEntry>, t: Tombstone): void {
  const e = index.get(t.id);
  if (e && e.seg === t.seg && e.offset === t.offset) index.delete(t.id);
}

function headerCrc(head: Buffer, metaLen: number): number {
  return crc32(head.subarray(HEADER_BYTES, HEADER_BYTES + metaLen), crc32(head.subarray(0, 16))) >>> 0;
}

/**
 * Parses the record at `at` of `buf`, which holds at least its header and meta (not always its data).
 * `limit`: where the segment's records end. Undefined if the record is damaged, torn or not a record.
 */
export function parseRecord(buf: Buffer, at: number, limit: number): ParsedRecord | undefined {
  if (at + HEADER_BYTES > limit || buf.length < at + HEADER_BYTES) return undefined;
  const head = buf.subarray(at);
  if (head.readUInt32BE(0) !== MAGIC) return undefined;
  const kindWord = head.readUInt32BE(4);
  const kind = kindWord >>> 24;
  const metaLen = head.readUInt32BE(8);
  const size = head.readUInt32BE(12);
  if ((kindWord & 0xffffff) !== 0 || (kind !== KIND_BLOCK && kind !== KIND_TOMBSTONE) || metaLen > MAX_META_BYTES || size > LOG_BLOCK_MAX) return undefined;
  if (kind === KIND_TOMBSTONE && size !== 0) return undefined;
  const bytes = HEADER_BYTES + metaLen + size;
  if (at + bytes > limit || head.length < HEADER_BYTES + metaLen) return undefined;
  if (headerCrc(head, metaLen) !== head.readUInt32BE(16)) return undefined;
  let meta: unknown;
  try {
    meta = JSON.parse(head.toString('utf8', HEADER_BYTES, HEADER_BYTES + metaLen));
  } catch {
    return undefined;
  }
  if (typeof meta !== 'object' || meta === null) return undefined;
  const m = meta as Partial<BlockMeta & Tombstone>;
  if (typeof m.id !== 'string' || !ID_PATTERN.test(m.id)) return undefined;
  if (kind === KIND_BLOCK) {
    if (m.v !== 2 || m.size !== size || size === 0 || !isDigest(m.digest) || !Array.isArray(m.crcs) || m.crcs.length !== 1 || m.chunkSize !== CHUNK_SIZE) return undefined;
  } else if (!Number.isSafeInteger(m.seg) || !Number.isSafeInteger(m.offset)) return undefined;
  return { kind, meta: meta as BlockMeta | Tombstone, metaLen, size, bytes };
}

/** Reads and parses the record at `offset` of a segment (its header and meta; data is not checked). */
export async function readRecordAt(fh: fs.FileHandle, offset: number, limit: number): Promise<ParsedRecord | undefined> {
  const first = Buffer.allocUnsafe(Math.min(HEADER_BYTES + FIRST_READ, Math.max(0, limit - offset)));
  const { bytesRead } = await fh.read(first, 0, first.length, offset);
  if (bytesRead < HEADER_BYTES) return undefined;
  const metaLen = first.readUInt32BE(8);
  if (metaLen > MAX_META_BYTES) return undefined;
  if (HEADER_BYTES + metaLen <= bytesRead) return parseRecord(first.subarray(0, bytesRead), 0, limit - offset);
  const whole = Buffer.allocUnsafe(HEADER_BYTES + metaLen);
  const again = await fh.read(whole, 0, whole.length, offset);
  return parseRecord(whole.subarray(0, again.bytesRead), 0, limit - offset);
}

/** Reads and parses the record at `offset` of a segment on the event loop; undefined if none is there. */
function readRecordSync(fd: number, offset: number, size: number, scratch: Buffer): ParsedRecord | undefined {
  if (offset + HEADER_BYTES > size) return undefined;
  const got = readSync(fd, scratch, 0, Math.min(scratch.length, size - offset), offset);
  let head = scratch.subarray(0, got);
  const metaLen = head.readUInt32BE(8);
  if (metaLen <= MAX_META_BYTES && HEADER_BYTES + metaLen > got) {
    head = Buffer.allocUnsafe(HEADER_BYTES + metaLen);
    head = head.subarray(0, readSync(fd, head, 0, head.length, offset));
  }
  return parseRecord(head, 0, size - offset);
}

/**
 * The offset of the first whole record at or after `from`, or -1: found by its magic and checked by its
 * header CRC. Reading on past damage keeps the acknowledged blocks after it.
 */
export function findRecord(fd: number, from: number, size: number, scratch: Buffer): number {
  const window = Buffer.allocUnsafe(1024 * 1024);
  const magic = Buffer.from('SDL1');
  for (let base = from; base + HEADER_BYTES <= size; base += window.length - magic.length) {
    const got = readSync(fd, window, 0, Math.min(window.length, size - base), base);
    for (let i = window.subarray(0, got).indexOf(magic); i >= 0; i = window.subarray(0, got).indexOf(magic, i + 1)) {
      if (readRecordSync(fd, base + i, size, scratch)) return base + i;
    }
    if (got < window.length) break;
  }
  return -1;
}

export interface ScanHandlers {
  block(id: string, entry: LogEntry, meta: BlockMeta): void;
  tombstone(t: Tombstone): void;
  /** A block whose data failed its CRC (with `full` only). */
  failed?(t: Tombstone): void;
}

/**
 * Walks a segment's records on the event loop (at start, before the server listens), handing on each
 * block and tombstone. `full`: checks each block's data against its CRC too (the last segment, whose
 * end a crash may have torn). Bytes that are not a record are skipped up to the next whole record,
 * with a message. Returns where the last whole record ends, and whether bytes were skipped before it.
 */
export function scanSegment(fd: number, seq: number, size: number, full: boolean, on: ScanHandlers): { end: number; damaged: boolean } {
  const scratch = Buffer.allocUnsafe(HEADER_BYTES + FIRST_READ);
  let data = Buffer.allocUnsafe(0);
  let offset = 0;
  let end = 0;
  let damaged = false;
  while (offset + HEADER_BYTES <= size) {
    const parsed = readRecordSync(fd, offset, size, scratch);
    if (!parsed) {
      const next = findRecord(fd, offset + 1, size, scratch);
      if (next < 0) break;
      console.error(`block log: segment ${seq}: bytes ${offset}-${next} are not whole records; read on after them`);
      damaged = true;
      offset = next;
      continue;
    }
    const entry: LogEntry = { seg: seq, offset, metaLen: parsed.metaLen, size: parsed.size };
    if (parsed.kind === KIND_BLOCK) {
      const meta = parsed.meta as BlockMeta;
      let good = true;
      if (full) {
        if (data.length < parsed.size) data = Buffer.allocUnsafe(LOG_BLOCK_MAX);
        const view = data.subarray(0, parsed.size);
        // parseRecord checked that the record lies within the file.
        readSync(fd, view, 0, view.length, offset + HEADER_BYTES + parsed.metaLen);
        const crcs = new ChunkCrcs(CHUNK_SIZE);
        crcs.update(view);
        good = crcs.finish()[0] === meta.crcs[0];
      }
      if (good) on.block(meta.id, entry, meta);
      else {
        console.error(`block log: block ${meta.id} in segment ${seq} does not match its CRC; left out`);
        on.failed?.({ id: meta.id, seg: seq, offset });
      }
    } else on.tombstone(parsed.meta as Tombstone);
    offset += parsed.bytes;
    end = offset;
  }
  return { end, damaged };
}

/** The blocks in a data dir's log, read without opening it for writing (tests, the bench). */
export function scanLog(dataDir: string): Map<string, LogEntry & { path: string; meta: BlockMeta }> {
  const dir = join(dataDir, 'log');
  const out = new Map<string, LogEntry & { path: string; meta: BlockMeta }>();
  let seqs: number[];
  try {
    seqs = listSegments(dir);
  } catch {
    return out;
  }
  for (const seq of seqs) {
    const path = segmentPath(dir, seq);
    const fd = openSync(path, 'r');
    try {
      scanSegment(fd, seq, fstatSync(fd).size, false, {
        block: (id, entry, meta) => out.set(id, { ...entry, path, meta }),
        tombstone: (t) => applyTombstone(out, t),
      });
    } finally {
      closeSync(fd);
    }
  }
  return out;
}

/** Where a block's data starts in its record. */
export function dataOffset(entry: LogEntry): number {
  return entry.offset + HEADER_BYTES + entry.metaLen;
}
