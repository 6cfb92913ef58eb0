import type { Db, WalSync } from './db.js';

interface Pending {
  fn: () => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/**
 * Group commit. Every change to the namespace goes through `run`: the changes that arrive in one turn
 * of the event loop are applied together, each in its own savepoint (so one that fails does not undo
 * the others), in one transaction; then the WAL is fsynced on the thread pool while the event loop
 * serves on (and later batches commit, and share the next fsync). A caller's promise settles only
 * after its batch is durable, so an acknowledged change always survives a crash. Other requests may
 * see a change a few milliseconds before it is durable, never one that is acknowledged and not.
 */
export class Committer {
  private queue: Pending[] = [];
  private scheduled = false;

  constructor(private readonly db: Db, private readonly wal: WalSync) {}

  run<T>(fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        // After the I/O of this turn of the event loop, so that concurrent requests join the batch.
        setImmediate(() => this.flush());
      }
    });
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
    });
  }
}
