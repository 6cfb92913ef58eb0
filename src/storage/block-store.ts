import { randomBytes } from 'node:crypto';
import { closeSync, openSync, read as readCallback, readdirSync, readSync, renameSync, rmSync, statSync } from 'node:fs';
import { promisify } from 'node:util';
import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import { BLOCK_DIGEST, createDigester, isDigest, type DigestAlgorithm, type Digester } from '../protocol/block-digest.js';
import { CHUNK_SIZE, ChunkCrcs, ID_PATTERN, validateId } from '../protocol/blocks.js';
import { SdfsError, toSdfsError } from '../protocol/errors.js';
import { BlockLog } from './block-log.js';
import { dataOffset, LOG_BLOCK_MAX, scanLog } from './log-records.js';
import { BufferPool } from './buffer-pool.js';
import { fsyncDir } from './fsync-dir.js';
import { RangeReader } from './range-reader.js';

/**
 * Blocks on local disk. A block of up to LOG_BLOCK_MAX bytes is appended to the block log (block-log.ts),
 * where blocks written at once share a write and an fdatasync. A larger one lives in
 * `blocks/<first two hex digits>/<id>` as one file:
 *
 *   [data][trailer: UTF-8 JSON BlockMeta][trailer length: u32 BE]["SDB1"]
 *
 * One file per block means one fsync and one rename make it durable and visible at once. A block is
 * written under `tmp/` and renamed into place only after its data and trailer are fsynced, so a
 * crash leaves either the whole block or a temporary file that the next start removes.
 */
export interface BlockMeta {
  v: 2;
  id: string;
  size: number;
  /** `<algorithm>:<hex>` (block-digest.ts). */
  digest: string;
  chunkSize: number;
  crcs: number[];
  created: number;
}

/** The trailer of a block written before 2026-11-28: its SHA-256 in hex, under another name. */
interface BlockMetaV1 extends Omit<BlockMeta, 'v' | 'digest'> {
  v: 1;
  sha256: string;
}

/** A read's bytes: in one buffer (`release` gives it back to the pool it was lent from), or a range to iterate. */
export type BlockData = { data: Buffer; release?: () => void; range?: undefined } | { range: RangeReader; data?: undefined };

const MAGIC = Buffer.from('SDB1');
/** Block metadata kept in memory, so that a read costs no extra disk access; oldest dropped first. */
const META_CACHE_ENTRIES = 65_536;
/** Writes are gathered up to this size, and reads up to this size are served from one buffer. */
const IO_UNIT = 1024 * 1024;
const FOOTER_BYTES = 8;
/**
 * A read of up to this many bytes is made on the event loop: at most 16 pages, from the page cache
 * for any block read or written lately, a few microseconds; the hand-over to the thread pool and back
 * cost 0.03-0.05 ms of CPU per 4 KiB read here. A cold read stalls the loop for one disk access.
 */
const SYNC_READ_MAX = 64 * 1024;
/** How many read buffers of IO_UNIT bytes a store keeps for reuse (see BufferPool). */
const READ_BUFFERS = 16;
/**
 * Reads in flight for a range of more than IO_UNIT bytes (4 MiB, as HDFS's data node reads ahead):
 * the disk works on the next units of a cold read while one goes to the socket.
 */
const READ_AHEAD = 4;
const MAX_TRAILER_BYTES = 64 * 1024;
const readAt = promisify(readCallback);

export class BlockStore {
  private readonly blocksDir: string;
  private readonly tmpDir: string;
  /** Blocks kept as files, and their files' sizes. */
  private readonly ids = new Map<string, number>();
  private readonly log: BlockLog;
  private readonly writing = new Set<string>();
  private readonly metaCache = new Map<string, BlockMeta>();
  /** Buffers of IO_UNIT bytes lent to reads (see read). */
  private readonly readBuffers = new BufferPool(IO_UNIT, READ_BUFFERS);
  /** Open handles of the 256 block directories, to fsync a directory without opening it each time. */
  private readonly dirHandles = new Map<string, fs.FileHandle>();
  private usedBytes = 0;

  /** `logSegmentBytes`: the block log's segment size (tests make it small). */
  constructor(readonly dataDir: string, opts: { logSegmentBytes?: number } = {}) {
    this.blocksDir = join(dataDir, 'blocks');
    this.tmpDir = join(dataDir, 'tmp');
    this.log = new BlockLog(dataDir, opts.logSegmentBytes);
  }

  /** Resolves once the block log has nothing queued and no compaction running (tests). */
  idle(): Promise<void> {
    return this.log.idle();
  }

  /** Creates the layout, drops leftovers of interrupted writes and indexes the blocks on disk. */
  async open(): Promise<void> {
    await fs.mkdir(this.blocksDir, { recursive: true });
    await fs.rm(this.tmpDir, { recursive: true, force: true });
    await fs.mkdir(this.tmpDir, { recursive: true });
    for (let i = 0; i < 256; i++) await fs.mkdir(join(this.blocksDir, i.toString(16).padStart(2, '0')), { recursive: true });
    await fsyncDir(this.blocksDir);
    await fsyncDir(this.dataDir);
    this.ids.clear();
    this.usedBytes = 0;
    // On the event loop: nothing is served before the store is open, and a hand-over to the thread
    // pool per block file made the scan four times slower (100,000 block files: 3.6-5.0 s against 1.0-1.1 s).
    const movedTo = new Set<string>();
    const movedFrom = new Set<string>();
    for (const sub of readdirSync(this.blocksDir)) {
      for (const name of readdirSync(join(this.blocksDir, sub))) {
        // Seen already: moved here from a directory listed before (below), or, after a crash in the
        // middle of such a move on a file system that kept both names, the old name, dropped now.
        if (this.ids.has(name)) {
          if (sub !== fanOut(name) && ID_PATTERN.test(name)) rmSync(join(this.blocksDir, sub, name), { force: true });
          continue;
        }
        const { size } = statSync(join(this.blocksDir, sub, name));
        // Until 2026-11-29 a block file's directory was its id's first two digits: moved once, here.
        if (sub !== fanOut(name) && ID_PATTERN.test(name)) {
          const from = join(this.blocksDir, sub, name);
          renameSync(from, join(this.blocksDir, fanOut(name), name));
          // Both names of one file (that crash again): the rename leaves both, so the old one goes.
          rmSync(from, { force: true });
          movedTo.add(fanOut(name));
          movedFrom.add(sub);
        }
        this.ids.set(name, size);
        this.usedBytes += size;
      }
    }
    // The new names are made durable before the old ones are let go, so a crash leaves each file
    // under one name or the other (or both: see above), never under none.
    for (const sub of movedTo) await fsyncDir(join(this.blocksDir, sub));
    for (const sub of movedFrom) await fsyncDir(join(this.blocksDir, sub));
    await this.log.open();
  }

  get blockCount(): number {
    return this.ids.size + this.log.count;
  }

  get used(): number {
    return this.usedBytes + this.log.used;
  }

  has(id: string): boolean {
    return this.ids.has(id) || this.log.has(id);
  }

  list(): string[] {
    return [...this.ids.keys(), ...this.log.ids()];
  }

  async space(): Promise<{ capacity: number; free: number }> {
    const st = await fs.statfs(this.dataDir);
    return { capacity: st.blocks * st.bsize, free: st.bavail * st.bsize };
  }

  private pathOf(id: string): string {
    return blockPath(this.dataDir, id);
  }

  /**
   * Starts writing a new block; the caller feeds it the bytes and commits or aborts it. `digest`: the
   * algorithm to hash the bytes with (BLOCK_DIGEST unless said), or null when the block's digest comes
   * with it (from the head of a write pipeline) and is given to `commit`.
   */
  async createWriter(id: string, maxSize: number, opts: { digest?: DigestAlgorithm | null } = {}): Promise<BlockWriter> {
    validateId(id);
    if (this.has(id) || this.writing.has(id)) throw new SdfsError('EEXIST', `block ${id} already exists`);
    this.writing.add(id);
    // Named only for a block that needs a file: most blocks go to the log.
    let tmpPath: string | undefined;
    return new BlockWriter(id, maxSize, {
      openFile: () => {
        tmpPath = join(this.tmpDir, `${id}.${randomBytes(4).toString('hex')}`);
        return fs.open(tmpPath, 'wx', 0o600);
      },
      removeFile: async () => {
        if (tmpPath) await fs.rm(tmpPath, { force: true });
      },
      publishFile: async (meta, fileBytes) => {
        await fs.rename(tmpPath!, this.pathOf(id));
        await this.syncDir(fanOut(id));
        this.ids.set(id, fileBytes);
        this.usedBytes += fileBytes;
        this.cacheMeta(meta);
        return meta;
      },
      appendToLog: async (meta, data) => {
        await this.log.append(meta, data);
        this.cacheMeta(meta);
        return meta;
      },
      release: () => this.writing.delete(id),
    }, opts.digest === null ? null : createDigester(opts.digest ?? BLOCK_DIGEST));
  }

  /** A block's metadata; `fromDisk` skips the cache (the scrubber checks what is really there). */
  async readMeta(id: string, fromDisk = false): Promise<BlockMeta> {
    validateId(id);
    if (!this.has(id)) throw new SdfsError('ENOENT', `no block ${id}`);
    const cached = fromDisk ? undefined : this.metaCache.get(id);
    if (cached) return cached;
    if (this.log.has(id)) {
      const meta = await this.log.readMeta(id);
      this.cacheMeta(meta);
      return meta;
    }
    const fh = await fs.open(this.pathOf(id), 'r');
    try {
      const meta = await readTrailer(fh);
      this.cacheMeta(meta);
      return meta;
    } finally {
      await fh.close();
    }
  }

  private cacheMeta(meta: BlockMeta): void {
    this.metaCache.delete(meta.id);
    this.metaCache.set(meta.id, meta);
    if (this.metaCache.size > META_CACHE_ENTRIES) this.metaCache.delete(this.metaCache.keys().next().value!);
  }

  /**
   * Bytes [start, end) of a block's data (its metadata from readMeta, which callers need first to
   * check the range): up to IO_UNIT bytes in one buffer, more as a RangeReader of IO_UNIT buffers.
   * `fromDisk`: the scrubber's read of a block no one used lately. Buffers of more than SYNC_READ_MAX
   * bytes are lent from a pool: `release` gives one back once nothing will read it again.
   */
  async read(meta: BlockMeta, start: number, end: number, fromDisk = false): Promise<BlockData> {
    const { id } = meta;
    if (start < 0 || end > meta.size || start > end) throw new SdfsError('EINVAL', 'range outside the block');
    const length = end - start;
    if (this.log.has(id)) return this.readLogged(id, start, length, fromDisk);
    // The scrubber reads at its own slow pace: no read-ahead.
    if (length > IO_UNIT) return { range: await RangeReader.open(this.pathOf(id), start, end, this.readBuffers, fromDisk ? 1 : READ_AHEAD) };
    if (length === 0) return { data: Buffer.alloc(0) };
    const lent = length > SYNC_READ_MAX ? this.readBuffers.lend(length) : undefined;
    const data = lent ? lent.data : Buffer.allocUnsafe(length);
    const release = lent?.release;
    // Opened and closed on the event loop (a lookup in the directory cache, and a close of a file not
    // written); a larger read, which may wait on the disk longer, goes to the thread pool. Every
    // hand-over to the pool wakes a pool thread and then the event loop, on two busy cores dearer
    // than the call.
    const fd = openSync(this.pathOf(id), 'r');
    try {
      // Not for the scrubber (fromDisk): its blocks come from the disk, not the page cache.
      const bytesRead = length <= SYNC_READ_MAX && !fromDisk
        ? readSync(fd, data, 0, length, start)
        : (await readAt(fd, data, 0, length, start)).bytesRead;
      if (bytesRead !== length) throw new SdfsError('ECHECKSUM', `block ${id} is shorter than its metadata says`);
    } catch (err) {
      release?.();
      throw err;
    } finally {
      closeSync(fd);
    }
    return { data, release };
  }

  private async readLogged(id: string, start: number, length: number, fromDisk: boolean): Promise<BlockData> {
    const lent = length > SYNC_READ_MAX ? this.readBuffers.lend(length) : undefined;
    const data = lent ? lent.data : Buffer.allocUnsafe(length);
    try {
      await this.log.read(id, data, start, length <= SYNC_READ_MAX && !fromDisk);
    } catch (err) {
      lent?.release();
      throw err;
    }
    return { data, release: lent?.release };
  }

  private async syncDir(sub: string): Promise<void> {
    let fh = this.dirHandles.get(sub);
    if (!fh) {
      fh = await fs.open(join(this.blocksDir, sub), 'r');
      this.dirHandles.set(sub, fh);
    }
    await fh.sync();
  }

  async close(): Promise<void> {
    for (const fh of this.dirHandles.values()) await fh.close().catch(() => {});
    this.dirHandles.clear();
    await this.log.close();
  }

  async delete(id: string): Promise<boolean> {
    validateId(id);
    if (this.log.remove(id)) {
      this.metaCache.delete(id);
      return true;
    }
    const size = this.ids.get(id);
    if (size === undefined) return false;
    this.ids.delete(id);
    this.metaCache.delete(id);
    this.usedBytes -= size;
    await fs.rm(this.pathOf(id), { force: true });
    return true;
  }

  /** Moves a damaged block out of the way (to `corrupt/`), where an operator may still look at it. */
  async quarantine(id: string): Promise<void> {
    validateId(id);
    const dir = join(this.dataDir, 'corrupt');
    if (this.log.has(id)) {
      // Its record as it is on disk (header, meta, data), in a file of its own. Not if the block was
      // written again meanwhile (a re-replication): that copy is a good one.
      const read = await this.log.readRecord(id).catch(() => undefined);
      if (read && !this.log.remove(id, read.entry)) return;
      if (!read) this.log.remove(id);
      this.metaCache.delete(id);
      if (read) await fs.mkdir(dir, { recursive: true }).then(() => fs.writeFile(join(dir, `${id}.${Date.now()}.record`), read.record)).catch(() => {});
      return;
    }
    const size = this.ids.get(id);
    if (size === undefined) return;
    this.ids.delete(id);
    this.metaCache.delete(id);
    this.usedBytes -= size;
    await fs.mkdir(dir, { recursive: true });
    await fs.rename(this.pathOf(id), join(dir, `${id}.${Date.now()}`)).catch(() => fs.rm(this.pathOf(id), { force: true }));
  }

  /** Removes every block: the shell's `init`. */
  async wipe(): Promise<void> {
    for (const id of [...this.ids.keys()]) await this.delete(id);
    this.metaCache.clear();
    await this.log.wipe();
  }
}

/** Where a block's data lies in a data dir: a block file, or a record in a log segment. */
export interface BlockOnDisk {
  path: string;
  /** Where its data starts in that file. */
  offset: number;
  size: number;
  meta: BlockMeta;
}

/** The ids of the blocks in a data dir, read offline (tests, the bench): not for a store in use. */
export function blockIdsOnDisk(dataDir: string): Set<string> {
  const ids = new Set<string>();
  const blocksDir = join(dataDir, 'blocks');
  for (const sub of readdirSync(blocksDir)) for (const id of readdirSync(join(blocksDir, sub))) ids.add(id);
  for (const id of scanLog(dataDir).keys()) ids.add(id);
  return ids;
}

/** Where the bytes of these blocks are in a data dir, read offline (tests, the bench); blocks not there are left out. */
export async function locateBlocks(dataDir: string, ids: Iterable<string>): Promise<Map<string, BlockOnDisk>> {
  const logged = scanLog(dataDir);
  const out = new Map<string, BlockOnDisk>();
  for (const id of ids) {
    const entry = logged.get(id);
    if (entry) {
      out.set(id, { path: entry.path, offset: dataOffset(entry), size: entry.size, meta: entry.meta });
      continue;
    }
    const path = blockPath(dataDir, id);
    const fh = await fs.open(path, 'r').catch(() => undefined);
    if (!fh) continue;
    try {
      const meta = await readTrailer(fh);
      out.set(id, { path, offset: 0, size: meta.size, meta });
    } finally {
      await fh.close();
    }
  }
  return out;
}

/** A block file's path in a data dir. */
export function blockPath(dataDir: string, id: string): string {
  return join(dataDir, 'blocks', fanOut(id), id);
}

/**
 * A block file's directory of the 256: its id's last two digits, random in every id (a block id
 * begins with its time, see newBlockId).
 */
function fanOut(id: string): string {
  return id.slice(-2);
}

/** What a writer needs from its store. */
interface WriteTarget {
  /** Opens the block's temporary file: only once the block is too large to be held until commit. */
  openFile(): Promise<fs.FileHandle>;
  /** Removes that file, if it was opened. */
  removeFile(): Promise<void>;
  /** Makes a block written to its file (fsynced, closed) visible. */
  publishFile(meta: BlockMeta, fileBytes: number): Promise<BlockMeta>;
  /** Appends a block never written to a file (LOG_BLOCK_MAX bytes at most) to the block log. */
  appendToLog(meta: BlockMeta, data: Buffer[]): Promise<BlockMeta>;
  /** Gives the block's id back, written or not. */
  release(): void;
}

export class BlockWriter {
  private size = 0;
  private computed: string | undefined;
  private readonly crcs = new ChunkCrcs(CHUNK_SIZE);
  private done = false;
  /** The block's file, once opened (a block that fits the log never is). */
  private fh: fs.FileHandle | undefined;
  /** Bytes received but not yet written: written in large pieces, or all at once at commit. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** The write in flight, if any (its failure surfaces at the next write or at commit). */
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    readonly id: string,
    private readonly maxSize: number,
    private readonly target: WriteTarget,
    private readonly hash: Digester | null,
  ) {}

  get bytes(): number {
    return this.size;
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.size + chunk.length > this.maxSize) throw new SdfsError('ETOOBIG', `block larger than ${this.maxSize} bytes`);
    this.size += chunk.length;
    this.hash?.update(chunk);
    this.crcs.update(chunk);
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    // Up to LOG_BLOCK_MAX (= IO_UNIT) bytes are held: a block that ends there goes to the log whole.
    if (this.pendingBytes > IO_UNIT) {
      // One write is in flight while the next unit is received: the disk and the socket work at once.
      await this.flushing;
      this.flushing = this.flush();
      this.flushing.catch(() => {}); // awaited later; not an unhandled rejection meanwhile
    }
  }

  private async flush(): Promise<void> {
    const pieces = this.pending;
    // Counted from the pieces themselves: commit adds the trailer and footer to them directly.
    const bytes = pieces.reduce((n, piece) => n + piece.length, 0);
    this.pending = [];
    this.pendingBytes = 0;
    let written: number;
    try {
      this.fh ??= await this.target.openFile();
      written = (await this.fh.writev(pieces)).bytesWritten;
    } catch (err) {
      throw toSdfsError(err);
    }
    // A regular file takes all of a write unless its disk fills up meanwhile: a block short of its
    // bytes must fail here, not be acknowledged with a trailer that no longer matches.
    if (written !== bytes) throw new SdfsError('ENOSPACE', `block ${this.id}: wrote ${written} of ${bytes} bytes (disk full?)`);
  }

  /** The digest of the bytes written, once they are all written (a hashing writer only). */
  digest(): string {
    if (!this.hash) throw new Error('BlockWriter: this writer does not hash');
    this.computed ??= this.hash.digest();
    return this.computed;
  }

  /**
   * Makes the block durable and visible: appended to the block log if it fits, else its file gets the
   * trailer, an fsync and its place. `digest`: the block's digest as the head of the pipeline
   * computed it, for a writer that does not hash.
   */
  async commit(given?: string): Promise<BlockMeta> {
    if (this.size === 0) {
      // Release the id and the temporary file: a later write of this id must not find it taken.
      await this.abort();
      throw new SdfsError('EINVAL', 'empty block');
    }
    const digest = given ?? (this.hash ? this.digest() : undefined);
    if (!isDigest(digest)) {
      await this.abort();
      throw new SdfsError('EINVAL', 'block without a valid digest');
    }
    const meta: BlockMeta = {
      v: 2, id: this.id, size: this.size, digest,
      chunkSize: CHUNK_SIZE, crcs: this.crcs.finish(), created: Date.now(),
    };
    try {
      await this.flushing;
      if (!this.fh && this.size <= LOG_BLOCK_MAX) {
        const data = this.pending;
        this.pending = [];
        this.done = true;
        return await this.target.appendToLog(meta, data);
      }
      const trailer = Buffer.from(JSON.stringify(meta));
      const footer = Buffer.alloc(FOOTER_BYTES);
      footer.writeUInt32BE(trailer.length, 0);
      MAGIC.copy(footer, 4);
      this.pending.push(trailer, footer);
      await this.flush();
      await this.fh!.datasync();
      await this.fh!.close();
      this.done = true;
      return await this.target.publishFile(meta, this.size + trailer.length + FOOTER_BYTES);
    } catch (err) {
      await this.abort();
      throw toSdfsError(err);
    } finally {
      this.target.release();
    }
  }

  async abort(): Promise<void> {
    if (!this.done) {
      this.done = true;
      await this.flushing.catch(() => {});
      await this.fh?.close().catch(() => {});
    }
    await this.target.removeFile().catch(() => {});
    this.target.release();
  }
}

async function readTrailer(fh: fs.FileHandle): Promise<BlockMeta> {
  const { size } = await fh.stat();
  if (size < FOOTER_BYTES) throw new SdfsError('ECHECKSUM', 'block file truncated');
  const footer = Buffer.alloc(FOOTER_BYTES);
  await fh.read(footer, 0, FOOTER_BYTES, size - FOOTER_BYTES);
  const len = footer.readUInt32BE(0);
  if (!footer.subarray(4).equals(MAGIC) || len > MAX_TRAILER_BYTES || len + FOOTER_BYTES > size) {
    throw new SdfsError('ECHECKSUM', 'block file has a damaged trailer');
  }
  const trailer = Buffer.alloc(len);
  await fh.read(trailer, 0, len, size - FOOTER_BYTES - len);
  let meta: BlockMeta | BlockMetaV1;
  try {
    meta = JSON.parse(trailer.toString('utf8')) as BlockMeta | BlockMetaV1;
  } catch {
    throw new SdfsError('ECHECKSUM', 'block file has a damaged trailer');
  }
  if (meta.v === 1) {
    const { sha256, ...rest } = meta;
    meta = { ...rest, v: 2, digest: `sha256:${sha256}` };
  }
  if (meta.v !== 2 || meta.size !== size - FOOTER_BYTES - len || !isDigest(meta.digest)) {
    throw new SdfsError('ECHECKSUM', 'block file has a damaged trailer');
  }
  return meta;
}
