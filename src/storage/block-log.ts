import { existsSync, fdatasyncSync, fstatSync, fsyncSync, ftruncateSync, mkdirSync, readSync, writevSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { SdfsError, toSdfsError } from '../protocol/errors.js';
import type { BlockMeta } from './block-store.js';
import { fsyncDir } from './fsync-dir.js';
import {
  applyTombstone, encodeRecord, encodeTombstone, findRecord, FIRST_READ, HEADER_BYTES, KIND_BLOCK, listSegments, LOG_BLOCK_MAX, parseRecord,
  readRecordAt, recordBytes, scanSegment, segmentPath, type LogEntry, type ParsedRecord, type Tombstone,
} from './log-records.js';

/**
 * Small blocks, appended to segment files instead of a file each. A file per block costs a create, a
 * rename and two fsyncs on every replica: about 0.4 ms of CPU per 4 KiB block here, and at most
 * ~2,400 blocks a second per disk. Appended, the blocks in flight share one write and one fdatasync
 * (group commit): 0.04 ms and ~12,000 a second (probes of 2026-11-29, docs/BENCHMARKS.md).
 *
 * The records and the reading of segments are in log-records.ts.
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

/** A segment is sealed, and a new one begun, once it holds this many bytes. */
export const SEGMENT_BYTES = 64 * 1024 * 1024;
/** A sealed segment is compacted when its live records are less than this share of its bytes. */
const COMPACT_BELOW = 0.5;
/** Records copied per batch by a compaction: they share a write and an fdatasync. */
const COMPACT_BATCH_BYTES = 8 * 1024 * 1024;

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
    // (which no longer checks this segment's data once another follows it) would take them in again.
    const failed: Tombstone[] = [];
    for (const [i, seq] of seqs.entries()) {
      const path = segmentPath(this.dir, seq);
      const fh = await fs.open(path, 'r+');
      const size = fstatSync(fh.fd).size;
      const last = i === seqs.length - 1;
      const { end, damaged } = scanSegment(fh.fd, seq, size, last, {
        block: (id, entry) => this.index.set(id, entry),
        tombstone: (t) => applyTombstone(this.index, t),
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
    const unwritten = last && failed.length > 0 && !writeInPlace(last, failed) ? failed : [];
    this.active = last && last.bytes < this.segmentBytes && !last.damaged ? last : await this.newSegment((seqs.at(-1) ?? 0) + 1);
    await Promise.all(unwritten.map((t) => this.enqueue([encodeTombstone(t)]).catch((err) => {
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
    if (!this.closed) this.enqueue([encodeTombstone({ id, seg: entry.seg, offset: entry.offset })]).catch((err) => {
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
          if (a.id) this.enqueue([encodeTombstone({ id: a.id, seg: seg.seq, offset })]).catch(() => {});
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
    // A damaged segment is compacted whatever its live share (and then moved to corrupt/).
    if (!seg.damaged && seg.bytes > 0 && seg.live + seg.kept >= seg.bytes * COMPACT_BELOW) return;
    this.compactQueued.add(seg.seq);
    this.compacting = this.compacting.then(() => this.compact(seg)).catch((err) => {
      console.error(`block log: compaction of ${seg.path} failed: ${(err as Error).message}`);
    }).finally(() => this.compactQueued.delete(seg.seq));
  }

  /**
   * Appends the segment's live records again, and the tombstones whose record may still be on disk,
   * then removes the segment. Records are copied byte for byte; a block deleted while its copy was
   * being written gets a tombstone for the copy. Bytes that do not parse are skipped up to the next
   * whole record, as at start, and a segment found so goes to `corrupt/` instead of being removed,
   * once the blocks still in it are rescued or dropped (`rescue`).
   */
  private async compact(seg: Segment): Promise<void> {
    let offset = 0;
    while (offset < seg.bytes && !this.closed) {
      const copies: Copy[] = [];
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
          const record = await readWhole(seg, at, parsed.bytes);
          copies.push({ id, from: entry, record, parsed });
          batchBytes += record.length;
        } else {
          const t = parsed.meta as Tombstone;
          if (t.seg === seg.seq || !this.segments.has(t.seg)) continue;
          const record = encodeTombstone(t);
          copies.push({ id, from: undefined, record, parsed });
          batchBytes += record.length;
        }
      }
      await this.place(copies);
    }
    if (this.closed) return;
    if (!seg.damaged) return this.removeSegment(seg);
    await this.rescue(seg);
    if (!this.closed) await this.moveAside(seg);
  }

  /**
   * Appends the copies a compaction read, and points the index at each block's copy; a block deleted
   * (or written again) while it was copied gets a tombstone for its copy instead, so that the copy
   * does not come back at the next start. Every copy that reached the log is seen to even if others
   * failed, for the same reason; then the first failure is thrown.
   */
  private async place(copies: Copy[]): Promise<void> {
    // Blocks deleted while the batch was read are not copied.
    const wanted = copies.filter((c) => !c.from || this.index.get(c.id) === c.from);
    const placed = await Promise.allSettled(wanted.map((c) => this.enqueue([c.record], c.from ? c.id : undefined)));
    const failures: unknown[] = [];
    for (const [i, c] of wanted.entries()) {
      const result = placed[i]!;
      if (result.status === 'rejected') {
        failures.push(result.reason);
        continue;
      }
      const at = result.value;
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
        // Written even if the log is closing: close() waits for this compaction.
        await this.enqueue([encodeTombstone({ id: c.id, seg: moved.seg, offset: moved.offset })]).catch((err: unknown) => {
          failures.push(err);
        });
      }
    }
    if (failures.length > 0) throw failures[0];
  }

  /**
   * The blocks a walk through a damaged segment left in it: each is looked for where the index says
   * its record is (a skip past damage may land inside a block's data, on bytes that look like a
   * record, and so pass over whole records), copied if it is whole there, else dropped: it is gone
   * from this server, and the next block report has the name server copy it again.
   */
  private async rescue(seg: Segment): Promise<void> {
    const copies: Copy[] = [];
    for (const [id, entry] of [...this.index].filter(([, e]) => e.seg === seg.seq)) {
      const parsed = await readRecordAt(seg.fh, entry.offset, seg.bytes);
      if (parsed?.kind === KIND_BLOCK && parsed.meta.id === id && parsed.metaLen === entry.metaLen && parsed.size === entry.size) {
        copies.push({ id, from: entry, record: await readWhole(seg, entry.offset, parsed.bytes), parsed });
        continue;
      }
      console.error(`block log: block ${id} in segment ${seg.path} could not be read; dropped`);
      this.remove(id, entry);
    }
    await this.place(copies);
  }

  /**
   * Moves a damaged segment, whose blocks have been copied out, to `corrupt/` for an operator to look
   * at. The new name is made durable first: a crash between the two directory fsyncs may leave it in
   * both places (the copy in `log/` is then compacted and moved again), never in neither.
   */
  private async moveAside(seg: Segment): Promise<void> {
    if (seg.live !== 0) throw new Error(`BlockLog: segment ${seg.seq} still holds ${seg.live} bytes of blocks`);
    if (await fs.mkdir(this.corruptDir, { recursive: true }) !== undefined) await fsyncDir(dirname(this.corruptDir));
    const to = join(this.corruptDir, `${basename(seg.path, '.seg')}.${Date.now()}.seg`);
    await fs.rename(seg.path, to);
    await fsyncDir(this.corruptDir);
    await fsyncDir(this.dir);
    console.error(`block log: damaged segment ${seg.path} moved to ${to}`);
    await this.forget(seg);
  }

  private async removeSegment(seg: Segment): Promise<void> {
    if (seg.live !== 0) throw new Error(`BlockLog: segment ${seg.seq} still holds ${seg.live} bytes of blocks`);
    await fs.rm(seg.path, { force: true });
    await fsyncDir(this.dir);
    await this.forget(seg);
  }

  /**
   * Lets go of a segment whose file is gone from `log/` for good: only once that is durable, since
   * from then on the tombstones that name it are no longer carried by compactions (a crash that
   * brought the file back would bring back the blocks they deleted). Its descriptor is closed after
   * the last read in flight.
   */
  private async forget(seg: Segment): Promise<void> {
    this.segments.delete(seg.seq);
    seg.removed = true;
    if (seg.reads === 0) await seg.fh.close().catch(() => {});
  }
}

/**
 * Appends the tombstones of the blocks of the last segment that failed their CRC at start to that
 * segment itself (full or damaged as it may be), and syncs them, before any segment is begun after
 * it: a later start checks only the last segment's data, and would take those blocks in again if a
 * new segment came to follow before their tombstones were durable. False if they could not be
 * written (the segment is cut back): they then go to the next segment, as any append.
 */
function writeInPlace(seg: Segment, tombstones: Tombstone[]): boolean {
  const pieces = tombstones.map((t) => encodeTombstone(t));
  const bytes = pieces.reduce((n, b) => n + b.length, 0);
  try {
    if (writevSync(seg.fh.fd, pieces, seg.bytes) !== bytes) throw new Error('short write (disk full?)');
    fdatasyncSync(seg.fh.fd);
    seg.bytes += bytes;
    return true;
  } catch (err) {
    console.error(`block log: tombstones of damaged blocks not written to ${seg.path}: ${(err as Error).message}`);
    try {
      ftruncateSync(seg.fh.fd, seg.bytes);
    } catch {
      // The next start finds a torn record at the end of a segment that is no longer the last: left as it is.
    }
    return false;
  }
}

/** A record a compaction copies: a block's (`from`: where the index had it) or a tombstone. */
interface Copy {
  id: string;
  from: LogEntry | undefined;
  record: Buffer;
  parsed: ParsedRecord;
}

/** A whole record of a segment, read on the thread pool. */
async function readWhole(seg: Segment, offset: number, bytes: number): Promise<Buffer> {
  const record = Buffer.allocUnsafe(bytes);
  const { bytesRead } = await seg.fh.read(record, 0, bytes, offset);
  if (bytesRead !== bytes) throw new Error(`short read of ${seg.path}`);
  return record;
}
