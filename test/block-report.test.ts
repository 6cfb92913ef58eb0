import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readFileSync } from 'node:fs';
import { request } from 'undici';
import { BlockMap, reportSlices } from '../src/name/block-map.js';
import { openDb, type Db } from '../src/name/db.js';
import { AUTH_HEADERS, deriveKeys, signRequest } from '../src/protocol/auth.js';
import type { HeartbeatResponse } from '../src/protocol/messages.js';
import { newBlockId } from '../src/protocol/blocks.js';
import { Cluster } from './helpers/cluster.js';

const STORAGE = 'a'.repeat(32);
const newId = (): string => randomBytes(16).toString('hex');

/**
 * A database where STORAGE holds `known` blocks, all of them old, and a report of what STORAGE has
 * on disk: most of those, some it lost, some that the map did not know it held, strays, and blocks
 * of uploads in progress.
 */
function fill(db: Db, known: string[], notHeld: string[]): void {
  const block = db.prepare('INSERT INTO blocks (id, size, digest, created) VALUES (?, 1, ?, 0)');
  const replica = db.prepare('INSERT INTO replicas (block, storage) VALUES (?, ?)');
  db.transaction(() => {
    for (const id of known) {
      block.run(id, `xxh3:${'0'.repeat(16)}`);
      if (!notHeld.includes(id)) replica.run(id, STORAGE);
    }
  })();
}

function tables(db: Db): { replicas: string[]; garbage: string[] } {
  return {
    replicas: db.prepare('SELECT block FROM replicas WHERE storage = ? ORDER BY block').pluck().all(STORAGE) as string[],
    garbage: db.prepare('SELECT block FROM garbage WHERE storage = ? ORDER BY block').pluck().all(STORAGE) as string[],
  };
}

describe('block reports', () => {
  let dir: string;
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'sdfs-report-')); });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  it('cuts the id space into contiguous slices that hold every listed id once, random or time-ordered ids', () => {
    const cases: [string, string[]][] = [10, 20_000, 300_000].map((n) => [`${n} random`, Array.from({ length: n }, newId)]);
    // Ids of blocks written since 2026-11-29 share their first digits; one listed twice too.
    const ordered = Array.from({ length: 100_000 }, newBlockId);
    cases.push(['time-ordered', [...ordered, ordered[8191]!, ...Array.from({ length: 5000 }, newId)].reverse()]);
    for (const [what, ids] of cases) {
      const n = ids.length;
      const slices = reportSlices([...ids], 8192);
      if (what.endsWith('random')) assert.equal(slices.length, n <= 8192 ? 1 : n <= 16 * 8192 ? 16 : 256);
      else assert.ok(slices.length >= Math.ceil(n / 8192), what);
      for (const s of slices) assert.ok(s.ids.length <= 8192 + 1, `${what}: a slice of ${s.ids.length} ids`);
      assert.equal(slices[0]!.range.from, '');
      assert.equal(slices.at(-1)!.range.to, 'g');
      slices.forEach((s, i) => { if (i > 0) assert.equal(s.range.from, slices[i - 1]!.range.to); });
      let listed = 0;
      for (const s of slices) {
        for (const id of s.ids) assert.ok(id >= s.range.from && id < s.range.to, `${id} outside its slice`);
        listed += s.ids.length;
      }
      assert.equal(listed, n, what);
    }
  });

  it('applied a slice at a time, a long report finds what applied whole finds, random or time-ordered ids', async () => {
  for (const make of [newId, newBlockId]) {
    const known = Array.from({ length: 40_000 }, make);
    const lost = known.slice(0, 100); // held by the map, not on the disk
    const found = known.slice(100, 130); // on the disk, not known to be there
    const strays = Array.from({ length: 50 }, make);
    const pending = Array.from({ length: 10 }, make);
    const report = [...known.slice(100), ...strays, ...pending];
    const results = [];
    for (const sliced of [false, true]) {
      const dbDir = join(dir, `${make.name}-${sliced ? 'sliced' : 'whole'}`);
      await mkdir(dbDir, { recursive: true });
      const db = openDb(dbDir);
      fill(db, known, found);
      const map = new BlockMap(db);
      const total = { added: 0, strays: 0, lost: 0 };
      const slices = sliced ? reportSlices(report, 8192) : [{ range: undefined, ids: report }];
      if (sliced) assert.equal(slices.length, make === newId ? 16 : 15 + 5);
      for (const slice of slices) {
        const r = map.applyReport(STORAGE, slice.ids, new Set(pending), 60_000, slice.range);
        total.added += r.added;
        total.strays += r.strays;
        total.lost += r.lost;
      }
      assert.deepEqual(total, { added: found.length, strays: strays.length, lost: lost.length }, sliced ? 'sliced' : 'whole');
      results.push(tables(db));
      db.close();
    }
    assert.deepEqual(results[1], results[0]);
    assert.deepEqual(results[0]!.replicas, known.slice(100).sort());
    assert.deepEqual(results[0]!.garbage, [...strays].sort());
  }
  });
});

describe('the block report interval a storage server is told', () => {
  let cluster: Cluster;
  before(async () => { cluster = await Cluster.start({ storages: 1, replication: 1, nameArgs: ['--block-report-ms', '60000'] }); });
  after(async () => { await cluster?.stop(); });

  async function heartbeat(blocks: number): Promise<HeartbeatResponse> {
    const keys = deriveKeys(readFileSync(cluster.secretFile, 'utf8').trim());
    const id = cluster.storages[0]!.id!;
    const path = '/api/v1/storages/heartbeat';
    const res = await request(`${cluster.url}${path}`, {
      method: 'POST', body: JSON.stringify({ id, port: cluster.storages[0]!.port, capacity: 1 << 30, free: 1 << 29, used: 0, blocks }),
      headers: { 'content-type': 'application/json', [AUTH_HEADERS.cluster]: signRequest(keys, 'POST', path) },
    });
    assert.equal(res.statusCode, 200);
    return (await res.body.json()) as HeartbeatResponse;
  }

  it('is the configured one up to 100,000 blocks, and grows with the blocks beyond (a full report costs the name server per block)', async () => {
    assert.equal((await heartbeat(0)).blockReportMs, 60_000);
    assert.equal((await heartbeat(100_000)).blockReportMs, 60_000);
    assert.equal((await heartbeat(1_000_000)).blockReportMs, 600_000);
    assert.equal((await heartbeat(5_000_000)).blockReportMs, 3_000_000);
  });
});
