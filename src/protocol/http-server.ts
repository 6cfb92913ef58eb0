import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import { STATUS_CODES, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { SdfsError, toSdfsError } from './errors.js';

/**
 * What every sdfs HTTP server shares: bounded bodies and timeouts, and the one place where a thrown
 * error becomes an HTTP status and a JSON body with its stable code.
 */
export const SERVER_OPTIONS: FastifyServerOptions = {
  bodyLimit: 1024 * 1024,
  // A block upload may take minutes on a slow link, so a request has no time limit as a whole; but a
  // connection that moves no byte for 5 minutes (a stalled or vanished peer) is closed. Headers must
  // arrive within HEADERS_TIMEOUT_MS (set by installErrorHandler).
  requestTimeout: 0,
  connectionTimeout: 300_000,
  keepAliveTimeout: 10_000,
  routerOptions: { maxParamLength: 200, querystringParser: parseQuery },
  logger: false,
  // Header size is bounded by Node's default (16 KiB).
  // What the router or Node's HTTP parser refuses gets the same JSON error body as everything else.
  frameworkErrors: (err: FastifyError, _req: FastifyRequest, reply: FastifyReply) => {
    const e = new SdfsError('EINVAL', err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'URL parameter too long' : `malformed URL: ${err.message}`);
    void reply.code(e.httpStatus).send(e.toJSON());
  },
  clientErrorHandler: refuseMalformedRequest,
};

/**
 * Request headers must arrive in full within this, counted from the connection (or, on a kept-alive
 * one, from the request's first byte): a client that trickles them is cut off with a 408. Node's own
 * default is 60 s, checked every 30 s.
 */
export const HEADERS_TIMEOUT_MS = 10_000;

/**
 * Query strings are decoded strictly: `+` is a space, a repeated key gives an array, and a malformed
 * or non-UTF-8 percent escape (`%`, `%zz`, `%ff`, an encoded surrogate or overlong form) makes the
 * whole query invalid, refused with EINVAL (by the hook installErrorHandler adds). Fastify's default
 * parser keeps such an escape as literal text, so `path=/%ff` would name a file `%ff`.
 */
const malformedQueries = new WeakSet<object>();

export function parseQuery(query: string): Record<string, string | string[]> {
  const out = Object.create(null) as Record<string, string | string[]>;
  for (const pair of (query ?? '').split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    let key: string;
    let value: string;
    try {
      key = decodeURIComponent((eq < 0 ? pair : pair.slice(0, eq)).replaceAll('+', ' '));
      value = eq < 0 ? '' : decodeURIComponent(pair.slice(eq + 1).replaceAll('+', ' '));
    } catch {
      malformedQueries.add(out);
      return out;
    }
    const prev = out[key];
    if (prev === undefined) out[key] = value;
    else if (Array.isArray(prev)) prev.push(value);
    else out[key] = [prev, value];
  }
  return out;
}

/** Node's HTTP parser refused a request (malformed, headers too large or too slow): a JSON error, then close. */
function refuseMalformedRequest(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, e] = err.code === 'HPE_HEADER_OVERFLOW' ? [431, new SdfsError('ETOOBIG', 'request headers too large')]
    : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, new SdfsError('EINVAL', 'request headers not received in time')]
      : [400, new SdfsError('EINVAL', 'malformed HTTP request')];
  const body = JSON.stringify(e.toJSON());
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  }
  socket.destroy();
}

/**
 * Installs the error handler, and what every server refuses before any route runs: headers that do not
 * arrive within HEADERS_TIMEOUT_MS, and query strings with malformed escapes. Call before `listen`.
 */
export function installErrorHandler(app: FastifyInstance): void {
  app.server.headersTimeout = HEADERS_TIMEOUT_MS;
  // Read by Node when the server starts listening (its default, 30 s, would let a slow client hold on up to 40 s).
  (app.server as { connectionsCheckingInterval?: number }).connectionsCheckingInterval = 1000;
  app.addHook('onRequest', async (req) => {
    if (malformedQueries.has(req.query as object)) throw new SdfsError('EINVAL', 'malformed percent-encoding in the query string');
  });
  app.setErrorHandler((err: FastifyError, _req, reply) => {
    let e: SdfsError;
    if (err.validation) e = new SdfsError('EINVAL', `invalid request: ${err.message}`);
    else if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') e = new SdfsError('ETOOBIG', 'request body too large');
    else if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || (err.statusCode === 400 && !(err instanceof SdfsError))) {
      e = new SdfsError('EINVAL', err.message);
    } else e = toSdfsError(err);
    if (e.code === 'EINTERNAL') console.error(err);
    void reply.code(e.httpStatus).send(e.toJSON());
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send(new SdfsError('ENOENT', `no route ${req.method} ${req.url.split('?')[0]}`).toJSON());
  });
}

/** A certificate and its key (PEM), to serve HTTPS. */
export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
}

/** A fastify app with the shared options, serving HTTPS when given a certificate. */
export function newApp(tls: TlsFiles | undefined): FastifyInstance {
  if (!tls) return Fastify(SERVER_OPTIONS);
  return Fastify({
    ...SERVER_OPTIONS,
    serverFactory: (handler) => {
      const server = createHttpsServer({ cert: tls.cert, key: tls.key, requestTimeout: 0, keepAliveTimeout: 10_000 }, handler);
      server.setTimeout(SERVER_OPTIONS.connectionTimeout!);
      // Typed as an HTTP server, which it is over TLS.
      return server as unknown as HttpServer;
    },
  });
}
