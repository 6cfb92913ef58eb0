import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Cluster } from './helpers/cluster.js';
import { randomStream, sha256Of } from './helpers/data.js';

// What the cluster acknowledged survives kill -9 of the name server and restarts of storage servers.
// (kill -9 during a burst of writes: test/crash-during-io.test.ts.)
describe('durability', () => {
  let cluster: Cluster;
  before(async () => { cluster = await Cluster.start({ blockSize: 64 * 1024 }); });
  after(async () => { await cluster?.stop(); });

  it('a name server killed with kill -9 and restarted loses no committed file', async () => {
    const client = cluster.client();
    await client.mkdir('/kept/deep', { recursive: true });
    const written = new Map<string, string>();
    for (let i = 0; i < 20; i++) {
      const src = randomStream(1000 + i * 9000, 4096);
      await client.writeFile(`/kept/deep/f${i}`, src.stream);
      written.set(`/kept/deep/f${i}`, src.sha256());
    }
    await client.rename('/kept/deep/f0', '/kept/moved');
    written.set('/kept/moved', written.get('/kept/deep/f0')!);
    written.delete('/kept/deep/f0');
    await client.rm('/kept/deep/f1');
    written.delete('/kept/deep/f1');

    await cluster.restartName('SIGKILL');
    await cluster.waitForLiveStorages(3);

    const after = cluster.client();
    assert.deepEqual((await after.readdir('/kept')).map((e) => e.name), ['deep', 'moved']);
    assert.equal(await after.exists('/kept/deep/f1'), false);
    for (const [path, sha] of written) {
      const back = await sha256Of(await after.createReadStream(path));
      assert.equal(back.sha256, sha, path);
    }
  });

  it('a restarted storage server keeps its blocks and serves them', async () => {
    const client = cluster.client();
    const src = randomStream(5 * 64 * 1024 + 3, 8192);
    await client.writeFile('/on-restart', src.stream);
    for (let i = 0; i < 3; i++) await cluster.restartStorage(i, 'SIGKILL');
    await cluster.waitForLiveStorages(3);
    const located = await client.blocks('/on-restart');
    // Read each block from each replica alone: every storage server still has every block.
    for (const replicaIndex of [0, 1, 2]) {
      const only = { ...located, blocks: located.blocks.map((b) => ({ ...b, replicas: [b.replicas[replicaIndex]!] })) };
      const { createFileReadStream } = await import('../src/protocol/file-read-stream.js');
      const { newAgent } = await import('../src/protocol/http.js');
      const agent = newAgent();
      const back = await sha256Of(createFileReadStream(only, agent));
      await agent.close();
      assert.equal(back.sha256, src.sha256(), `replica ${replicaIndex}`);
    }
  });
});
