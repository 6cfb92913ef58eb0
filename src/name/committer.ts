import { SdfsError } from '../protocol/errors.js';
import { savepoint, type Atomic, type Db } from './db.js';

/** What makes the committed changes durable: `WalSync` (an fdatasync of the WAL). */
export interface Syncer {
  sync(): Promise<void>;
}

interface Pending {
  fn: () => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/** A change applied to the database, waiting for the fsync that makes it durable. */
interface Applied {
  item: Pending;
  result: { ok: true; value: unknown } | { ok: false; error: unknown };
}

/**
 * Group commit. Every change to the namespace goes through `run`. The changes that arrive in one turn
 * of the event loop are applied together, each in its own savepoint (so one that fails does not undo
 * the others), in one transaction. One fsync of the WAL at a time runs on the thread pool; the
 * transactions applied while it runs wait for the next one, which makes them all durable at once.
 * So a busy server syncs many changes per fsync and never leaves the disk idle, and an idle one
 * commits a change in the turn of the event loop it arrived in. A caller's promise settles only
 * after an fsync that began after its change was written, so an acknowledged change always survives
 * a crash. Other requests may see a change a few milliseconds before it is durable, never one that
 * is acknowledged and not.
 *
 * A failed fsync stops the committer for good (fail-stop, as PostgreSQL does since "fsyncgate"): the
 * kernel may have dropped the dirty pages it could not write, so a later fsync that succeeds proves
 * nothing about them, and SQLite's recovery stops at the first missing frame, which would silently
 * drop every change after it. From then on every change is refused (EUNAVAILABLE) and `failed`
 * settles with the cause; the process is to exit and be restarted, and recovers what was durable.
 */
export class Committer {
  private queue: Pending[] = [];
  private unsynced: Applied[] = [];
  private scheduled = false;
  private syncing = false;
  private failure: SdfsError | undefined;
  private onFailure!: (cause: SdfsError) => void;
  /** Settles (never rejects) with the reason once the committer takes no more changes. */
  readonly failed = new Promise<SdfsError>((settle) => { this.onFailure = settle; });

  private readonly savepoint: Atomic;

  constructor(db: Db, private readonly wal: Syncer) {
    this.savepoint = savepoint(db);
  }

  run<T>(fn: () => T): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      if (this.scheduled) return;
      this.scheduled = true;
      // After the I/O of this turn of the event loop, so that concurrent requests join the batch.
      setImmediate(() => this.apply());
    });
  }

  private apply(): void {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    if (this.failure) {
      for (const item of batch) item.reject(this.failure);
      return;
    }
    const applied: Applied[] = [];
    try {
      this.savepoint(() => {
        for (const item of batch) {
          try {
            applied.push({ item, result: { ok: true, value: this.savepoint(item.fn) } });
          } catch (error) {
            applied.push({ item, result: { ok: false, error } });
          }
        }
      });
    } catch (error) {
      // The commit itself failed (disk full, I/O error): nothing of the batch is durable.
      for (const item of batch) item.reject(error);
      return;
    }
    this.unsynced.push(...applied);
    if (!this.syncing) this.sync();
  }

  private sync(): void {
    const group = this.unsynced;
    this.unsynced = [];
    this.syncing = true;
    this.wal.sync().then(() => {
      for (const { item, result } of group) {
        if (result.ok) item.resolve(result.value);
        else item.reject(result.error);
      }
    }, (error: unknown) => {
      // No caller of this group, nor of any change applied after it, may be told it is durable.
      this.stop(error);
      for (const { item } of group) item.reject(this.failure);
    }).finally(() => {
      this.syncing = false;
      if (this.failure) {
        for (const { item } of this.unsynced) item.reject(this.failure);
        this.unsynced = [];
      } else if (this.unsynced.length > 0) this.sync();
    });
  }

  private stop(error: unknown): void {
    if (this.failure) return;
    const cause = (error as Error).message ?? String(error);
    console.error(`name server: fsync of the database log failed: ${cause}; no more changes are taken`);
    this.failure = new SdfsError('EUNAVAILABLE',
      `the name server takes no more changes: writing its database log to disk failed (${cause}); restart it`, { cause: error });
    this.onFailure(this.failure);
  }
}
