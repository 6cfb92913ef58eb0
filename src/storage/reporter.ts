import type { Dispatcher } from 'undici';
import { SdfsError } from '../protocol/errors.js';
import { API_PREFIX, type HeartbeatResponse, type StorageReport } from '../protocol/messages.js';
import { callJson } from '../protocol/http.js';

/**
 * Keeps the name server informed: registers at start, then sends a heartbeat with capacity and block
 * count at a steady interval, and the full list of its blocks after each registration and then at
 * the interval the name server asks for. A name server that forgot this storage server (ENOENT) is
 * registered with again; one that cannot be reached is retried on the next beat.
 */
export class Reporter {
  private timer: NodeJS.Timeout | undefined;
  private registered = false;
  private stopped = false;
  private lastError: string | undefined;
  private blockReportMs = 60_000;
  private lastBlockReport = 0;

  constructor(
    private readonly nameServer: string,
    private readonly report: () => Promise<StorageReport>,
    private intervalMs: number,
    private readonly dispatcher: Dispatcher,
    private readonly blocks: () => string[],
  ) {}

  start(): void {
    void this.beat();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private async beat(): Promise<void> {
    try {
      const body = await this.report();
      const path = this.registered ? `${API_PREFIX}/storages/heartbeat` : `${API_PREFIX}/storages/register`;
      const res = await callJson<HeartbeatResponse>(this.nameServer, path, { body, dispatcher: this.dispatcher });
      if (!this.registered) console.log(JSON.stringify({ event: 'registered', nameServer: this.nameServer, id: body.id }));
      if (!this.registered) this.lastBlockReport = 0;
      this.registered = true;
      this.intervalMs = res.heartbeatMs;
      this.blockReportMs = res.blockReportMs;
      if (Date.now() - this.lastBlockReport >= this.blockReportMs) {
        await callJson(this.nameServer, `${API_PREFIX}/storages/blocks`, { body: { id: body.id, blocks: this.blocks() }, dispatcher: this.dispatcher });
        this.lastBlockReport = Date.now();
      }
      this.lastError = undefined;
    } catch (err) {
      if (err instanceof SdfsError && err.code === 'ENOENT') this.registered = false;
      // Say so once per kind of failure, not at every beat.
      const message = (err as Error).message;
      if (message !== this.lastError) console.error(`storage server: cannot report to ${this.nameServer}: ${message}`);
      this.lastError = message;
    }
    if (!this.stopped) this.timer = setTimeout(() => void this.beat(), this.registered ? this.intervalMs : Math.min(this.intervalMs, 1000));
  }
}
