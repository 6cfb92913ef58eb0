import { closeSync, existsSync, fstatSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readdirSync, readSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { crc32 } from '@node-rs/crc32';
import { isDigest } from '../protocol/block-digest.js';
import { CHUNK_SIZE, ChunkCrcs, ID_PATTERN } from '../protocol/blocks.js';
import { SdfsError, toSdfsError } from '../protocol/errors.js';
import type { BlockMeta } from './block-store.js';
import { fsyncDir } from './fsync-dir.js';

/**
 * Small blocks, appended to segment files instead of a file each. A file per block costs a create, a
 * rename and two fsyncs on every replica: about 0.4 ms of CPU per 4 KiB block here, and at most
 * ~2,400 blocks a second per disk. Appended, the blocks in flight share one write and one fdatasync
 * (group commit): 0.04 ms and ~12,000 a second (probes of 2026-11-29, docs/BENCHMARKS.md).
 *
 * A segment `log/<seq>.seg` (seq: 10 decimal digits, rising) is a sequence of records:
 *
 *   [magic "SDL1"][kind u8][0 0 0][meta length u32 BE][data length u32 BE][crc u32 BE][meta: UTF-8 JSON][data]
 *
 * crc is the CRC-32 of the first 16 bytes and the meta. Kind 1, a block: meta is its BlockMeta and
 * data its bytes (the meta's one chunk CRC covers them). Kind 2, a tombstone: meta is the `{id, seg,
 * offset}` of the record it deletes; it deletes only that record, so a block deleted and written
 * again (a re-replication) is not deleted by the old tombstone.
 *
 * Only the last segment is appended to. A batch is acknowledged after the fdatasync that follows its
 * write, so a crash can tear only records that nobody was told of, at the end of the last segment: at
 * start its file is cut where whole records end, and its blocks' data is checked against their CRCs
 * (a block that fails is left out and gets a tombstone: the name server has it copied again from
 * another replica). Damaged bytes elsewhere are skipped up to the next whole record. A segment whose
 * live records fall under half of it is compacted: they are appended again, then the segment is
 * removed. A segment with damaged bytes is compacted at once, and then moved to `corrupt/` rather
 * than removed, for an operator to look at; the blocks whose records were damaged are gone from this
 * server, and the block reports tell the name server to copy them again.
 */

/** Blocks of up to this many bytes are kept in the log (one chunk: CHUNK_SIZE). */
export const LOG_BLOCK_MAX = Math.min(1024 * 1024, CHUNK_SIZE);
/** A segment is sealed, and a new one begun, once it holds this many bytes. */
export const SEGMENT_BYTES = 64 * 1024 * 1024;
const HEADER_BYTES = 20;
const MAGIC = 0x53444c31;
const KIND_BLOCK = 1;
const KIND_TOMBSTONE = 2;
const MAX_META_BYTES = 64 * 1024;
/** The first read of a record takes its header and this much of its meta (a block's is ~250 bytes). */
const FIRST_READ = 1024;
/** A sealed segment is compacted when its live records are less than this share of its bytes. */
const COMPACT_BELOW = 0.5;
/** Records copied per batch by a compaction: they share a write and an fdatasync. */
const COMPACT_BATCH_BYTES = 8 * 1024 * 1024;

/** Where a block's record is: segment, offset of the record, its meta's length and the block's size. */
export interface LogEntry {
  readonly seg: number;
  readonly offset: number;
  readonly metaLen: number;
  readonly size: number;
}

interface Segment {
  readonly seq: number;
  readonly path: string;
  readonly fh: fs.FileHandle;
  /** Bytes of whole records (the file may be longer only while a batch is being written). */
  bytes: number;
  /** Bytes of the live blocks' records in it. */
  live: number;
  /** Bytes of tombstones a compaction carried into it (kept, though no block's). */
  kept: number;
  /** Reads in flight on the thread pool: its descriptor is closed after the last one, once removed. */
  reads: number;
  removed: boolean;
  /** A failed write could not be cut off again: nothing more is appended to it. */
  broken: boolean;
  /**
   * Bytes in it that are not whole records (found at start, or by a compaction): it is compacted
   * whatever its live share, and then moved to `corrupt/` for an operator instead of removed.
   */
  damaged: boolean;
}

interface Append {
  /** The block's id, for a block's record. */
  readonly id?: string;
  readonly record: Buffer[];
  readonly bytes: number;
  readonly done: (seg: number, offset: number) => void;
  readonly fail: (err: Error) => void;
}

interface Tombstone { id: string; seg: number; offset: number }

/** One record as read from a segment: kind, meta (parsed) and where its parts are. */
interface ParsedRecord {
  kind: number;
  meta: BlockMeta | Tombstone;
  metaLen: number;
  size: number;
  /** The record's whole length. */
  bytes: number;
}

export class BlockLog {
  readonly dir: string;
  private readonly index = new Map<string, LogEntry>();
  private readonly segments = new Map<number, Segment>();
  private active: Segment | undefined;
  private queue: Append[] = [];
  private writing: Promise<void> | undefined;
  private compacting: Promise<void> = Promise.resolve();
  private readonly compactQueued = new Set<number>();
  private liveBytes = 0;
  private closed = false;
  /** Set by wipe: the next batch begins a new segment, so that the last one can be compacted away too. */
  private sealRequested = false;

  /** Where damaged segments go once their blocks are copied out (the block store's quarantine). */
  private readonly corruptDir: string;

  constructor(dataDir: string, private readonly segmentBytes = SEGMENT_BYTES) {
    this.dir = join(dataDir, 'log');
    this.corruptDir = join(dataDir, 'corrupt');
  }

  get count(): number {
    return this.index.size;
  }

  /** Bytes of the live blocks' records. */
  get used(): number {
    return this.liveBytes;
  }

  has(id: string): boolean {
    return this.index.has(id);
  }

  ids(): IterableIterator<string> {
    return this.index.keys();
  }

  /** Rebuilds the index from the segments (see the class comment for the torn end); appends go on at the end of the last. */
  async open(): Promise<void> {
    if (!existsSync(this.dir)) {
      mkdirSync(this.dir, { recursive: true });
      await fsyncDir(dirname(this.dir));
    }
    const seqs = listSegments(this.dir);
    // Blocks whose bytes fail their CRC: left out, and deleted by a tombstone below, or a later start
    // (which no longer checks this segment's data) would take them in again.
    const failed: Tombstone[] = [];
    for (const [i, seq] of seqs.entries()) {
      const path = segmentPath(this.dir, seq);
      const fh = await fs.open(path, 'r+');
      const size = fstatSync(fh.fd).size;
      const last = i === seqs.length - 1;
      const { end, damaged } = scanSegment(fh.fd, seq, size, last, {
        block: (id, entry) => this.index.set(id, entry),
        tombstone: (t) => {
          const e = this.index.get(t.id);
          if (e && e.seg === t.seg && e.offset === t.offset) this.index.delete(t.id);
        },
        failed: (t) => failed.push(t),
      });
      if (end < size && last) {
        // No whole record after `end`: the records of a batch a crash tore, which nobody was told of.
        ftruncateSync(fh.fd, end);
        fsyncSync(fh.fd);
      } else if (end < size) console.error(`block log: segment ${path} ends in ${size - end} bytes that are not whole records; left as they are`);
      const notWhole = damaged || (end < size && !last);
      this.segments.set(seq, { seq, path, fh, bytes: end, live: 0, kept: 0, reads: 0, removed: false, broken: false, damaged: notWhole });
    }
    for (const e of this.index.values()) {
      this.segments.get(e.seg)!.live += recordBytes(e);
      this.liveBytes += recordBytes(e);
    }
    const last = this.segments.get(seqs.at(-1) ?? -1);
    this.active = last && last.bytes < this.segmentBytes && !last.damaged ? last : await this.newSegment((seqs.at(-1) ?? 0) + 1);
    await Promise.all(failed.map((t) => this.enqueue(encodeRecord(KIND_TOMBSTONE, t, [], 0)).catch((err) => {
      console.error(`block log: the tombstone of damaged block ${t.id} was not written: ${(err as Error).message}`);
    })));
    for (const seg of this.segments.values()) this.considerCompaction(seg);
  }

  /**
   * Appends a block; resolves once it is on disk (fdatasync) and in the index. `data`: its bytes,
   * LOG_BLOCK_MAX at most.
   */
  async append(meta: BlockMeta, data: readonly Buffer[]): Promise<void> {
    if (this.closed) throw new SdfsError('EUNAVAILABLE', 'block log closed');
    if (meta.size > LOG_BLOCK_MAX) throw new Error(`BlockLog: block of ${meta.size} bytes`);
    // The store hands out one writer per id at a time, and deletes a block before it is written again.
    if (this.index.has(meta.id)) throw new Error(`BlockLog: block ${meta.id} appended twice`);
    const record = encodeRecord(KIND_BLOCK, meta, data, meta.size);
    const { seg, offset } = await this.enqueue(record, meta.id);
    const entry: LogEntry = { seg, offset, metaLen: record[0]!.length - HEADER_BYTES, size: meta.size };
    this.index.set(meta.id, entry);
    this.countLive(entry, 1);
  }

  /**
   * Deletes a block: from the index at once, from the disk by a tombstone that rides with the next
   * batch. `only`: delete it only if it is still that record (not written again meanwhile).
   */
  remove(id: string, only?: LogEntry): boolean {
    const entry = this.index.get(id);
    if (!entry || (only && entry !== only)) return false;
    this.index.delete(id);
    this.countLive(entry, -1);
    // Not waited for: a delete lost to a crash leaves a block the name server deletes again.
    if (!this.closed) this.enqueue(encodeRecord(KIND_TOMBSTONE, { id, seg: entry.seg, offset: entry.offset }, [], 0)).catch((err) => {
      console.error(`block log: the delete of ${id} was not written: ${(err as Error).message}`);
    });
    const seg = this.segments.get(entry.seg);
    if (seg) this.considerCompaction(seg);
    return true;
  }

  /** The block's meta as on disk: checked against the record's CRC. */
  async readMeta(id: string): Promise<BlockMeta> {
    const entry = this.entry(id);
    const head = Buffer.allocUnsafe(HEADER_BYTES + entry.metaLen);
    await this.readAt(entry, head, entry.offset, false);
    const parsed = parseRecord(head, 0, recordBytes(entry));
    if (!parsed || parsed.kind !== KIND_BLOCK || parsed.size !== entry.size || parsed.meta.id !== id) {
      throw new SdfsError('ECHECKSUM', `block ${id}: its record in the block log is damaged`);
    }
    return parsed.meta as BlockMeta;
  }

  /**
   * Reads bytes [start, start + into.length) of a block's data into `into`. `sync`: on the event loop
   * (a small read from the page cache), else on the thread pool.
   */
  async read(id: string, into: Buffer, start: number, sync: boolean): Promise<void> {
    const entry = this.entry(id);
    if (start < 0 || start + into.length > entry.size) throw new SdfsError('EINVAL', 'range outside the block');
    await this.readAt(entry, into, entry.offset + HEADER_BYTES + entry.metaLen + start, sync);
  }

  /** The whole record of a block (header, meta, data), for a copy moved aside, and the entry it was read at. */
  async readRecord(id: string): Promise<{ record: Buffer; entry: LogEntry }> {
    const entry = this.entry(id);
    const record = Buffer.allocUnsafe(recordBytes(entry));
    await this.readAt(entry, record, entry.offset, false);
    return { record, entry };
  }

  private entry(id: string): LogEntry {
    const entry = this.index.get(id);
    if (!entry) throw new SdfsError('ENOENT', `no block ${id}`);
    return entry;
  }

  private async readAt(entry: LogEntry, into: Buffer, position: number, sync: boolean): Promise<void> {
    const seg = this.segments.get(entry.seg);
    if (!seg) throw new SdfsError('ENOENT', 'block moved meanwhile');
    let got: number;
    if (sync) got = readSync(seg.fh.fd, into, 0, into.length, position);
    else {
      seg.reads++;
      try {
        got = (await seg.fh.read(into, 0, into.length, position)).bytesRead;
      } finally {
        seg.reads--;
        if (seg.removed && seg.reads === 0) await seg.fh.close().catch(() => {});
      }
    }
    if (got !== into.length) throw new SdfsError('ECHECKSUM', 'block log segment shorter than its index says');
  }

  /**
   * Deletes every block: the shell's `init`. Through tombstones, as any delete, so that blocks written
   * meanwhile are safe. The active segment is sealed by an empty batch of its own; then every
   * segment of the old blocks is compacted away in the background.
   */
  async wipe(): Promise<void> {
    for (const id of [...this.index.keys()]) this.remove(id);
    this.sealRequested = true;
    await this.enqueue([]);
  }

  /** Waits for the appends queued and the compaction running; nothing is appended after. */
  async close(): Promise<void> {
    await this.drain();
    this.closed = true;
    await this.compacting;
    await this.drain();
    for (const seg of this.segments.values()) await seg.fh.close().catch(() => {});
    this.segments.clear();
  }

  /** Resolves once no append is queued and no compaction runs (tests). */
  async idle(): Promise<void> {
    do {
      await this.drain();
      await this.compacting;
    } while (this.writing || this.compactQueued.size > 0);
  }

  private async drain(): Promise<void> {
    while (this.writing) await this.writing;
  }

  private countLive(entry: LogEntry, sign: 1 | -1): void {
    const bytes = recordBytes(entry) * sign;
    this.liveBytes += bytes;
    const seg = this.segments.get(entry.seg);
    if (seg) seg.live += bytes;
  }

  /** Queues a record for the next batch; `id`: the block's, for a block's record. */
  private enqueue(record: Buffer[], id?: string): Promise<{ seg: number; offset: number }> {
    return new Promise((resolve, reject) => {
      this.queue.push({ id, record, bytes: record.reduce((n, b) => n + b.length, 0), done: (seg, offset) => resolve({ seg, offset }), fail: reject });
      this.writing ??= this.writeQueued();
    });
  }

  /**
   * Group commit: what was queued while the last batch was written goes in one write and one fdatasync.
   * `writing` is cleared in the very turn the queue is found empty (not in a later `finally` of a
   * caller): an append queued in between would wait for a loop that has ended.
   */
  private async writeQueued(): Promise<void> {
    try {
      while (this.queue.length > 0) await this.writeBatch();
    } finally {
      this.writing = undefined;
    }
  }

  private async writeBatch(): Promise<void> {
    const batch = this.queue;
    this.queue = [];
    let seg: Segment;
    try {
      seg = await this.appendTarget();
    } catch (err) {
      for (const a of batch) a.fail(toSdfsError(err));
      return;
    }
    const start = seg.bytes;
    const total = batch.reduce((n, a) => n + a.bytes, 0);
    if (total === 0) {
      // Nothing to write: a batch that only sealed the segment (wipe).
      for (const a of batch) a.done(seg.seq, start);
      return;
    }
    try {
      const { bytesWritten } = await seg.fh.writev(batch.flatMap((a) => a.record), start);
      if (bytesWritten !== total) throw new SdfsError('ENOSPACE', `block log: wrote ${bytesWritten} of ${total} bytes (disk full?)`);
      await seg.fh.datasync();
    } catch (err) {
      // Whatever part of the batch reached the file is cut off, so the next batch follows the last whole record.
      const cut = await seg.fh.truncate(start).then(() => true, () => false);
      if (!cut) {
        // Appends go to a new segment; the failed blocks' records, which may look whole, get
        // tombstones there, or a restart would take them in (only the last segment's data is checked).
        seg.broken = true;
        let offset = start;
        for (const a of batch) {
          if (a.id) this.enqueue(encodeRecord(KIND_TOMBSTONE, { id: a.id, seg: seg.seq, offset }, [], 0)).catch(() => {});
          offset += a.bytes;
        }
      }
      for (const a of batch) a.fail(toSdfsError(err));
      return;
    }
    seg.bytes = start + total;
    let offset = start;
    for (const a of batch) {
      a.done(seg.seq, offset);
      offset += a.bytes;
    }
  }

  /** The active segment, or a new one once it is full (the full one is then sealed). */
  private async appendTarget(): Promise<Segment> {
    const active = this.active!;
    const seal = this.sealRequested && active.bytes > 0;
    this.sealRequested = false;
    if (active.bytes < this.segmentBytes && !active.broken && !seal) return active;
    this.active = await this.newSegment(active.seq + 1);
    this.considerCompaction(active);
    return this.active;
  }

  private async newSegment(seq: number): Promise<Segment> {
    const path = segmentPath(this.dir, seq);
    const fh = await fs.open(path, 'wx+', 0o600);
    try {
      await fsyncDir(this.dir);
    } catch (err) {
      // Else the next try would meet this file (EEXIST) and no segment could be begun again.
      await fh.close().catch(() => {});
      await fs.rm(path, { force: true });
      throw err;
    }
    const seg: Segment = { seq, path, fh, bytes: 0, live: 0, kept: 0, reads: 0, removed: false, broken: false, damaged: false };
    this.segments.set(seq, seg);
    return seg;
  }

  private considerCompaction(seg: Segment): void {
    if (seg === this.active || seg.removed || this.closed || this.compactQueued.has(seg.seq)) return;
    if (seg.damaged) return this.queueCompaction(seg);
    if (seg.bytes > 0 && seg.live + seg.kept >= seg.bytes * COMPACT_BELOW) return;
    this.queueCompaction(seg);
  }

  private queueCompaction(seg: Segment): void {
    this.compactQueued.add(seg.seq);
    this.compacting = this.compacting.then(() => this.compact(seg)).catch((err) => {
      console.error(`block log: compaction of ${seg.path} failed: ${(err as Error).message}`);
    }).finally(() => this.compactQueued.delete(seg.seq));
  }

  /**
   * Appends the segment's live records again, and the tombstones whose record may still be on disk,
   * then removes the segment. Records are copied byte for byte; a block deleted while its copy was
   * being written gets a tombstone for the copy. Bytes that do not parse are skipped up to the next
   * whole record, as at start; the blocks whose records were in them are lost here (they leave the
   * index, so the next block report lets the name server copy them again from other replicas), and
   * a segment found so goes to `corrupt/` instead of being removed.
   */
  private async compact(seg: Segment): Promise<void> {
    let offset = 0;
    while (offset < seg.bytes && !this.closed) {
      const copies: Array<{ id: string; from: LogEntry | undefined; record: Buffer; parsed: ParsedRecord }> = [];
      let batchBytes = 0;
      while (offset < seg.bytes && batchBytes < COMPACT_BATCH_BYTES) {
        const parsed = await readRecordAt(seg.fh, offset, seg.bytes);
        if (!parsed) {
          // On the event loop, as at start: this happens only in a segment with damaged bytes.
          const next = findRecord(seg.fh.fd, offset + 1, seg.bytes, Buffer.allocUnsafe(HEADER_BYTES + FIRST_READ));
          console.error(`block log: segment ${seg.path}: bytes ${offset}-${next < 0 ? seg.bytes : next} are not whole records; read on after them`);
          seg.damaged = true;
          if (next < 0) {
            offset = seg.bytes;
            break;
          }
          offset = next;
          continue;
        }
        const at = offset;
        offset += parsed.bytes;
        const { id } = parsed.meta;
        if (parsed.kind === KIND_BLOCK) {
          const entry = this.index.get(id);
          if (!entry || entry.seg !== seg.seq || entry.offset !== at) continue;
          const record = Buffer.allocUnsafe(parsed.bytes);
          const { bytesRead } = await seg.fh.read(record, 0, record.length, at);
          if (bytesRead !== record.length) throw new Error(`short read of ${seg.path}`);
          copies.push({ id, from: entry, record, parsed });
          batchBytes += record.length;
        } else {
          const t = parsed.meta as Tombstone;
          if (t.seg === seg.seq || !this.segments.has(t.seg)) continue;
          const record = encodeRecord(KIND_TOMBSTONE, t, [], 0)[0]!;
          copies.push({ id, from: undefined, record, parsed });
          batchBytes += record.length;
        }
      }
      // Blocks deleted while the batch was read are not copied.
      const wanted = copies.filter((c) => !c.from || this.index.get(c.id) === c.from);
      const placed = await Promise.all(wanted.map((c) => this.enqueue([c.record], c.from ? c.id : undefined)));
      for (const [i, c] of wanted.entries()) {
        const at = placed[i]!;
        if (!c.from) {
          // A carried tombstone counts as kept in its new segment: else a segment of them would be compacted again and again.
          const into = this.segments.get(at.seg);
          if (into) into.kept += c.record.length;
          continue;
        }
        const moved: LogEntry = { seg: at.seg, offset: at.offset, metaLen: c.parsed.metaLen, size: c.parsed.size };
        if (this.index.get(c.id) === c.from) {
          this.countLive(c.from, -1);
          this.index.set(c.id, moved);
          this.countLive(moved, 1);
        } else {
          // Deleted (or deleted and written again) while it was copied: the copy must not come back at
          // the next start. Written even if the log is closing: close() waits for this compaction.
          await this.enqueue(encodeRecord(KIND_TOMBSTONE, { id: c.id, seg: moved.seg, offset: moved.offset }, [], 0));
        }
      }
    }
    if (this.closed) return;
    if (!seg.damaged) return this.removeSegment(seg);
    for (const [id, entry] of this.index) {
      if (entry.seg !== seg.seq) continue;
      console.error(`block log: block ${id} in segment ${seg.path} could not be read; dropped`);
      this.remove(id, entry);
    }
    await this.moveAside(seg);
  }

  /** Moves a damaged segment, whose blocks have been copied out, to `corrupt/` for an operator to look at. */
  private async moveAside(seg: Segment): Promise<void> {
    await fs.mkdir(this.corruptDir, { recursive: true });
    const to = join(this.corruptDir, `${basename(seg.path, '.seg')}.${Date.now()}.seg`);
    await fs.rename(seg.path, to);
    this.segments.delete(seg.seq);
    seg.removed = true;
    console.error(`block log: damaged segment ${seg.path} moved to ${to}`);
    await fsyncDir(this.dir);
    await fsyncDir(this.corruptDir);
    if (seg.reads === 0) await seg.fh.close().catch(() => {});
  }

  private async removeSegment(seg: Segment): Promise<void> {
    if (seg.live !== 0) throw new Error(`BlockLog: segment ${seg.seq} still holds ${seg.live} bytes of blocks`);
    this.segments.delete(seg.seq);
    seg.removed = true;
    await fs.rm(seg.path, { force: true });
    // Else a crash could bring back a segment whose tombstones were dropped with another.
    await fsyncDir(this.dir);
    if (seg.reads === 0) await seg.fh.close().catch(() => {});
  }
}

function segmentPath(dir: string, seq: number): string {
  return join(dir, `${String(seq).padStart(10, '0')}.seg`);
}

function listSegments(dir: string): number[] {
  return readdirSync(dir)
    .filter((name) => /^\d{10}\.seg$/.test(name))
    .map((name) => Number(name.slice(0, 10)))
    .sort((a, b) => a - b);
}

function recordBytes(entry: LogEntry): number {
  return HEADER_BYTES + entry.metaLen + entry.size;
}

function encodeRecord(kind: number, meta: BlockMeta | Tombstone, data: readonly Buffer[], size: number): Buffer[] {
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

function headerCrc(head: Buffer, metaLen: number): number {
  return crc32(head.subarray(HEADER_BYTES, HEADER_BYTES + metaLen), crc32(head.subarray(0, 16))) >>> 0;
}

/**
 * Parses the record at `at` of `buf`, which holds at least its header and meta (not always its data).
 * `limit`: where the segment's records end. Undefined if the record is damaged, torn or not a record.
 */
function parseRecord(buf: Buffer, at: number, limit: number): ParsedRecord | undefined {
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
async function readRecordAt(fh: fs.FileHandle, offset: number, limit: number): Promise<ParsedRecord | undefined> {
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
function findRecord(fd: number, from: number, size: number, scratch: Buffer): number {
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

interface ScanHandlers {
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
function scanSegment(fd: number, seq: number, size: number, full: boolean, on: ScanHandlers): { end: number; damaged: boolean } {
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
        tombstone: (t) => {
          const e = out.get(t.id);
          if (e && e.seg === t.seg && e.offset === t.offset) out.delete(t.id);
        },
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
