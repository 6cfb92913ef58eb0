import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Cluster } from './helpers/cluster.js';
import { damageBlock } from './helpers/blocks.js';
import { randomStream, sha256Of } from './helpers/data.js';

// Reads go on from another replica when one is damaged or gone; writes go around a dead storage
// server that the name server still believes alive.
describe('failover', () => {
  let cluster: Cluster;
  before(async () => { cluster = await Cluster.start({ storages: 4, blockSize: 64 * 1024 }); });
  after(async () => { await cluster?.stop(); });

  it('a read returns the right bytes when a replica has flipped bytes on disk', async () => {
    const client = cluster.client();
    const src = randomStream(3 * 64 * 1024 + 999, 10_000);
    await client.writeFile('/damaged', src.stream);
    const located = await client.blocks('/damaged');
    // Damage every block on its first replica (the one a reader tries first).
    for (const b of located.blocks) {
      const holder = cluster.storages.find((s) => s.id === b.replicas[0]!.id)!;
      await damageBlock(holder.dataDir, b.id, Math.floor(b.size / 2), Buffer.from([0xde, 0xad, 0xbe, 0xef]));
    }
    const failures: string[] = [];
    const { createFileReadStream } = await import('../src/protocol/file-read-stream.js');
    const { BlockChannel } = await import('../src/protocol/block-channel.js');
    const channel = new BlockChannel();
    const back = await sha256Of(createFileReadStream(located, channel, {}, (_b, r, e) => failures.push(`${r.id}:${e.code}`)));
    channel.close();
    assert.equal(back.sha256, src.sha256());
    assert.equal(failures.length, located.blocks.length, 'each damaged replica was detected');
    assert.ok(failures.every((f) => f.endsWith(':ECHECKSUM')));
  });

  it('a write goes around a storage server killed a moment ago, and a read skips it', async () => {
    const client = cluster.client();
    const before = randomStream(4 * 64 * 1024, 10_000);
    await client.writeFile('/before-kill', before.stream);
    const dead = cluster.storages[1]!;
    await cluster.stopStorage(1, 'SIGKILL');
    // The name server still counts it alive (no timeout yet), so it may hand it out as a target.
    const after = randomStream(8 * 64 * 1024 + 5, 10_000);
    await client.writeFile('/after-kill', after.stream);
    const located = await client.blocks('/after-kill');
    for (const b of located.blocks) {
      assert.equal(b.replicas.length, 3, `block ${b.index} has 3 replicas`);
      assert.ok(!b.replicas.some((r) => r.id === dead.id), `block ${b.index} is not on the dead server`);
      assert.equal(new Set(b.replicas.map((r) => r.id)).size, 3);
    }
    assert.equal((await sha256Of(await client.createReadStream('/after-kill'))).sha256, after.sha256());
    assert.equal((await sha256Of(await client.createReadStream('/before-kill'))).sha256, before.sha256());
  });
});
