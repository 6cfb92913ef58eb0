import { request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import * as tls from 'node:tls';
import { AUTH_HEADERS, signRequest, verifyRequest, type ClusterKeys } from './auth.js';
import { SdfsError, toSdfsError } from './errors.js';

/**
 * The block link: one TCP connection from a block writer (a client, or a storage server forwarding
 * down a write pipeline) to a storage server, that carries many whole small blocks at once, each
 * a request frame answered by a reply frame. It exists for speed alone: a 4 KiB block written
 * through HTTP cost the storage servers about 0.3 ms of CPU each, most of it node:http's request
 * and response objects and fastify's; through the link about 0.17 (docs/BENCHMARKS.md). A block
 * longer than a frame, and anything but a block write, still goes through HTTP.
 *
 * The connection is opened as an HTTP request upgraded to `sdfs-block-link` on the storage server's
 * port, so it is TLS whenever the server serves HTTPS. A storage server signs its upgrade request
 * as HTTP requests are signed (cluster member); anyone else must bring the block's write token in
 * every frame, as on HTTP.
 *
 * Frames, both ways: u32 length of the rest, u32 request id, then
 * - request: u16 header length, the header (JSON, `LinkHeader`), the block's bytes;
 * - reply: u16 status (as HTTP's), the answer (JSON, as HTTP's body).
 * Replies come as blocks are stored, in any order.
 */
export interface LinkHeader {
  /** The block id. */
  id: string;
  /** What HTTP would send as headers: the block token, the rest of the pipeline, the trailer's algorithm. */
  headers: Record<string, string>;
}

export const LINK_UPGRADE = 'sdfs-block-link';
export const LINK_PATH = '/v1/block-link';
/** The largest block a frame carries (a longer one goes by HTTP, streamed). */
const LINK_BLOCK_MAX = 64 * 1024;
/** The largest body: a block and, between storage servers, its digest after it. */
export const LINK_BODY_MAX = LINK_BLOCK_MAX + 64;
const HEADER_MAX = 8 * 1024;
const FRAME_MAX = 4 + 2 + HEADER_MAX + LINK_BODY_MAX;
/** Requests a server works on at once per link; past this it reads no more until some are answered. */
const SERVER_IN_FLIGHT = 64;
/** As block connections (BlockChannel): a link not opened this soon fails. */
const CONNECT_TIMEOUT_MS = 10_000;
/** As the HTTP agent's headers timeout: a request unanswered this long fails. */
const REQUEST_TIMEOUT_MS = 120_000;
/** A writer closes a link that carried nothing this long (before the server would: see SERVER_IDLE_MS). */
const CLIENT_IDLE_MS = 30_000;
/** A server closes a link that carried nothing this long, as it does an idle HTTP connection. */
const SERVER_IDLE_MS = 300_000;
/** A server that refused the upgrade (an older one) is written to over HTTP this long before the link is tried again. */
const REFUSED_RETRY_MS = 60_000;

/**
 * Cuts a byte stream into frames. A length over the limit is a protocol error: `onError` is called
 * and nothing more is parsed.
 */
class FrameReader {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private failed = false;

  constructor(private readonly onFrame: (id: number, body: Buffer) => void, private readonly onError: (err: SdfsError) => void) {}

  push(chunk: Buffer): void {
    if (this.failed) return;
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    while (this.pendingBytes >= 4) {
      const buf = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
      const length = buf.readUInt32BE(0);
      if (length < 4 || length > FRAME_MAX) {
        this.failed = true;
        this.onError(new SdfsError('EPROTO', `block link: a frame of ${length} bytes`));
        return;
      }
      if (buf.length < 4 + length) {
        this.pending = [buf];
        return;
      }
      const rest = buf.subarray(4 + length);
      this.pending = rest.length > 0 ? [rest] : [];
      this.pendingBytes = rest.length;
      this.onFrame(buf.readUInt32BE(4), buf.subarray(8, 4 + length));
      if (this.failed) return;
    }
  }
}

function frameHead(bodyLength: number, id: number, short: number): Buffer {
  const head = Buffer.allocUnsafe(10);
  head.writeUInt32BE(4 + 2 + bodyLength, 0);
  head.writeUInt32BE(id, 4);
  head.writeUInt16BE(short, 8);
  return head;
}

/** The client end of one link. Fails every request in flight, and is not used again, once its connection ends. */
class BlockLink {
  private nextId = 1;
  private readonly inFlight = new Map<number, { resolve: (r: { status: number; text: string }) => void; reject: (e: SdfsError) => void; timer: NodeJS.Timeout }>();
  private readonly socket: Promise<Socket>;
  private opened: Socket | undefined;
  closed = false;
  /** The server answered the upgrade with something else: it has no links (an older one). */
  refused = false;

  constructor(origin: string, opts: { ca?: Buffer; headers?: () => Record<string, string> }, onRefused: () => void) {
    this.socket = new Promise<Socket>((resolve, reject) => {
      const send = origin.startsWith('https:') ? httpsRequest : httpRequest;
      const ca = opts.ca ? [...tls.rootCertificates, opts.ca.toString('utf8')] : undefined;
      const req = send(`${origin}${LINK_PATH}`, {
        headers: { connection: 'Upgrade', upgrade: LINK_UPGRADE, ...(opts.headers?.() ?? {}) }, ...(ca ? { ca } : {}),
      });
      req.on('upgrade', (_res: IncomingMessage, socket: Socket, head: Buffer) => {
        this.opened = socket;
        socket.setNoDelay(true);
        // An idle link does not keep its process alive (as undici's idle connections do not).
        socket.unref();
        const reader = new FrameReader((id, body) => this.onReply(id, body), (err) => this.close(err));
        socket.on('data', (chunk: Buffer) => reader.push(chunk));
        socket.on('error', (err) => this.close(toSdfsError(err)));
        socket.on('close', () => this.close(new SdfsError('EUNAVAILABLE', `block link to ${origin} closed`)));
        // The opening request's own timeout (CONNECT_TIMEOUT_MS) must not end the link once open.
        socket.removeAllListeners('timeout');
        socket.setTimeout(CLIENT_IDLE_MS, () => {
          if (this.inFlight.size === 0) this.close();
        });
        if (head.length > 0) reader.push(head);
        if (this.closed) socket.destroy();
        resolve(socket);
      });
      // An answer instead of an upgrade: a server without links.
      req.on('response', (res: IncomingMessage) => {
        res.resume();
        this.refused = true;
        onRefused();
        reject(new SdfsError('EUNAVAILABLE', `${origin} has no block link`));
      });
      req.on('error', (err) => reject(toSdfsError(err)));
      req.setTimeout(CONNECT_TIMEOUT_MS, () => req.destroy(new SdfsError('EUNAVAILABLE', `block link to ${origin}: not opened within ${CONNECT_TIMEOUT_MS / 1000} s`)));
      req.end();
    });
    this.socket.catch((err: unknown) => this.close(toSdfsError(err)));
  }

  /** Sends a block (whole, at most LINK_BODY_MAX bytes); resolves with the reply's status and JSON text. */
  async request(header: LinkHeader, block: Buffer): Promise<{ status: number; text: string }> {
    const socket = await this.socket;
    if (this.closed) throw new SdfsError('EUNAVAILABLE', 'block link closed');
    const json = Buffer.from(JSON.stringify(header));
    const id = this.nextId;
    this.nextId = (this.nextId % 0xffffffff) + 1;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.inFlight.delete(id);
        if (this.inFlight.size === 0) socket.unref();
        reject(new SdfsError('EUNAVAILABLE', `block link: no answer for block ${header.id}`));
      }, REQUEST_TIMEOUT_MS);
      if (this.inFlight.size === 0) socket.ref();
      this.inFlight.set(id, { resolve, reject, timer });
      socket.cork();
      socket.write(frameHead(json.length + block.length, id, json.length));
      socket.write(json);
      socket.write(block);
      socket.uncork();
    });
  }

  private onReply(id: number, body: Buffer): void {
    const waiting = this.inFlight.get(id);
    if (!waiting || body.length < 2) return;
    this.inFlight.delete(id);
    clearTimeout(waiting.timer);
    if (this.inFlight.size === 0) this.opened?.unref();
    waiting.resolve({ status: body.readUInt16BE(0), text: body.subarray(2).toString('utf8') });
  }

  close(err: SdfsError = new SdfsError('ECANCELED', 'block link closed')): void {
    if (this.closed && this.inFlight.size === 0) return;
    this.closed = true;
    for (const w of this.inFlight.values()) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    this.inFlight.clear();
    this.opened?.destroy();
  }
}

/**
 * A process's links, one per storage server, opened on first use and again after one ends. A
 * server that answers the upgrade with anything else (an older one) gets `undefined` for a while:
 * the caller then uses HTTP.
 */
export class BlockLinks {
  private readonly links = new Map<string, BlockLink>();
  private readonly refused = new Map<string, number>();

  /** `headers`: added to each upgrade request (a storage server's signature). */
  constructor(private readonly opts: { ca?: Buffer; headers?: () => Record<string, string> } = {}) {}

  get(origin: string): BlockLink | undefined {
    const until = this.refused.get(origin);
    if (until !== undefined) {
      if (Date.now() < until) return undefined;
      this.refused.delete(origin);
    }
    let link = this.links.get(origin);
    if (!link || link.closed) {
      link = new BlockLink(origin, this.opts, () => this.refused.set(origin, Date.now() + REFUSED_RETRY_MS));
      this.links.set(origin, link);
    }
    return link;
  }

  close(): void {
    for (const link of this.links.values()) link.close();
    this.links.clear();
  }
}

/** A cluster member's links (a storage server's, the name server's): each upgrade request signed with the cluster secret. */
export function memberLinks(keys: ClusterKeys, ca?: Buffer): BlockLinks {
  return new BlockLinks({ ca, headers: () => ({ [AUTH_HEADERS.cluster]: signRequest(keys, 'GET', LINK_PATH) }) });
}

/** Whether a link's upgrade request was signed by a cluster member (see memberLinks). */
export function fromMember(keys: ClusterKeys, req: IncomingMessage): boolean {
  const header = req.headers[AUTH_HEADERS.cluster];
  return verifyRequest(keys, Array.isArray(header) ? header[0] : header, 'GET', LINK_PATH);
}

export type LinkHandler = (header: LinkHeader, block: Buffer, clusterMember: boolean) => Promise<{ status: number; body: unknown }>;

/**
 * The server end: takes upgrades to the block link on `server`'s port, and hands each request frame
 * to `handle`. `isClusterMember` judges the upgrade request's headers. A malformed frame ends the
 * connection; a handler's error is its reply. Returns what ends every open link, once the requests
 * being handled are answered (at shutdown).
 */
export function acceptBlockLinks(server: Server, isClusterMember: (req: IncomingMessage) => boolean, handle: LinkHandler): () => Promise<void> {
  const open = new Set<Socket>();
  let handling = 0;
  let stopping = false;
  let idle: (() => void) | undefined;
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    if (stopping) {
      socket.destroy();
      return;
    }
    if (req.headers.upgrade !== LINK_UPGRADE || req.url !== LINK_PATH) {
      socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    const clusterMember = isClusterMember(req);
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: ${LINK_UPGRADE}\r\n\r\n`);
    socket.setNoDelay(true);
    open.add(socket);
    let working = 0;
    let ending = false;
    const reply = (id: number, status: number, body: unknown): void => {
      if (socket.destroyed) return;
      const json = Buffer.from(JSON.stringify(body));
      socket.cork();
      socket.write(frameHead(json.length, id, status));
      socket.write(json);
      socket.uncork();
    };
    const reader = new FrameReader((id, frame) => {
      if (ending) return;
      const header = parseHeader(frame);
      if (!header) {
        reply(id, 400, new SdfsError('EPROTO', 'block link: malformed frame header').toJSON());
        ending = true;
        socket.end();
        return;
      }
      const block = frame.subarray(2 + frame.readUInt16BE(0));
      if (++working >= SERVER_IN_FLIGHT) socket.pause();
      handling++;
      handle(header, block, clusterMember).then(
        (r) => reply(id, r.status, r.body),
        (err: unknown) => {
          const e = toSdfsError(err);
          reply(id, e.httpStatus, e.toJSON());
        },
      ).finally(() => {
        if (--working < SERVER_IN_FLIGHT && socket.isPaused() && !stopping) socket.resume();
        if (working === 0 && peerEnded) socket.end();
        if (--handling === 0) idle?.();
      });
    }, () => socket.destroy());
    socket.on('data', (chunk: Buffer) => reader.push(chunk));
    // The HTTP server keeps a connection half open when its peer ends it: the link ends it too, once answered.
    let peerEnded = false;
    socket.on('end', () => {
      peerEnded = true;
      if (working === 0) socket.end();
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => open.delete(socket));
    socket.setTimeout(SERVER_IDLE_MS, () => {
      if (working === 0) socket.destroy();
    });
    if (head.length > 0) reader.push(head);
  });
  // At shutdown: no more frames are read, the blocks being stored are answered, then every link ends.
  return async () => {
    stopping = true;
    for (const socket of open) socket.pause();
    if (handling > 0) await new Promise<void>((resolve) => { idle = resolve; });
    for (const socket of open) socket.destroy();
    open.clear();
  };
}

/** A request frame's header, or undefined if it is not one. */
function parseHeader(frame: Buffer): LinkHeader | undefined {
  if (frame.length < 2) return undefined;
  const length = frame.readUInt16BE(0);
  if (length > HEADER_MAX || 2 + length > frame.length) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(frame.subarray(2, 2 + length).toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const { id, headers } = parsed as { id?: unknown; headers?: unknown };
  if (typeof id !== 'string' || typeof headers !== 'object' || headers === null || Array.isArray(headers)) return undefined;
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [k, v] of Object.entries(headers)) {
    if (typeof v !== 'string') return undefined;
    out[k.toLowerCase()] = v;
  }
  return { id, headers: out };
}
