import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { Cluster, waitFor } from './helpers/cluster.js';
import { randomStream, sha256, sha256Of } from './helpers/data.js';

// File bytes through the name server's HTTP API (for browsers and hosts that cannot reach the
// storage servers): streaming upload and download, ranges, errors as JSON with stable codes.
describe('upload and download through the name server', () => {
  let cluster: Cluster;
  let base: string;
  before(async () => {
    cluster = await Cluster.start({ blockSize: 64 * 1024 });
    base = `${cluster.url}/api/v1/fs/content`;
  });
  after(async () => { await cluster?.stop(); });

  it('streams a multi-block upload in and the same bytes out', async () => {
    const src = randomStream(5 * 1024 * 1024 + 17, 100_000);
    const put = await request(`${base}?path=${encodeURIComponent('/up/ünï code.bin')}`, {
      method: 'PUT', body: src.stream, headers: { 'content-type': 'application/octet-stream' },
    }).catch((e: unknown) => { throw e; });
    assert.equal(put.statusCode, 404, 'the parent directory does not exist yet');
    assert.equal((await put.body.json() as { error: { code: string } }).error.code, 'ENOENT');

    await cluster.client().mkdir('/up');
    const again = randomStream(5 * 1024 * 1024 + 17, 100_000);
    const ok = await request(`${base}?path=${encodeURIComponent('/up/ünï code.bin')}`, { method: 'PUT', body: again.stream });
    const stat = await ok.body.json() as { size: number; blocks: number };
    assert.equal(ok.statusCode, 200, JSON.stringify(stat));
    assert.equal(stat.size, 5 * 1024 * 1024 + 17);
    assert.equal(stat.blocks, 81);

    const get = await request(`${base}?path=${encodeURIComponent('/up/ünï code.bin')}`);
    assert.equal(get.statusCode, 200);
    assert.equal(get.headers['content-length'], String(5 * 1024 * 1024 + 17));
    assert.match(String(get.headers['content-disposition']), /filename\*=UTF-8''%C3%BCn%C3%AF%20code\.bin/);
    assert.equal((await sha256Of(get.body)).sha256, again.sha256());
    // The client library reads the same bytes straight from the storage servers.
    assert.equal((await sha256Of(await cluster.client().createReadStream('/up/ünï code.bin'))).sha256, again.sha256());
  });

  it('serves byte ranges', async () => {
    const data = Buffer.alloc(300_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 13 + 7) & 0xff;
    await cluster.client().writeFile('/ranged', data);
    for (const [range, start, end] of [['bytes=0-0', 0, 1], ['bytes=65530-65545', 65530, 65546], ['bytes=299990-', 299990, 300000], ['bytes=-10', 299990, 300000]] as const) {
      const res = await request(`${base}?path=/ranged`, { headers: { range } });
      assert.equal(res.statusCode, 206, range);
      assert.equal(res.headers['content-range'], `bytes ${start}-${end - 1}/300000`);
      assert.equal(sha256(Buffer.from(await res.body.arrayBuffer())), sha256(data.subarray(start, end)), range);
    }
    const bad = await request(`${base}?path=/ranged`, { headers: { range: 'bytes=400000-' } });
    assert.equal(bad.statusCode, 416);
    assert.equal((await bad.body.json() as { error: { code: string } }).error.code, 'ERANGE');
  });

  it('refuses to replace a file unless asked, and replaces it when asked', async () => {
    await cluster.client().writeFile('/exists', 'old');
    const no = await request(`${base}?path=/exists`, { method: 'PUT', body: 'new bytes' });
    assert.equal(no.statusCode, 409);
    assert.equal((await no.body.json() as { error: { code: string } }).error.code, 'EEXIST');
    const yes = await request(`${base}?path=/exists&overwrite=true`, { method: 'PUT', body: 'new bytes' });
    assert.equal(yes.statusCode, 200, await yes.body.text());
    const back = await request(`${base}?path=/exists`);
    assert.equal(await back.body.text(), 'new bytes');
  });

  it('an upload cut off mid-way leaves no file, and its blocks are cleaned away', async () => {
    const controller = new AbortController();
    let sent = 0;
    const body = Readable.from((async function* () {
      for (;;) {
        sent += 64 * 1024;
        if (sent > 1024 * 1024) controller.abort();
        yield Buffer.alloc(64 * 1024, 1);
        await new Promise((r) => setTimeout(r, 1));
      }
    })());
    await assert.rejects(request(`${base}?path=/cut`, { method: 'PUT', body, signal: controller.signal }));
    // The name server notices the broken connection and aborts the upload; the file never appears.
    assert.equal(await cluster.client().exists('/cut'), false);
    const client = cluster.client();
    const referenced = new Set<string>();
    for (const path of ['/up/ünï code.bin', '/ranged', '/exists']) for (const b of (await client.blocks(path)).blocks) referenced.add(b.id);
    await waitFor('the blocks of the cut upload deleted', async () => {
      for (let i = 0; i < 3; i++) for (const b of await cluster.blocksOnDisk(i)) if (!referenced.has(b)) return false;
      return true;
    });
    assert.equal(await cluster.client().exists('/cut'), false);
  });

  it('errors are JSON with a stable code', async () => {
    const missing = await request(`${base}?path=/nope`);
    assert.equal(missing.statusCode, 404);
    assert.deepEqual(await missing.body.json(), { error: { code: 'ENOENT', message: 'no such file or directory: /nope' } });
    const dir = await request(`${base}?path=/up`);
    assert.equal(dir.statusCode, 409);
    assert.equal((await dir.body.json() as { error: { code: string } }).error.code, 'EISDIR');
    const bad = await request(`${base}?path=${encodeURIComponent('/a\u0000b')}`);
    assert.equal(bad.statusCode, 400);
    assert.equal((await bad.body.json() as { error: { code: string } }).error.code, 'EINVAL');
  });
});
