import type { Dispatcher } from 'undici';
import { addrToUrl, callJson } from '../protocol/http.js';
import type { FetchBlockRequest, StorageInfo } from '../protocol/messages.js';
import type { BlockMap, BlockState } from './block-map.js';
import type { StorageRegistry } from './storages.js';

export interface ReplicatorOptions {
  /** How often liveness is checked, and the block map scanned when something changed, ms. */
  intervalMs: number;
  /** A full scan happens at least this often even if nothing seemed to change, ms. */
  fullScanMs: number;
  /** Block copies in flight at once, in the whole cluster. */
  maxCopies: number;
  dispatcher: Dispatcher;
}

/**
 * Keeps every block of every file at its replication: a block with too few live replicas is copied
 * from a live holder to another storage server (the target pulls it and verifies it), and a block
 * with too many loses the extras. Replicas on dead or draining servers do not count, so a dead
 * server's blocks are re-made elsewhere and a draining one is emptied.
 */
export class Replicator {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private dirty = true;
  private lastScan = 0;
  private readonly inFlight = new Set<string>();

  constructor(
    private readonly map: BlockMap,
    private readonly storages: StorageRegistry,
    private readonly opts: ReplicatorOptions,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      this.storages.checkLiveness();
      const due = this.dirty || Date.now() - this.lastScan >= this.opts.fullScanMs;
      if (due && !this.running) this.running = this.scan().finally(() => { this.running = undefined; });
    }, this.opts.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  /** Something changed that may leave blocks under- or over-replicated: scan soon. */
  markDirty(): void {
    this.dirty = true;
  }

  get copiesInFlight(): number {
    return this.inFlight.size;
  }

  private async scan(): Promise<void> {
    this.dirty = false;
    this.lastScan = Date.now();
    const usable = this.storages.usable();
    const usableIds = new Set(usable.map((s) => s.id));
    const byId = new Map(this.storages.all().map((s) => [s.id, s]));
    const copies: Promise<void>[] = [];
    for (const block of this.map.states()) {
      const live = block.holders.filter((h) => usableIds.has(h));
      const want = Math.min(block.want, usable.length);
      if (live.length > block.want) this.trim(block, live, byId);
      else if (live.length < want && !this.inFlight.has(block.id)) {
        if (this.inFlight.size >= this.opts.maxCopies) {
          this.dirty = true; // more to do after these copies
          continue;
        }
        const copy = this.copy(block, byId);
        if (copy) copies.push(copy);
      }
    }
    await Promise.all(copies);
  }

  /** Drops the replicas beyond what the block's files ask for, from the fullest servers first. */
  private trim(block: BlockState, live: string[], byId: Map<string, StorageInfo>): void {
    const fullest = [...live].sort((a, b) => (byId.get(a)?.free ?? 0) - (byId.get(b)?.free ?? 0));
    for (const storage of fullest.slice(0, live.length - block.want)) this.map.removeReplica(block.id, storage);
  }

  private copy(block: BlockState, byId: Map<string, StorageInfo>): Promise<void> | undefined {
    // Any live holder can be the source, a draining one included: that is how a drain empties it.
    const sources = block.holders.map((h) => byId.get(h)).filter((s): s is StorageInfo => s?.alive === true);
    if (sources.length === 0) return undefined;
    let target;
    try {
      target = this.storages.choose(1, block.size, block.holders)[0];
    } catch {
      return undefined; // no server to copy to; the block stays under-replicated and counted so
    }
    if (!target) return undefined;
    const source = sources[Math.floor(Math.random() * sources.length)]!;
    this.inFlight.add(block.id);
    this.storages.reserve([target.id], block.size);
    const body: FetchBlockRequest = { source: source.addr, size: block.size, sha256: block.sha256 };
    return callJson(addrToUrl(target.addr), `/v1/blocks/${block.id}/fetch`, { body, dispatcher: this.opts.dispatcher })
      .then(() => this.map.addReplica(block.id, target.id))
      .catch((err: unknown) => {
        console.error(`replicator: copying block ${block.id} from ${source.addr} to ${target.addr} failed: ${(err as Error).message}`);
      })
      .finally(() => {
        this.inFlight.delete(block.id);
        this.dirty = true; // look again: the block may need another copy, or a retry
      });
  }
}
