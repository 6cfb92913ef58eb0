import type { ApiCaller } from '../protocol/api-caller.js';
import type { PooledUpload } from '../protocol/file-write-stream.js';
import type { PoolUploadsResponse } from '../protocol/messages.js';

/** Files up to this size, written from memory with the cluster's defaults, take a pooled upload. */
export const POOLED_FILE_MAX = 1024 * 1024;
/** Uploads opened at most in one call. */
const MAX_BATCH = 32;
/** A pooled upload older than this is given back: its targets were chosen when it was opened. */
const MAX_AGE_MS = 5_000;
/** Demand counts as steady when the pool runs dry again this soon after a refill. */
const STEADY_MS = 1_000;
/** After a failed refill, writes open their own uploads for this long (the error shows there). */
const BACKOFF_MS = 5_000;

/**
 * Uploads opened ahead with no path, so that a small file costs the name server one call (the
 * commit, which names it) instead of two (open and commit). A refill asks for as many as writers are
 * waiting, four times that while demand is steady, so a lone write leaves nothing unused. What is
 * left over is aborted when it gets old, when a pooled write fails, and when the client closes.
 */
export class UploadPool {
  private ready: { upload: PooledUpload; openedAt: number }[] = [];
  private refilling: Promise<boolean> | undefined;
  private waiting = 0;
  private lastRefill = 0;
  private pausedUntil = 0;
  private closed = false;

  constructor(private readonly api: ApiCaller) {}

  /** A pooled upload, or undefined: the writer then opens its own (and meets the error, if there is one). */
  async take(): Promise<PooledUpload | undefined> {
    this.waiting++;
    try {
      // A refill shared by more writers than it brought uploads for leaves some of them empty-handed: they try again.
      for (let attempt = 0; attempt < 3; attempt++) {
        this.giveBackOld();
        const next = this.ready.shift();
        if (next) return next.upload;
        if (this.closed || Date.now() < this.pausedUntil) return undefined;
        this.refilling ??= this.refill().finally(() => { this.refilling = undefined; });
        if (!(await this.refilling)) return undefined;
      }
      return undefined;
    } finally {
      this.waiting--;
    }
  }

  /** Aborts every upload not yet taken (a pooled write failed: the name server may have lost them all, or the caller's path was wrong). */
  discard(): Promise<void> {
    const left = this.ready;
    this.ready = [];
    return this.abort(left.map((r) => r.upload));
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.refilling;
    await this.discard();
  }

  private async refill(): Promise<boolean> {
    const now = Date.now();
    const steady = now - this.lastRefill < STEADY_MS;
    this.lastRefill = now;
    const count = Math.min(MAX_BATCH, Math.max(1, this.waiting) * (steady ? 4 : 1));
    try {
      const res = await this.api<PoolUploadsResponse>('POST', '/uploads/pool', { count, maxSize: POOLED_FILE_MAX });
      const openedAt = Date.now();
      const uploads = res.uploads.map(({ uploadId, first }) => ({ uploadId, first, replication: res.replication, blockSize: res.blockSize }));
      if (this.closed) {
        await this.abort(uploads);
        return false;
      }
      this.ready.push(...uploads.map((upload) => ({ upload, openedAt })));
      return true;
    } catch {
      this.pausedUntil = Date.now() + BACKOFF_MS;
      return false;
    }
  }

  private giveBackOld(): void {
    const limit = Date.now() - MAX_AGE_MS;
    if (this.ready.length === 0 || this.ready[0]!.openedAt >= limit) return;
    // Oldest first: the old ones are a prefix.
    const fresh = this.ready.findIndex((r) => r.openedAt >= limit);
    const old = this.ready.splice(0, fresh < 0 ? this.ready.length : fresh);
    void this.abort(old.map((r) => r.upload));
  }

  private async abort(uploads: PooledUpload[]): Promise<void> {
    await Promise.all(uploads.map((u) => this.api('DELETE', `/uploads/${u.uploadId}`).catch(() => {})));
  }
}
