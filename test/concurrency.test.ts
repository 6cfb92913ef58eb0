import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Cluster } from './helpers/cluster.js';
import { randomStream, sha256, sha256Of } from './helpers/data.js';

describe('many clients at once', () => {
  let cluster: Cluster;
  before(async () => { cluster = await Cluster.start({ blockSize: 32 * 1024 }); });
  after(async () => { await cluster?.stop(); });

  it('10 clients writing 20 files each at the same time: all readable afterwards', async () => {
    await cluster.client().mkdir('/many');
    const expected = new Map<string, string>();
    await Promise.all(Array.from({ length: 10 }, async (_, c) => {
      const client = cluster.client(); // one connection pool per client
      for (let i = 0; i < 20; i++) {
        const path = `/many/c${c}-f${i}`;
        const src = randomStream((c * 20 + i) * 997 % 100_000, 7000);
        await client.writeFile(path, src.stream);
        expected.set(path, src.sha256());
      }
    }));
    const reader = cluster.client();
    const listed = await reader.readdir('/many');
    assert.equal(listed.length, 200);
    for (const [path, sha] of expected) {
      const back = await sha256Of(await reader.createReadStream(path));
      assert.equal(back.sha256, sha, path);
    }
  });

  it('16 readers at once get each block\'s own bytes while storage servers lend their read buffers again and again', async () => {
    // One block per file, of 65 KiB to 1 MiB: read into a buffer the storage server lends (over 64 KiB).
    await cluster.client().mkdir('/lent');
    const files = Array.from({ length: 24 }, (_, i) => ({ path: `/lent/f${i}`, data: randomBytes(65 * 1024 + 1 + i * 41_000) }));
    const writer = cluster.client();
    for (const f of files) await writer.writeFile(f.path, f.data, { blockSize: 1024 * 1024 });
    assert.equal((await writer.blocks(files.at(-1)!.path)).blocks.length, 1);
    let reads = 0;
    await Promise.all(Array.from({ length: 16 }, async (_, r) => {
      const client = cluster.client();
      for (let round = 0; round < 3; round++) {
        for (let k = 0; k < files.length; k++) {
          const f = files[(k * 7 + r + round) % files.length]!;
          const back = await sha256Of(await client.createReadStream(f.path));
          assert.equal(back.size, f.data.length, f.path);
          assert.equal(back.sha256, sha256(f.data), f.path);
          reads++;
        }
      }
    }));
    assert.equal(reads, 16 * 3 * files.length);
  });

  it('10 processes of the sdfs command putting files at once', async () => {
    const dir = await cluster.scratchDir('conc');
    const content = (i: number): Buffer => Buffer.alloc(100_000 + i, i);
    const files = await Promise.all(Array.from({ length: 10 }, async (_, i) => {
      const p = join(dir, `local-${i}`);
      await writeFile(p, content(i));
      return p;
    }));
    const results = await Promise.all(files.map((f, i) => cluster.cli(['put', f, `/proc-${i}`])));
    for (const r of results) assert.equal(r.code, 0, r.stderr);
    const client = cluster.client();
    for (let i = 0; i < 10; i++) {
      const back = await sha256Of(await client.createReadStream(`/proc-${i}`));
      assert.deepEqual(back, { size: 100_000 + i, sha256: sha256(content(i)) });
    }
  });
});
