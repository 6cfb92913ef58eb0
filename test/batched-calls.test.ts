import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { apiCaller, type ApiCaller } from '../src/protocol/api-caller.js';
import { BlockSender } from '../src/protocol/block-sender.js';
import { SdfsError } from '../src/protocol/errors.js';
import { newAgent } from '../src/protocol/http.js';
import { BATCH_MAX_BLOCKS } from '../src/name/routes.js';
import type { BlocksBatchResponse, FileStat, OpenUploadResponse, PoolUploadsResponse } from '../src/protocol/messages.js';
import { Cluster, waitFor } from './helpers/cluster.js';
import { sha256, sha256Of } from './helpers/data.js';

// Calls to the name server that the library saves: pooled uploads (POST /uploads/pool), opened ahead
// with no path and named at commit, so that a small file costs one call; and block lists asked for
// at the same moment, which go together (POST /fs/blocks).

const BLOCK = 64 * 1024;
/** The name server's cap on uploads in progress, low enough for a test to reach. */
const MAX_UPLOADS = 200;

function rejectsWith(code: string): (e: unknown) => boolean {
  return (e: unknown) => e instanceof SdfsError && e.code === code;
}

describe('calls the library saves: pooled uploads, block lists together', () => {
  let cluster: Cluster;
  const agent = newAgent();
  let api: ApiCaller;
  before(async () => {
    cluster = await Cluster.start({ blockSize: BLOCK, nameArgs: ['--max-uploads', String(MAX_UPLOADS)] });
    api = apiCaller(cluster.url, agent);
  });
  after(async () => {
    await agent.close();
    await cluster?.stop();
  });

  /** Stores `bytes` as block 0 of a pooled upload, as the library does; returns the stored report. */
  async function store(up: PoolUploadsResponse['uploads'][number], bytes: Buffer) {
    const [head, ...rest] = up.first.targets;
    const sender = new BlockSender(head!, rest, up.first.blockId, up.first.token, agent);
    await sender.write(bytes);
    const r = await sender.finish();
    assert.ok(r.reply, r.error?.message);
    return { blockId: up.first.blockId, index: 0, size: r.size, digest: r.reply.digest, replicas: r.reply.stored };
  }

  it('the route opens uploads with their first block placed, and each is named by its commit, once', async () => {
    const pool = await api<PoolUploadsResponse>('POST', '/uploads/pool', { count: 3, maxSize: 1000 });
    assert.equal(pool.uploads.length, 3);
    assert.equal(pool.maxBlock, 1000);
    assert.equal(pool.blockSize, BLOCK);
    for (const u of pool.uploads) assert.equal(new Set(u.first.targets.map((t) => t.id)).size, 3);

    const bytes = randomBytes(1000);
    const last = await store(pool.uploads[0]!, bytes);
    const id = pool.uploads[0]!.uploadId;
    await assert.rejects(api('POST', `/uploads/${id}/commit`, { last }), rejectsWith('EINVAL'), 'a pooled upload without a path');
    await assert.rejects(api('POST', `/uploads/${id}/commit`, { last, path: '/pool/no-such-dir/f' }), rejectsWith('ENOENT'));
    const stat = await api<FileStat>('POST', `/uploads/${id}/commit`, { last, path: '/pooled-1' });
    assert.equal(stat.size, 1000);
    const client = cluster.client();
    const back = await sha256Of(await client.createReadStream('/pooled-1'));
    assert.equal(back.sha256, sha256(bytes));
    await assert.rejects(api('POST', `/uploads/${id}/commit`, { path: '/pooled-again' }), rejectsWith('ENOENT'), 'committed once only');

    // Without overwrite the name is refused and the old file stays; with it, replaced.
    const second = await store(pool.uploads[1]!, randomBytes(10));
    const id2 = pool.uploads[1]!.uploadId;
    await assert.rejects(api('POST', `/uploads/${id2}/commit`, { last: second, path: '/pooled-1' }), rejectsWith('EEXIST'));
    assert.equal((await client.stat('/pooled-1')).size, 1000);
    assert.equal((await api<FileStat>('POST', `/uploads/${id2}/commit`, { last: second, path: '/pooled-1', overwrite: true })).size, 10);

    // A block larger than the pool's maxSize is refused (space on the targets was counted for maxSize).
    const big = await store(pool.uploads[2]!, randomBytes(1001));
    await assert.rejects(api('POST', `/uploads/${pool.uploads[2]!.uploadId}/commit`, { last: big, path: '/too-big' }), rejectsWith('EINVAL'));
    await api('DELETE', `/uploads/${pool.uploads[2]!.uploadId}`);
    assert.equal(await client.exists('/too-big'), false);

    // An upload opened for a path cannot be given another one at commit.
    const own = await api<OpenUploadResponse>('POST', '/uploads', { path: '/own', allocate: true });
    await assert.rejects(api('POST', `/uploads/${own.uploadId}/commit`, { path: '/elsewhere' }), rejectsWith('EINVAL'));
    await api('DELETE', `/uploads/${own.uploadId}`);

    for (const body of [{ count: 0, maxSize: 10 }, { count: 65, maxSize: 10 }, { count: 1, maxSize: 0 }, { count: 1 }]) {
      await assert.rejects(api('POST', '/uploads/pool', body), rejectsWith('EINVAL'), JSON.stringify(body));
    }
    assert.equal((await client.status()).uploadsInProgress, 0);
  });

  it('small files written at once store the right bytes, and a closed client leaves no upload open', async () => {
    const client = cluster.client();
    await client.mkdir('/many');
    const files = new Map<string, Buffer>();
    for (let round = 0; round < 3; round++) {
      const batch = Array.from({ length: 24 }, (_, i) => [`/many/r${round}-${i}`, randomBytes(1 + ((i * 7919) % (3 * BLOCK)))] as const);
      await Promise.all(batch.map(([path, bytes]) => client.writeFile(path, bytes)));
      for (const [path, bytes] of batch) files.set(path, bytes);
    }
    for (const [path, bytes] of files) {
      const back = await sha256Of(await client.createReadStream(path));
      assert.equal(back.sha256, sha256(bytes), path);
      assert.equal((await client.stat(path)).blocks, Math.ceil(bytes.length / BLOCK));
    }
    // Errors are the same as without a pool, and lose nothing.
    await assert.rejects(client.writeFile('/many/r0-1', Buffer.from('x')), rejectsWith('EEXIST'));
    assert.equal((await sha256Of(await client.createReadStream('/many/r0-1'))).sha256, sha256(files.get('/many/r0-1')!));
    await assert.rejects(client.writeFile('/nowhere/f', Buffer.from('x')), rejectsWith('ENOENT'));
    await assert.rejects(client.writeFile('/many', Buffer.from('x')), rejectsWith('EISDIR'));
    await client.close();
    const other = cluster.client();
    assert.equal((await other.status()).uploadsInProgress, 0, 'the pool\'s unused uploads were aborted at close');
  });

  it('uploads left in a pool are given back once they are 5 s old', async () => {
    const client = cluster.client();
    await client.mkdir('/aged');
    const before = (await client.status()).uploadsInProgress;
    let left = 0;
    // More than one: the write below could take a lone one without giving anything back.
    for (let burst = 0; burst < 6 && left < 2; burst++) {
      await Promise.all(Array.from({ length: 16 }, (_, i) => client.writeFile(`/aged/b${burst}-${i}`, randomBytes(100))));
      left = (await client.status()).uploadsInProgress - before;
    }
    assert.ok(left >= 2, 'too few uploads were left in the pool to test with');
    await new Promise((r) => setTimeout(r, 5_500));
    // The next write finds them old: it aborts them and takes a fresh one (a lone write: just one).
    await client.writeFile('/aged/after', randomBytes(100));
    await waitFor('the old pooled uploads aborted', async () => (await client.status()).uploadsInProgress === before);
    await client.close();
  });

  it('a pool that outlived its name server (restarted) costs a write nothing but a retry', async () => {
    const client = cluster.client();
    await client.mkdir('/restart');
    // Bursts close together make the pool open more uploads than they take: some are left in it.
    let left = 0;
    for (let burst = 0; burst < 6 && left === 0; burst++) {
      await Promise.all(Array.from({ length: 16 }, (_, i) => client.writeFile(`/restart/b${burst}-${i}`, randomBytes(100))));
      left = (await client.status()).uploadsInProgress;
    }
    assert.ok(left > 0, 'no upload was left in the pool to test with');

    await cluster.restartName('SIGKILL');
    await cluster.waitForLiveStorages(3);
    const bytes = Array.from({ length: 8 }, (_, i) => randomBytes(500 + i));
    await Promise.all(bytes.map((b, i) => client.writeFile(`/restart/after-${i}`, b)));
    for (const [i, b] of bytes.entries()) {
      assert.equal((await sha256Of(await client.createReadStream(`/restart/after-${i}`))).sha256, sha256(b));
    }
    await client.close();
  });

  it('block lists asked for at once go together, and a path without one fails alone', async () => {
    const client = cluster.client();
    await client.mkdir('/read');
    const files = new Map(Array.from({ length: 30 }, (_, i) => [`/read/f${i}`, randomBytes(1 + i * 5000)] as const));
    for (const [path, bytes] of files) await client.writeFile(path, bytes);

    // The route: one answer per path, in order, an error in place of a list.
    const { files: answers } = await api<BlocksBatchResponse>('POST', '/fs/blocks', { paths: ['/read/f3', '/read/nothing', '/read', 'read/f4'] });
    assert.equal(answers.length, 4);
    assert.ok(!('error' in answers[0]!) && answers[0]!.stat.size === files.get('/read/f3')!.length);
    assert.ok('error' in answers[1]! && answers[1]!.error.code === 'ENOENT' && answers[1]!.path === '/read/nothing');
    assert.ok('error' in answers[2]! && answers[2]!.error.code === 'EISDIR');
    assert.ok(!('error' in answers[3]!) && answers[3]!.stat.path === '/read/f4');
    for (const body of [{ paths: [] }, { paths: ['/a', 'x'.repeat(5000)] }, {}]) {
      await assert.rejects(api('POST', '/fs/blocks', body), rejectsWith('EINVAL'), JSON.stringify(body).slice(0, 40));
    }

    // The library: 30 reads at once, and lookups that fail among them, each with its own error.
    const reads = [...files].map(async ([path, bytes]) => assert.equal((await sha256Of(await client.createReadStream(path))).sha256, sha256(bytes), path));
    const failures = [
      assert.rejects(client.blocks('/read/missing'), rejectsWith('ENOENT')),
      assert.rejects(client.blocks('/read'), rejectsWith('EISDIR')),
      assert.rejects(client.blocks('/read/bad\0name'), rejectsWith('EINVAL')),
    ];
    await Promise.all([...reads, ...failures]);
    await client.close();
  });

  it('a batch answer holds a bounded number of blocks: a larger file gets ETOOBIG there, and the library asks for it alone', async () => {
    const client = cluster.client();
    const bytes = randomBytes(600 * 1024);
    await client.writeFile('/many-blocks', bytes, { blockSize: 1024, replication: 1 });
    const { files } = await api<BlocksBatchResponse>('POST', '/fs/blocks', { paths: ['/many-blocks', '/many-blocks', '/read/f1'] });
    assert.ok(!('error' in files[0]!) && files[0]!.blocks.length === 600);
    assert.ok('error' in files[1]! && files[1]!.error.code === 'ETOOBIG', `600 + 600 blocks > ${BATCH_MAX_BLOCKS}`);
    assert.ok(!('error' in files[2]!), 'a small file still fits');
    const lists = await Promise.all(Array.from({ length: 6 }, () => client.blocks('/many-blocks')));
    for (const l of lists) assert.equal(l.blocks.length, 600);
    assert.equal((await sha256Of(await client.createReadStream('/many-blocks'))).sha256, sha256(bytes));
    await client.close();
  });

  it('uploads in progress are capped: a pool gets what is left, then opening fails with EUNAVAILABLE until some end', async () => {
    const before = (await cluster.client().status()).uploadsInProgress;
    const taken: string[] = [];
    for (let i = 0; i < 4; i++) {
      const pool = await api<PoolUploadsResponse>('POST', '/uploads/pool', { count: 64, maxSize: 4096 });
      taken.push(...pool.uploads.map((u) => u.uploadId));
    }
    assert.equal(taken.length, MAX_UPLOADS - before);
    await assert.rejects(api('POST', '/uploads/pool', { count: 1, maxSize: 4096 }), rejectsWith('EUNAVAILABLE'));
    await assert.rejects(api('POST', '/uploads', { path: '/capped', allocate: true }), rejectsWith('EUNAVAILABLE'));
    const client = cluster.client();
    await assert.rejects(client.writeFile('/capped', Buffer.from('x')), rejectsWith('EUNAVAILABLE'));
    await Promise.all(taken.slice(0, 10).map((id) => api('DELETE', `/uploads/${id}`)));
    await client.writeFile('/capped', Buffer.from('x'));
    assert.equal((await sha256Of(await client.createReadStream('/capped'))).sha256, sha256(Buffer.from('x')));
    await client.close();
    await Promise.all(taken.slice(10).map((id) => api('DELETE', `/uploads/${id}`)));
    assert.equal((await cluster.client().status()).uploadsInProgress, before);
  });
});
