import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { open, readdir, readlink } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { crc32 } from '@node-rs/crc32';
import { BlockChannel } from '../src/protocol/block-channel.js';
import { CHUNK_SIZE } from '../src/protocol/blocks.js';
import { SdfsError } from '../src/protocol/errors.js';
import { FileReader } from '../src/protocol/file-reader.js';
import type { BlocksResponse } from '../src/protocol/messages.js';
import { Cluster } from './helpers/cluster.js';
import { damageBlock } from './helpers/blocks.js';

// Reads into the caller's memory (`client.open`): the bytes at every position and length that
// matters around checksum chunks and blocks, failover, connections kept and closed, and storage
// servers that answer wrongly.
const MIB = 1024 * 1024;
const BLOCK = 2.5 * MIB; // chunk boundaries inside blocks, and block ends inside chunks

/** Sockets this process holds open. */
async function openSockets(): Promise<number> {
  let n = 0;
  for (const fd of await readdir('/proc/self/fd')) {
    if ((await readlink(`/proc/self/fd/${fd}`).catch(() => '')).startsWith('socket:')) n++;
  }
  return n;
}

describe('reads into memory through a 3-server cluster', () => {
  let cluster: Cluster;
  const data = randomBytes(3 * BLOCK + 777_777);
  before(async () => {
    cluster = await Cluster.start({ storages: 3, blockSize: BLOCK });
    await cluster.client().writeFile('/f', data);
  });
  after(async () => { await cluster?.stop(); });

  it('read() returns the bytes at any position and length, fewer at the end of the file, none past it', async () => {
    const reader = await cluster.client().open('/f');
    assert.equal(reader.size, data.length);
    const cases: [number, number][] = [
      [0, 1], [0, CHUNK_SIZE], [1, CHUNK_SIZE], [CHUNK_SIZE - 1, 2], [CHUNK_SIZE + 5, 3 * CHUNK_SIZE], [BLOCK - 10, 20],
      [BLOCK - CHUNK_SIZE / 2, 2 * BLOCK + 3], [0, data.length], [data.length - 5, 100], [2 * BLOCK + 123, 0],
    ];
    for (const [pos, len] of cases) {
      const dest = Buffer.alloc(len + 8, 0xee);
      const n = await reader.read(dest.subarray(0, len), pos);
      const want = data.subarray(pos, Math.min(pos + len, data.length));
      assert.equal(n, want.length, `read of ${len} at ${pos}`);
      assert.deepEqual(dest.subarray(0, n), want, `bytes of ${len} at ${pos}`);
      assert.ok(dest.subarray(len).every((b) => b === 0xee), `nothing written past the ${len} bytes asked for at ${pos}`);
    }
    assert.equal(await reader.read(Buffer.alloc(10), data.length), 0);
    assert.equal(await reader.read(Buffer.alloc(10), data.length + 100), 0);
    await assert.rejects(reader.read(Buffer.alloc(1), -1), { code: 'EINVAL' });
  });

  it('views() walks a range in reused buffers of any size', async () => {
    const reader = await cluster.client().open('/f');
    for (const [start, end, bufferSize, depth] of [[0, data.length, 8 * MIB, 2], [12_345, BLOCK * 2 + 99, 700_001, 3], [5, 6, MIB, 1]] as const) {
      const got: Buffer[] = [];
      const seen = new Set<ArrayBufferLike>();
      for await (const view of reader.views({ start, end, bufferSize, depth })) {
        got.push(Buffer.from(view));
        seen.add(view.buffer);
      }
      assert.deepEqual(Buffer.concat(got), data.subarray(start, end), `range ${start}-${end} in ${bufferSize}`);
      assert.ok(seen.size <= depth, `at most ${depth} buffers, reused`);
    }
    await assert.rejects(async () => { for await (const _ of reader.views({ start: 10, end: 5 })) void _; }, { code: 'EINVAL' });
  });

  it('sdfs get and cat give the same bytes', async () => {
    const local = join(cluster.dataDir, 'got');
    const r = await cluster.cli(['get', '/f', local]);
    assert.equal(r.code, 0, r.stderr);
    const fh = await open(local);
    assert.deepEqual(await fh.readFile(), data);
    await fh.close();
    assert.deepEqual(await readdir(cluster.dataDir).then((names) => names.filter((n) => n.includes('sdfs-partial'))), []);
  });

  it('a damaged replica is passed over and reported; the bytes are the right ones', async () => {
    const failures: string[] = [];
    const client = cluster.client();
    await client.writeFile('/damaged', data);
    const located = await client.blocks('/damaged');
    // Damage a chunk in the middle of every block on the replica a reader tries first.
    for (const b of located.blocks) {
      const holder = cluster.storages.find((s) => s.id === b.replicas[0]!.id)!;
      await damageBlock(holder.dataDir, b.id, Math.min(CHUNK_SIZE + 10, b.size - 4), Buffer.from([0xde, 0xad, 0xbe, 0xef]));
    }
    const channel = new BlockChannel();
    try {
      const reader = new FileReader(located, channel, (_b, r, e) => failures.push(`${r.id}:${e.code}`));
      const dest = Buffer.alloc(data.length);
      assert.equal(await reader.read(dest, 0), data.length);
      assert.deepEqual(dest, data);
    } finally {
      channel.close();
    }
    assert.equal(failures.length, located.blocks.length, 'each damaged replica was detected');
    assert.ok(failures.every((f) => f.endsWith(':ECHECKSUM')));
  });

  it('connections are kept for the next read, made anew when a server closed them, and closed with the client', async () => {
    const client = cluster.client();
    await client.writeFile('/one-copy', data.subarray(0, 3 * MIB), { replication: 1 });
    const before = await openSockets();
    const reader = await client.open('/one-copy');
    const dest = Buffer.alloc(MIB);
    for (let i = 0; i < 30; i++) assert.equal(await reader.read(dest, (i % 3) * MIB), MIB);
    assert.deepEqual(dest, data.subarray(2 * MIB, 3 * MIB));
    assert.ok(await openSockets() - before <= 2, 'thirty reads, one after the other, over one kept connection');
    // Four reads at once leave four kept connections to the first block's server...
    await Promise.all([0, 1, 2, 3].map((k) => reader.read(Buffer.alloc(1000), k * 1000)));
    // ...which restarts: every kept connection is dead, and the next read goes on a new one.
    const holder = (await client.blocks('/one-copy')).blocks[0]!.replicas[0]!.id;
    const i = cluster.storages.findIndex((s) => s.id === holder);
    await cluster.restartStorage(i);
    assert.equal(await reader.read(dest, MIB), MIB);
    assert.deepEqual(dest, data.subarray(MIB, 2 * MIB));
    await client.close();
    // Closed sockets leave /proc/self/fd when the event loop has run.
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(await openSockets() <= before, 'the client closed its block connections');
  });

  it('reads beyond the connections allowed per server wait their turn; one cancelled while waiting fails alone', async () => {
    const client = cluster.client();
    const located = await client.blocks('/f');
    const channel = new BlockChannel({ perServer: 1 });
    const before = await openSockets();
    try {
      const reader = new FileReader(located, channel);
      const ac = new AbortController();
      const reads = Array.from({ length: 8 }, async (_, i) => {
        const dest = Buffer.alloc(100_000);
        const n = await reader.read(dest, i * 300_000, i === 5 ? ac.signal : undefined);
        assert.deepEqual(dest.subarray(0, n), data.subarray(i * 300_000, i * 300_000 + 100_000));
      });
      ac.abort();
      const results = await Promise.allSettled(reads);
      assert.deepEqual(results.map((r) => r.status === 'fulfilled' ? 'ok' : (r.reason as SdfsError).code), ['ok', 'ok', 'ok', 'ok', 'ok', 'ECANCELED', 'ok', 'ok']);
      // Eight reads of the first block, whose replicas are on three servers at most: one connection each.
      assert.ok(await openSockets() - before <= 3, 'one connection per server');
    } finally {
      channel.close();
    }
  });

  it('a read cancelled by its signal fails with ECANCELED and a new one succeeds', async () => {
    const reader = await cluster.client().open('/f');
    const ac = new AbortController();
    const pending = reader.read(Buffer.alloc(data.length), 0, ac.signal);
    setImmediate(() => ac.abort());
    await assert.rejects(pending, { code: 'ECANCELED' });
    const dest = Buffer.alloc(1000);
    assert.equal(await reader.read(dest, BLOCK), 1000);
    assert.deepEqual(dest, data.subarray(BLOCK, BLOCK + 1000));
  });
});

// A storage server that answers each connection's first request with `answer`, to see what the reader does with it.
describe('reads from a storage server that answers wrongly', () => {
  let server: Server;
  let answer: (socket: Socket) => void = () => {};
  const sockets = new Set<Socket>();
  const body = randomBytes(CHUNK_SIZE + 100);
  const crcs = [crc32(body.subarray(0, CHUNK_SIZE), 0) >>> 0, crc32(body.subarray(CHUNK_SIZE), 0) >>> 0].map((c) => c.toString(16)).join(',');
  const head = (extra = '', length = body.length): string =>
    `HTTP/1.1 200 OK\r\ncontent-length: ${length}\r\nx-sdfs-block-size: ${body.length}\r\nx-sdfs-chunk-size: ${CHUNK_SIZE}\r\nx-sdfs-crcs: ${crcs}\r\n${extra}\r\n`;

  before(async () => {
    server = createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {});
      socket.once('data', () => answer(socket));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });

  /** Reads the block from the fake server; what the reader reported about that replica lands in `failures`. */
  async function readWith(respond: (socket: Socket) => void, failures: string[] = [], timeoutMs?: number, kept?: BlockChannel): Promise<Buffer> {
    answer = respond;
    const port = (server.address() as { port: number }).port;
    const located = {
      stat: { path: '/x', type: 'file', size: body.length },
      blocks: [{ id: 'b'.repeat(32), index: 0, offset: 0, size: body.length, digest: '', replicas: [{ id: 's1', addr: `127.0.0.1:${port}`, alive: true }] }],
    } as unknown as BlocksResponse;
    const channel = kept ?? new BlockChannel();
    try {
      const dest = Buffer.alloc(body.length);
      await new FileReader(located, channel, (_b, _r, err) => failures.push(err.code)).read(dest, 0, timeoutMs ? AbortSignal.timeout(timeoutMs) : undefined);
      return dest;
    } finally {
      if (!kept) channel.close();
    }
  }

  it('a right answer, in pieces, is read whole', async () => {
    const got = await readWith((s) => {
      const all = Buffer.concat([Buffer.from(head()), body]);
      s.write(all.subarray(0, 10));
      setTimeout(() => s.write(all.subarray(10, 5000)), 5);
      setTimeout(() => s.write(all.subarray(5000)), 10);
    });
    assert.deepEqual(got, body);
  });

  const wrong: [string, (s: Socket) => void, string][] = [
    ['a flipped byte', (s) => { const b = Buffer.from(body); b[7]! ^= 1; s.write(head()); s.write(b); }, 'ECHECKSUM'],
    ['no content-length', (s) => s.write(head().replace(/content-length: \d+\r\n/, '') + 'x'), 'EPROTO'],
    ['a chunked body', (s) => s.write(`${head('transfer-encoding: chunked\r\n')}`), 'EPROTO'],
    ['another length than asked for', (s) => s.write(head('', 10) + '0123456789'), 'EPROTO'],
    ['a garbage status line', (s) => s.write('HTTP/9 what\r\n\r\n'), 'EPROTO'],
    ['an endless head', (s) => s.write(`HTTP/1.1 200 OK\r\n${'x-a: b\r\n'.repeat(4000)}`), 'EPROTO'],
    ['a close in the middle of the body', (s) => { s.write(head()); s.end(body.subarray(0, 1000)); }, 'EUNAVAILABLE'],
    ['an error answer', (s) => { const json = JSON.stringify({ error: { code: 'ENOENT', message: 'no such block here' } }); s.write(`HTTP/1.1 404 Not Found\r\ncontent-length: ${json.length}\r\n\r\n${json}`); }, 'ENOENT'],
    ['an error answer with a huge body', (s) => s.write(`HTTP/1.1 500 Oops\r\ncontent-length: ${100 * MIB}\r\n\r\n`), 'EPROTO'],
  ];
  for (const [what, respond, code] of wrong) {
    it(`${what}: the replica fails with ${code}, and the read with EUNAVAILABLE (no other replica)`, async () => {
      const failures: string[] = [];
      await assert.rejects(readWith(respond, failures), (err: unknown) => err instanceof SdfsError && err.code === 'EUNAVAILABLE');
      assert.deepEqual(failures, [code]);
    });
  }

  it('bytes after the answer: the answer stands, and the client closes that connection', async () => {
    const channel = new BlockChannel();
    try {
      const got = await readWith((s) => s.write(Buffer.concat([Buffer.from(head()), body, Buffer.from('extra')])), [], undefined, channel);
      assert.deepEqual(got, body);
      for (let i = 0; i < 100 && sockets.size > 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(sockets.size, 0, 'the client closed the connection (it would have kept it)');
    } finally {
      channel.close();
    }
  });

  it('a server that stops answering: the read fails with EUNAVAILABLE after the answer timeout', async () => {
    const channel = new BlockChannel({ timeouts: { answerMs: 300 } });
    const failures: string[] = [];
    const t0 = Date.now();
    try {
      await assert.rejects(readWith((s) => s.write(head()), failures, undefined, channel), { code: 'EUNAVAILABLE' });
    } finally {
      channel.close();
    }
    assert.deepEqual(failures, ['EUNAVAILABLE']);
    assert.ok(Date.now() - t0 >= 250, 'not before the timeout');
  });

  it('an idle kept connection is closed after the idle timeout, and the next read opens a new one', async () => {
    const channel = new BlockChannel({ timeouts: { idleMs: 200 } });
    try {
      const ok = (s: Socket): void => void s.write(Buffer.concat([Buffer.from(head()), body]));
      assert.deepEqual(await readWith(ok, [], undefined, channel), body);
      assert.equal(sockets.size, 1, 'kept open after the answer');
      for (let i = 0; i < 100 && sockets.size > 0; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(sockets.size, 0, 'closed once idle for 200 ms');
      assert.deepEqual(await readWith(ok, [], undefined, channel), body);
    } finally {
      channel.close();
    }
  });

  it('a server that never answers: the caller\'s signal ends the read', async () => {
    await assert.rejects(readWith(() => {}, [], 300), { code: 'ECANCELED' });
  });
});

describe('a storage server that does not take the connection', () => {
  it('the read fails with EUNAVAILABLE after the connect timeout', async () => {
    // A listener in a stopped process, whose accept queue (backlog 1) the first connections fill: the
    // kernel drops the SYNs of any later one, which waits for its connect timeout.
    const child = spawn(process.execPath, ['-e',
      "const s = require('net').createServer().listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => console.log(s.address().port))"]);
    const fillers: Socket[] = [];
    const channel = new BlockChannel({ timeouts: { connectMs: 300 } });
    try {
      const port = Number(String((await once(child.stdout!, 'data'))[0]).trim());
      child.kill('SIGSTOP');
      for (let i = 0; i < 3; i++) fillers.push(connect(port, '127.0.0.1').on('error', () => {}));
      await new Promise((r) => setTimeout(r, 200));
      const located = {
        stat: { path: '/x', type: 'file', size: 10 },
        blocks: [{ id: 'b'.repeat(32), index: 0, offset: 0, size: 10, digest: '', replicas: [{ id: 's1', addr: `127.0.0.1:${port}`, alive: true }] }],
      } as unknown as BlocksResponse;
      const failures: string[] = [];
      const t0 = Date.now();
      await assert.rejects(new FileReader(located, channel, (_b, _r, err) => failures.push(err.code)).read(Buffer.alloc(10), 0), { code: 'EUNAVAILABLE' });
      assert.ok(Date.now() - t0 >= 250, 'not before the timeout');
      assert.deepEqual(failures, ['EUNAVAILABLE']);
    } finally {
      channel.close();
      for (const f of fillers) f.destroy();
      child.kill('SIGKILL');
    }
  });
});
