import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readdir, readlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { AUTH_HEADERS } from '../src/protocol/auth.js';
import { SdfsError } from '../src/protocol/errors.js';
import { Cluster } from './helpers/cluster.js';
import { randomStream, sha256, sha256Of } from './helpers/data.js';

// Files of every size that matters around a block boundary, written and read back through the
// client library against real processes; the bytes must hash the same.
const BLOCK = 64 * 1024;

describe('round trip through a 3-server cluster', () => {
  let cluster: Cluster;
  before(async () => { cluster = await Cluster.start({ blockSize: BLOCK }); });
  after(async () => { await cluster?.stop(); });

  for (const size of [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 12345]) {
    it(`${size} bytes`, async () => {
      const client = cluster.client();
      const src = randomStream(size, 10_000);
      const stat = await client.writeFile(`/size-${size}`, src.stream);
      assert.equal(stat.size, size);
      assert.equal(stat.blocks, Math.ceil(size / BLOCK));
      const back = await sha256Of(await client.createReadStream(`/size-${size}`));
      assert.equal(back.size, size);
      assert.equal(back.sha256, src.sha256());
      const located = await client.blocks(`/size-${size}`);
      assert.equal(located.blocks.length, Math.ceil(size / BLOCK));
      for (const b of located.blocks) {
        assert.equal(b.replicas.length, 3, 'three replicas per block');
        assert.equal(new Set(b.replicas.map((r) => r.id)).size, 3, 'replicas on distinct storage servers');
        assert.equal(new Set(b.replicas.map((r) => r.addr)).size, 3, 'replicas at distinct addresses');
      }
    });
  }

  it('200 MiB of random bytes in 4 MiB blocks', async () => {
    const client = cluster.client();
    const size = 200 * 1024 * 1024;
    const src = randomStream(size);
    const stat = await client.writeFile('/big', src.stream, { blockSize: 4 * 1024 * 1024 });
    assert.equal(stat.size, size);
    assert.equal(stat.blocks, 50);
    const back = await sha256Of(await client.createReadStream('/big'));
    assert.equal(back.size, size);
    assert.equal(back.sha256, src.sha256());
  });

  it('a reader that stops early, or reads slowly, gets the right bytes and leaves no request open', async () => {
    const client = cluster.client();
    // The file of the test before: 50 blocks of 4 MiB. Stop after the first pieces of it...
    for await (const c of await client.createReadStream('/big')) {
      assert.ok((c as Buffer).length > 0);
      break;
    }
    // ...or before the first answer came, as a download whose local file cannot be made: the answer
    // that comes later is dropped quietly (it once crashed the process with an unhandled 'error')...
    await client.writeFile('/tiny', Buffer.from('0123456789'));
    for (let i = 0; i < 10; i++) {
      const gone = await client.createReadStream(i % 2 ? '/tiny' : '/big');
      gone.on('error', () => {});
      gone.resume();
      await new Promise((r) => process.nextTick(r)); // the request is on its way
      gone.destroy(new Error('the local side failed'));
      await new Promise((r) => setTimeout(r, 50));
    }
    // ...or cancelled by its signal: it fails with ECANCELED...
    const cancel = new AbortController();
    let got = 0;
    await assert.rejects((async () => {
      for await (const c of await client.createReadStream('/big', { signal: cancel.signal })) {
        got += (c as Buffer).length;
        if (got >= 8 * 1024 * 1024) cancel.abort();
      }
    })(), (e: unknown) => e instanceof SdfsError && e.code === 'ECANCELED');
    assert.ok(got < 50 * 4 * 1024 * 1024, 'the whole file was read although the read was cancelled');
    // ...and read it all at a crawl, so that the reader's buffer stays full and the answers pause.
    const slow = await client.createReadStream('/big', { start: 3 * 1024 * 1024, end: 13 * 1024 * 1024 });
    const whole = await sha256Of(await client.createReadStream('/big', { start: 3 * 1024 * 1024, end: 13 * 1024 * 1024 }));
    const slowChunks: Buffer[] = [];
    for await (const c of slow) {
      slowChunks.push(c as Buffer);
      await new Promise((r) => setTimeout(r, 2));
    }
    const slowAll = Buffer.concat(slowChunks);
    assert.equal(slowAll.length, 10 * 1024 * 1024);
    assert.equal(createHash('sha256').update(slowAll).digest('hex'), whole.sha256);
    await Promise.race([client.close(), new Promise((_, fail) => setTimeout(() => fail(new Error('a read left a request open')), 30_000).unref())]);
  });

  it('reads byte ranges that cross blocks and checksum chunks', async () => {
    const client = cluster.client();
    const data = Buffer.alloc(5 * BLOCK + 77);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 8)) & 0xff;
    await client.writeFile('/ranges', data);
    for (const [start, end] of [[0, 1], [BLOCK - 3, BLOCK + 3], [1000, 4 * BLOCK + 5], [data.length - 1, data.length], [17, 17]] as const) {
      const chunks: Buffer[] = [];
      for await (const c of await client.createReadStream('/ranges', { start, end })) chunks.push(c as Buffer);
      assert.deepEqual(Buffer.concat(chunks), data.subarray(start, end), `range ${start}-${end}`);
    }
  });

  /** Block files the storage servers hold open, once they had 5 s to close them. */
  const blockFilesOpenAfterAWhile = async (): Promise<string[]> => {
    const blockFilesOpen = async (): Promise<string[]> => {
      const open: string[] = [];
      for (const s of cluster.storages) {
        const dir = `/proc/${s.child.pid}/fd`;
        for (const fd of await readdir(dir)) {
          const target = await readlink(`${dir}/${fd}`).catch(() => '');
          if (target.includes('/blocks/') && !target.endsWith('/blocks') && !/\/blocks\/[0-9a-f]{2}$/.test(target)) open.push(target);
        }
      }
      return open;
    };
    let open = await blockFilesOpen();
    for (let i = 0; i < 50 && open.length > 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      open = await blockFilesOpen();
    }
    return open;
  };

  it('concurrent readers of large blocks of one copy each get their own bytes, and stopped reads leave no block file open', async () => {
    const client = cluster.client();
    // One copy: a byte served wrong would fail its checksum with no other replica to fall back on.
    const files = Array.from({ length: 4 }, (_, i) => ({ path: `/large-${i}`, data: randomBytes(12 * 1024 * 1024 + i * 4099) }));
    for (const f of files) await client.writeFile(f.path, f.data, { replication: 1, blockSize: 4 * 1024 * 1024 });
    // Each read twice at once, one of the two at a crawl (its answers wait on a full socket).
    await Promise.all(files.flatMap((f, i) => [0, 1].map(async (slow) => {
      const chunks: Buffer[] = [];
      for await (const c of await client.createReadStream(f.path, { start: i * 1000 })) {
        chunks.push(c as Buffer);
        if (slow) await new Promise((r) => setTimeout(r, 1));
      }
      assert.equal(sha256(Buffer.concat(chunks)), sha256(f.data.subarray(i * 1000)), `${f.path}${slow ? ', slowly' : ''}`);
    })));
    // The block route itself, with a read token: a range of several units, HEAD (headers, no bytes),
    // then the whole block on the same connection.
    const first = (await client.blocks(files[0]!.path)).blocks[0]!;
    const blockUrl = `http://${first.replicas[0]!.addr}/v1/blocks/${first.id}`;
    const token = { [AUTH_HEADERS.blockToken]: cluster.blockToken(first.id, 'read', 60_000) };
    const part = await request(blockUrl, { headers: { ...token, range: 'bytes=1048570-3145739' } });
    assert.equal(part.statusCode, 206);
    assert.equal(part.headers['content-range'], `bytes 1048570-3145739/${first.size}`);
    assert.deepEqual(Buffer.from(await part.body.arrayBuffer()), files[0]!.data.subarray(1048570, 3145740));
    const head = await request(blockUrl, { method: 'HEAD', headers: token });
    assert.equal(head.statusCode, 200);
    assert.equal(head.headers['content-length'], String(first.size));
    assert.equal((await head.body.arrayBuffer()).byteLength, 0);
    const whole = await request(blockUrl, { headers: token });
    assert.deepEqual(Buffer.from(await whole.body.arrayBuffer()), files[0]!.data.subarray(0, first.size));
    // Reads stopped after their first bytes: the storage servers close the block files they had open.
    for (const f of files) {
      for await (const c of await client.createReadStream(f.path)) {
        assert.ok((c as Buffer).length > 0);
        break;
      }
    }
    assert.deepEqual(await blockFilesOpenAfterAWhile(), []);
  });

  it('answers queued behind another on a connection that closes leave no block file open', async () => {
    const client = cluster.client();
    const data = randomBytes(6 * 1024 * 1024);
    await client.writeFile('/queued', data, { replication: 1, blockSize: 8 * 1024 * 1024 });
    const block = (await client.blocks('/queued')).blocks[0]!;
    const [host, port] = block.replicas[0]!.addr.split(':');
    // Three GETs of the whole block sent at once on one connection, none of whose answers is read:
    // the first fills the socket, the other two wait in the server behind it. Then the connection closes.
    const socket = connect({ host, port: Number(port) });
    await once(socket, 'connect');
    socket.pause();
    const get = `GET /v1/blocks/${block.id} HTTP/1.1\r\nhost: ${block.replicas[0]!.addr}\r\n${AUTH_HEADERS.blockToken}: ${cluster.blockToken(block.id, 'read', 60_000)}\r\n\r\n`;
    socket.write(get.repeat(3));
    await new Promise((r) => setTimeout(r, 500));
    socket.destroy();
    assert.deepEqual(await blockFilesOpenAfterAWhile(), []);
  });

  it('replication and block size can be set per file, capped by the live servers', async () => {
    const client = cluster.client();
    const one = await client.writeFile('/r1', Buffer.alloc(3000, 1), { replication: 1, blockSize: 1024 });
    assert.equal(one.replication, 1);
    const located = await client.blocks('/r1');
    assert.equal(located.blocks.length, 3);
    for (const b of located.blocks) assert.equal(b.replicas.length, 1);
    await client.writeFile('/r5', Buffer.alloc(10, 2), { replication: 5 });
    for (const b of (await client.blocks('/r5')).blocks) assert.equal(b.replicas.length, 3);
  });

  it('writeFile takes a string, a Buffer, a view into a larger buffer, or nothing, and stores exactly those bytes', async () => {
    const client = cluster.client();
    const whole = randomBytes(3 * BLOCK);
    const view = new Uint8Array(whole.buffer, whole.byteOffset + 1000, BLOCK + 7);
    const cases: [string, string | Uint8Array, Buffer][] = [
      ['/w-string', 'grüße, 世界\n', Buffer.from('grüße, 世界\n')],
      ['/w-buffer', whole, whole],
      ['/w-view', view, whole.subarray(1000, 1000 + BLOCK + 7)],
      ['/w-empty', '', Buffer.alloc(0)],
    ];
    for (const [path, source, expected] of cases) {
      const stat = await client.writeFile(path, source);
      assert.equal(stat.size, expected.length, path);
      assert.equal((await sha256Of(await client.createReadStream(path))).sha256, sha256(expected), path);
    }
    await assert.rejects(client.writeFile('/w-string', 'again'), (e: unknown) => e instanceof SdfsError && e.code === 'EEXIST');
    const cancel = new AbortController();
    cancel.abort();
    await assert.rejects(client.writeFile('/w-cancelled', whole, { signal: cancel.signal }));
    assert.equal(await client.exists('/w-cancelled'), false);
  });

  it('a file is invisible until its writer ends it, and an aborted write leaves nothing', async () => {
    const client = cluster.client();
    const out = client.createWriteStream('/pending');
    out.on('error', () => {});
    await new Promise<void>((done, fail) => out.write(Buffer.alloc(3 * BLOCK, 9), (err) => (err ? fail(err) : done())));
    assert.equal(await client.exists('/pending'), false);
    out.destroy(new Error('changed my mind'));
    await new Promise((r) => out.once('close', r));
    assert.equal(await client.exists('/pending'), false);
  });

  it('overwrite replaces a file atomically; without it the name is refused', async () => {
    const client = cluster.client();
    await client.writeFile('/ow', 'first');
    await assert.rejects(client.writeFile('/ow', 'second'), { code: 'EEXIST' });
    await client.writeFile('/ow', 'second!', { overwrite: true });
    const back = await sha256Of(await client.createReadStream('/ow'));
    assert.equal(back.size, 7);
  });
});
