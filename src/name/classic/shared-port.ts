import type { Server } from 'node:http';
import type { Socket } from 'node:net';

/**
 * One port for HTTP and the classic protocol, told apart by the first bytes. An HTTP request starts
 * with a method, upper-case letters and a space (`GET `, `POST `, `PROPFIND `...); a classic request
 * starts with its lower-case type and `][` (`rddir][`). Anything else goes to the classic side, which
 * answers it with an error.
 */
export type Protocol = 'http' | 'classic';

/** The longest method an HTTP request may start with here; longer runs of capitals are not HTTP. */
const MAX_METHOD = 20;

/** Which protocol `head` (the first bytes of a connection) speaks; undefined while it cannot tell yet. */
export function classify(head: Uint8Array): Protocol | undefined {
  for (let i = 0; i < head.length; i++) {
    const b = head[i]!;
    if (b === 0x20) return i > 0 ? 'http' : 'classic';
    const methodChar = (b >= 0x41 && b <= 0x5a) || b === 0x2d || b === 0x5f; // A-Z - _
    if (!methodChar || i >= MAX_METHOD) return 'classic';
  }
  return undefined;
}

export interface SharedPortOptions {
  /** A connection that sends too little to tell within this is closed, ms. */
  idleTimeoutMs: number;
  /** Connections waiting to be told apart; beyond this, the one that has waited longest is closed. */
  maxPending: number;
  /** Takes over a classic connection; `head` is what was read to tell (the start of its first request). */
  onClassic(socket: Socket, head: Buffer): void;
}

export interface SharedPort {
  /** Closes the connections still being told apart. */
  stop(): void;
}

/**
 * Puts a sniffer in front of an HTTP server (before it listens): every accepted connection is read
 * until its first bytes tell its protocol, then given back (bytes and all) to the HTTP server's own
 * connection handler, or to `onClassic`. The HTTP server keeps its listening socket, timeouts and
 * close behaviour; it only sees its connections a few bytes later.
 */
export function sharePort(server: Server, opts: SharedPortOptions): SharedPort {
  const listeners = server.listeners('connection');
  if (listeners.length !== 1) throw new Error(`expected the HTTP server's own connection handler alone, found ${listeners.length} handlers`);
  const httpConnection = listeners[0] as (socket: Socket) => void;
  server.removeListener('connection', httpConnection);
  const pending = new Set<Socket>();
  let stopped = false;

  server.on('connection', (socket: Socket) => {
    if (stopped) return void socket.destroy();
    const oldest = pending.size >= opts.maxPending ? pending.values().next().value : undefined;
    if (oldest) {
      pending.delete(oldest);
      oldest.destroy();
    }
    pending.add(socket);
    const chunks: Buffer[] = [];
    let size = 0;
    // An error, a silence or an end before the protocol is known: nothing to answer.
    const onError = (): void => { socket.destroy(); };
    const onTimeout = (): void => { socket.destroy(); };
    const onEnd = (): void => { socket.destroy(); };
    const onClose = (): void => { pending.delete(socket); };
    const onReadable = (): void => {
      let chunk: Buffer | null;
      while ((chunk = socket.read() as Buffer | null) !== null) {
        chunks.push(chunk);
        size += chunk.length;
      }
      const head = Buffer.concat(chunks, size);
      const protocol = classify(head);
      if (!protocol) return;
      socket.off('readable', onReadable);
      socket.off('error', onError);
      socket.off('timeout', onTimeout);
      socket.off('end', onEnd);
      socket.off('close', onClose);
      socket.setTimeout(0);
      pending.delete(socket);
      if (protocol === 'http') {
        socket.unshift(head);
        httpConnection.call(server, socket);
      } else {
        opts.onClassic(socket, head);
      }
    };
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.on('timeout', onTimeout);
    socket.on('end', onEnd);
    socket.setTimeout(opts.idleTimeoutMs);
    socket.on('readable', onReadable);
  });

  return {
    stop() {
      stopped = true;
      for (const socket of pending) socket.destroy();
      pending.clear();
    },
  };
}
