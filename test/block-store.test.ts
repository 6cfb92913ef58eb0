import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { link, mkdir, mkdtemp, readdir, readFile, readlink, rename, rm, stat, writeFile, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ID_PATTERN, newBlockId, newId } from '../src/protocol/blocks.js';
import { BlockStore, blockIdsOnDisk, blockPath } from '../src/storage/block-store.js';
import { blockDigest, sha256 } from './helpers/data.js';

describe('block store on disk', () => {
  let dir: string;
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'sdfs-bs-')); });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  it('writes a block with its checksums, reads ranges back, and finds it again after reopening', async () => {
    const store = new BlockStore(join(dir, 'a'));
    await store.open();
    const id = newId();
    const data = Buffer.alloc(3 * 1024 * 1024 + 5, 7);
    data.write('hello', 1000);
    const w = await store.createWriter(id, 64 * 1024 * 1024);
    for (let off = 0; off < data.length; off += 100_000) await w.write(data.subarray(off, off + 100_000));
    const meta = await w.commit();
    assert.equal(meta.size, data.length);
    assert.equal(meta.digest, blockDigest(data));
    assert.equal(meta.crcs.length, 4);

    const reopened = new BlockStore(join(dir, 'a'));
    await reopened.open();
    assert.ok(reopened.has(id));
    const small = await reopened.read(await reopened.readMeta(id), 990, 1010);
    assert.ok(Buffer.isBuffer(small.data));
    assert.deepEqual(small.data, data.subarray(990, 1010));
    // A large range comes in lent units of 1 MiB, each copied here before it is given back.
    const large = await reopened.read(await reopened.readMeta(id), 5, data.length);
    assert.ok(large.range);
    const units: Buffer[] = [];
    for await (const unit of large.range.units()) {
      units.push(Buffer.from(unit.data));
      unit.release();
    }
    assert.deepEqual(units.map((u) => u.length), [1024 * 1024, 1024 * 1024, 1024 * 1024]);
    assert.equal(sha256(Buffer.concat(units)), sha256(data.subarray(5)));
    assert.deepEqual(await reopened.readMeta(id), meta);
    await assert.rejects(reopened.createWriter(id, 100), { code: 'EEXIST' });
    await store.close();
    await reopened.close();
  });

  it('a range read stopped early, or failing, gives its buffers back and closes its file', async () => {
    const root = join(dir, 'e');
    const store = new BlockStore(root);
    await store.open();
    const id = newId();
    const data = randomBytes(6 * 1024 * 1024 + 3);
    const w = await store.createWriter(id, 64 * 1024 * 1024);
    await w.write(data);
    const meta = await w.commit();
    // This process's descriptors of the block's file.
    const file = blockPath(root, id);
    const openFds = async (): Promise<number> => {
      const targets = await Promise.all((await readdir('/proc/self/fd')).map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')));
      return targets.filter((t) => t === file).length;
    };
    const before = await openFds();
    assert.equal(before, 0);
    // Stopped after the first unit, with more read ahead: their buffers go back to the pool.
    const first = await store.read(meta, 0, meta.size);
    for await (const unit of first.range!.units()) {
      assert.deepEqual(unit.data, data.subarray(0, unit.data.length));
      unit.release();
      break;
    }
    assert.equal(await openFds(), before, 'the block file was left open');
    // Never iterated: closed by close().
    const unused = await store.read(meta, 0, meta.size);
    await unused.range!.close();
    assert.equal(await openFds(), before);
    // Read many times over, with buffers given back and taken again: every unit holds its own bytes.
    for (let round = 0; round < 3; round++) {
      const units: Buffer[] = [];
      const lent: Array<() => void> = [];
      for await (const unit of (await store.read(meta, 1, meta.size)).range!.units()) {
        units.push(Buffer.from(unit.data));
        // Given back one unit late, as a socket's write callback would.
        lent.shift()?.();
        lent.push(unit.release);
      }
      lent.forEach((release) => release());
      assert.equal(sha256(Buffer.concat(units)), sha256(data.subarray(1)));
    }
    // A block file shorter than its metadata says: the read fails, and the file is closed.
    const fh = await open(file, 'r+');
    await fh.truncate(3 * 1024 * 1024);
    await fh.close();
    const short = await store.read(meta, 0, meta.size);
    await assert.rejects((async () => {
      for await (const unit of short.range!.units()) unit.release();
    })(), { code: 'ECHECKSUM' });
    assert.equal(await openFds(), before);
    await store.close();
  });

  it('refuses blocks over the size limit and leaves no file behind', async () => {
    const store = new BlockStore(join(dir, 'b'));
    await store.open();
    const w = await store.createWriter(newId(), 10);
    await assert.rejects(w.write(Buffer.alloc(11)), { code: 'ETOOBIG' });
    await w.abort();
    // Over the size limit after a part of it went to its file.
    const big = await store.createWriter(newId(), 2 * 1024 * 1024);
    await big.write(Buffer.alloc(1024 * 1024 + 1));
    await assert.rejects(big.write(Buffer.alloc(1024 * 1024)), { code: 'ETOOBIG' });
    await big.abort();
    assert.deepEqual(await readdir(join(dir, 'b', 'tmp')), []);
    assert.equal(store.blockCount, 0);
    await store.close();
  });

  it('drops leftovers of an interrupted write at start, and reports a damaged trailer', async () => {
    const root = join(dir, 'c');
    const store = new BlockStore(root);
    await store.open();
    await writeFile(join(root, 'tmp', `${newId()}.dead`), 'half a block');
    const id = newId();
    // Larger than the block log takes: a file of its own.
    const w = await store.createWriter(id, 2 * 1024 * 1024);
    await w.write(Buffer.alloc(1024 * 1024 + 10, 1));
    await w.commit();
    // Damage the trailer's magic.
    const fh = await open(blockPath(root, id), 'r+');
    const { size } = await fh.stat();
    await fh.write(Buffer.from('XXXX'), 0, 4, size - 4);
    await fh.close();
    const again = new BlockStore(root);
    await again.open();
    assert.deepEqual(await readdir(join(root, 'tmp')), []);
    await assert.rejects(again.readMeta(id), { code: 'ECHECKSUM' });
    await store.close();
    await again.close();
  });

  it('a block that the disk takes only part of fails, and leaves neither a block nor a temporary file', async () => {
    // A file system of 256 KiB: its last write is cut short (the kernel writes what fits, then says
    // how much), which must fail the block, not give it a trailer that no longer fits its bytes.
    const root = join(dir, 'full');
    await mkdir(root);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', root]);
    const store = new BlockStore(root);
    try {
      await store.open();
      // To the block log: the part written is cut off again.
      const w = await store.createWriter(newId(), 4 * 1024 * 1024);
      await w.write(randomBytes(512 * 1024));
      await assert.rejects(w.commit(), { code: 'ENOSPACE' });
      // To a file of its own.
      const big = await store.createWriter(newId(), 4 * 1024 * 1024);
      await assert.rejects((async () => {
        for (let i = 0; i < 4; i++) await big.write(randomBytes(512 * 1024));
        await big.commit();
      })(), { code: 'ENOSPACE' });
      await big.abort();
      assert.equal(store.blockCount, 0);
      assert.deepEqual(await readdir(join(root, 'tmp')), []);
      assert.deepEqual([...blockIdsOnDisk(root)], []);
      // What fits is still taken, after the failed append, and found again after a restart.
      const id = newId();
      const small = randomBytes(4096);
      const ok = await store.createWriter(id, 4096);
      await ok.write(small);
      await ok.commit();
      await store.close();
      const again = new BlockStore(root);
      await again.open();
      assert.deepEqual(again.list(), [id]);
      assert.deepEqual((await again.read(await again.readMeta(id), 0, 4096)).data, small);
      await again.close();
    } finally {
      await store.close();
      // Lazily: a file left open by a failed assertion must not leave the mount behind.
      execFileSync('umount', ['-l', root]);
    }
  });

  it('refuses ids that are not block ids before touching the disk', async () => {
    const store = new BlockStore(join(dir, 'd'));
    await store.open();
    await assert.rejects(store.createWriter('../../escape', 10), { code: 'EINVAL' });
    await assert.rejects(store.readMeta('..'), { code: 'EINVAL' });
    await assert.rejects(store.delete('/etc/passwd'), { code: 'EINVAL' });
    await store.close();
  });
  it('block ids made one after another sort one after another, and are block ids', () => {
    const ids = Array.from({ length: 5000 }, () => newBlockId());
    assert.ok(ids.every((id) => ID_PATTERN.test(id)));
    assert.deepEqual([...ids].sort(), ids);
    assert.equal(new Set(ids).size, ids.length);
  });

  it('moves a block file from the directory of the layout before 2026-11-29 at open, and reads it whole', async () => {
    const root = join(dir, 'old-layout');
    const store = new BlockStore(root);
    await store.open();
    let id = newBlockId();
    while (id.slice(0, 2) === id.slice(-2)) id = newBlockId();
    const data = randomBytes(1024 * 1024 + 77); // larger than the block log takes: a file of its own
    const w = await store.createWriter(id, 2 * 1024 * 1024);
    await w.write(data);
    await w.commit();
    await store.close();
    // Where a storage server put it until then: the directory of the id's first two digits.
    const oldPath = join(root, 'blocks', id.slice(0, 2), id);
    await rename(blockPath(root, id), oldPath);

    const again = new BlockStore(root);
    await again.open();
    await assert.rejects(stat(oldPath), { code: 'ENOENT' });
    assert.deepEqual(await readFile(blockPath(root, id)).then((b) => b.subarray(0, data.length)), data);
    const meta = await again.readMeta(id);
    assert.equal(meta.digest, blockDigest(data));
    assert.deepEqual((await again.read(meta, meta.size - 1000, meta.size)).data, data.subarray(-1000));
    assert.equal(again.blockCount, 1);
    await again.close();
    // Both names of one file, as a crash in the middle of the move may leave on a file system
    // without a journal: one block, counted once, under its new name only.
    await link(blockPath(root, id), oldPath);
    const fourth = new BlockStore(root);
    await fourth.open();
    assert.equal(fourth.blockCount, 1);
    assert.equal(fourth.used, (await stat(blockPath(root, id))).size);
    await assert.rejects(stat(oldPath), { code: 'ENOENT' });
    await fourth.close();
    // And found where it now is by the next start.
    const third = new BlockStore(root);
    await third.open();
    assert.equal(third.blockCount, 1);
    assert.deepEqual((await third.read(await third.readMeta(id), 0, 1000)).data, data.subarray(0, 1000));
    await third.close();
  });
});
