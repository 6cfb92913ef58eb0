import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect } from '../src/client/index.js';
import { SdfsError } from '../src/protocol/errors.js';
import { Cluster, FAST_FAILURE, startProcess, stopProcess, waitFor, type Proc } from './helpers/cluster.js';
import { randomStream, sha256, sha256Of } from './helpers/data.js';

/** Builds test/helpers/fail-fsync.c into `dir`: an LD_PRELOAD library that fails fsyncs on demand. */
function buildFailFsync(dir: string): string {
  const shim = join(dir, 'fail-fsync.so');
  execFileSync('cc', ['-shared', '-fPIC', '-O2', '-o', shim, resolve(import.meta.dirname, 'helpers/fail-fsync.c'), '-ldl']);
  return shim;
}

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
      const { BlockChannel } = await import('../src/protocol/block-channel.js');
      const channel = new BlockChannel();
      const back = await sha256Of(createFileReadStream(only, channel));
      channel.close();
      assert.equal(back.sha256, src.sha256(), `replica ${replicaIndex}`);
    }
  });

  it('a name server whose database log cannot be synced refuses changes, exits, and restarts with every acknowledged one', async () => {
    // The disk is made to fail with an LD_PRELOAD library (test/helpers/fail-fsync.c): fsyncs of the
    // WAL fail with EIO while a trigger file exists.
    const dir = await mkdtemp(join(tmpdir(), 'sdfs-failsync-'));
    const procs: Proc[] = [];
    const clients: { close(): Promise<void> }[] = [];
    try {
      const shim = buildFailFsync(dir);
      const trigger = join(dir, 'fail-now');
      const args = ['name', '--host', '127.0.0.1', '--port', '0', '--data-dir', join(dir, 'name'), '--no-broadcast'];
      const name = await startProcess(args, { LD_PRELOAD: shim, SDFS_FAIL_FSYNC_WHILE: trigger });
      procs.push(name);
      let stderr = '';
      name.child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
      const exited = once(name.child, 'exit') as Promise<[number | null, string | null]>;
      const client = connect(`http://127.0.0.1:${name.port}`);
      clients.push(client);

      const acknowledged: string[] = [];
      for (let i = 0; i < 20; i++) {
        await client.mkdir(`/kept${i}`);
        acknowledged.push(`/kept${i}`);
      }
      await writeFile(trigger, '');
      // Concurrent changes: every one is refused, none acknowledged.
      const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => client.mkdir(`/lost${i}`)));
      for (const r of results) {
        assert.equal(r.status, 'rejected', 'a change was acknowledged although its fsync failed');
        assert.ok(r.reason instanceof SdfsError, String(r.reason));
        assert.ok(['EUNAVAILABLE', 'EPROTO'].includes(r.reason.code) || /ECONNRE|socket|closed/i.test(r.reason.message), r.reason.message);
      }
      assert.ok(results.some((r) => r.status === 'rejected' && (r.reason as SdfsError).code === 'EUNAVAILABLE'),
        'no change was refused with EUNAVAILABLE');
      const [code] = await exited;
      assert.equal(code, 10, `the name server exited with ${code}, not EUNAVAILABLE's 10:\n${stderr}`);
      assert.match(stderr, /fsync of the database log failed.*EIO/);

      // The disk works again: a restart recovers every acknowledged change and takes new ones.
      await rm(trigger);
      const again = await startProcess(args);
      procs.push(again);
      const after = connect(`http://127.0.0.1:${again.port}`);
      clients.push(after);
      for (const path of acknowledged) assert.equal(await after.exists(path), true, `${path} was acknowledged and is gone`);
      await after.mkdir('/after');
      assert.equal(await after.exists('/after'), true);
    } finally {
      await Promise.all(clients.map((c) => c.close().catch(() => {})));
      await Promise.all(procs.map((p) => stopProcess(p)));
      await rm(dir, { recursive: true, force: true });
    }
  });
  it('a storage server that cannot sync a block keeps neither the block nor its temporary file, and the write goes on without it', async () => {
    // Two servers, two replicas: every block is sent to the failing one too. Blocks of one write
    // (4 KiB files, written whole at commit) and streamed ones (full 64 KiB blocks) both.
    const dir = await mkdtemp(join(tmpdir(), 'sdfs-failblock-'));
    const c = await Cluster.start({ storages: 1, replication: 2, nameArgs: FAST_FAILURE });
    try {
      const trigger = join(dir, 'fail-now');
      await writeFile(trigger, '');
      const failingDir = join(await realpath(c.dataDir), 'storage-2');
      // Its block files (written under tmp/) and its block log's segments.
      const under = `${join(failingDir, 'tmp')}/:${join(failingDir, 'log')}/`;
      await c.addStorage({ LD_PRELOAD: buildFailFsync(dir), SDFS_FAIL_FSYNC_WHILE: trigger, SDFS_FAIL_FSYNC_UNDER: under });
      await c.waitForLiveStorages(2);
      const failingId = c.storages[1]!.id;
      const client = c.client();
      const files = new Map<string, string>();
      for (let i = 0; i < 12; i++) {
        const data = randomBytes(i % 2 === 0 ? 4096 : 150_000);
        await client.writeFile(`/f${i}`, data);
        files.set(`/f${i}`, sha256(data));
      }
      for (const [path, sum] of files) {
        assert.equal((await sha256Of(await client.createReadStream(path))).sha256, sum, path);
        for (const b of (await client.blocks(path)).blocks) {
          assert.ok(!b.replicas.some((r) => r.id === failingId), `${path}: a replica on the server whose fsync failed`);
        }
      }
      // The name server keeps asking it for copies, which fail too; each attempt cleans up after itself
      // (a copy being written may be seen in the log until its fdatasync fails and it is cut off).
      await waitFor('no block and no temporary block file left', async () =>
        (await c.blocksOnDisk(1)).size === 0 && (await readdir(join(failingDir, 'tmp'))).length === 0);

      // The disk works again: the missing replicas are made there.
      await rm(trigger);
      await waitFor('two replicas of every block', async () => {
        for (const path of files.keys()) {
          if ((await client.blocks(path)).blocks.some((b) => b.replicas.length < 2)) return false;
        }
        return true;
      });
      assert.ok((await c.blocksOnDisk(1)).size > 0);
    } finally {
      await c.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
