import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect } from '../src/client/index.js';
import { SdfsError } from '../src/protocol/errors.js';
import { Cluster, startProcess, stopProcess, type Proc } from './helpers/cluster.js';
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

  it('a name server whose database log cannot be synced refuses changes, exits, and restarts with every acknowledged one', async () => {
    // The disk is made to fail with an LD_PRELOAD library (test/helpers/fail-fsync.c): fsyncs of the
    // WAL fail with EIO while a trigger file exists.
    const dir = await mkdtemp(join(tmpdir(), 'sdfs-failsync-'));
    const procs: Proc[] = [];
    const clients: { close(): Promise<void> }[] = [];
    try {
      const shim = join(dir, 'fail-fsync.so');
      execFileSync('cc', ['-shared', '-fPIC', '-O2', '-o', shim, resolve(import.meta.dirname, 'helpers/fail-fsync.c'), '-ldl']);
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
});
