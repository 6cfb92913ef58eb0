import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import type { SdfsClient } from '../src/client/index.js';
import { Cluster, FAST_FAILURE, waitFor } from './helpers/cluster.js';
import { damageBlock } from './helpers/blocks.js';
import { blockDigestOf, randomStream, sha256, sha256Of } from './helpers/data.js';
import { readBlock } from '../src/protocol/file-read-stream.js';
import { BlockChannel } from '../src/protocol/block-channel.js';
import { AUTH_HEADERS } from '../src/protocol/auth.js';

// Synchronization: every file is kept at R replicas through dead servers, returning servers,
// decommissioning, damaged replicas and stray blocks.

async function writeFiles(client: SdfsClient, dir: string, n: number, size: number): Promise<Map<string, string>> {
  await client.mkdir(dir, { recursive: true });
  const out = new Map<string, string>();
  for (let i = 0; i < n; i++) {
    const src = randomStream(size + i * 1000, 16 * 1024);
    await client.writeFile(`${dir}/f${i}`, src.stream);
    out.set(`${dir}/f${i}`, src.sha256());
  }
  return out;
}

async function assertReadable(client: SdfsClient, files: Map<string, string>): Promise<void> {
  for (const [path, sha] of files) assert.equal((await sha256Of(await client.createReadStream(path))).sha256, sha, path);
}

describe('re-replication after a storage server dies, and cleaning when it returns', () => {
  let cluster: Cluster;
  before(async () => { cluster = await Cluster.start({ storages: 4, blockSize: 64 * 1024, nameArgs: FAST_FAILURE }); });
  after(async () => { await cluster?.stop(); });

  it('restores 3 replicas of every block on the remaining servers', async () => {
    const client = cluster.client();
    const files = await writeFiles(client, '/r', 12, 200_000);
    const dead = cluster.storages[0]!;
    await cluster.stopStorage(0, 'SIGKILL');
    await waitFor('the dead server to be noticed', async () => (await client.status()).storages.some((s) => s.id === dead.id && !s.alive));
    await waitFor('every block back at 3 live replicas', async () => {
      const h = (await client.status()).health;
      return h.underReplicated === 0 && h.missing === 0;
    });
    // The replicas of the dead server still count as locations, but 3 live ones exist for every block.
    for (const path of files.keys()) {
      for (const b of (await client.blocks(path)).blocks) {
        assert.ok(b.replicas.filter((x) => x.alive && x.id !== dead.id).length >= 3, `${path} block ${b.index}`);
      }
    }
    await assertReadable(client, files);
    const fsck = await cluster.cli(['fsck', '/r']);
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
  });

  it('cleans a returning server: extra replicas trimmed, blocks of files deleted meanwhile removed', async () => {
    const client = cluster.client();
    const files = [...(await client.readdir('/r'))].map((e) => e.path);
    // While storage 0 is dead, delete half of the files: their blocks on it are now stale.
    const deleted = files.slice(0, 6);
    const deletedBlocks = new Set<string>();
    for (const path of deleted) {
      for (const b of (await client.blocks(path)).blocks) deletedBlocks.add(b.id);
      await client.rm(path);
    }
    await cluster.restartStorage(0);
    await cluster.waitForLiveStorages(4);
    await waitFor('no block over-replicated and no stale block left on the returning server', async () => {
      const h = (await client.status()).health;
      const onDisk = await cluster.blocksOnDisk(0);
      return h.overReplicated === 0 && h.underReplicated === 0 && ![...deletedBlocks].some((b) => onDisk.has(b));
    });
    for (const path of files.slice(6)) {
      for (const b of (await client.blocks(path)).blocks) assert.equal(b.replicas.length, 3, `${path} block ${b.index}`);
    }
    // Nothing on any disk is left that no file references.
    const referenced = new Set<string>();
    for (const path of files.slice(6)) for (const b of (await client.blocks(path)).blocks) referenced.add(b.id);
    await waitFor('every disk holds only referenced blocks', async () => {
      for (let i = 0; i < 4; i++) for (const b of await cluster.blocksOnDisk(i)) if (!referenced.has(b)) return false;
      return true;
    });
  });

  it('a reader that meets a damaged replica gets the right bytes, and the replica is replaced', async () => {
    const client = cluster.client();
    const files = await writeFiles(client, '/bitrot', 1, 100_000);
    const path = [...files.keys()][0]!;
    const block = (await client.blocks(path)).blocks[0]!;
    // Damage the block on every live holder but one; whichever replica the reader tries first, it
    // meets a damaged one unless it starts with the good one, so read until a damaged one is met.
    const holders = block.replicas.filter((r) => r.alive).map((r) => cluster.storages.findIndex((s) => s.id === r.id));
    const good = holders[0]!;
    for (const i of holders.slice(1)) {
      await damageBlock(cluster.storages[i]!.dataDir, block.id, 10, Buffer.from('bitrot'));
    }
    for (let i = 0; i < 20; i++) await assertReadable(client, files);
    // The damaged replicas were reported and replaced from the good one.
    await waitFor('every replica of the block good again', async () => {
      const now = (await client.blocks(path)).blocks[0]!;
      if (now.replicas.filter((r) => r.alive).length < 3) return false;
      const channel = new BlockChannel();
      try {
        for (const r of now.replicas.filter((x) => x.alive)) {
          const got = await blockDigestOf(readBlock({ ...now, replicas: [r] }, 0, now.size, channel, undefined)).catch(() => undefined);
          if (got !== now.digest) return false;
        }
        return true;
      } finally {
        channel.close();
      }
    });
    assert.ok((await client.blocks(path)).blocks[0]!.replicas.some((r) => r.id === cluster.storages[good]!.id));
  });

  it('a new storage server takes its share of new writes', async () => {
    const client = cluster.client();
    const added = await cluster.addStorage();
    await cluster.waitForLiveStorages(5);
    const files = await writeFiles(client, '/new', 10, 100_000);
    let onNew = 0;
    for (const path of files.keys()) for (const b of (await client.blocks(path)).blocks) if (b.replicas.some((r) => r.id === added.id)) onNew++;
    assert.ok(onNew > 0, 'the new server holds some of the new blocks');
  });

  it('decommission drains a server so that it can be stopped without loss', async () => {
    const client = cluster.client();
    const files = new Map([...(await writeFiles(client, '/dec', 8, 150_000))]);
    const leaving = cluster.storages[2]!;
    const r = await cluster.cli(['decommission', leaving.id!.slice(0, 10), '--wait']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /is drained/);
    await cluster.stopStorage(2);
    await assertReadable(client, files);
    await waitFor('fsck healthy without the drained server', async () => (await client.fsck('/dec')).healthy);
    // No new block goes to a draining server.
    const more = await writeFiles(client, '/dec2', 3, 100_000);
    for (const path of more.keys()) for (const b of (await client.blocks(path)).blocks) assert.ok(!b.replicas.some((x) => x.id === leaving.id));
  });
});

describe('damaged replicas and strays', () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await Cluster.start({
      storages: 4, blockSize: 64 * 1024, nameArgs: FAST_FAILURE,
      storageArgs: ['--scrub-rate', '64M', '--scrub-interval-ms', '200'],
    });
  });
  after(async () => { await cluster?.stop(); });

  async function damage(storageIndex: number, blockId: string): Promise<void> {
    await damageBlock(cluster.storages[storageIndex]!.dataDir, blockId, 100, Buffer.from('garbage!'));
  }

  it('the scrub finds a damaged replica nobody reads, and it is replaced', async () => {
    const client = cluster.client();
    const files = await writeFiles(client, '/scrub', 1, 150_000);
    const path = [...files.keys()][0]!;
    const block = (await client.blocks(path)).blocks[1]!;
    const victim = cluster.storages.findIndex((s) => s.id === block.replicas[0]!.id);
    await damage(victim, block.id);
    // Found by the scrub: moved aside to corrupt/ (or already deleted by the name server's cleaner,
    // which also drops it once it is reported).
    const corruptDir = join(cluster.storages[victim]!.dataDir, 'corrupt');
    await waitFor('the damaged block taken out of service', async () =>
      (await readdir(corruptDir).catch(() => [])).some((f) => f.startsWith(block.id)) || !(await cluster.blocksOnDisk(victim)).has(block.id));
    await waitFor('the block back at 3 replicas', async () => (await client.blocks(path)).blocks[1]!.replicas.length === 3);
    // Each of the 3 replicas, read alone, has the right bytes (the new copy may be on the victim again, made whole).
    const now = (await client.blocks(path)).blocks[1]!;
    const channel = new BlockChannel();
    try {
      for (const replica of now.replicas) {
        const got = await sha256Of(readBlock({ ...now, replicas: [replica] }, 0, now.size, channel, undefined));
        const want = await sha256Of(readBlock(now, 0, now.size, channel, undefined));
        assert.equal(got.sha256, want.sha256, `replica on ${replica.addr}`);
        assert.equal(await blockDigestOf(readBlock({ ...now, replicas: [replica] }, 0, now.size, channel, undefined)), now.digest);
      }
    } finally {
      channel.close();
    }
    await assertReadable(client, files);
  });

  it('a stray block that no file references is removed from its server', async () => {
    const stray = 'f'.repeat(32);
    // Stored as a client with a write token would, outside of any upload.
    const res = await request(`http://127.0.0.1:${cluster.storages[3]!.port}/v1/blocks/${stray}`, {
      method: 'PUT', body: 'not part of any file', headers: { [AUTH_HEADERS.blockToken]: cluster.blockToken(stray, 'write') },
    });
    assert.equal(res.statusCode, 200);
    await res.body.dump();
    assert.ok((await cluster.blocksOnDisk(3)).has(stray));
    await waitFor('the stray block deleted', async () => !(await cluster.blocksOnDisk(3)).has(stray));
  });

  it('fsck exits non-zero for an under-replicated file and for one that lost data', async () => {
    const client = cluster.client();
    await client.writeFile('/one-copy', Buffer.alloc(1000, 3), { replication: 1 });
    const holder = (await client.blocks('/one-copy')).blocks[0]!.replicas[0]!.id;
    const index = cluster.storages.findIndex((s) => s.id === holder);
    await cluster.stopStorage(index, 'SIGKILL');
    await waitFor('the holder to be dead', async () => (await client.status()).storages.some((s) => s.id === holder && !s.alive));
    const missing = await cluster.cli(['fsck', '/one-copy']);
    assert.equal(missing.code, 12, missing.stdout);
    assert.match(missing.stdout, /missing-blocks/);
    assert.equal((await client.status()).health.missing, 1);
    await client.rm('/one-copy');
    // With 3 live servers left, a file asking for 4 replicas stays under-replicated.
    await client.writeFile('/four', Buffer.alloc(1000, 4), { replication: 4 });
    const under = await cluster.cli(['fsck', '/four']);
    assert.equal(under.code, 13, under.stdout);
    assert.match(under.stdout, /under-replicated/);
    const st = await cluster.cli(['status']);
    assert.equal(st.code, 0);
    assert.match(st.stdout, /3 alive, 1 dead/);
    assert.match(st.stdout, /under-replicated 1/);
  });
});

describe('forgetting a dead storage server', () => {
  let cluster: Cluster;
  before(async () => { cluster = await Cluster.start({ storages: 4, blockSize: 64 * 1024, nameArgs: FAST_FAILURE }); });
  after(async () => { await cluster?.stop(); });

  it('is refused while it lives or holds the only copy, forgets its replicas when forced, and takes it back if it returns', async () => {
    const client = cluster.client();
    const files = await writeFiles(client, '/kept', 6, 150_000);
    await client.writeFile('/one-copy', Buffer.alloc(1000, 7), { replication: 1 });
    const holder = (await client.blocks('/one-copy')).blocks[0]!.replicas[0]!.id;
    const index = cluster.storages.findIndex((s) => s.id === holder);

    const live = await cluster.cli(['forget', holder.slice(0, 12)]);
    assert.equal(live.code, 7, live.stdout + live.stderr);
    assert.match(live.stderr, /is alive/);
    assert.equal((await cluster.cli(['forget', 'f'.repeat(32)])).code, 2);

    await cluster.stopStorage(index, 'SIGKILL');
    await waitFor('the holder to be dead', async () => (await client.status()).storages.some((s) => s.id === holder && !s.alive));
    const onlyCopy = await cluster.cli(['forget', holder.slice(0, 12)]);
    assert.equal(onlyCopy.code, 7, onlyCopy.stdout + onlyCopy.stderr);
    assert.match(onlyCopy.stderr, /only replica/);
    assert.ok((await client.status()).storages.some((s) => s.id === holder), 'a refused forget changed the cluster');

    const forced = await cluster.cli(['forget', holder.slice(0, 12), '--force']);
    assert.equal(forced.code, 0, forced.stdout + forced.stderr);
    assert.match(forced.stdout, /is forgotten: \d+ replica\(s\).*1 block\(s\) had no other replica/);
    assert.equal((await client.status()).storages.some((s) => s.id === holder), false);
    for (const path of files.keys()) {
      for (const b of (await client.blocks(path)).blocks) assert.ok(!b.replicas.some((r) => r.id === holder), `${path}: a forgotten replica is still listed`);
    }
    // The others are made again from the remaining copies; the one-copy file has lost its data.
    await waitFor('every kept file back at 3 replicas', async () => (await cluster.cli(['fsck', '/kept'])).code === 0);
    await assertReadable(client, files);
    assert.equal((await cluster.cli(['fsck', '/one-copy'])).code, 12);

    // Its disk was not gone after all: it registers again and its copy counts once more.
    await cluster.restartStorage(index);
    await waitFor('the one-copy file whole again', async () => (await cluster.cli(['fsck', '/one-copy'])).code === 0);
    assert.equal((await sha256Of(await client.createReadStream('/one-copy'))).sha256, sha256(Buffer.alloc(1000, 7)));
  });
});
