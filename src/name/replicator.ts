import type { Dispatcher } from 'undici';
import { addrToUrl, callJson } from '../protocol/http.js';
import type { FetchBlockRequest, StorageInfo, StorageRef } from '../protocol/messages.js';
import type { BlockMap, BlockState } from './block-map.js';
import type { Committer } from './committer.js';
import type { StorageRegistry } from './storages.js';

export interface ReplicatorOptions {
  /** How often liveness is checked, and the block map scanned when something changed, ms. */
  intervalMs: number;
  /** A full scan happens at least this often even if nothing seemed to change, ms. */
  fullScanMs: number;
  /** Block copies in flight at once, in the whole cluster. */
  maxCopies: number;
  /**
   * Nothing is copied this long after start: after a name server restart every storage server counts
   * as dead until it registers again, and its blocks must not be copied meanwhile.
   */
  startupGraceMs: number;
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
  private dirty = true;
  private lastScan = 0;
  private stopped = false;
  /** Under-replicated blocks found by the last scan, waiting for a copy slot. */
  private queue: BlockState[] = [];
  private readonly inFlight = new Map<string, Promise<void>>();

  constructor(
    private readonly map: BlockMap,
    private readonly storages: StorageRegistry,
    private readonly committer: Committer,
    private readonly opts: ReplicatorOptions,
  ) {}

  start(): void {
    const notBefore = Date.now() + this.opts.startupGraceMs;
    this.timer = setInterval(() => {
      this.storages.checkLiveness();
      if (Date.now() < notBefore) return;
      if (this.dirty || Date.now() - this.lastScan >= this.opts.fullScanMs) this.scan();
    }, this.opts.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.queue = [];
    await Promise.all(this.inFlight.values());
  }

  /** Something changed that may leave blocks under- or over-replicated: scan soon. */
  markDirty(): void {
    this.dirty = true;
  }

  get copiesInFlight(): number {
    return this.inFlight.size;
  }

  /** Trims over-replicated blocks at once and queues under-replicated ones for copying. */
  private scan(): void {
    this.dirty = false;
    this.lastScan = Date.now();
    const usable = this.storages.usable();
    const usableIds = new Set(usable.map((s) => s.id));
    const byId = new Map(this.storages.all().map((s) => [s.id, s]));
    const queue: BlockState[] = [];
    const extras: { block: string; storage: string }[] = [];
    for (const block of this.map.states()) {
      const live = block.holders.filter((h) => usableIds.has(h));
      if (live.length > block.want) extras.push(...this.extras(block, live, byId));
      else if (live.length < Math.min(block.want, usable.length) && !this.inFlight.has(block.id)) queue.push(block);
    }
    this.queue = queue;
    this.pump();
    if (extras.length > 0) {
      void this.committer.run(() => extras.forEach((e) => this.map.removeReplica(e.block, e.storage)))
        .catch((err: unknown) => console.error(`replicator: trimming failed: ${(err as Error).message}`));
    }
  }

  /** Keeps up to maxCopies copies running while the queue has blocks. */
  private pump(): void {
    while (!this.stopped && this.inFlight.size < this.opts.maxCopies && this.queue.length > 0) {
      const block = this.queue.shift()!;
      if (this.inFlight.has(block.id)) continue;
      const copy = this.copy(block);
      if (!copy) continue;
      this.inFlight.set(block.id, copy.finally(() => {
        this.inFlight.delete(block.id);
        // Look again once the queue is done: a block may need another copy, or a failed one a retry.
        if (this.queue.length === 0) this.dirty = true;
        this.pump();
      }));
    }
  }

  /** The replicas beyond what the block's files ask for, from the fullest servers first. */
  private extras(block: BlockState, live: string[], byId: Map<string, StorageInfo>): { block: string; storage: string }[] {
    const fullest = [...live].sort((a, b) => (byId.get(a)?.free ?? 0) - (byId.get(b)?.free ?? 0));
    return fullest.slice(0, live.length - block.want).map((storage) => ({ block: block.id, storage }));
  }

  private copy(block: BlockState): Promise<void> | undefined {
    // Any live holder can be the source, a draining one included: that is how a drain empties it.
    const sources = block.holders.map((h) => this.storages.get(h)).filter((s): s is StorageInfo => s?.alive === true);
    if (sources.length === 0) return undefined;
    let target: StorageRef | undefined;
    try {
      target = this.storages.choose(1, block.size, [...block.holders, ...block.doomed])[0];
    } catch {
      return undefined; // no server to copy to; the block stays under-replicated and counted so
    }
    if (!target) return undefined;
    const to = target;
    const source = sources[Math.floor(Math.random() * sources.length)]!;
    this.storages.reserve([to.id], block.size);
    const body: FetchBlockRequest = { source: source.addr, size: block.size, digest: block.digest };
    return callJson(addrToUrl(to.addr), `/v1/blocks/${block.id}/fetch`, { body, dispatcher: this.opts.dispatcher })
      .then(() => this.committer.run(() => this.map.addReplica(block.id, to.id)))
      .catch((err: unknown) => {
        console.error(`replicator: copying block ${block.id} from ${source.addr} to ${to.addr} failed: ${(err as Error).message}`);
      });
  }
}
