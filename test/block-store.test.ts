import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { newId } from '../src/protocol/blocks.js';
import { BlockStore } from '../src/storage/block-store.js';
import { sha256, sha256Of } from './helpers/data.js';

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
    assert.equal(meta.sha256, sha256(data));
    assert.equal(meta.crcs.length, 4);

    const reopened = new BlockStore(join(dir, 'a'));
    await reopened.open();
    assert.ok(reopened.has(id));
    const small = await reopened.read(await reopened.readMeta(id), 990, 1010);
    assert.ok(Buffer.isBuffer(small.data));
    assert.deepEqual(small.data, data.subarray(990, 1010));
    // A large range comes as a stream.
    const large = await reopened.read(await reopened.readMeta(id), 5, data.length);
    const back = await sha256Of(large.data as AsyncIterable<Uint8Array>);
    assert.equal(back.sha256, sha256(data.subarray(5)));
    assert.deepEqual(await reopened.readMeta(id), meta);
    await assert.rejects(reopened.createWriter(id, 100), { code: 'EEXIST' });
  });

  it('refuses blocks over the size limit and leaves no file behind', async () => {
    const store = new BlockStore(join(dir, 'b'));
    await store.open();
    const w = await store.createWriter(newId(), 10);
    await assert.rejects(w.write(Buffer.alloc(11)), { code: 'ETOOBIG' });
    await w.abort();
    assert.deepEqual(await readdir(join(dir, 'b', 'tmp')), []);
    assert.equal(store.blockCount, 0);
  });

  it('drops leftovers of an interrupted write at start, and reports a damaged trailer', async () => {
    const root = join(dir, 'c');
    const store = new BlockStore(root);
    await store.open();
    await writeFile(join(root, 'tmp', `${newId()}.dead`), 'half a block');
    const id = newId();
    const w = await store.createWriter(id, 1000);
    await w.write(Buffer.from('0123456789'));
    await w.commit();
    // Damage the trailer's magic.
    const fh = await open(join(root, 'blocks', id.slice(0, 2), id), 'r+');
    const { size } = await fh.stat();
    await fh.write(Buffer.from('XXXX'), 0, 4, size - 4);
    await fh.close();
    const again = new BlockStore(root);
    await again.open();
    assert.deepEqual(await readdir(join(root, 'tmp')), []);
    await assert.rejects(again.readMeta(id), { code: 'ECHECKSUM' });
  });

  it('refuses ids that are not block ids before touching the disk', async () => {
    const store = new BlockStore(join(dir, 'd'));
    await store.open();
    await assert.rejects(store.createWriter('../../escape', 10), { code: 'EINVAL' });
    await assert.rejects(store.readMeta('..'), { code: 'EINVAL' });
    await assert.rejects(store.delete('/etc/passwd'), { code: 'EINVAL' });
  });
});
