import type { Socket } from 'node:net';
import { SdfsError } from '../../protocol/errors.js';
import { FrameScanner } from './framing.js';

/** Nothing arrived in time. */
export class ReadTimeout extends SdfsError {
  constructor(what: string) {
    super('EUNAVAILABLE', `timed out waiting for ${what}`);
  }
}

/**
 * Reads a classic control connection: whole request frames and single bytes, each within a deadline.
 * Bytes are pulled from the socket only when wanted, so a client that sends more than it should fills
 * its own socket buffers, never this process's memory.
 */
export class SocketReader {
  private readonly held: Buffer[] = [];
  private ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly socket: Socket, head?: Buffer) {
    if (head && head.length > 0) this.held.push(head);
    const notify = (): void => {
      const w = this.wake;
      this.wake = undefined;
      w?.();
    };
    socket.on('readable', notify);
    socket.on('end', () => { this.ended = true; notify(); });
    socket.on('close', () => { this.ended = true; notify(); });
    socket.on('error', (err) => { this.failure ??= err; notify(); });
  }

  /**
   * Reads one request frame (2048 characters). Waits up to `idleMs` for its first byte and then up to
   * `requestMs` for the rest. Resolves null if the connection ends cleanly before the first byte.
   */
  async readFrame(idleMs: number, requestMs: number): Promise<Buffer | null> {
    const first = await this.next(Date.now() + idleMs, 'a request');
    if (!first) return null;
    const deadline = Date.now() + requestMs;
    const scanner = new FrameScanner();
    const parts: Buffer[] = [];
    let chunk: Buffer | null = first;
    for (;;) {
      const used = scanner.scan(chunk);
      parts.push(chunk.subarray(0, used));
      if (used < chunk.length) this.held.unshift(chunk.subarray(used));
      if (scanner.complete) return Buffer.concat(parts, scanner.bytes);
      chunk = await this.next(deadline, 'the rest of a request');
      if (!chunk) throw new SdfsError('EPROTO', `connection closed inside a request, after ${scanner.bytes} bytes`);
    }
  }

  /** Reads exactly `n` bytes within `ms`; null if the connection ends first. */
  async readExactly(n: number, ms: number): Promise<Buffer | null> {
    const deadline = Date.now() + ms;
    const parts: Buffer[] = [];
    let got = 0;
    while (got < n) {
      const chunk = await this.next(deadline, `${n} byte(s)`);
      if (!chunk) return null;
      const take = Math.min(n - got, chunk.length);
      parts.push(chunk.subarray(0, take));
      if (take < chunk.length) this.held.unshift(chunk.subarray(take));
      got += take;
    }
    return Buffer.concat(parts, n);
  }

  /**
   * Throws away what arrives until the client has been silent for `quietMs`, for a request that
   * overran its frame: the rest of it is in flight. False if more than `maxBytes` came (not a client
   * that lost its way, but a flood) or the connection ended.
   */
  async discardUntilQuiet(quietMs: number, maxBytes: number): Promise<boolean> {
    let dropped = 0;
    this.held.length = 0;
    for (;;) {
      let chunk: Buffer | null;
      try {
        chunk = await this.next(Date.now() + quietMs, 'more bytes');
      } catch (err) {
        if (err instanceof ReadTimeout) return true;
        throw err;
      }
      if (!chunk) return false;
      dropped += chunk.length;
      if (dropped > maxBytes) return false;
    }
  }

  /** The next bytes that arrive, by `deadline`; null at the end of the stream. */
  private async next(deadline: number, what: string): Promise<Buffer | null> {
    for (;;) {
      const held = this.held.shift();
      if (held) return held;
      const chunk = this.socket.read() as Buffer | null;
      if (chunk !== null) return chunk;
      if (this.failure) throw this.failure;
      if (this.ended || this.socket.destroyed) return null;
      const left = deadline - Date.now();
      if (left <= 0) throw new ReadTimeout(what);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => { this.wake = undefined; resolve(); }, left);
        this.wake = () => { clearTimeout(timer); resolve(); };
      });
    }
  }
}
