import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { Cluster, FAST_FAILURE, startProcess, stopProcess, waitFor, type Proc } from './helpers/cluster.js';
import { randomStream, sha256Of } from './helpers/data.js';
import { createFileReadStream } from '../src/protocol/file-read-stream.js';
import { BlockChannel } from '../src/protocol/block-channel.js';
import { blockIdsOnDisk } from '../src/storage/block-store.js';

// Processes killed with SIGKILL in the middle of reads and writes, and a disk that fills up.
describe('crashes in the middle of reads and writes', () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await Cluster.start({ storages: 4, blockSize: 64 * 1024, nameArgs: [...FAST_FAILURE, '--upload-expiry-ms', '3000'] });
  });
  after(async () => { await cluster?.stop(); });

  it('kill -9 of a storage server in the middle of a multi-block read: the read completes with the right bytes', async () => {
    const client = cluster.client();
    const MiB = 1024 * 1024;
    const size = 4 * 16 * MiB;
    const src = randomStream(size, MiB);
    await client.writeFile('/read-crash', src.stream, { blockSize: 16 * MiB });
    // Read with a known replica order, and kill the server that serves block 1 one MiB into it: 15 MiB
    // of the block are still to come, more than sockets buffer, so the read is cut mid-block.
    const located = await client.blocks('/read-crash');
    const serving = located.blocks[1]!.replicas[0]!.id;
    const index = cluster.storages.findIndex((s) => s.id === serving);
    const channel = new BlockChannel();
    const failovers: string[] = [];
    let got = 0;
    let killed: Promise<void> | undefined;
    const back = await sha256Of((async function* () {
      for await (const chunk of createFileReadStream(located, channel, {}, (_b, r) => failovers.push(r.id))) {
        got += (chunk as Buffer).length;
        if (!killed && got >= 16 * MiB + MiB) killed = cluster.stopStorage(index, 'SIGKILL');
        await new Promise((r) => setTimeout(r, 2)); // a slow reader, so that the block is still in flight
        yield chunk as Buffer;
      }
    })());
    await killed;
    channel.close();
    assert.equal(back.size, size);
    assert.equal(back.sha256, src.sha256());
    assert.ok(failovers.includes(serving), 'the read went on from another replica');
  });

  it('kill -9 of a storage server in the middle of a write: the write completes on the others', async () => {
    const client = cluster.client();
    for (let i = 0; i < 4; i++) if (cluster.storages[i]!.child.exitCode !== null || cluster.storages[i]!.child.signalCode !== null) await cluster.restartStorage(i);
    await cluster.waitForLiveStorages(4);
    const victim = cluster.storages[1]!;
    const size = 40 * 64 * 1024;
    const src = randomStream(size, 16 * 1024);
    let sent = 0;
    let killed: Promise<void> | undefined;
    // A source that kills a storage server when a third of the file has gone out.
    const source = Readable.from((async function* () {
      for await (const chunk of src.stream) {
        sent += (chunk as Buffer).length;
        if (!killed && sent >= size / 3) killed = cluster.stopStorage(1, 'SIGKILL');
        yield chunk as Buffer;
      }
    })());
    const stat = await client.writeFile('/write-crash', source);
    await killed;
    assert.equal(stat.size, size);
    assert.equal((await sha256Of(await client.createReadStream('/write-crash'))).sha256, src.sha256());
    // Blocks written after the kill are not on the dead server; every block has 3 replicas in the end.
    await waitFor('every block at 3 live replicas', async () => {
      for (const b of (await client.blocks('/write-crash')).blocks) {
        if (b.replicas.filter((r) => r.alive && r.id !== victim.id).length < 3) return false;
      }
      return true;
    });
  });

  it('kill -9 of the name server during a burst of writes: committed files intact, uncommitted gone and their blocks cleaned', async () => {
    await cluster.restartStorage(1);
    await cluster.waitForLiveStorages(4);
    const client = cluster.client();
    await client.mkdir('/burst');
    const committed = new Map<string, string>();
    let stop = false;
    const writers = Array.from({ length: 4 }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        const src = randomStream(300 * 1024, 16 * 1024);
        try {
          await client.writeFile(`/burst/w${w}-${i}`, src.stream);
          committed.set(`/burst/w${w}-${i}`, src.sha256());
        } catch {
          return;
        }
      }
    });
    await waitFor('some committed files', () => committed.size >= 6);
    await cluster.restartName('SIGKILL');
    stop = true;
    await Promise.all(writers);
    // The failed writes left no request open: a block upload cut off mid-way is aborted, not left to time out.
    await Promise.race([client.close(), new Promise((_, fail) => setTimeout(() => fail(new Error('a failed write left a request open')), 30_000).unref())]);
    await cluster.waitForLiveStorages(4);
    const after = cluster.client();
    const listed = new Set((await after.readdir('/burst')).map((e) => e.path));
    for (const [path, sha] of committed) {
      assert.ok(listed.has(path), `${path} was acknowledged`);
      assert.equal((await sha256Of(await after.createReadStream(path))).sha256, sha);
    }
    // Once the abandoned uploads expire, no disk holds a block that no file references.
    const referenced = new Set<string>();
    const walk = async (dir: string): Promise<void> => {
      for (const e of await after.readdir(dir)) {
        if (e.type === 'dir') await walk(e.path);
        else for (const b of (await after.blocks(e.path)).blocks) referenced.add(b.id);
      }
    };
    await walk('/');
    await waitFor('only referenced blocks on every disk', async () => {
      for (let i = 0; i < 4; i++) for (const b of await cluster.blocksOnDisk(i)) if (!referenced.has(b)) return false;
      return true;
    }, 30_000);
  });
});

describe('a full disk', () => {
  let cluster: Cluster;
  let small: Proc | undefined;
  let mount: string;
  before(async () => {
    cluster = await Cluster.start({ storages: 3, blockSize: 64 * 1024, replication: 3, nameArgs: FAST_FAILURE });
    // A fourth storage server on a 1 MiB file system of its own.
    mount = join(cluster.dataDir, 'tiny');
    mkdirSync(mount, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mount]);
    small = await startProcess(['storage', '--name-server', cluster.url, '--secret-file', cluster.secretFile, '--host', '127.0.0.1', '--port', '0', '--data-dir', mount,
      '--heartbeat-ms', '500', '--scrub-rate', '0']);
    await cluster.waitForLiveStorages(4);
  });
  after(async () => {
    if (small) await stopProcess(small);
    try {
      execFileSync('umount', [mount]);
    } catch {
      // not mounted
    }
    rmSync(mount, { recursive: true, force: true });
    await cluster?.stop();
  });

  it('writes go to servers with room, and the full one keeps no half-written block', async () => {
    const client = cluster.client();
    const files = new Map<string, string>();
    for (let i = 0; i < 6; i++) {
      const src = randomStream(20 * 64 * 1024, 64 * 1024);
      await client.writeFile(`/full-${i}`, src.stream);
      files.set(`/full-${i}`, src.sha256());
    }
    for (const [path, sha] of files) {
      assert.equal((await sha256Of(await client.createReadStream(path))).sha256, sha);
      for (const b of (await client.blocks(path)).blocks) assert.equal(b.replicas.length, 3);
    }
    // Whatever the small server holds is whole blocks that files reference; its tmp dir is empty.
    const { readdir } = await import('node:fs/promises');
    assert.deepEqual(await readdir(join(mount, 'tmp')), []);
    assert.ok(blockIdsOnDisk(mount).size > 0, 'the small server took blocks until it was full');
  });
});
