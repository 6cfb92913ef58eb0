import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openDb, type Db } from '../src/name/db.js';
import { StorageRegistry } from '../src/name/storages.js';
import type { ClusterResponse } from '../src/protocol/messages.js';
import { Cluster } from './helpers/cluster.js';

// The cluster's capacity and free space: storage servers of one host whose data dirs are on one file
// system (as under `sdfs up`) share its space, which must be counted once, not once per server.

describe('the cluster\'s space', () => {
  let dir: string;
  let db: Db;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sdfs-space-'));
    db = openDb(dir);
  });
  after(async () => {
    db?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('counts a file system shared by servers of one host once, and each server\'s blocks', () => {
    const registry = new StorageRegistry(db, 60_000);
    const server = (host: string, port: number, capacity: number, free: number, used: number, fsId?: string): void => {
      registry.register({ id: randomBytes(16).toString('hex'), host, port, capacity, free, used, blocks: 1, ...(fsId ? { fsId } : {}) }, host);
    };
    server('10.0.0.1', 3501, 1000, 400, 10, 'x'); // two servers on one disk of one host
    server('10.0.0.1', 3502, 1000, 380, 20, 'x'); // (measured a moment later: less free)
    server('10.0.0.1', 3503, 500, 200, 30, 'y'); // another disk of that host
    server('10.0.0.2', 3501, 1000, 900, 40, 'x'); // the same device number on another host: another disk
    server('10.0.0.3', 3501, 100, 50, 50); // a server that does not say: its own
    assert.deepEqual(registry.liveTotals(), { capacity: 1000 + 500 + 1000 + 100, free: 380 + 200 + 900 + 50, used: 150 });
  });

  it('a cluster of three storage servers on this machine\'s one file system reports that file system\'s space once', async () => {
    const cluster = await Cluster.start({ storages: 3, replication: 3 });
    try {
      const c: ClusterResponse = await cluster.client().cluster();
      assert.equal(c.storages.length, 3);
      assert.equal(new Set(c.storages.map((s) => s.capacity)).size, 1, 'one file system, one capacity');
      assert.equal(c.capacity, c.storages[0]!.capacity);
      assert.equal(c.free, Math.min(...c.storages.map((s) => s.free)));
    } finally {
      await cluster.stop();
    }
  });
});
