import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { Agent } from 'undici';
import { tokenize } from '../src/cli/tokenize.js';
import { classify } from '../src/name/classic/shared-port.js';
import { ERROR_TABLE } from '../src/protocol/errors.js';
import { CLI, Cluster, waitFor } from './helpers/cluster.js';
import { sha256, sha256Of } from './helpers/data.js';
import {
  assertOnlyExpectedNewFiles, assertSdfsError, clusterAuth, fuzz, listTree, parseRawResponse, rawExchange, send, startHostileCluster, type Answer, type HostileCluster,
} from './helpers/fuzz.js';

// A time-bounded fuzz of each parser that takes input from outside: the name server's HTTP API
// (methods, routes, query strings, content types, JSON bodies), the storage servers' block routes
// (block ids, ranges, pipeline headers, bodies), the HTTP parser itself (raw bytes), and the shell
// (random lines). Each run prints its seed: FUZZ_SEED=<seed> replays it. The classic protocol has
// its own fuzz in classic.test.ts. Every answer must be an answer (never a hang, a crash or a 5xx),
// every refusal a JSON error with its stable code, the servers must work as before afterwards, and
// nothing may appear on disk beside or above a data dir.

const HEX32 = fc.stringMatching(/^[0-9a-f]{32}$/);

/** Names that have broken file systems, shells and parsers before. */
const HOSTILE_NAMES = [
  '..', '.', '', '...', 'etc', 'passwd', '..\\..\\x', '\\', 'a\u0000b', '\u0000', '\u001b[31m', '\u007f', '\ud800', 'é', 'e\u0301', '🎉',
  ' ', 'a'.repeat(255), 'a'.repeat(256), 'é'.repeat(128), '%2e%2e', '%00', '~', '$HOME', 'nul', 'con', '*', '?', '\n', '\r\n', '\u202e',
  '\ufeff', '\uffff',
];
const segment = fc.oneof(
  fc.constantFrom(...HOSTILE_NAMES),
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.string({ unit: 'grapheme', maxLength: 8 }),
  fc.stringMatching(/^[a-z]{1,6}$/),
);
const hostilePath: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.tuple(fc.constantFrom('/', '', '//', '/../', '\\'), fc.array(fc.tuple(segment, fc.constantFrom('/', '/', '//', '\\', '/./', '/../')), { maxLength: 6 }))
    .map(([lead, parts]) => lead + parts.map(([s, sep]) => s + sep).join('')) },
  { weight: 1, arbitrary: fc.constantFrom('/../../etc/passwd', '../../../../etc', '/' + 'a/'.repeat(300), '/' + 'x'.repeat(5000), '/fz', '/fz/file', '/fz/../fz/file',
    '/' + 'd/'.repeat(260) + 'f', '/' + 'n'.repeat(4095), '/', '.', '..') },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 64 }) },
  // Paths that exist or may: the routes get past their checks, into the namespace.
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom('/fz', '/fz/a', '/fz/b', '/fz/file', ''), fc.stringMatching(/^[ab]$/)).map(([d, n]) => `${d}/${n}`) },
  { weight: 1, arbitrary: fc.constantFrom('/fz', '/fz/file', '/') },
);

/** A string as it may appear in a URL: mostly encoded, sometimes raw, sometimes with broken escapes. */
const PERCENT_GARBAGE = fc.string({ unit: fc.constantFrom('%', '%', '0', 'f', 'F', 'e', 'd', 'c', '8', 'a', 'z', '2', 'E', '/', '.', '+', '&', '='), maxLength: 16 });
function looseEncode(s: string): string {
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (c >= 0x21 && c <= 0x7e) out += ch;
    else if (c >= 0xd800 && c <= 0xdfff) out += '%ED%A0%80';
    else out += encodeURIComponent(ch);
  }
  return out;
}
const urlValue = (v: fc.Arbitrary<string>): fc.Arbitrary<string> => fc.oneof(
  { weight: 3, arbitrary: v.map((s) => (s.isWellFormed() ? encodeURIComponent(s) : looseEncode(s))) },
  { weight: 1, arbitrary: v.map(looseEncode) },
  { weight: 1, arbitrary: fc.tuple(v, PERCENT_GARBAGE).map(([s, g]) => looseEncode(s) + g) },
);

const jsonish = fc.jsonValue({ maxDepth: 3 });
const maybe = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(a, { nil: undefined });
const rarely = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: a });
const flag = fc.oneof({ weight: 3, arbitrary: fc.boolean() }, { weight: 1, arbitrary: jsonish });
const count = fc.oneof({ weight: 2, arbitrary: fc.integer({ min: -5, max: 70_000 }) },
  { weight: 1, arbitrary: fc.constantFrom(0, 1, 16, 17, 1024, 2 ** 31, 2 ** 53, -1, 1.5, 1e308) }, { weight: 1, arbitrary: jsonish });

/** Bodies shaped like each route's, with hostile values. */
const fsBody = fc.record({ path: hostilePath, parents: flag, recursive: flag }, { requiredKeys: ['path'] });
const moveBody = fc.record({ from: hostilePath, to: hostilePath, overwrite: flag }, { requiredKeys: ['from', 'to'] });
const uploadBody = fc.record({ path: hostilePath, overwrite: flag, replication: count, blockSize: count, allocate: flag }, { requiredKeys: ['path'] });
const blockReport = fc.record({
  index: maybe(count), exclude: maybe(fc.array(fc.oneof(HEX32, fc.string()), { maxLength: 70 })), blockId: maybe(fc.oneof(HEX32, fc.string())),
  size: maybe(count), digest: maybe(fc.oneof(fc.stringMatching(/^xxh3:[0-9a-f]{16}$/), fc.stringMatching(/^sha256:[0-9a-f]{64}$/), fc.string())), replicas: maybe(fc.array(fc.oneof(HEX32, fc.string()), { maxLength: 20 })),
}, { requiredKeys: [] });
const commitBody = fc.record({ last: maybe(fc.oneof(blockReport, jsonish)) }, { requiredKeys: [] });

/** How a body is sent: as its JSON, or broken in one of many ways. */
const bodyText = (shaped: fc.Arbitrary<unknown>): fc.Arbitrary<string | Buffer | undefined> => fc.oneof(
  { weight: 6, arbitrary: shaped.map((b) => JSON.stringify(b)) },
  { weight: 2, arbitrary: jsonish.map((b) => JSON.stringify(b)) },
  { weight: 1, arbitrary: fc.tuple(shaped, fc.nat()).map(([b, n]) => { const t = JSON.stringify(b); return t.slice(0, n % (t.length + 1)); }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u)) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 100_000 }).map((n) => '['.repeat(n) + ']'.repeat(n)) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 50_000 }).map((n) => `{"path":${'{"a":'.repeat(n)}1${'}'.repeat(n)}}`) },
  { weight: 1, arbitrary: fc.constantFrom('{"path":"/p","__proto__":{"x":1}}', '{"path":"/p","constructor":{"prototype":{"x":1}}}', '{"path":"/a","path":"/b"}',
    '\ufeff{"path":"/bom"}', '{"path":"/\\ud800"}', '{"path":"\\u0000"}', 'null', '[]', '""', '1e999', '{"path":"/x","parents":1e999}') },
  { weight: 1, arbitrary: fc.constant(undefined) },
);

const CONTENT_TYPES = fc.oneof(
  { weight: 6, arbitrary: fc.constant('application/json') },
  { weight: 4, arbitrary: fc.constantFrom('application/json; charset=utf-8', 'application/json; charset=utf-16', 'text/plain', 'application/octet-stream',
    'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded', 'APPLICATION/JSON', 'application/json;;', ';', '', '*/*', 'application/jsonx', 'text/json') },
  { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom('a', '/', ';', '=', ' ', 'j', 's', 'o', 'n', ',', '"', '*'), maxLength: 30 }) },
);
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'PATCH', 'OPTIONS', 'PROPFIND', 'TRACE'];

interface ApiCase { method: string; url: string; contentType?: string; body?: string | Buffer }

/** A request to the name server: one of its routes, with hostile queries, ids, bodies and content types. */
const apiCase: fc.Arbitrary<ApiCase> = fc.oneof(
  // Well-formed requests among the hostile ones: they change the namespace the others run into.
  fc.oneof(
    fc.constantFrom('/fz', '/fz/file', '/', '/fz/a', '/fz/b/a').map((p) => ({ method: 'GET', url: `/api/v1/fs/stat?path=${encodeURIComponent(p)}` })),
    fc.tuple(fc.constantFrom('mkdir', 'create', 'delete'), fc.constantFrom('/fz/a', '/fz/b', '/fz/b/a', '/fz/a/b'))
      .map(([op, p]) => ({ method: 'POST', url: `/api/v1/fs/${op}`, contentType: 'application/json', body: JSON.stringify({ path: p, recursive: true }) })),
  ),
  // Routes that read a path from the query (content: the bytes of a file).
  fc.record({
    method: fc.oneof({ weight: 5, arbitrary: fc.constantFrom('GET', 'GET', 'PUT', 'HEAD') }, { weight: 1, arbitrary: fc.constantFrom(...METHODS) }),
    route: fc.constantFrom('fs/stat', 'fs/list', 'fs/blocks', 'fs/content', 'fsck'),
    query: fc.array(fc.oneof(
      { weight: 4, arbitrary: urlValue(hostilePath).map((v) => `path=${v}`) },
      { weight: 1, arbitrary: fc.tuple(fc.constantFrom('overwrite', 'replication', 'blockSize', 'inline', 'path', '__proto__', 'constructor', ''), urlValue(fc.string({ maxLength: 12 })))
        .map(([k, v]) => `${k}=${v}`) },
      { weight: 1, arbitrary: PERCENT_GARBAGE },
    ), { maxLength: 4 }),
    body: fc.oneof(fc.constant(undefined), fc.uint8Array({ maxLength: 2000 }).map((u) => Buffer.from(u))),
    contentType: fc.option(CONTENT_TYPES, { nil: undefined }),
  }).map(({ method, route, query, body, contentType }) => ({ method, url: `/api/v1/${route}?${query.join('&')}`, body: method === 'GET' || method === 'HEAD' ? undefined : body, contentType })),
  // JSON routes, with bodies shaped like theirs.
  fc.oneof(
    fc.record({ route: fc.constantFrom('fs/mkdir', 'fs/create', 'fs/delete'), body: bodyText(fsBody) }),
    fc.record({ route: fc.constantFrom('fs/move', 'fs/copy'), body: bodyText(moveBody) }),
    fc.record({ route: fc.constant('uploads'), body: bodyText(uploadBody) }),
    fc.record({ route: fc.constant('session'), body: bodyText(fc.record({ key: fc.oneof(fc.string({ maxLength: 300 }), jsonish) })) }),
    fc.record({
      route: fc.tuple(fc.oneof(HEX32, urlValue(fc.string({ maxLength: 40 }))), fc.constantFrom('blocks', 'stored', 'commit')).map(([id, op]) => `uploads/${id}/${op}`),
      body: bodyText(fc.oneof(blockReport, commitBody)),
    }),
    // The routes of storage servers and operators get garbage only: a valid body would really drain a
    // storage server (decommission is open to any writer; the storage routes want a cluster signature).
    // POST /cluster/init, which wipes everything, is left out.
    fc.record({
      route: fc.constantFrom('storages/register', 'storages/heartbeat', 'storages/blocks', 'storages/decommission', `blocks/${'0'.repeat(32)}/bad`),
      body: fc.oneof(fc.string({ unit: 'binary', maxLength: 100 }), fc.constantFrom('[]', 'null', '{', '{"id":1}', '{"storage":""}', '"x"')),
    }),
  ).chain(({ route, body }) => fc.record({
    method: fc.oneof({ weight: 8, arbitrary: fc.constant('POST') }, { weight: 1, arbitrary: fc.constantFrom(...METHODS) }),
    contentType: fc.option(CONTENT_TYPES, { nil: undefined, freq: 8 }),
  }).map(({ method, contentType }) => ({ method, url: `/api/v1/${route}`, body: method === 'GET' || method === 'HEAD' ? undefined : body, contentType }))),
  // Upload ids in the URL, and everything else a URL may hold.
  fc.record({
    method: fc.constantFrom(...METHODS),
    path: fc.oneof(
      fc.tuple(fc.oneof(HEX32, urlValue(fc.string({ maxLength: 300 }))), fc.constantFrom('', '/blocks', '/x')).map(([id, rest]) => `/api/v1/uploads/${id}${rest}`),
      fc.constantFrom('/', '/files/..%2f..%2fetc%2fpasswd', '/..%2f..%2fetc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/assets/%2e%2e/%2e%2e/package.json',
        '/index.html%00.js', '/api/v1/openapi.json', '/api/v1/cluster', '/api/v1/cluster/status', '/api/v1/../../etc/passwd', '/api/v1/fs/..%2fcluster',
        '//etc/passwd', '/files/%ff', '/%', '/%%', '/api/v1/fs/stat/%c0%ae%c0%ae'),
      urlValue(hostilePath).map((p) => `/${p}`),
    ),
  }).map(({ method, path }) => ({ method, url: path })),
);

describe('fuzz', () => {
  let root: string;
  let cluster: Cluster;
  let agent: Agent;
  let tree: Set<string>;
  let local: string;
  let hostile: HostileCluster | undefined;

  before(async () => {
    hostile = await startHostileCluster();
    ({ root, cluster, agent } = hostile);
    const client = cluster.client();
    await client.mkdir('/fz');
    await client.writeFile('/fz/file', randomBytes(100_000));
    // The shell's local working directory.
    local = join(root, 'shell-cwd');
    await mkdir(local);
    await writeFile(join(local, 'local.txt'), 'local bytes');
    tree = await listTree(root);
  });
  after(() => hostile?.stop());

  /** The cluster still serves: the same bytes back through both ways in, and nothing new outside the data dirs. */
  const stillWorks = async (what: string): Promise<void> => {
    assert.equal(cluster.name.child.exitCode, null, `${what}: the name server is alive`);
    for (const s of cluster.storages) assert.equal(s.child.exitCode, null, `${what}: storage server ${s.port} is alive`);
    const data = randomBytes(150_000);
    const path = `/after-${what}-${randomBytes(4).toString('hex')}`;
    const put = await send(`${cluster.url}/api/v1/fs/content?path=${encodeURIComponent(path)}`, {
      method: 'PUT', body: data, headers: { 'content-type': 'application/octet-stream' }, dispatcher: agent,
    });
    assert.equal(put.status, 200, put.body.toString());
    const client = cluster.client();
    assert.equal((await sha256Of(await client.createReadStream(path))).sha256, sha256(data));
    const get = await send(`${cluster.url}/api/v1/fs/content?path=${encodeURIComponent(path)}`, { method: 'GET', dispatcher: agent });
    assert.equal(sha256(get.body), sha256(data));
    // Writes cut short are cleaned up: no temporary block file stays behind.
    await waitFor('no temporary block files', async () => {
      for (const s of cluster.storages) if ((await readdir(join(s.dataDir, 'tmp'))).length > 0) return false;
      return true;
    });
    assertOnlyExpectedNewFiles(tree, await listTree(root));
  };

  it('the HTTP API: random and mutated requests are answered, refusals as JSON errors, never a 5xx', async () => {
    const statuses = new Map<number, number>();
    await fuzz('http-api', apiCase, async (c) => {
      const headers: Record<string, string> = {};
      if (c.contentType !== undefined) headers['content-type'] = c.contentType;
      let a: Answer;
      try {
        a = await send(`${cluster.url}${c.url}`, { method: c.method, headers, body: c.body, dispatcher: agent });
      } catch (err) {
        assert.fail(`${c.method} ${c.url}: no answer: ${String(err)}`);
      }
      const what = `${c.method} ${c.url.slice(0, 300)} (${c.contentType ?? 'no content type'}) ${String(c.body ?? '').slice(0, 200)}`;
      statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
      assert.ok(a.status < 500, `${what}: HTTP ${a.status} ${a.body.toString().slice(0, 300)}`);
      const isApi = c.url.startsWith('/api/');
      if (a.status >= 400 && c.method !== 'HEAD' && (isApi || String(a.headers['content-type']).startsWith('application/json'))) {
        const code = assertSdfsError(a, what);
        // The status is the one of the code's table entry (but 408 and 431, which the HTTP parser answers).
        if (a.status !== 408 && a.status !== 431) assert.equal(a.status, ERROR_TABLE[code as keyof typeof ERROR_TABLE].status, `${what}: HTTP ${a.status} ${code}`);
      }
    }, { ms: 4000, minRuns: 200 });
    console.log(`# http-api answers: ${[...statuses].sort(([a], [b]) => a - b).map(([s, n]) => `${s}: ${n}`).join(', ')}`);
    // The cases reached the routes' own checks, not only the framework's: some succeed, most are refused.
    assert.ok([...statuses.keys()].some((s) => s >= 200 && s < 300) && [...statuses.keys()].some((s) => s === 400 || s === 404 || s === 409));
    await stillWorks('http-api');
  });

  it('the HTTP parser: raw requests with mutated bytes are answered with JSON errors or closed, never a crash', async () => {
    const corpus = [
      'GET /api/v1/fs/stat?path=/fz HTTP/1.1\r\nHost: x\r\n\r\n',
      'POST /api/v1/fs/mkdir HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{"path":"/fz/m"}',
      'PUT /api/v1/fs/content?path=/fz/raw HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
      'GET /v1/blocks/0123456789abcdef0123456789abcdef HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\n\r\n',
      'PUT /v1/blocks/0123456789abcdef0123456789abcde0 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nx-sdfs-pipeline: a@b\r\n\r\nabc',
    ].map((s) => Buffer.from(s));
    const mutation = fc.tuple(fc.nat(corpus.length - 1), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 5 }), fc.uint8Array({ minLength: 1, maxLength: 40 })), { minLength: 1, maxLength: 4 }),
      fc.boolean());
    const name = cluster.name.port;
    const storage = cluster.storages[0]!.port;
    await fuzz('http-parser', mutation, async ([pick, edits, toStorage]) => {
      let bytes = corpus[pick]!;
      for (const [at, kind, junk] of edits) {
        // Never the method's first byte: on the name server's port, that tells HTTP from the classic protocol.
        const i = 1 + (at % Math.max(1, bytes.length - 1));
        const j = Buffer.from(junk);
        if (kind === 0) bytes = Buffer.concat([bytes.subarray(0, i), j, bytes.subarray(i)]);
        else if (kind === 1) bytes = Buffer.concat([bytes.subarray(0, i), bytes.subarray(Math.min(bytes.length, i + j.length))]);
        else if (kind === 2) bytes = Buffer.concat([bytes.subarray(0, i), j, bytes.subarray(Math.min(bytes.length, i + j.length))]);
        else if (kind === 3) bytes = bytes.subarray(0, i);
        else if (kind === 4) bytes = Buffer.concat([bytes, Buffer.from('X-Junk: '), j, Buffer.from('\r\n')]);
        else bytes = Buffer.concat([bytes.subarray(0, i), Buffer.from('\r\n'), j, bytes.subarray(i)]);
      }
      const { data } = await rawExchange(toStorage ? storage : name, bytes, { end: true });
      // What the name server does not take for HTTP goes to the classic protocol (fuzzed in classic.test.ts).
      if (data.length === 0 || (!toStorage && classify(bytes) !== 'http')) return;
      const what = `${toStorage ? 'storage' : 'name'}: ${JSON.stringify(bytes.toString('latin1').slice(0, 400))}`;
      const res = parseRawResponse(data);
      assert.ok(res, `${what}: not an HTTP response: ${JSON.stringify(data.toString('latin1').slice(0, 300))}`);
      assert.ok(res.status < 500, `${what}: HTTP ${res.status} ${res.body.toString().slice(0, 300)}`);
      if (res.status >= 400 && res.body.length > 0 && !bytes.toString('latin1').startsWith('HEAD')) assertSdfsError(res, what, [400, 499]);
    }, { ms: 3000, minRuns: 100 });
    await stillWorks('http-parser');
  });

  it('block ids and block requests on a storage server: refusals are JSON errors, never a file outside blocks/', async () => {
    const port = cluster.storages[0]!.port;
    const base = `http://127.0.0.1:${port}`;
    // Most cases carry the right credentials, so that they get past the server's checks to its parsers.
    const auth = clusterAuth(cluster.secretFile);
    // A block of its own on the server, so that reads with ranges reach the range parser.
    const own = 'feed' + randomBytes(14).toString('hex');
    const stored = await send(`${base}/v1/blocks/${own}`, { method: 'PUT', body: randomBytes(5000), headers: auth.token(own, 'write'), dispatcher: agent });
    assert.equal(stored.status, 200, stored.body.toString());
    const TRAVERSAL = ['..', '../../etc/passwd', '..%2f..%2fetc%2fpasswd', '%2e%2e%2f%2e%2e%2fetc', '%2e%2e', '.', '%00', '0123456789abcdef0123456789abcde%00',
      '%ff', '%', '%c0%ae%c0%ae%c0%af', '%ED%A0%80', '..%5c..%5cwindows', 'a'.repeat(4000), '0'.repeat(33), '0'.repeat(31), '0123456789ABCDEF0123456789ABCDEF',
      '%30123456789abcdef0123456789abcdef', '/etc/passwd', '%2fetc%2fpasswd', 'tmp', '..%2ftmp%2fx', 'storage.json', '..%2fstorage.json'];
    const blockCase = fc.record({
      id: fc.oneof(
        { weight: 2, arbitrary: HEX32 },
        { weight: 3, arbitrary: fc.constant(own) },
        { weight: 3, arbitrary: fc.constantFrom(...TRAVERSAL) },
        { weight: 3, arbitrary: urlValue(fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), fc.stringMatching(/^[0-9a-fA-F./%\\]{0,40}$/))) },
        { weight: 1, arbitrary: fc.tuple(HEX32, fc.constantFrom('/..', '/../..', '%2f..', '/fetch/..', '/', '//x')).map(([id, rest]) => id + rest) },
      ),
      op: fc.constantFrom('GET', 'GET', 'PUT', 'PUT', 'DELETE', 'HEAD', 'POST fetch', 'POST', 'PATCH'),
      range: rarely(fc.oneof(fc.constantFrom('bytes=0-0', 'bytes=-1', 'bytes=5-', 'bytes=99999999999999999999-', 'bytes=1-0', 'bytes=0-1,2-3', 'bytes=--1', 'items=0-1'),
        fc.string({ maxLength: 30 }))),
      pipeline: rarely(fc.oneof(fc.string({ maxLength: 60 }), HEX32.map((id) => `${id}@127.0.0.1:1`), fc.constantFrom(',', '@', `${'0'.repeat(32)}@`, `${'0'.repeat(32)}@a b`,
        Array.from({ length: 17 }, () => `${'1'.repeat(32)}@127.0.0.1:1`).join(',')))),
      body: fc.oneof(fc.uint8Array({ maxLength: 3000 }).map((u) => Buffer.from(u)), jsonish.map((j) => JSON.stringify(j)), fc.constant('')),
      contentType: maybe(CONTENT_TYPES),
      credentials: fc.constantFrom('token', 'token', 'token', 'signed', 'signed', 'none', 'wrong token', 'garbage'),
    });
    /** Signed for the URL as it is sent (a URL parser resolves dots and escapes some characters first). */
    const signedAs = (method: string, url: string): Record<string, string> => {
      try {
        const u = new URL(url);
        return auth.signed(method, u.pathname + u.search);
      } catch {
        return {};
      }
    };
    const statuses = new Map<number, number>();
    await fuzz('block-ids', blockCase, async (c) => {
      const [method, suffix] = c.op === 'POST fetch' ? ['POST', '/fetch'] : [c.op, ''];
      const url = `${base}/v1/blocks/${c.id}${suffix}`;
      let decoded = c.id;
      try {
        decoded = decodeURIComponent(c.id);
      } catch {
        // Not a valid escape: refused by the router.
      }
      const validId = /^[0-9a-f]{32}$/.test(decoded);
      const op = method === 'PUT' ? 'write' : 'read';
      const headers: Record<string, string> = c.credentials === 'token' ? auth.token(decoded, op)
        : c.credentials === 'signed' ? signedAs(method, url)
          : c.credentials === 'wrong token' ? auth.token(own, op === 'read' ? 'write' : 'read')
            : c.credentials === 'garbage' ? { 'x-sdfs-token': 'r.1.x', 'x-sdfs-cluster-auth': 'v1.0.' + 'A'.repeat(43) } : {};
      if (c.range !== undefined && /^[\x20-\x7e]*$/.test(c.range)) headers.range = c.range;
      if (c.pipeline !== undefined && /^[\x20-\x7e]*$/.test(c.pipeline)) headers['x-sdfs-pipeline'] = c.pipeline;
      if (c.contentType !== undefined && /^[\x20-\x7e]*$/.test(c.contentType)) headers['content-type'] = c.contentType;
      const body = method === 'PUT' || method === 'POST' ? c.body : undefined;
      const what = `${method} ${url.slice(0, 200)} ${JSON.stringify(headers).slice(0, 200)}`;
      let a: Answer;
      try {
        a = await send(url, { method, headers, body, dispatcher: agent });
      } catch (err) {
        assert.fail(`${what}: no answer: ${String(err)}`);
      }
      assert.ok(a.status < 500, `${what}: HTTP ${a.status} ${a.body.toString().slice(0, 300)}`);
      statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
      if (!validId) assert.ok(a.status >= 400, `${what}: an invalid block id was accepted: HTTP ${a.status}`);
      if (a.status >= 400 && method !== 'HEAD') assertSdfsError(a, what);
    }, { ms: 3000, minRuns: 150 });
    console.log(`# block-ids answers: ${[...statuses].sort(([a], [b]) => a - b).map(([s, n]) => `${s}: ${n}`).join(', ')}`);
    // Some cases got past the checks into the handlers (stored, read, or refused there), most were refused by the checks.
    assert.ok([200, 206, 409, 416].some((s) => statuses.has(s)) && statuses.has(400), 'cases reached the handlers, and their checks');
    // The server's own blocks are still served, and it still stores new ones.
    await stillWorks('block-ids');
  });

  it('the shell: random lines (quotes, backslashes, unicode, control characters, long lines) are each answered; it never crashes', async () => {
    const child = spawn(process.execPath, [CLI, '--name-server', cluster.url, '--log-file', join(cluster.dataDir, 'client.log'), 'shell'], {
      cwd: local, stdio: ['pipe', 'pipe', 'pipe'],
    });
    child.stdin.on('error', () => {});
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
    const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
    let mark = 0;
    try {
      const WORDS = ['init', 'create', 'write', 'delete', 'info', 'copy', 'move', 'cd', 'pwd', 'ls', 'ls -l', 'mkdir', 'deldir', 'df', 'help', 'write -f',
        'CD', 'l\\s', "'ls'", '"mkdir"', '#', ';', '&&', '|', '$(', '`'];
      const ARG = fc.oneof(
        fc.constantFrom(...HOSTILE_NAMES, '/fz', '/fz/file', 'local.txt', '/', '..', '../..', '-f', '-l', '-r', '--', '*', '~', "'", '"', '\\', '\\\\', "'a b'", '"a \\" b"',
          'a\\ b', "'unterminated", '"unterminated', '\\\'', '"\\', "''", '""', '\t'),
        fc.string({ unit: 'binary', maxLength: 20 }),
        fc.string({ unit: 'grapheme', maxLength: 10 }),
        fc.string({ unit: fc.constantFrom("'", '"', '\\', ' ', '\t', 'a', '/', '.', '\u0000', '\u001b', '\u0007', 'é', '🎉'), maxLength: 20 }),
      );
      const line = fc.oneof(
        { weight: 6, arbitrary: fc.tuple(fc.constantFrom(...WORDS), fc.array(ARG, { maxLength: 4 })).map(([w, args]) => [w, ...args].join(' ')) },
        { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
        { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...WORDS), fc.integer({ min: 1000, max: 200_000 }), fc.constantFrom('a', '/', "'", '\\', 'é', ' '))
          .map(([w, n, ch]) => `${w} ${ch.repeat(n)}`) },
      );
      // A line that ends the shell (exit, or the end of input) is left out: the shell must go on to
      // answer the next ones. So is read, which writes where its line says on the local disk.
      const ends = (l: string): boolean => l.split(/\r\n|\n|\r/).some((part) => {
        try {
          return ['exit', 'quit', 'dfs_exit', 'read'].includes(tokenize(part)[0] ?? '');
        } catch {
          return false;
        }
      });
      // Each line is followed by two lines that are unknown commands: the shell answers every unknown
      // command with its name, so they show where it is. The first may be taken as the answer to a
      // question ([y/N], as deldir and init ask): the second is always answered.
      const answered = async (n: number): Promise<void> => {
        await waitFor(`the shell to answer line ${n}`, () => out.includes(`unknown command: __b${n}.`) || child.exitCode !== null, 30_000);
        assert.equal(child.exitCode, null, `the shell exited: ${err}\n${out.slice(-2000)}`);
      };
      await fuzz('shell', fc.array(line, { minLength: 1, maxLength: 20 }), async (lines) => {
        const batch = lines.filter((l) => !ends(l));
        let text = '';
        for (const l of batch) {
          mark++;
          text += `${l}\n__a${mark}\n__b${mark}\n`;
        }
        if (text === '') return;
        child.stdin.write(text);
        await answered(mark);
        // Every line of the batch was answered, in order.
        let at = 0;
        for (let n = mark - batch.length + 1; n <= mark; n++) {
          const i = out.indexOf(`unknown command: __b${n}.`, at);
          assert.ok(i >= 0, `line ${n} was not answered`);
          at = i;
        }
        assert.equal(err, '', 'nothing on stderr');
      }, { ms: 4000, minRuns: 20, shrink: false });
      // Afterwards it still does what it is told.
      const dir = `after-shell-${randomBytes(3).toString('hex')}`;
      mark++;
      child.stdin.write(`cd /\nmkdir ${dir}\nls /\n__a${mark}\n__b${mark}\n`);
      await answered(mark);
      assert.match(out, new RegExp(`created directory /${dir}\\n`));
      child.stdin.end('exit\n');
      // It exits by itself, with the status of its last failure: one of the table's exit codes, never a crash's.
      const code = await exited;
      assert.ok(code === 0 || Object.values(ERROR_TABLE).some((e) => e.exit === code), `exit code ${code} of the shell; stderr: ${err}`);
      assert.equal(err, '');
    } finally {
      if (child.exitCode === null) {
        child.kill();
        await exited;
      }
    }
    // The shell wrote nothing locally but its log, and left the cluster working.
    assert.deepEqual((await readdir(local)).sort(), ['local.txt']);
    await stillWorks('shell');
  });
});
