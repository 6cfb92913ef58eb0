import Fastify, { type FastifyError, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { SdfsError, toSdfsError } from './errors.js';

/**
 * What every sdfs HTTP server shares: bounded bodies and timeouts, and the one place where a thrown
 * error becomes an HTTP status and a JSON body with its stable code.
 */
export const SERVER_OPTIONS: FastifyServerOptions = {
  bodyLimit: 1024 * 1024,
  // A block upload may take minutes on a slow link, so a request has no time limit as a whole; but a
  // connection that moves no byte for 5 minutes (a stalled or vanished peer) is closed. Headers must
  // arrive within Node's 60 s.
  requestTimeout: 0,
  connectionTimeout: 300_000,
  keepAliveTimeout: 10_000,
  routerOptions: { maxParamLength: 200 },
  logger: false,
  // Header size is bounded by Node's default (16 KiB).
};

export function installErrorHandler(app: FastifyInstance): void {
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
