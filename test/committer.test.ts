import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Committer, type Syncer } from '../src/name/committer.js';
import { openDb, type Db } from '../src/name/db.js';
import { Namespace } from '../src/name/namespace.js';
import { SdfsError } from '../src/protocol/errors.js';

/**
 * The group commit over a real database, with the one thing a test cannot make fail on demand, the
 * fsync of the WAL, in the test's hands: each sync waits until the test settles it.
 */
class HeldSyncer implements Syncer {
  calls: { resolve: () => void; reject: (e: Error) => void }[] = [];
  /** Later syncs succeed at once (a disk that fails once and then works again). */
  healed = false;

  sync(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.calls.push({ resolve, reject });
      if (this.healed) resolve();
    });
  }

  async next(): Promise<{ resolve: () => void; reject: (e: Error) => void }> {
    const n = this.calls.length;
    for (let i = 0; i < 200 && this.calls.length === n; i++) await new Promise((r) => setTimeout(r, 5));
    assert.ok(this.calls.length > n, 'the committer started no fsync');
    return this.calls[this.calls.length - 1]!;
  }
}

function settled<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  return p.then((value) => ({ ok: true as const, value }), (error: unknown) => ({ ok: false as const, error }));
}

describe('group commit', () => {
  let dir: string;
  let db: Db;
  let ns: Namespace;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sdfs-commit-'));
    db = openDb(dir);
    ns = new Namespace(db);
  });
  after(async () => {
    db.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('a change that throws half-way is undone whole, and the others of its batch stay', async () => {
    const wal = new HeldSyncer();
    wal.healed = true;
    const committer = new Committer(db, wal);
    // One batch (same turn of the event loop): the first change makes a directory, then fails.
    const [failed, kept] = await Promise.all([
      settled(committer.run(() => {
        ns.mkdir('/half/way', true);
        throw new SdfsError('EINVAL', 'and then it failed');
      })),
      settled(committer.run(() => ns.mkdir('/whole'))),
    ]);
    assert.equal(failed.ok, false);
    assert.equal(kept.ok, true);
    assert.equal(wal.calls.length, 1, 'the two changes were not one batch');
    assert.equal(ns.lookup('/half'), undefined, 'a failed change left a directory behind');
    assert.equal(ns.lookup('/whole')?.type, 'dir');
  });

  it('answers a change only after its fsync, and one failed fsync stops every later change', async () => {
    const wal = new HeldSyncer();
    const committer = new Committer(db, wal);
    let failedWith: SdfsError | undefined;
    void committer.failed.then((e) => { failedWith = e; });

    // Durable: answered once its fsync succeeds, not before.
    let answered = false;
    const first = committer.run(() => ns.mkdir('/a')).then((v) => { answered = true; return v; });
    const sync1 = await wal.next();
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(answered, false, 'a change was answered before its fsync ended');
    sync1.resolve();
    assert.equal((await first).path, '/a');

    // A change whose fsync fails is refused, and so is one applied while that fsync ran: the next
    // fsync's success would say nothing about the pages the failed one lost.
    const doomed = settled(committer.run(() => ns.mkdir('/b')));
    const sync2 = await wal.next();
    const during = settled(committer.run(() => ns.mkdir('/c')));
    await new Promise((r) => setImmediate(r));
    wal.healed = true;
    sync2.reject(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
    for (const r of [await doomed, await during]) {
      assert.equal(r.ok, false, 'a change was acknowledged after a failed fsync');
      assert.ok(r.error instanceof SdfsError);
      assert.equal(r.error.code, 'EUNAVAILABLE');
      assert.match(r.error.message, /EIO/);
    }
    assert.equal(wal.calls.length, 2, 'the committer synced again after a failed fsync');

    // From then on nothing is taken, and the server learns why.
    await new Promise((r) => setImmediate(r));
    assert.equal(failedWith?.code, 'EUNAVAILABLE');
    const later = await settled(committer.run(() => ns.mkdir('/d')));
    assert.equal(later.ok, false);
    assert.equal((later as { error: SdfsError }).error.code, 'EUNAVAILABLE');
    assert.equal(ns.lookup('/d'), undefined, 'a refused change was applied');
    assert.equal(wal.calls.length, 2);
  });
});
