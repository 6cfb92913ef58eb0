import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { crc32 } from '@node-rs/crc32';
import { openDb } from '../src/name/db.js';
import { CHUNK_SIZE, newId } from '../src/protocol/blocks.js';
import { BlockStore } from '../src/storage/block-store.js';
import { Scrubber } from '../src/storage/scrubber.js';
import { blockDigest } from './helpers/data.js';

/** A block file as storage servers wrote it before 2026-11-28: a version 1 trailer holding the block's SHA-256. */
async function writeV1Block(dataDir: string, id: string, data: Buffer): Promise<string> {
  const crcs: number[] = [];
  for (let off = 0; off < data.length; off += CHUNK_SIZE) crcs.push(crc32(data.subarray(off, off + CHUNK_SIZE)) >>> 0);
  const sha256 = createHash('sha256').update(data).digest('hex');
  const trailer = Buffer.from(JSON.stringify({ v: 1, id, size: data.length, sha256, chunkSize: CHUNK_SIZE, crcs, created: Date.now() }));
  const footer = Buffer.alloc(8);
  footer.writeUInt32BE(trailer.length, 0);
  footer.write('SDB1', 4);
  await mkdir(join(dataDir, 'blocks', id.slice(0, 2)), { recursive: true });
  await writeFile(join(dataDir, 'blocks', id.slice(0, 2), id), Buffer.concat([data, trailer, footer]));
  return sha256;
}

describe('blocks written before digests were XXH3', () => {
  let dir: string;
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'sdfs-legacy-')); });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  it('a block file with a SHA-256 trailer is read, and scrubbed with SHA-256', async () => {
    const dataDir = join(dir, 'storage');
    const id = newId();
    const data = randomBytes(2 * CHUNK_SIZE + 300);
    const sha256 = await writeV1Block(dataDir, id, data);
    const store = new BlockStore(dataDir);
    await store.open();
    const meta = await store.readMeta(id);
    assert.equal(meta.digest, `sha256:${sha256}`);
    assert.equal(meta.size, data.length);
    const read = await store.read(meta, 100, 200);
    assert.deepEqual(read.data, data.subarray(100, 200));

    const reasons: string[] = [];
    const scrubber = new Scrubber(store, 1024 * 1024 * 1024, async (_id, reason) => { reasons.push(reason); return false; });
    assert.equal(await scrubber.scrubOne(id), true);
    // The same trailer over other bytes whose chunk CRC-32s still match cannot be made here; a trailer
    // naming another SHA-256 stands for it.
    const other = newId();
    await writeV1Block(dataDir, other, data);
    const path = join(dataDir, 'blocks', other.slice(0, 2), other);
    const fh = await open(path, 'r+');
    const at = data.length + Buffer.from(`{"v":1,"id":"${other}","size":${data.length},"sha256":"`).length;
    await fh.write(Buffer.from(sha256[0] === 'a' ? 'b' : 'a'), 0, 1, at);
    await fh.close();
    await store.open();
    assert.equal(await scrubber.scrubOne(other), false);
    assert.deepEqual(reasons, ['digest mismatch']);
    await store.close();
  });

  it('a copy of such a block keeps its SHA-256; a new block gets an XXH3 digest', async () => {
    const store = new BlockStore(join(dir, 'copies'));
    await store.open();
    const data = randomBytes(5000);
    const copy = await store.createWriter(newId(), 1 << 20, { digest: 'sha256' });
    await copy.write(data);
    assert.equal((await copy.commit()).digest, `sha256:${createHash('sha256').update(data).digest('hex')}`);
    const fresh = await store.createWriter(newId(), 1 << 20);
    await fresh.write(data);
    assert.equal((await fresh.commit()).digest, blockDigest(data));
    await store.close();
  });

  it("the name server's database names the SHA-256 of blocks recorded before", async () => {
    const dataDir = join(dir, 'name');
    const id = newId();
    const sha256 = createHash('sha256').update('old').digest('hex');
    // The database as it was at version 3: the column `sha256`, plain hex.
    await mkdir(dataDir);
    const old = openDb(dataDir);
    old.exec('ALTER TABLE blocks RENAME COLUMN digest TO sha256');
    old.pragma('user_version = 3');
    old.prepare('INSERT INTO blocks (id, size, sha256, created) VALUES (?, 3, ?, 0)').run(id, sha256);
    old.close();
    const db = openDb(dataDir);
    assert.equal(db.pragma('user_version', { simple: true }), 4);
    assert.equal(db.prepare('SELECT digest FROM blocks WHERE id = ?').pluck().get(id), `sha256:${sha256}`);
    db.close();
  });
});
