import type { Dispatcher } from 'undici';
import { addrToUrl, callJson } from '../protocol/http.js';
import type { Db } from './db.js';
import type { StorageRegistry } from './storages.js';
import type { Committer } from './committer.js';
import type { Uploads } from './uploads.js';

/**
 * Background cleaning: removes replicas that no file references any more from their storage servers
 * (a row stays queued until its storage server confirms, so a dead server is cleaned when it returns),
 * and expires uploads abandoned by their clients.
 */
export class GarbageCollector {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly db: Db,
    private readonly storages: StorageRegistry,
    private readonly uploads: Uploads,
    private readonly committer: Committer,
    private readonly opts: { intervalMs: number; uploadExpiryMs: number; dispatcher: Dispatcher },
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      if (!this.running) {
        this.running = this.runOnce()
          .catch((err: unknown) => console.error(`cleaner: ${(err as Error).message}`))
          .finally(() => { this.running = undefined; });
      }
    }, this.opts.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  async runOnce(): Promise<void> {
    await this.uploads.expire(this.opts.uploadExpiryMs);
    // Only rows of live servers: those of dead ones wait, without holding up the others.
    const live = JSON.stringify(this.storages.live().map((s) => s.id));
    const rows = this.db.prepare<[string], { block: string; storage: string }>(
      'SELECT block, storage FROM garbage WHERE storage IN (SELECT value FROM json_each(?)) LIMIT 1000').all(live);
    const forget = this.db.prepare<[string, string]>('DELETE FROM garbage WHERE block = ? AND storage = ?');
    const stillWanted = this.db.prepare<[string, string], { one: number }>('SELECT 1 AS one FROM replicas WHERE block = ? AND storage = ?');
    const done: { block: string; storage: string }[] = [];
    await Promise.all(rows.map(async ({ block, storage }) => {
      // A replica queued here may be wanted again since (a re-replication copied the block back): keep it.
      if (stillWanted.get(block, storage)) return void done.push({ block, storage });
      const s = this.storages.get(storage);
      if (!s?.alive) return;
      try {
        await callJson(addrToUrl(s.addr), `/v1/blocks/${block}`, { method: 'DELETE', dispatcher: this.opts.dispatcher });
        done.push({ block, storage });
      } catch {
        // Kept queued; tried again on the next round.
      }
    }));
    if (done.length > 0) await this.committer.run(() => done.forEach(({ block, storage }) => forget.run(block, storage)));
  }
}
