import { createHash } from 'node:crypto';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';

/**
 * A client of the seed's classic protocol, written from ../shared/seed/PROTOCOL.md for the tests: it
 * sends what the seed's client sends, byte for byte (frames padded to 2048 characters, one confirmation
 * byte, the data port listened on only after that byte, data in 2048-byte sends), but reads replies
 * strictly (exact lengths, the type checked) so that a test sees any deviation of the server.
 */
export const FRAME_CHARS = 2048;

/** A request as the seed's client builds it: each field followed by `][`, then spaces up to 2048 characters. */
export function frame(fields: string[]): Buffer {
  const text = fields.map((f) => `${f}][`).join('');
  const chars = Array.from(text).length; // characters, as Python's len() counts them
  return Buffer.from(text + ' '.repeat(Math.max(0, FRAME_CHARS - chars)), 'utf8');
}

export interface Reply { type: string; body: string }

export type WriteResult = { refused: true } | { refused: false; port: number; reply: string };
export type ReadResult = { missing: true } | { missing: false; port: number; size: number; sha256: string; data?: Buffer; reply: string };

export interface WriteOptions {
  /** Bytes per send() (the seed's client: 2048). */
  chunk?: number;
  /** Disconnect everything after sending this many bytes (a client that dies mid-upload)... */
  dieAfter?: number;
  /** ...once this has resolved. */
  beforeDying?: () => Promise<unknown>;
  /** Send the confirmation byte but never listen on the data port. */
  neverListen?: boolean;
}

export class ClassicClient {
  private readonly chunks: Buffer[] = [];
  private buffered = 0;
  private ended = false;
  private wake: (() => void) | undefined;
  readonly closed: Promise<void>;

  private constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.buffered += d.length;
      this.notify();
    });
    socket.on('error', () => {});
    this.closed = new Promise((done) => socket.once('close', () => {
      this.ended = true;
      this.notify();
      done();
    }));
    socket.on('end', () => {
      this.ended = true;
      this.notify();
    });
  }

  static connect(port: number, host = '127.0.0.1'): Promise<ClassicClient> {
    return new Promise((resolve, reject) => {
      const socket = netConnect({ port, host });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new ClassicClient(socket));
      });
    });
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** Sends raw bytes on the control connection, in one write. */
  send(bytes: Buffer | string): void {
    this.socket.write(bytes);
  }

  sendFrame(fields: string[]): void {
    this.send(frame(fields));
  }

  /** Exactly `n` bytes of the control connection; fails on EOF or after `ms`. */
  async readBytes(n: number, ms = 30_000): Promise<Buffer> {
    const deadline = Date.now() + ms;
    while (this.buffered < n) {
      if (this.ended) throw new Error(`connection closed after ${this.buffered} of ${n} bytes`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${n} bytes (have ${this.buffered})`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.wake = () => { clearTimeout(t); r(); };
      });
    }
    const all = Buffer.concat(this.chunks, this.buffered);
    this.chunks.length = 0;
    if (all.length > n) this.chunks.push(all.subarray(n));
    this.buffered = all.length - n;
    return all.subarray(0, n);
  }

  /** Bytes received and not yet read. */
  pending(): Buffer {
    return Buffer.concat(this.chunks, this.buffered);
  }

  /** A reply `TYPE][LEN][BODY`: the header up to the second `][`, then exactly LEN bytes. */
  async readReply(expectedType?: string, ms = 30_000): Promise<Reply> {
    let header = '';
    while (!/^[^\]]*\]\[\d+\]\[$/.test(header)) {
      header += (await this.readBytes(1, ms)).toString('latin1');
      if (header.length > 64) throw new Error(`not a reply header: ${JSON.stringify(header)}`);
    }
    const [type, len] = header.split('][');
    const body = (await this.readBytes(Number(len), ms)).toString('utf8');
    if (expectedType !== undefined && type !== expectedType) throw new Error(`reply of type ${type}, expected ${expectedType}: ${body}`);
    return { type: type!, body };
  }

  /** One request and its reply body. */
  async request(fields: string[], ms?: number): Promise<string> {
    this.sendFrame(fields);
    return (await this.readReply(fields[0], ms)).body;
  }

  // The seed shell's commands, as it maps them to requests (PROTOCOL.md §2).
  init(): Promise<string> { return this.request(['init']); }
  create(f: string): Promise<string> { return this.request(['crf', f]); }
  delete(f: string): Promise<string> { return this.request(['rmf', f]); }
  info(f: string): Promise<string> { return this.request(['inf', f]); }
  copy(f: string, to: string): Promise<string> { return this.request(['cpf', f, to]); }
  move(f: string, to: string): Promise<string> { return this.request(['mvf', f, to]); }
  cd(d: string): Promise<string> { return this.request(['opdir', d]); }
  mkdir(d: string): Promise<string> { return this.request(['mkdir', d]); }
  deldir(d: string): Promise<string> { return this.request(['rmdir', d]); }
  async ls(): Promise<string[]> {
    return (await this.request(['rddir'])).split('\n').filter((l) => l !== '');
  }

  /** `dfs_exit`: the request, and no reply. */
  exit(): void {
    this.sendFrame(['exit']);
  }

  /** `write NAME` (PROTOCOL.md §4). */
  async write(name: string, data: Buffer | AsyncIterable<Buffer>, size: number, opts: WriteOptions = {}): Promise<WriteResult> {
    this.sendFrame(['wrf', name, String(size)]);
    const answer = (await this.readBytes(4)).toString('latin1');
    if (!/^\d{4}$/.test(answer)) throw new Error(`wrf answered ${JSON.stringify(answer)}, not 4 digits`);
    const port = Number(answer);
    if (port === 0) return { refused: true };
    this.send('e');
    if (opts.neverListen) return { refused: false, port, reply: (await this.readReply('wrf', 60_000)).body };
    // Only now, as the seed's client does: bind, listen, accept.
    const server = await listen(port);
    try {
      const conn = await accept(server);
      conn.on('error', () => {});
      const chunk = opts.chunk ?? 2048;
      let sent = 0;
      const source = Buffer.isBuffer(data) ? [data] : data;
      for await (const buf of source) {
        for (let off = 0; off < buf.length; off += chunk) {
          const piece = buf.subarray(off, Math.min(off + chunk, buf.length));
          if (opts.dieAfter !== undefined && sent + piece.length > opts.dieAfter) {
            await opts.beforeDying?.();
            conn.destroy();
            this.socket.destroy();
            return { refused: false, port, reply: '' };
          }
          sent += piece.length;
          if (!conn.write(piece)) await new Promise((r) => conn.once('drain', r));
        }
      }
      const reply = await this.readReply('wrf', 60_000);
      conn.destroy();
      return { refused: false, port, reply: reply.body };
    } finally {
      server.close();
    }
  }

  /** `read NAME` (PROTOCOL.md §5); reads exactly SIZE bytes and hashes them (keeps them if `keep`). */
  async read(name: string, opts: { keep?: boolean } = {}): Promise<ReadResult> {
    this.sendFrame(['rdf', name]);
    const { body } = await this.readReply('rdf');
    const parts = body.split('][');
    if (parts.length !== 2 || !/^\d+$/.test(parts[0]!) || !/^\d+$/.test(parts[1]!)) throw new Error(`rdf answered ${JSON.stringify(body)}`);
    const port = Number(parts[0]);
    const size = Number(parts[1]);
    if (port === 0) return { missing: true };
    this.send('y');
    const server = await listen(port);
    try {
      const conn = await accept(server);
      const hash = createHash('sha256');
      const kept: Buffer[] = [];
      let got = 0;
      for await (const d of conn as AsyncIterable<Buffer>) {
        got += d.length;
        hash.update(d);
        if (opts.keep) kept.push(d);
      }
      // The server closes the data connection after the last byte: nothing more, nothing less.
      if (got !== size) throw new Error(`data connection carried ${got} bytes, announced ${size}`);
      const reply = await this.readReply(undefined, 60_000);
      if (reply.type.length !== 3) throw new Error(`final rdf reply of type ${reply.type}: the seed's client expects 3 characters`);
      return { missing: false, port, size, sha256: hash.digest('hex'), data: opts.keep ? Buffer.concat(kept) : undefined, reply: reply.body };
    } finally {
      server.close();
    }
  }

  /** True if the server closes the connection within `ms`. */
  async closedWithin(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([this.closed.then(() => true), new Promise<boolean>((d) => { timer = setTimeout(() => d(false), ms); })]);
    clearTimeout(timer);
    return r;
  }

  close(): void {
    this.socket.destroy();
  }
}

function listen(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer({ pauseOnConnect: false });
    server.once('error', reject);
    server.listen({ port, host: '127.0.0.1' }, () => resolve(server));
  });
}

function accept(server: Server, ms = 30_000): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('nobody connected to the data port')), ms);
    server.once('connection', (s: Socket) => {
      clearTimeout(t);
      resolve(s);
    });
  });
}
