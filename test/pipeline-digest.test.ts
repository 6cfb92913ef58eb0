import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { newId, TrailerSplitter } from '../src/protocol/blocks.js';
import { AUTH_HEADERS } from '../src/protocol/auth.js';
import { LINK_PATH } from '../src/protocol/block-link.js';
import { BLOCK_HEADERS } from '../src/protocol/messages.js';
import { Cluster } from './helpers/cluster.js';
import { createDigester, digestFromBytes, digestToBytes } from '../src/protocol/block-digest.js';
import { blockOnDisk, storedBlock } from './helpers/blocks.js';
import { blockDigest } from './helpers/data.js';

/** A block as a storage server keeps it on disk: its bytes and its stored metadata. */
async function blockFile(dataDir: string, id: string): Promise<{ data: Buffer; meta: { v: number; digest: string; size: number; crcs: number[] } }> {
  return { data: await storedBlock(dataDir, id), meta: (await blockOnDisk(dataDir, id)).meta };
}

describe('the trailer splitter', () => {
  it('hands on every byte before the trailer, however the body is cut, and keeps the trailer', () => {
    for (let round = 0; round < 200; round++) {
      const data = randomBytes(Math.floor(Math.random() * 300));
      const digest = randomBytes(8);
      const body = Buffer.concat([data, digest]);
      const split = new TrailerSplitter(8);
      const out: Buffer[] = [];
      for (let off = 0; off < body.length;) {
        const n = 1 + Math.floor(Math.random() * (round % 2 ? 40 : 3));
        out.push(...split.push(body.subarray(off, off + n)));
        off += n;
      }
      assert.deepEqual(Buffer.concat(out), data);
      assert.deepEqual(split.end(), digest);
    }
    const short = new TrailerSplitter(8);
    assert.deepEqual(short.push(randomBytes(7)), []);
    assert.equal(short.end(), undefined);
  });
});

describe('block digests', () => {
  it('are XXH3-64 with seed 0, hashed piece by piece as in one call', () => {
    // The reference value of XXH3-64 for no input, from xxHash's own sanity checks.
    assert.equal(createDigester().digest(), 'xxh3:2d06800538d394c2');
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const hash = createDigester();
    for (let off = 0; off < data.length; off += 65_536 + 3) hash.update(data.subarray(off, off + 65_536 + 3));
    assert.equal(hash.digest(), blockDigest(data));
  });

  it('blocks written before keep their SHA-256, which is still computed and checked', () => {
    const data = randomBytes(1000);
    const hash = createDigester('sha256');
    hash.update(data);
    const digest = hash.digest();
    assert.equal(digest, `sha256:${createHash('sha256').update(data).digest('hex')}`);
    assert.equal(digestFromBytes('sha256', digestToBytes(digest)), digest);
    assert.throws(() => digestToBytes('sha256:00'), /invalid block digest/);
    assert.throws(() => digestFromBytes('xxh3', randomBytes(32)), /8 bytes/);
  });
});

// The head of a write pipeline hashes a block; the servers after it take its digest, and their copies
// are tied to its bytes by chunk CRC-32s.
describe('a block hashed once down the pipeline', () => {
  let cluster: Cluster;
  before(async () => { cluster = await Cluster.start({ storages: 3, replication: 3, blockSize: 4 * 1024 * 1024 }); });
  after(async () => { await cluster?.stop(); });

  it('every replica holds the same bytes and the true digest, for a block sent whole and for a streamed one', async () => {
    const client = cluster.client();
    // 5,000 bytes go whole (with a content-length); 4 MiB + 3 MiB are streamed, several chunks each.
    const files = new Map([['/small', randomBytes(5000)], ['/large', randomBytes(7 * 1024 * 1024 + 123)]]);
    for (const [path, data] of files) await client.writeFile(path, data);
    for (const [path, data] of files) {
      const { blocks } = await client.blocks(path);
      let offset = 0;
      for (const b of blocks) {
        const expected = data.subarray(offset, offset + b.size);
        offset += b.size;
        assert.equal(b.digest, blockDigest(expected), `${path}: the name server's digest`);
        assert.equal(b.replicas.length, 3);
        const copies = await Promise.all(cluster.storages.map((s) => blockFile(s.dataDir, b.id)));
        for (const [i, copy] of copies.entries()) {
          assert.ok(copy.data.equals(expected), `${path} block ${b.index}: replica ${i} holds other bytes`);
          assert.equal(copy.meta.v, 2);
          assert.equal(copy.meta.digest, blockDigest(expected), `${path} block ${b.index}: replica ${i} recorded another digest`);
          assert.deepEqual(copy.meta.crcs, copies[0]!.meta.crcs);
        }
      }
      assert.equal(offset, data.length);
    }
  });

  it('a client may not send a digest of its own: the storage server hashes what a client sends', async () => {
    const id = newId();
    const s = cluster.storages[0]!;
    const data = randomBytes(1000);
    const res = await request(`http://127.0.0.1:${s.port}/v1/blocks/${id}`, {
      method: 'PUT', body: Buffer.concat([data, randomBytes(8)]),
      headers: { [AUTH_HEADERS.blockToken]: cluster.blockToken(id, 'write'), [BLOCK_HEADERS.trailer]: 'xxh3' },
    });
    const body = await res.body.json() as { error: { code: string } };
    assert.equal(res.statusCode, 403);
    assert.equal(body.error.code, 'EACCES');
    assert.equal((await cluster.blocksOnDisk(0)).has(id), false);
  });

  it('a next server that stored other bytes than the head is reported failed, and the head keeps its copy', async () => {
    // A peer that answers as a storage server would, with the head's digest (the end of the body it
    // was sent) and the right size, but with chunk CRC-32s that are not the head's.
    let trailerSeen: string | undefined;
    const fake: Server = createServer((req, res) => {
      // It has no block link (as a server before them): the head then sends by HTTP.
      if (req.url === LINK_PATH) return void res.writeHead(404).end();
      const chunks: Buffer[] = [];
      trailerSeen = req.headers[BLOCK_HEADERS.trailer] as string | undefined;
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({
          id: req.url!.split('/').pop(), size: body.length - 8, digest: digestFromBytes('xxh3', body.subarray(body.length - 8)), crcs: [12345], stored: [newId()],
        }));
      });
    });
    fake.listen(0, '127.0.0.1');
    await once(fake, 'listening');
    try {
      const fakeId = newId();
      const id = newId();
      const data = randomBytes(1000);
      const res = await request(`http://127.0.0.1:${cluster.storages[0]!.port}/v1/blocks/${id}`, {
        method: 'PUT', body: data,
        headers: {
          [AUTH_HEADERS.blockToken]: cluster.blockToken(id, 'write'),
          [BLOCK_HEADERS.pipeline]: `${fakeId}@127.0.0.1:${(fake.address() as AddressInfo).port}`,
        },
      });
      const reply = await res.body.json() as { digest: string; stored: string[]; failed?: { id: string }[] };
      assert.equal(res.statusCode, 200);
      assert.equal(trailerSeen, 'xxh3');
      assert.equal(reply.digest, blockDigest(data));
      assert.equal(reply.stored.length, 1, 'the copy with other checksums was counted as stored');
      assert.deepEqual(reply.failed?.map((f) => f.id), [fakeId]);
      assert.ok((await blockFile(cluster.storages[0]!.dataDir, id)).data.equals(data));
    } finally {
      fake.close();
    }
  });
});
