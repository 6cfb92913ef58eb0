import { connect, type Socket } from 'node:net';
import { addAbortSignal, type Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import type { Dispatcher } from 'undici';
import type { ApiCaller } from '../../protocol/api-caller.js';
import { drained } from '../../protocol/drained.js';
import { SdfsError, toSdfsError } from '../../protocol/errors.js';
import type { BlockChannel } from '../../protocol/block-channel.js';
import type { BlockLinks } from '../../protocol/block-link.js';
import { createFileReadStream, type ReplicaFailure } from '../../protocol/file-read-stream.js';
import { FileWriteStream } from '../../protocol/file-write-stream.js';
import type { BlocksResponse } from '../../protocol/messages.js';
import { resolvePath } from '../../protocol/paths.js';
import type { ClassicConfig } from './config.js';
import type { DataPorts } from './ports.js';
import type { SocketReader } from './reader.js';

/**
 * Read and write (PROTOCOL.md §4 and §5). The name server names a data port; the client confirms
 * with one byte and only then listens on it, on its own host; the name server connects to it there
 * and relays the file's bytes between that connection and the storage servers, with the same streams
 * the client library uses, so nothing is held whole in memory and a write that does not finish is
 * aborted, leaving nothing visible.
 */
export interface TransferSession {
  readonly cwd: string;
  readonly api: ApiCaller;
  readonly dispatcher: Dispatcher;
  readonly links: BlockLinks;
  readonly channel: BlockChannel;
  readonly ports: DataPorts;
  readonly config: ClassicConfig;
  /** The client's address as seen on the control connection: where data connections go. */
  readonly clientHost: string;
  /** Aborted when the control connection closes. */
  readonly signal: AbortSignal;
  readonly reader: SocketReader;
  /** Writes raw bytes to the control connection. */
  send(bytes: Buffer): Promise<void>;
  /** Writes a framed reply to the control connection. */
  reply(type: string, body: string): Promise<void>;
}

/** Sizes are plain decimal digits; no sign, no exponent, nothing past what a JS number holds exactly. */
const SIZE_PATTERN = /^\d{1,16}$/;
/** The answer to `wrf` that makes the client give up: port 0. */
const REFUSE = Buffer.from('0000');
/** The answer to `rdf` for a file that cannot be read: port 0, size 0. */
const NO_FILE = '0][0';

/** `wrf][NAME][SIZE][`: the answer is 4 digits, the data port, or `0000` to refuse. */
export async function classicWrite(s: TransferSession, args: string[]): Promise<void> {
  const [name, sizeText] = args;
  if (args.length !== 2 || !SIZE_PATTERN.test(sizeText!) || !Number.isSafeInteger(Number(sizeText))) return s.send(REFUSE);
  const size = Number(sizeText);
  let path: string;
  try {
    path = resolvePath(name!, s.cwd);
  } catch {
    return s.send(REFUSE);
  }

  const out = new FileWriteStream(s.api, s, path, { signal: s.signal });
  let failure: SdfsError | undefined;
  out.on('error', (err) => { failure ??= toSdfsError(err); });
  // The upload opens before the port is named, so that a name that is taken (or a missing directory) is refused.
  if (!(await opened(out))) return s.send(REFUSE);
  const port = s.ports.acquire(s.clientHost);
  if (port === undefined) {
    out.destroy();
    return s.send(REFUSE);
  }
  try {
    await s.send(Buffer.from(String(port).padStart(4, '0'), 'ascii'));
    if (!(await s.reader.readExactly(1, s.config.requestTimeoutMs))) throw new SdfsError('ECANCELED', 'the client left before confirming');
    const data = await connectToClient(s.clientHost, port, s.config.dataTimeoutMs, s.signal);
    try {
      await receive(data, out, size, s.config.dataTimeoutMs);
    } finally {
      // The name server closes first, so that TIME_WAIT stays on this side and the client can bind the port again.
      data.destroy();
    }
    if (failure) throw failure;
    out.end();
    await finished(out);
    await s.reply('wrf', `wrote ${out.stat?.path ?? path} (${size} bytes)`);
  } catch (err) {
    out.destroy();
    await replyError(s, 'wrf', failure ?? err);
  } finally {
    s.ports.release(s.clientHost, port);
  }
}

/** `rdf][NAME][`: the answer is `PORT][SIZE`, or `0][0` if there is no such file. */
export async function classicRead(s: TransferSession, args: string[]): Promise<void> {
  if (args.length !== 1) return s.reply('rdf', NO_FILE);
  let located: BlocksResponse;
  try {
    located = await s.api<BlocksResponse>('GET', '/fs/blocks', undefined, { path: resolvePath(args[0]!, s.cwd) });
  } catch {
    return s.reply('rdf', NO_FILE);
  }
  const port = s.ports.acquire(s.clientHost);
  if (port === undefined) return s.reply('rdf', NO_FILE);
  try {
    await s.reply('rdf', `${port}][${located.stat.size}`);
    if (!(await s.reader.readExactly(1, s.config.requestTimeoutMs))) throw new SdfsError('ECANCELED', 'the client left before confirming');
    const data = await connectToClient(s.clientHost, port, s.config.dataTimeoutMs, s.signal);
    try {
      data.setTimeout(s.config.dataTimeoutMs, () => data.destroy(new SdfsError('EUNAVAILABLE', 'the client stopped reading the data connection')));
      // Large writes at full speed: the seed's client counts recv() calls, and loses bytes whenever one
      // returns less than 2048, which a full socket buffer makes rare.
      const relocate = (): Promise<BlocksResponse> => s.api<BlocksResponse>('GET', '/fs/blocks', undefined, { path: located.stat.path });
      const source = createFileReadStream(located, s.channel, { signal: s.signal }, reportBadReplica(s.api), relocate);
      await pipeline(source, data);
    } finally {
      data.destroy();
    }
    await s.reply('rdf', `sent ${located.stat.path} (${located.stat.size} bytes)`);
  } catch (err) {
    await replyError(s, 'rdf', err);
  } finally {
    s.ports.release(s.clientHost, port);
  }
}

/** Whether the upload opened: a write of nothing completes only after the stream's construction. */
function opened(out: FileWriteStream): Promise<boolean> {
  return new Promise((resolve) => {
    out.write(Buffer.alloc(0), (err) => resolve(!err));
  });
}

/** Reads exactly `size` bytes of the data connection into `out`, never waiting for its end. */
async function receive(data: Socket, out: Writable, size: number, silenceMs: number): Promise<void> {
  let left = size;
  if (left === 0) return;
  data.setTimeout(silenceMs, () => data.destroy(new SdfsError('EUNAVAILABLE', `the data connection was silent for ${silenceMs} ms`)));
  for await (const chunk of data as AsyncIterable<Buffer>) {
    const piece = chunk.length > left ? chunk.subarray(0, left) : chunk;
    left -= piece.length;
    // After a failed write the rest is still read, and dropped, so that the client can finish and read the answer.
    if (!out.destroyed && !out.write(piece)) await drained(out);
    if (left === 0) return;
  }
  throw new SdfsError('ECANCELED', `the client closed the data connection after ${size - left} of ${size} bytes`);
}

/**
 * Connects to the client's data port. The client listens only after it has sent its confirmation
 * byte, so a refused connection is tried again until `timeoutMs` has passed.
 */
export async function connectToClient(host: string, port: number, timeoutMs: number, signal: AbortSignal): Promise<Socket> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  for (let attempt = 0; ; attempt++) {
    if (signal.aborted) throw new SdfsError('ECANCELED', 'the client left');
    const left = deadline - Date.now();
    if (left <= 0) break;
    try {
      return await connectOnce(host, port, left, signal);
    } catch (err) {
      lastError = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, Math.min(10 * 2 ** attempt, 200, Math.max(0, deadline - Date.now()))));
  }
  throw new SdfsError('EUNAVAILABLE', `could not connect to the client's data port ${host}:${port} within ${timeoutMs} ms (${lastError})`);
}

function connectOnce(host: string, port: number, timeoutMs: number, signal: AbortSignal): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    const timer = setTimeout(() => socket.destroy(new Error('connect timed out')), timeoutMs);
    const onAbort = (): void => { socket.destroy(new Error('aborted')); };
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('error', (err) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      reject(err);
    });
    socket.once('connect', () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      socket.removeAllListeners('error');
      // From here, the session's end ends the transfer too.
      addAbortSignal(signal, socket);
      socket.on('error', () => {});
      resolve(socket);
    });
  });
}

/** A replica that fails its checksum is reported, as the client library does, so that it is replaced. */
function reportBadReplica(api: ApiCaller): ReplicaFailure {
  return (block, replica, err) => {
    if (err.code === 'ECHECKSUM') api('POST', `/blocks/${block.id}/bad`, { storage: replica.id, reason: err.message }).catch(() => {});
  };
}

async function replyError(s: TransferSession, type: string, err: unknown): Promise<void> {
  if (s.signal.aborted) return;
  await s.reply(type, `Error: ${toSdfsError(err).message}`).catch(() => {});
}
