import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { createReadStream, type Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import { extname, join, resolve, sep } from 'node:path';
import { SdfsError } from '../protocol/errors.js';
import { ACCESS } from './access.js';

/** Where `npm run build` puts the web UI (src/web, built by Vite): `dist/web`, beside `dist/name`. */
export const WEB_ROOT = resolve(import.meta.dirname, '../web');

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.webp': 'image/webp',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
};

/** Files Vite names by content hash: they never change, so browsers may keep them for a year. */
const IMMUTABLE = /^\/assets\//;

/** The UI's own routes (the history API's): a reload or a shared link gets index.html, and the page routes itself. */
const UI_ROUTES = /^\/(?:files(?:\/.*)?|cluster\/?)?$/;

/** Fixed for every page: scripts and styles only from this server, no framing. */
const HTML_HEADERS = {
  'content-security-policy': "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'referrer-policy': 'same-origin',
};

/**
 * Serves the web UI at `/`: the files of `root` streamed from disk (never read whole into memory),
 * a gzipped twin when the build made one and the browser takes it, validators for revalidation,
 * and index.html for the UI's routes. Everything under `/api/` is left to the API: a path there
 * that no route serves is a JSON 404, never a page.
 */
export function registerWebUi(app: FastifyInstance, opts: { root?: string } = {}): void {
  const root = opts.root ?? WEB_ROOT;
  app.get('/*', ACCESS.public, async (req: FastifyRequest, reply: FastifyReply) => {
    const pathname = req.url.split('?', 1)[0]!;
    if (pathname === '/api' || pathname.startsWith('/api/')) throw new SdfsError('ENOENT', `no route ${req.method} ${pathname}`);
    let decoded: string;
    try {
      decoded = decodeURIComponent(pathname);
    } catch {
      throw new SdfsError('EINVAL', `malformed URL: ${pathname}`);
    }
    if (decoded.includes('\0')) throw new SdfsError('EINVAL', 'malformed URL');
    let file = resolve(root, `.${decoded}`);
    if (file !== root && !file.startsWith(root + sep)) throw new SdfsError('ENOENT', `not found: ${pathname}`);
    let st = await fileStat(file);
    if (!st) {
      if (!UI_ROUTES.test(pathname)) throw new SdfsError('ENOENT', `not found: ${pathname}`);
      file = join(root, 'index.html');
      st = await fileStat(file);
      if (!st) {
        return reply.code(404).type('text/plain; charset=utf-8')
          .send('The web UI is not built here: run `npm run build` (it builds src/web into dist/web).\n');
      }
    }
    return sendFile(req, reply, file, st, pathname);
  });
}

async function sendFile(req: FastifyRequest, reply: FastifyReply, file: string, st: Stats, pathname: string): Promise<FastifyReply> {
  const ext = extname(file).toLowerCase();
  const html = ext === '.html';
  void reply
    .header('content-type', CONTENT_TYPES[ext] ?? 'application/octet-stream')
    .header('x-content-type-options', 'nosniff')
    .header('cache-control', html ? 'no-cache' : IMMUTABLE.test(pathname) ? 'public, max-age=31536000, immutable' : 'public, max-age=3600')
    .header('last-modified', st.mtime.toUTCString())
    .header('vary', 'accept-encoding');
  if (html) void reply.headers(HTML_HEADERS);

  // A gzipped twin written by the build, for text files; chosen only when the browser accepts gzip.
  const accepts = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
  const gz = accepts ? await fileStat(`${file}.gz`) : undefined;
  const body = gz ? { path: `${file}.gz`, st: gz } : { path: file, st };
  const etag = `W/"${body.st.size.toString(16)}-${Math.floor(body.st.mtimeMs).toString(16)}${gz ? '-gz' : ''}"`;
  void reply.header('etag', etag);
  if (gz) void reply.header('content-encoding', 'gzip');
  const match = req.headers['if-none-match'];
  if (match && match.split(',').some((t) => t.trim() === etag)) return reply.code(304).send();
  void reply.header('content-length', String(body.st.size));
  return reply.send(createReadStream(body.path));
}

/** The file's stats, or undefined if it is missing or not a regular file (a directory, say). */
async function fileStat(path: string): Promise<Stats | undefined> {
  try {
    const st = await stat(path);
    return st.isFile() ? st : undefined;
  } catch {
    return undefined;
  }
}
