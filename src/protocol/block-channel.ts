import * as net from 'node:net';
import * as tls from 'node:tls';
import { SdfsError, toSdfsError } from './errors.js';
import { addrToUrl, parseJson } from './http.js';

/**
 * Block reads over plain HTTP/1.1 connections whose bytes the kernel copies straight into memory the
 * reader chose (`onread` of node:net), kept alive and reused per storage server.
 *
 * Why not undici, as every other call: each socket read there lands in a new 64 KiB buffer, and
 * allocating buffers is what a large read costs in Node (the collections of their memory): about
 * 1 ms of CPU per MiB in the reader, against 0.2-0.4 ms when the same bytes go into reused memory
 * (docs/BENCHMARKS.md). Only GETs of block ranges go this way; the answers are ours, framed by
 * content-length.
 */

/** Where the body of a 2xx answer goes. */
export interface BodySink {
  /** Memory for the next bytes of the body (not empty); the channel places at most the bytes still due in it. */
  space(): Uint8Array;
  /** `n` bytes were placed at the start of the last space given. May throw to abandon the answer. */
  placed(n: number): void;
}

export interface AnswerHead {
  status: number;
  /** Header names in lower case. */
  headers: Map<string, string>;
  /** The body's length (content-length; answers without one are refused). */
  length: number;
}

export interface BlockChannelOptions {
  /** A certificate authority (PEM) trusted besides the system's, for HTTPS storage servers. */
  ca?: Buffer;
  /** Connections to one server at most; more requests wait for one (default 64). */
  perServer?: number;
  /** Headers that authenticate each request (a server's cluster signature), made for its method and path. */
  sign?: (method: string, path: string) => Record<string, string>;
  timeouts?: Partial<ChannelTimeouts>;
}

/** Time allowed to connect, and for a server to answer or send the next piece of its body; an idle
 * connection is closed after `idleMs` (the storage servers keep theirs for 72 s). */
export interface ChannelTimeouts {
  connectMs: number;
  answerMs: number;
  idleMs: number;
}
const TIMEOUTS: ChannelTimeouts = { connectMs: 10_000, answerMs: 120_000, idleMs: 10_000 };
const IDLE_PER_SERVER = 16;
const MAX_HEAD = 16 * 1024;
const MAX_ERROR_BODY = 64 * 1024;
const SCRATCH = 64 * 1024;

export class BlockChannel {
  private readonly idle = new Map<string, Connection[]>();
  private readonly open = new Map<string, number>();
  private readonly waiting = new Map<string, (() => void)[]>();
  private readonly ca: string[] | undefined;
  private readonly perServer: number;
  private readonly sign: BlockChannelOptions['sign'];
  private readonly timeouts: ChannelTimeouts;
  private closed = false;

  constructor(opts: BlockChannelOptions = {}) {
    this.ca = opts.ca ? [...tls.rootCertificates, opts.ca.toString('utf8')] : undefined;
    this.perServer = opts.perServer ?? 64;
    this.sign = opts.sign;
    this.timeouts = { ...TIMEOUTS, ...opts.timeouts };
  }

  /**
   * GETs `path` from the server at `addr` (`host:port`, or `https://host:port`). A 2xx answer's body
   * goes to the sink that `sinkFor` gives for its head (it may throw to refuse the answer); any other
   * answer is the SdfsError its JSON body carries. Resolves when the whole body is placed.
   */
  async get(addr: string, path: string, headers: Record<string, string>, sinkFor: (head: AnswerHead) => BodySink, signal?: AbortSignal): Promise<void> {
    if (this.closed) throw new SdfsError('ECANCELED', 'client closed');
    await this.acquire(addr, signal);
    try {
      // Signed once the request may go: a signature carries the time it was made.
      const request = requestBytes(addr, path, this.sign ? { ...headers, ...this.sign('GET', path) } : headers);
      // A kept-alive connection that the server has closed (it restarted, or timed it out) fails
      // before any answer: the request goes on the next one, and at last on a new one.
      for (;;) {
        const reused = this.takeIdle(addr);
        const conn = reused ?? new Connection(addr, this.ca, this.timeouts);
        try {
          await conn.exchange(request, sinkFor, signal);
        } catch (err) {
          conn.destroy();
          if (reused && !conn.answered && !signal?.aborted && !(err instanceof SdfsError && err.code === 'ECANCELED')) continue;
          throw err;
        }
        if (conn.reusable && !this.closed) this.putIdle(addr, conn);
        else conn.destroy();
        return;
      }
    } finally {
      this.release(addr);
    }
  }

  /** Closes the idle connections; those in use close when their answer is done. */
  close(): void {
    this.closed = true;
    for (const list of this.idle.values()) for (const c of list) c.destroy();
    this.idle.clear();
  }

  private async acquire(addr: string, signal: AbortSignal | undefined): Promise<void> {
    const n = this.open.get(addr) ?? 0;
    if (n < this.perServer) {
      this.open.set(addr, n + 1);
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const queue = this.waiting.get(addr) ?? [];
      this.waiting.set(addr, queue);
      const onAbort = (): void => {
        queue.splice(queue.indexOf(go), 1);
        reject(new SdfsError('ECANCELED', 'read cancelled'));
      };
      const go = (): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      queue.push(go);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private release(addr: string): void {
    const next = this.waiting.get(addr)?.shift();
    if (next) return next(); // the slot passes on
    const n = (this.open.get(addr) ?? 1) - 1;
    if (n === 0) this.open.delete(addr);
    else this.open.set(addr, n);
    if (this.waiting.get(addr)?.length === 0) this.waiting.delete(addr);
  }

  private takeIdle(addr: string): Connection | undefined {
    const list = this.idle.get(addr);
    let conn = list?.pop();
    while (conn && conn.dead) conn = list?.pop();
    return conn;
  }

  private putIdle(addr: string, conn: Connection): void {
    let list = this.idle.get(addr);
    if (!list) this.idle.set(addr, (list = []));
    if (list.length >= IDLE_PER_SERVER) return conn.destroy();
    list.push(conn);
    conn.idleUntilReused(() => {
      const i = list.indexOf(conn);
      if (i >= 0) list.splice(i, 1);
    });
  }
}

/** The request's bytes; header values are checked, as they come from tokens and block ids. */
function requestBytes(addr: string, path: string, headers: Record<string, string>): Buffer {
  const host = addr.replace(/^https:\/\//, '');
  let text = `GET ${path} HTTP/1.1\r\nhost: ${host}\r\n`;
  let parts = path + host;
  for (const [name, value] of Object.entries(headers)) {
    text += `${name}: ${value}\r\n`;
    parts += name + value;
  }
  // No part may hold a line break (or anything but printable ASCII): it would end the line early.
  if (/[^\x20-\x7e]/.test(parts)) throw new SdfsError('EINVAL', 'a block request may hold printable ASCII only');
  return Buffer.from(`${text}\r\n`, 'latin1');
}

/** Parses an answer's head (the bytes before the blank line). */
function parseHead(text: string): AnswerHead & { keepAlive: boolean } {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.([01]) (\d{3})(?: |$)/.exec(lines[0] ?? '');
  if (!m) throw new SdfsError('EPROTO', 'storage server sent an invalid HTTP status line');
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0 || /^[ \t]/.test(line)) throw new SdfsError('EPROTO', 'storage server sent an invalid HTTP header');
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers.set(name, headers.has(name) ? `${headers.get(name)}, ${value}` : value);
  }
  if (headers.has('transfer-encoding')) throw new SdfsError('EPROTO', 'storage server sent a body without a length');
  const length = headers.get('content-length');
  if (length === undefined || !/^\d{1,15}$/.test(length)) throw new SdfsError('EPROTO', 'storage server sent a body without a valid length');
  const keepAlive = m[1] === '1' && !/(^|,)\s*close\s*(,|$)/i.test(headers.get('connection') ?? '');
  return { status: Number(m[2]), headers, length: Number(length), keepAlive };
}

/** A sink that keeps a small error answer's body, to read its JSON. */
class ErrorBody implements BodySink {
  readonly data: Buffer;
  private filled = 0;
  constructor(length: number) {
    if (length > MAX_ERROR_BODY) throw new SdfsError('EPROTO', 'storage server answered an error with a large body');
    this.data = Buffer.alloc(length);
  }
  space(): Uint8Array {
    return this.data.subarray(this.filled);
  }
  placed(n: number): void {
    this.filled += n;
  }
}

/** One connection, one exchange at a time. */
class Connection {
  private readonly socket: net.Socket;
  private readonly scratch = Buffer.allocUnsafe(SCRATCH);
  /** What the socket's next read is placed in. */
  private space: Uint8Array = this.scratch;
  private state: 'idle' | 'head' | 'body' = 'idle';
  private head: Buffer[] = [];
  private headBytes = 0;
  private due = 0;
  private sink: BodySink | undefined;
  private errorSink: ErrorBody | undefined;
  private status = 0;
  private keepAlive = false;
  private settle: ((err?: Error) => void) | undefined;
  private sinkFor: ((head: AnswerHead) => BodySink) | undefined;
  private onIdleEnd: (() => void) | undefined;
  /** Whether any byte of the current answer has come (a stale connection fails before). */
  answered = false;
  dead = false;

  constructor(addr: string, ca: string[] | undefined, private readonly timeouts: ChannelTimeouts) {
    const secure = addr.startsWith('https://');
    const url = new URL(addrToUrl(addr));
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = Number(url.port || (secure ? 443 : 80));
    const onread = { buffer: () => this.nextSpace(), callback: (n: number) => this.onData(n) };
    this.socket = secure
      ? tls.connect({ host, port, ...(net.isIP(host) ? {} : { servername: host }), ...(ca ? { ca } : {}), onread } as tls.ConnectionOptions)
      : net.connect({ host, port, onread });
    this.socket.setNoDelay(true);
    this.socket.setTimeout(timeouts.connectMs);
    this.socket.once(secure ? 'secureConnect' : 'connect', () => this.socket.setTimeout(timeouts.answerMs));
    this.socket.on('timeout', () => this.socket.destroy(new SdfsError('EUNAVAILABLE', `storage server ${addr} did not answer in time`)));
    this.socket.on('error', (err) => this.finish(toSdfsError(err)));
    this.socket.on('close', () => {
      this.dead = true;
      this.onIdleEnd?.();
      this.finish(new SdfsError('EUNAVAILABLE', `storage server ${addr} closed the connection`));
    });
  }

  get reusable(): boolean {
    return this.keepAlive && !this.dead;
  }

  exchange(request: Buffer, sinkFor: (head: AnswerHead) => BodySink, signal: AbortSignal | undefined): Promise<void> {
    this.onIdleEnd = undefined;
    this.socket.setTimeout(this.socket.connecting ? this.timeouts.connectMs : this.timeouts.answerMs);
    this.answered = false;
    this.state = 'head';
    this.head = [];
    this.headBytes = 0;
    this.sinkFor = sinkFor;
    this.sink = undefined;
    this.errorSink = undefined;
    return new Promise<void>((resolve, reject) => {
      const cancel = (): void => this.destroy(new SdfsError('ECANCELED', 'read cancelled'));
      if (signal?.aborted) return reject(new SdfsError('ECANCELED', 'read cancelled'));
      signal?.addEventListener('abort', cancel, { once: true });
      this.settle = (err) => {
        signal?.removeEventListener('abort', cancel);
        if (err) reject(err);
        else resolve();
      };
      this.socket.write(request);
    });
  }

  /** Parks the connection: bytes or a close from the server now end it. */
  idleUntilReused(onEnd: () => void): void {
    this.onIdleEnd = onEnd;
    this.socket.setTimeout(this.timeouts.idleMs);
  }

  destroy(err?: Error): void {
    this.dead = true;
    this.finish(err ?? new SdfsError('ECANCELED', 'connection closed'));
    this.socket.destroy();
  }

  private nextSpace(): Uint8Array {
    if (this.state === 'body' && this.due > 0) {
      const space = (this.sink ?? this.errorSink)!.space();
      this.space = space.length > this.due ? space.subarray(0, this.due) : space;
    } else {
      this.space = this.scratch;
    }
    return this.space;
  }

  private onData(n: number): boolean {
    try {
      if (this.state === 'idle') throw new SdfsError('EPROTO', 'storage server sent bytes nobody asked for');
      this.answered = true;
      if (this.state === 'head') this.onHead(this.space.subarray(0, n));
      else this.onBody(n);
    } catch (err) {
      this.destroy(toSdfsError(err));
      return false;
    }
    return true;
  }

  private onHead(bytes: Uint8Array): void {
    // A head mostly comes whole in one read: parsed where it landed. Pieces of one are kept (copied,
    // as the scratch buffer takes the next read) until its end is in.
    const piece = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
    const all = this.head.length === 0 ? piece : Buffer.concat([...this.head, piece]);
    const end = all.indexOf('\r\n\r\n');
    if (end < 0) {
      this.headBytes += bytes.length;
      if (this.headBytes > MAX_HEAD) throw new SdfsError('EPROTO', 'storage server sent an overlong HTTP head');
      this.head.push(Buffer.from(piece));
      return;
    }
    this.head = [];
    this.headBytes = 0;
    const head = parseHead(all.toString('latin1', 0, end));
    this.status = head.status;
    this.keepAlive = head.keepAlive;
    if (head.status >= 200 && head.status < 300) this.sink = this.sinkFor!(head);
    else this.errorSink = new ErrorBody(head.length);
    this.state = 'body';
    this.due = head.length;
    // Body bytes that came with the head: into the sink's memory.
    let rest = all.subarray(end + 4);
    if (rest.length > this.due) throw new SdfsError('EPROTO', 'storage server sent more bytes than its content-length');
    const sink = (this.sink ?? this.errorSink)!;
    while (rest.length > 0) {
      const space = sink.space();
      const n = Math.min(space.length, rest.length);
      space.set(rest.subarray(0, n));
      rest = rest.subarray(n);
      this.due -= n;
      sink.placed(n);
    }
    if (this.due === 0) this.complete();
  }

  private onBody(n: number): void {
    this.due -= n;
    (this.sink ?? this.errorSink)!.placed(n);
    if (this.due === 0) this.complete();
  }

  private complete(): void {
    this.state = 'idle';
    this.sink = undefined;
    this.sinkFor = undefined;
    const errorSink = this.errorSink;
    this.errorSink = undefined;
    if (!errorSink) return this.finish();
    try {
      parseJson(this.status, errorSink.data.toString('utf8'));
      this.finish(new SdfsError('EPROTO', `storage server answered HTTP ${this.status}`));
    } catch (err) {
      this.finish(toSdfsError(err));
    }
  }

  private finish(err?: Error): void {
    const settle = this.settle;
    this.settle = undefined;
    if (err) this.state = 'idle';
    if (err && settle) this.keepAlive = false;
    settle?.(err);
  }
}
