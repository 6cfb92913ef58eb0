import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { AUTH_HEADERS } from '../src/protocol/auth.js';
import { BlockLinks, LINK_PATH, LINK_UPGRADE } from '../src/protocol/block-link.js';
import { newBlockId } from '../src/protocol/blocks.js';
import { parseJson } from '../src/protocol/http.js';
import type { PutBlockResponse } from '../src/protocol/messages.js';
import { Cluster } from './helpers/cluster.js';
import { blockDigest } from './helpers/data.js';

/** A connection upgraded to the block link by hand, to send what a well-behaved writer never would. */
async function rawLink(port: number): Promise<{ socket: Socket; closed: Promise<void>; received: () => Buffer }> {
  const socket = netConnect({ host: '127.0.0.1', port });
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  socket.on('error', () => {});
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.write(`GET ${LINK_PATH} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: Upgrade\r\nupgrade: ${LINK_UPGRADE}\r\n\r\n`);
  for (let i = 0; i < 200 && !Buffer.concat(chunks).includes('\r\n\r\n'); i++) await new Promise((r) => setTimeout(r, 10));
  assert.match(Buffer.concat(chunks).toString('latin1'), /^HTTP\/1\.1 101 /);
  chunks.length = 0;
  return { socket, closed, received: () => Buffer.concat(chunks) };
}

function frame(id: number, header: Buffer, body: Buffer): Buffer {
  const head = Buffer.alloc(10);
  head.writeUInt32BE(4 + 2 + header.length + body.length, 0);
  head.writeUInt32BE(id, 4);
  head.writeUInt16BE(header.length, 8);
  return Buffer.concat([head, header, body]);
}

describe('block links', () => {
  let cluster: Cluster;
  let links: BlockLinks;
  const origin = (i: number): string => `http://127.0.0.1:${cluster.storages[i]!.port}`;

  before(async () => {
    cluster = await Cluster.start({ storages: 3, replication: 3, blockSize: 64 * 1024 });
    links = new BlockLinks();
  });
  after(async () => {
    links?.close();
    await cluster?.stop();
  });

  async function readBlock(i: number, id: string): Promise<Buffer> {
    const res = await request(`${origin(i)}/v1/blocks/${id}`, { headers: { [AUTH_HEADERS.blockToken]: cluster.blockToken(id, 'read') } });
    const body = Buffer.from(await res.body.arrayBuffer());
    assert.equal(res.statusCode, 200, body.toString());
    return body;
  }

  it('stores many blocks at once through one link, down a pipeline, each replica byte for byte', async () => {
    const blocks = Array.from({ length: 40 }, (_, i) => ({ id: newBlockId(), data: randomBytes(1 + ((i * 6151) % (64 * 1024))) }));
    const pipeline = `${cluster.storages[1]!.id}@127.0.0.1:${cluster.storages[1]!.port},${cluster.storages[2]!.id}@127.0.0.1:${cluster.storages[2]!.port}`;
    const replies = await Promise.all(blocks.map(async ({ id, data }) => {
      const { status, text } = await links.get(origin(0))!.request({ id, headers: { [AUTH_HEADERS.blockToken]: cluster.blockToken(id, 'write'), 'x-sdfs-pipeline': pipeline } }, data);
      return parseJson<PutBlockResponse>(status, text);
    }));
    for (const [i, { id, data }] of blocks.entries()) {
      assert.equal(replies[i]!.size, data.length);
      assert.equal(replies[i]!.digest, blockDigest(data));
      assert.deepEqual(replies[i]!.stored, [0, 1, 2].map((s) => cluster.storages[s]!.id));
      for (const s of [0, 1, 2]) assert.deepEqual(await readBlock(s, id), data, `block ${i} on storage ${s}`);
    }
  });

  it('a frame without the write token of its block is refused (as over HTTP), and nothing is stored', async () => {
    const id = newBlockId();
    const cases: Record<string, string>[] = [
      {},
      { [AUTH_HEADERS.blockToken]: cluster.blockToken(newBlockId(), 'write') },
      { [AUTH_HEADERS.blockToken]: cluster.blockToken(id, 'read') },
      { [AUTH_HEADERS.blockToken]: 'v1.0.forged' },
    ];
    for (const headers of cases) {
      const { status, text } = await links.get(origin(0))!.request({ id, headers }, Buffer.from('no'));
      assert.equal(status, 403, text);
      assert.equal(JSON.parse(text).error.code, 'EACCES');
    }
    // Nor may a writer that is not a storage server name the block's digest.
    const trailer = await links.get(origin(0))!.request(
      { id, headers: { [AUTH_HEADERS.blockToken]: cluster.blockToken(id, 'write'), 'x-sdfs-trailer': 'xxh3' } }, Buffer.alloc(20));
    assert.equal(trailer.status, 403);
    assert.match(JSON.parse(trailer.text).error.message, /digest is taken from storage servers only/);
    const res = await request(`${origin(0)}/v1/blocks/${id}`, { headers: { [AUTH_HEADERS.blockToken]: cluster.blockToken(id, 'read') } });
    await res.body.dump();
    assert.equal(res.statusCode, 404);
  });

  it('ends a link that sends a frame too long, or a header that is not one, and goes on serving', async () => {
    const port = cluster.storages[0]!.port;
    const tooLong = await rawLink(port);
    const head = Buffer.alloc(8);
    head.writeUInt32BE(0x7fffffff, 0);
    tooLong.socket.write(head);
    await tooLong.closed;

    for (const header of [Buffer.from('not json'), Buffer.from('[1,2]'), Buffer.from('{"id":7,"headers":{}}'), Buffer.from('{"id":"x","headers":{"a":1}}')]) {
      const bad = await rawLink(port);
      bad.socket.write(frame(1, header, Buffer.from('data')));
      await bad.closed;
      const reply = bad.received();
      assert.ok(reply.length > 10, `no reply to ${header.toString()}`);
      assert.equal(reply.readUInt16BE(8), 400);
      assert.equal(JSON.parse(reply.subarray(10).toString()).error.code, 'EPROTO');
    }

    // A header length past the frame's end, and a frame that stops half-way before its writer leaves.
    const past = await rawLink(port);
    const h = Buffer.alloc(12);
    h.writeUInt32BE(8, 0);
    h.writeUInt32BE(1, 4);
    h.writeUInt16BE(5000, 8);
    past.socket.write(h);
    await past.closed;
    const half = await rawLink(port);
    half.socket.end(frame(1, Buffer.from('{"id":"a","headers":{}}'), Buffer.alloc(1000)).subarray(0, 500));
    await half.closed;

    // The server is well, by link and by HTTP.
    const id = newBlockId();
    const data = randomBytes(3000);
    const ok = await links.get(origin(0))!.request({ id, headers: { [AUTH_HEADERS.blockToken]: cluster.blockToken(id, 'write') } }, data);
    assert.equal(ok.status, 200, ok.text);
    assert.deepEqual(await readBlock(0, id), data);
  });

  it('an upgrade to anything but the block link is refused', async () => {
    for (const [path, upgrade] of [[LINK_PATH, 'websocket'], ['/v1/other', LINK_UPGRADE]] as const) {
      const socket = netConnect({ host: '127.0.0.1', port: cluster.storages[0]!.port });
      const chunks: Buffer[] = [];
      socket.on('data', (c: Buffer) => chunks.push(c));
      const closed = new Promise((resolve) => socket.on('close', resolve));
      socket.write(`GET ${path} HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: ${upgrade}\r\n\r\n`);
      await closed;
      assert.match(Buffer.concat(chunks).toString('latin1'), /^HTTP\/1\.1 400 /);
    }
  });

  it('a server that answers the upgrade with anything else (an older one) is not asked again for a while', async () => {
    const server = createServer((_req, res) => res.writeHead(404).end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const fake = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    try {
      const own = new BlockLinks();
      const link = own.get(fake)!;
      await assert.rejects(link.request({ id: newBlockId(), headers: {} }, Buffer.from('x')), { code: 'EUNAVAILABLE' });
      assert.equal(link.refused, true);
      assert.equal(own.get(fake), undefined);
      own.close();
    } finally {
      server.close();
    }
  });

  it('a link whose server is stopped fails what it carries, and a new one is opened to the server started again', async () => {
    const id = newBlockId();
    const first = links.get(origin(2))!;
    assert.equal((await first.request({ id, headers: { [AUTH_HEADERS.blockToken]: cluster.blockToken(id, 'write') } }, Buffer.from('one'))).status, 200);
    await cluster.restartStorage(2);
    for (let i = 0; i < 100 && !first.closed; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(first.closed, true);
    const again = links.get(origin(2))!;
    assert.notEqual(again, first);
    const next = newBlockId();
    const r = await again.request({ id: next, headers: { [AUTH_HEADERS.blockToken]: cluster.blockToken(next, 'write') } }, Buffer.from('two'));
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(await readBlock(2, next), Buffer.from('two'));
  });
});
