import type { Socket } from 'node:net';
import type { Dispatcher } from 'undici';
import type { ApiCaller } from '../../protocol/api-caller.js';
import { SdfsError, toSdfsError } from '../../protocol/errors.js';
import { plainHost } from '../../protocol/http.js';
import { COMMANDS, type CommandSession } from './commands.js';
import type { ClassicConfig } from './config.js';
import { classicRead, classicWrite, type TransferSession } from './data.js';
import { encodeReply, parseRequest, replyType } from './framing.js';
import type { BlockChannel } from '../../protocol/block-channel.js';
import type { BlockLinks } from '../../protocol/block-link.js';
import type { DataPorts } from './ports.js';
import { SocketReader } from './reader.js';

/** What every session shares. */
export interface ClassicServices {
  api: ApiCaller;
  dispatcher: Dispatcher;
  /** Small blocks written (see BlockLinks). */
  links: BlockLinks;
  /** Reads of blocks (see BlockChannel). */
  channel: BlockChannel;
  ports: DataPorts;
  config: ClassicConfig;
}

/** After a request that overran its frame, its rest is dropped until the client has been quiet this long, ms... */
const QUIET_MS = 200;
/** ...unless more than this arrives, which is no lost client but a flood, and closes the connection. */
const MAX_DISCARD = 64 * 1024;

const KNOWN = ['init', 'crf', 'rmf', 'inf', 'cpf', 'mvf', 'opdir', 'rddir', 'mkdir', 'rmdir', 'wrf', 'rdf', 'exit'];

/**
 * One classic connection: one client session, with its own working directory, starting at `/`. It
 * answers one request at a time, as the client sends them; every failure is answered as text in the
 * reply body, never by closing the connection (the seed's client crashes on a missing reply). The
 * connection closes on `exit`, on the client's own close, or after a timeout.
 */
export class ClassicSession implements CommandSession, TransferSession {
  cwd = '/';
  readonly reader: SocketReader;
  readonly clientHost: string;
  private readonly controller = new AbortController();

  constructor(private readonly socket: Socket, head: Buffer, private readonly services: ClassicServices) {
    this.reader = new SocketReader(socket, head);
    const remote = socket.remoteAddress ?? '';
    this.clientHost = plainHost(remote);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 60_000);
    socket.on('close', () => this.controller.abort());
  }

  get api(): ApiCaller { return this.services.api; }
  get dispatcher(): Dispatcher { return this.services.dispatcher; }
  get links(): BlockLinks { return this.services.links; }
  get channel(): BlockChannel { return this.services.channel; }
  get ports(): DataPorts { return this.services.ports; }
  get config(): ClassicConfig { return this.services.config; }
  get signal(): AbortSignal { return this.controller.signal; }

  /** Serves requests until the session ends. Never rejects. */
  async run(): Promise<void> {
    try {
      for (;;) {
        const frame = await this.reader.readFrame(this.config.idleTimeoutMs, this.config.requestTimeoutMs);
        if (!frame) break;
        const req = parseRequest(frame);
        if (!req.ok) {
          // The rest of a request that overran its frame is dropped first, so that the reply answers all of it.
          if (req.lostSync && !(await this.reader.discardUntilQuiet(Math.min(QUIET_MS, this.config.requestTimeoutMs), MAX_DISCARD))) break;
          await this.reply(req.type, `Error: ${req.error}`);
          continue;
        }
        // `exit` has no reply: the client is gone already.
        if (req.type === 'exit') break;
        await this.handle(req.type, req.args);
      }
    } catch (err) {
      // A timeout, a reset or a request cut short: nothing more can be said on this connection. Anything else is a bug.
      if (!(err instanceof SdfsError) && typeof (err as { code?: unknown })?.code !== 'string') console.error(err);
    } finally {
      this.close();
    }
  }

  /** Refuses the session (too many at once) with an answer to its first request, and closes it. */
  async refuse(message: string): Promise<void> {
    try {
      const frame = await this.reader.readFrame(this.config.requestTimeoutMs, this.config.requestTimeoutMs);
      const req = frame && parseRequest(frame);
      // Each in the form its client reads: 4 digits for a write, `PORT][SIZE` for a read, text for the rest.
      if (req && req.type === 'wrf') await this.send(Buffer.from('0000'));
      else if (req && req.type === 'rdf') await this.reply('rdf', '0][0');
      else if (req && req.type !== 'exit') await this.reply(req.ok ? replyType(req.type) : req.type, `Error: ${message}`);
    } catch {
      // Nothing to answer.
    } finally {
      this.close();
    }
  }

  private async handle(type: string, args: string[]): Promise<void> {
    if (type === 'wrf') return classicWrite(this, args);
    if (type === 'rdf') return classicRead(this, args);
    const cmd = Object.hasOwn(COMMANDS, type) ? COMMANDS[type] : undefined;
    if (!cmd) {
      const shown = type.length > 40 ? `${type.slice(0, 40)}...` : type;
      return this.reply(replyType(type), `Error: unknown request type ${JSON.stringify(shown)} (known: ${KNOWN.join(', ')})`);
    }
    if (args.length < cmd.min || args.length > cmd.max) {
      const wanted = cmd.min === cmd.max ? `${cmd.min}` : `${cmd.min} to ${cmd.max}`;
      return this.reply(type, `Error: ${type} takes ${wanted} argument(s), got ${args.length}`);
    }
    let body: string;
    try {
      body = await cmd.run(this, args);
    } catch (err) {
      const e = toSdfsError(err);
      if (e.code === 'EINTERNAL') console.error(err);
      body = `Error: ${e.message}`;
    }
    await this.reply(type, body);
  }

  reply(type: string, body: string): Promise<void> {
    return this.send(encodeReply(type, body));
  }

  /** Writes to the control connection, waiting while the client is slow to read (up to the request timeout). */
  send(bytes: Buffer): Promise<void> {
    const socket = this.socket;
    if (socket.destroyed || !socket.writable) return Promise.resolve();
    if (socket.write(bytes)) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        socket.off('drain', done);
        socket.off('close', done);
        resolve();
      };
      const timer = setTimeout(() => { socket.destroy(); done(); }, this.config.requestTimeoutMs);
      socket.on('drain', done);
      socket.on('close', done);
    });
  }

  /** Ends the session: its transfers stop, and the connection closes once what was written is sent. */
  close(): void {
    this.controller.abort();
    if (this.socket.destroyed) return;
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 5000).unref();
  }

  /** Ends the session at once (the server is stopping). */
  destroy(): void {
    this.controller.abort();
    this.socket.destroy();
  }
}
