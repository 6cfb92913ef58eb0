import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { appendFile, mkdtemp, open, readdir, readFile, rm, stat, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { newId } from '../src/protocol/blocks.js';
import { BlockStore, locateBlocks, type BlockMeta } from '../src/storage/block-store.js';
import { encodeRecord, KIND_BLOCK } from '../src/storage/log-records.js';
import { Scrubber } from '../src/storage/scrubber.js';
import { blockOnDisk } from './helpers/blocks.js';
import { blockDigest } from './helpers/data.js';

/** Small segments, so that a test fills several and compaction has sealed ones to work on. */
const SEGMENT = 64 * 1024;

async function put(store: BlockStore, id: string, data: Buffer): Promise<void> {
  const w = await store.createWriter(id, 4 * 1024 * 1024);
  // In pieces, as a socket hands them over.
  for (let off = 0; off < data.length; off += 1500) await w.write(data.subarray(off, off + 1500));
  await w.commit();
}

/** Writes `n` blocks of random bytes one after another; their ids and bytes, in the order written. */
async function putMany(store: BlockStore, n: number, size = 4096): Promise<Map<string, Buffer>> {
  const blocks = new Map<string, Buffer>();
  for (let i = 0; i < n; i++) {
    const id = newId();
    blocks.set(id, randomBytes(size));
    await put(store, id, blocks.get(id)!);
  }
  return blocks;
}

/** A store of `n` blocks in one segment, closed: their ids and bytes, the segment's path and size. */
async function oneSegment(root: string, n: number, size: number): Promise<{ ids: string[]; data: Buffer[]; path: string; bytes: number }> {
  const store = await reopened(root, { logSegmentBytes: 64 * 1024 * 1024 });
  const written = await putMany(store, n, size);
  await store.close();
  const [segment] = await segments(root);
  const path = join(root, 'log', segment!);
  return { ids: [...written.keys()], data: [...written.values()], path, bytes: (await stat(path)).size };
}

async function get(store: BlockStore, id: string, start = 0, end?: number): Promise<Buffer> {
  const meta = await store.readMeta(id);
  const read = await store.read(meta, start, end ?? meta.size);
  assert.ok(read.data, 'a logged block is read into one buffer');
  const copy = Buffer.from(read.data);
  read.release?.();
  return copy;
}

async function segments(root: string): Promise<string[]> {
  return (await readdir(join(root, 'log'))).filter((f) => f.endsWith('.seg')).sort();
}

/** Flips bits of one byte of a file, as bit rot would. */
async function flipBits(path: string, position: number, mask: number): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    const byte = Buffer.alloc(1);
    await fh.read(byte, 0, 1, position);
    await fh.write(Buffer.from([byte[0]! ^ mask]), 0, 1, position);
  } finally {
    await fh.close();
  }
}

/** The bytes of each segment moved to `corrupt/`. */
async function corruptSegments(root: string): Promise<Buffer[]> {
  const names = (await readdir(join(root, 'corrupt'))).filter((f) => f.endsWith('.seg')).sort();
  return Promise.all(names.map((f) => readFile(join(root, 'corrupt', f))));
}

async function reopened(root: string, opts = { logSegmentBytes: SEGMENT }): Promise<BlockStore> {
  const store = new BlockStore(root, opts);
  await store.open();
  return store;
}

describe('block log: small blocks appended to segments', () => {
  let dir: string;
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'sdfs-log-')); });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  it('blocks written at once are stored in the log, read back whole and in ranges, and found again after a restart', async () => {
    const root = join(dir, 'a');
    const store = await reopened(root, { logSegmentBytes: 64 * 1024 * 1024 });
    const blocks = new Map<string, Buffer>();
    for (let i = 0; i < 64; i++) blocks.set(newId(), randomBytes(1 + (i * 4099) % (200 * 1024)));
    blocks.set(newId(), randomBytes(1024 * 1024)); // the largest a record holds
    await Promise.all([...blocks].map(([id, data]) => put(store, id, data)));
    assert.equal(store.blockCount, blocks.size);
    // No block file: one segment holds them all.
    assert.deepEqual((await readdir(join(root, 'blocks'), { recursive: true })).filter((f) => /[0-9a-f]{32}$/.test(f)), []);
    assert.equal((await segments(root)).length, 1);
    for (const [id, data] of blocks) {
      assert.deepEqual(await get(store, id), data);
      const meta = await store.readMeta(id, true);
      assert.equal(meta.digest, blockDigest(data));
      if (data.length > 10) assert.deepEqual(await get(store, id, 3, data.length - 4), data.subarray(3, data.length - 4));
    }
    await store.close();

    const again = await reopened(root);
    assert.deepEqual(new Set(again.list()), new Set(blocks.keys()));
    assert.equal(again.used, store.used);
    for (const [id, data] of blocks) assert.deepEqual(await get(again, id), data);
    // Seen the same from outside (the tests' and the bench's view of a data dir).
    const onDisk = await locateBlocks(root, blocks.keys());
    for (const [id, data] of blocks) {
      const at = onDisk.get(id)!;
      const fh = await open(at.path, 'r');
      const bytes = Buffer.alloc(at.size);
      await fh.read(bytes, 0, at.size, at.offset);
      await fh.close();
      assert.deepEqual(bytes, data);
    }
    await again.close();
  });

  it('a deleted block stays deleted after a restart; one written again under its id (a re-replication) stays', async () => {
    const root = join(dir, 'b');
    const store = await reopened(root, { logSegmentBytes: 64 * 1024 * 1024 });
    const [kept, gone, rewritten] = [newId(), newId(), newId()];
    await put(store, kept, Buffer.from('kept'));
    await put(store, gone, Buffer.from('gone'));
    await put(store, rewritten, Buffer.from('first bytes'));
    assert.equal(await store.delete(gone), true);
    assert.equal(await store.delete(gone), false);
    await assert.rejects(store.readMeta(gone), { code: 'ENOENT' });
    assert.equal(await store.delete(rewritten), true);
    await put(store, rewritten, Buffer.from('second bytes'));
    await assert.rejects(store.createWriter(kept, 10), { code: 'EEXIST' });
    await store.close();

    const again = await reopened(root);
    assert.deepEqual(new Set(again.list()), new Set([kept, rewritten]));
    assert.deepEqual(await get(again, rewritten), Buffer.from('second bytes'));
    assert.deepEqual(await get(again, kept), Buffer.from('kept'));
    await again.close();
  });

  it('a record torn by a crash at the end of the last segment is cut off; a block whose bytes went bad is left out, not those after it', async () => {
    const root = join(dir, 'c');
    const { ids, data, path, bytes: whole } = await oneSegment(root, 4, 10_000);
    // A crash in the middle of a batch: half of a record (copied from the first one) reached the disk.
    const raw = await readFile(path);
    await appendFile(path, raw.subarray(0, 5_000));
    // And a bit flipped in the second block's data.
    const second = await blockOnDisk(root, ids[1]!);
    await flipBits(path, second.offset + 100, 0x01);

    const again = await reopened(root);
    // Cut back to the whole records; then the damaged block's tombstone was appended.
    const cut = (await stat(path)).size;
    assert.ok(cut >= whole && cut < whole + 200, `${cut} bytes against ${whole} before the torn record`);
    assert.deepEqual(new Set(again.list()), new Set([ids[0], ids[2], ids[3]]));
    for (const i of [0, 2, 3]) assert.deepEqual(await get(again, ids[i]!), data[i]);
    // Appends go on after the last whole record, and are found after the next restart; once the
    // segment is sealed (its data no longer checked at start), the damaged block stays out.
    const next = newId();
    await put(again, next, Buffer.from('after the cut'));
    await putMany(again, 8, 10_000);
    await again.close();
    assert.ok((await segments(root)).length >= 2, 'the first segment was sealed');
    const third = await reopened(root);
    assert.deepEqual(await get(third, next), Buffer.from('after the cut'));
    assert.equal(third.blockCount, 12);
    assert.ok(!third.has(ids[1]!), 'the damaged block came back');
    await third.close();
  });

  it('the tombstone of a block that failed its CRC at start is durable before a new segment follows the damaged one', async () => {
    const root = join(dir, 'c5');
    const { ids, data, path } = await oneSegment(root, 4, 10_000);
    await flipBits(path, (await blockOnDisk(root, ids[1]!)).offset + 100, 0x01);
    // Segments smaller than this one: it is full, so this start begins a new one after it.
    const again = await reopened(root, { logSegmentBytes: 16 * 1024 });
    assert.ok(!again.has(ids[1]!));
    await again.close();
    // A crash right after the new segment was made, before anything reached it: it is empty.
    const [, next] = await segments(root);
    assert.ok(next, 'a new segment was begun');
    await truncate(join(root, 'log', next), 0);
    // The damaged segment is no longer the last, so its data is not checked again at this start.
    const third = await reopened(root, { logSegmentBytes: 16 * 1024 });
    assert.deepEqual(new Set(third.list()), new Set([ids[0], ids[2], ids[3]]));
    for (const i of [0, 2, 3]) assert.deepEqual(await get(third, ids[i]!), data[i]);
    await third.close();
  });

  it('a damaged record header in the middle of a segment loses that block only: the blocks after it are read on, and the segment goes to corrupt/', async () => {
    const root = join(dir, 'c2');
    const { ids, data, path } = await oneSegment(root, 10, 3000);
    // A bit flipped in the third record's meta (just before its data).
    const third = await blockOnDisk(root, ids[2]!);
    await flipBits(path, third.offset - 2, 0x04);
    const damaged = await readFile(path);
    const added: string[] = [];
    for (let round = 0; round < 2; round++) {
      const again = await reopened(root);
      await again.idle();
      assert.deepEqual(new Set(again.list()), new Set([...ids.filter((_, i) => i !== 2), ...added]));
      for (const [i, id] of ids.entries()) if (i !== 2) assert.deepEqual(await get(again, id), data[i]);
      added.push(newId());
      await put(again, added.at(-1)!, Buffer.from(`round ${round}`));
      await again.close();
    }
    // At the first start its whole records were copied to a new segment, and the segment itself was
    // moved aside as it was.
    assert.deepEqual(await segments(root), ['0000000002.seg']);
    assert.deepEqual(await corruptSegments(root), [damaged]);
  });

  it('a compaction that meets damaged bytes copies the whole records after them, drops the block it cannot read, and moves the segment to corrupt/', async () => {
    const root = join(dir, 'c3');
    const { ids, data, path } = await oneSegment(root, 10, 3000);
    // Smaller segments than the one written: it is sealed at this start, and found whole.
    const store = await reopened(root, { logSegmentBytes: 16 * 1024 });
    assert.equal(store.blockCount, 10);
    // Then a bit of the fifth record's meta goes bad on the disk while the server runs.
    const fifth = await blockOnDisk(root, ids[4]!);
    await flipBits(path, fifth.offset - 2, 0x10);
    const damaged = await readFile(path);
    // Deletes bring the segment under half live: it is compacted.
    for (const i of [0, 1, 2, 3, 5, 6]) await store.delete(ids[i]!);
    await store.idle();
    const kept = [7, 8, 9];
    assert.deepEqual(new Set(store.list()), new Set(kept.map((i) => ids[i])));
    for (const i of kept) assert.deepEqual(await get(store, ids[i]!), data[i]);
    await assert.rejects(store.readMeta(ids[4]!), { code: 'ENOENT' });
    assert.ok(!(await segments(root)).includes(basename(path)));
    assert.deepEqual(await corruptSegments(root), [damaged]);
    await store.close();
    const again = await reopened(root, { logSegmentBytes: 16 * 1024 });
    assert.deepEqual(new Set(again.list()), new Set(kept.map((i) => ids[i])));
    for (const i of kept) assert.deepEqual(await get(again, ids[i]!), data[i]);
    await again.close();
  });

  it('a compaction that skips damage onto a record image inside a block\'s data still copies the whole blocks it passed over', async () => {
    const root = join(dir, 'c4');
    const store = await reopened(root, { logSegmentBytes: 64 * 1024 * 1024 });
    // The fifth block's data begins with the image of a record (as a stored copy of a segment would):
    // a header and meta that parse, claiming more data than is left of the block.
    const image = randomBytes(3000);
    const fake = { v: 2, id: newId(), size: 3000, digest: blockDigest(Buffer.alloc(0)), chunkSize: 1024 * 1024, crcs: [0], created: 0 };
    encodeRecord(KIND_BLOCK, fake as BlockMeta, [], 3000)[0]!.copy(image);
    const ids: string[] = [];
    const data: Buffer[] = [];
    for (let i = 0; i < 10; i++) {
      ids.push(newId());
      data.push(i === 4 ? image : randomBytes(3000));
      await put(store, ids[i]!, data[i]!);
    }
    await store.close();
    const path = join(root, 'log', (await segments(root))[0]!);
    const again = await reopened(root, { logSegmentBytes: 16 * 1024 });
    // Then the fifth record's meta goes bad: the walk skips to the image, and from its end into the
    // sixth record.
    await flipBits(path, (await blockOnDisk(root, ids[4]!)).offset - 2, 0x10);
    for (const i of [0, 1, 2, 3, 7, 8]) await again.delete(ids[i]!);
    await again.idle();
    const kept = [5, 6, 9];
    assert.deepEqual(new Set(again.list()), new Set(kept.map((i) => ids[i])));
    for (const i of kept) assert.deepEqual(await get(again, ids[i]!), data[i]);
    assert.equal((await corruptSegments(root)).length, 1);
    await again.close();
  });

  it('segments of mostly deleted blocks are compacted away, also while blocks are deleted and written meanwhile, and nothing deleted comes back', async () => {
    const root = join(dir, 'd');
    const store = await reopened(root);
    const live = await putMany(store, 120);
    const all = [...live.keys()];
    const before = await segments(root);
    assert.ok(before.length >= 7, `${before.length} segments`);
    // Three of every four deleted: every sealed segment falls under half live.
    for (const [i, id] of all.entries()) {
      if (i % 4 === 0) continue;
      await store.delete(id);
      live.delete(id);
    }
    // While the compactions run: more deletes, a block deleted and written again, new blocks.
    const rewrite = all[4]!;
    await store.delete(all[8]!);
    live.delete(all[8]!);
    await store.delete(rewrite);
    const fresh = randomBytes(4096);
    await put(store, rewrite, fresh);
    live.set(rewrite, fresh);
    for (const [id, data] of await putMany(store, 10, 2000)) live.set(id, data);
    await store.idle();
    const afterCompaction = await segments(root);
    assert.ok(afterCompaction.length < before.length, `${before.length} segments before, ${afterCompaction.length} after`);
    assert.ok(!afterCompaction.includes(before[0]!), 'the first segment was compacted away');
    assert.deepEqual(new Set(store.list()), new Set(live.keys()));
    for (const [id, data] of live) assert.deepEqual(await get(store, id), data);
    await store.close();

    const again = await reopened(root);
    assert.deepEqual(new Set(again.list()), new Set(live.keys()));
    for (const [id, data] of live) assert.deepEqual(await get(again, id), data);
    // Everything deleted now: the sealed segments go, and a restart finds nothing.
    for (const id of live.keys()) await again.delete(id);
    // A block appended after the deletes seals the segment they ended in, if it was full.
    await put(again, newId(), Buffer.alloc(60 * 1024, 1));
    await again.idle();
    assert.ok((await segments(root)).length <= 2, `${(await segments(root)).length} segments left`);
    await again.close();
    const third = await reopened(root);
    assert.equal(third.blockCount, 1);
    await third.close();
  });

  it('a tombstone carried forward by a compaction deletes only the record it was written for', async () => {
    const root = join(dir, 'f');
    const store = await reopened(root);
    const fill = async (n: number): Promise<string[]> => [...(await putMany(store, n)).keys()];
    const x = newId();
    await put(store, x, Buffer.from('first'));
    await fill(20); // seals the segment that holds x; it stays mostly live
    await store.delete(x); // its tombstone goes to the next segment...
    const doomed = await fill(20); // ...which these fill and seal
    await put(store, x, Buffer.from('second')); // x again, in a later segment
    await fill(20);
    // The tombstone's segment falls under half live: compacted, the tombstone goes on to the last
    // segment, after x's new record.
    const withTombstone = (await segments(root))[1]!;
    for (const id of doomed) await store.delete(id);
    await store.idle();
    assert.ok(!(await segments(root)).includes(withTombstone), 'the segment with the tombstone was compacted');
    await store.close();
    const again = await reopened(root);
    assert.deepEqual(await get(again, x), Buffer.from('second'));
    await again.close();
  });

  it('blocks deleted while a compaction copies them do not come back after a restart', async () => {
    const root = join(dir, 'g');
    const store = await reopened(root);
    const ids = [...(await putMany(store, 150)).keys()];
    // Half of each sealed segment deleted at once starts their compactions; the rest is deleted a
    // block per turn of the event loop while the copies are read, written and synced.
    const deleted = new Set<string>();
    for (const [i, id] of ids.entries()) if (i % 2 === 1) { await store.delete(id); deleted.add(id); }
    for (const [i, id] of ids.entries()) {
      if (i % 2 === 1 || i % 6 === 0) continue;
      await new Promise((resolve) => setImmediate(resolve));
      await store.delete(id);
      deleted.add(id);
    }
    await store.idle();
    const kept = ids.filter((id) => !deleted.has(id));
    assert.deepEqual(new Set(store.list()), new Set(kept));
    await store.close();
    const again = await reopened(root);
    assert.deepEqual(new Set(again.list()), new Set(kept));
    await again.close();
  });

  it('a close while a compaction runs loses no block and brings no deleted one back', async () => {
    // The last delete and the close land at a different step of the compaction in each round.
    for (let turns = 0; turns < 24; turns += 4) {
      const root = join(dir, `h${turns}`);
      const store = await reopened(root);
      const ids = [...(await putMany(store, 40)).keys()];
      // Most of the first segment deleted: its compaction starts; x is one of the blocks it copies.
      const x = ids[12]!;
      for (const id of ids.slice(0, 11)) await store.delete(id);
      for (let t = 0; t < turns; t++) await new Promise((resolve) => setImmediate(resolve));
      await store.delete(x);
      await store.close();
      const again = await reopened(root);
      assert.ok(!again.has(x), `round ${turns}: the deleted block came back`);
      assert.deepEqual(new Set(again.list()), new Set(ids.slice(11).filter((id) => id !== x)));
      await again.close();
    }
  });

  it('a wipe deletes every block, and every segment of them is compacted away', async () => {
    const root = join(dir, 'w');
    const store = await reopened(root);
    await putMany(store, 50);
    const before = await segments(root);
    assert.ok(before.length >= 3, `${before.length} segments`);
    await store.wipe();
    assert.equal(store.blockCount, 0);
    assert.equal(store.used, 0);
    await store.idle();
    const left = await segments(root);
    assert.deepEqual(left.filter((f) => before.includes(f)), [], 'a segment of the old blocks is left');
    assert.equal(left.length, 1);
    // Writes go on after the wipe, and a restart finds only them.
    const id = newId();
    await put(store, id, Buffer.from('after init'));
    await store.close();
    const again = await reopened(root);
    assert.deepEqual(again.list(), [id]);
    assert.deepEqual(await get(again, id), Buffer.from('after init'));
    await again.close();
  });

  it('the scrubber finds a logged block whose bytes went bad and moves its record aside', async () => {
    const root = join(dir, 'e');
    const store = await reopened(root);
    const [good, bad] = [newId(), newId()];
    await put(store, good, randomBytes(8000));
    await put(store, bad, randomBytes(8000));
    const at = await blockOnDisk(root, bad);
    const fh = await open(at.path, 'r+');
    await fh.write(Buffer.from('XXXX'), 0, 4, at.offset + 7000);
    await fh.close();
    const reported: string[] = [];
    const scrubber = new Scrubber(store, 1e9, async (id) => { reported.push(id); return true; });
    assert.equal(await scrubber.scrubOne(good), true);
    assert.equal(await scrubber.scrubOne(bad), false);
    assert.deepEqual(reported, [bad]);
    assert.deepEqual(store.list(), [good]);
    const moved = await readdir(join(root, 'corrupt'));
    assert.equal(moved.length, 1);
    assert.ok(moved[0]!.startsWith(bad));
    await store.close();
    const again = await reopened(root);
    assert.deepEqual(again.list(), [good]);
    await again.close();
  });
});
