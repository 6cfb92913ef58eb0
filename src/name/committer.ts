import type { Db, WalSync } from './db.js';

interface Pending {
  fn: () => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/**
 * Group commit. Every change to the namespace goes through `run`. The changes queued while the last
 * batch's fsync runs (on the thread pool, while the event loop serves on) form the next batch: they
 * are applied together, each in its own savepoint (so one that fails does not undo the others), in
 * one transaction, made durable by one fsync of the WAL. So a busy server writes few large
 * transactions, and an idle one commits a change in the turn of the event loop it arrived in. A
 * caller's promise settles only after its batch is durable, so an acknowledged change always
 * survives a crash. Other requests may see a change a few milliseconds before it is durable, never
 * one that is acknowledged and not.
 */
export class Committer {
  private queue: Pending[] = [];
  private scheduled = false;
  private syncing = false;

  constructor(private readonly db: Db, private readonly wal: WalSync) {}

  run<T>(fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.syncing || this.queue.length === 0) return;
    this.scheduled = true;
    // After the I/O of this turn of the event loop, so that concurrent requests join the batch.
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    const results: ({ ok: true; value: unknown } | { ok: false; error: unknown })[] = [];
    try {
      this.db.transaction(() => {
        for (const item of batch) {
          try {
            results.push({ ok: true, value: this.db.transaction(item.fn)() });
          } catch (error) {
            results.push({ ok: false, error });
          }
        }
      })();
    } catch (error) {
      // The commit itself failed (disk full, I/O error): nothing of the batch is durable.
      for (const item of batch) item.reject(error);
      return;
    }
    this.syncing = true;
    this.wal.sync().then(() => {
      batch.forEach((item, i) => {
        const r = results[i]!;
        if (r.ok) item.resolve(r.value);
        else item.reject(r.error);
      });
    }, (error: unknown) => {
      // The disk refused to make the batch durable: no caller of it may be told it was.
      console.error(`name server: fsync of the database log failed: ${(error as Error).message}`);
      for (const item of batch) item.reject(error);
    }).finally(() => {
      this.syncing = false;
      this.schedule();
    });
  }
}
