import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Agent } from 'undici';
import { Cluster, waitFor } from './helpers/cluster.js';
import { randomStream, sha256, sha256Of } from './helpers/data.js';
import {
  assertOnlyExpectedNewFiles, assertSdfsError, clusterAuth, listTree, parseRawResponse, rawExchange, send, startHostileCluster, type Answer, type HostileCluster,
} from './helpers/fuzz.js';

// Hostile input at every door, one case at a time (test/fuzz.test.ts throws random input at the same
// doors): names that try to leave the namespace or break it, block ids that try to leave a data dir,
// headers and bodies too large to take, clients too slow to wait for, and a thousand connections that
// do nothing. Each refusal is an EINVAL-type error with its stable code, nothing appears outside the
// data dirs, and the cluster keeps serving everyone else.

const enc = encodeURIComponent;

describe('hostile input', () => {
  let root: string;
  let cluster: Cluster;
  let agent: Agent;
  let tree: Set<string>;
  let api: string;
  let hostile: HostileCluster | undefined;

  before(async () => {
    hostile = await startHostileCluster();
    ({ root, cluster, agent } = hostile);
    api = `${cluster.url}/api/v1`;
    await writeFile(join(root, 'local.bin'), randomBytes(1000));
    tree = await listTree(root);
  });
  after(() => hostile?.stop());

  const get = (url: string, headers: Record<string, string> = {}): Promise<Answer> => send(url, { method: 'GET', headers, dispatcher: agent });
  const post = (url: string, body: string): Promise<Answer> => send(url, { method: 'POST', body, headers: { 'content-type': 'application/json' }, dispatcher: agent });
  const put = (url: string, body: Buffer | string): Promise<Answer> => send(url, { method: 'PUT', body, headers: { 'content-type': 'application/octet-stream' }, dispatcher: agent });

  /** How many block files the storage servers hold. */
  const blockFiles = async (): Promise<number> => {
    let n = 0;
    for (let i = 0; i < cluster.storages.length; i++) n += (await cluster.blocksOnDisk(i)).size;
    return n;
  };

  /** The cluster serves a normal client: a multi-block file in, the same bytes out. */
  const serves = async (what: string): Promise<void> => {
    const client = cluster.client();
    const src = randomStream(300_000, 50_000);
    const path = `/ok-${randomBytes(4).toString('hex')}`;
    await client.writeFile(path, src.stream);
    assert.equal((await sha256Of(await client.createReadStream(path))).sha256, src.sha256(), what);
  };

  describe('names', () => {
    // Refused where they enter, as EINVAL (400): in a query string, in a JSON body, as the target of an upload.
    const deep = '/a'.repeat(257);
    const long = '/' + `${'a'.repeat(255)}/`.repeat(16) + 'a';
    const refused: [string, string][] = [
      ['a NUL', `/a${enc('\u0000')}b`],
      ['a control character', `/a${enc('\u0001')}b`],
      ['a newline', `/a${enc('\n')}b`],
      ['DEL', `/a${enc('\u007f')}b`],
      ['a 256-byte name', `/${'a'.repeat(256)}`],
      ['a 256-byte name of 128 characters', `/${enc('é'.repeat(128))}`],
      ['a path over 4096 bytes', enc(long)],
      ['a path 257 levels deep', enc(deep)],
      ['invalid UTF-8', '/%ff'],
      ['Latin-1 instead of UTF-8', '/caf%e9'],
      ['an overlong encoding of ..', '/%c0%ae%c0%ae/%c0%ae%c0%ae/etc'],
      ['an encoded surrogate', '/%ed%a0%80'],
      ['a broken escape', '/a%zz'],
      ['a lone %', '%'],
    ];
    for (const [what, q] of refused) {
      it(`refuses ${what} in a path: EINVAL from stat, mkdir and upload, and nothing is stored`, async () => {
        const listing = (await get(`${api}/fs/list?path=/`)).body.toString();
        const blocks = await blockFiles();
        const stat = await get(`${api}/fs/stat?path=${q}`);
        assert.equal(assertSdfsError(stat, `stat ${what}`), 'EINVAL');
        assert.equal(stat.status, 400);
        const up = await put(`${api}/fs/content?path=${q}`, randomBytes(70_000));
        assert.equal(assertSdfsError(up, `upload ${what}`), 'EINVAL');
        let decoded: string | undefined;
        try {
          decoded = decodeURIComponent(q);
        } catch {
          decoded = undefined;
        }
        if (decoded !== undefined && decoded.isWellFormed()) {
          const mk = await post(`${api}/fs/mkdir`, JSON.stringify({ path: decoded, parents: true }));
          assert.equal(assertSdfsError(mk, `mkdir ${what}`), 'EINVAL');
        }
        assert.equal((await get(`${api}/fs/list?path=/`)).body.toString(), listing, 'the namespace is as it was');
        assert.equal(await blockFiles(), blocks, 'no block was stored');
      });
    }

    it('refuses a lone surrogate in a JSON body, and a path that is not a string', async () => {
      for (const body of ['{"path":"/a\\ud800b"}', '{"path":["/a","/b"]}', '{"path":{"toString":"/a"}}', '{"path":""}', `{"path":"${'x'.repeat(5000)}"}`]) {
        const a = await post(`${api}/fs/mkdir`, body);
        assert.equal(assertSdfsError(a, body.slice(0, 60)), 'EINVAL', body.slice(0, 60));
      }
    });

    it('takes a 255-byte name and a 4096-byte path, the longest there may be', async () => {
      const path = '/' + Array.from({ length: 16 }, (_, i) => String(i % 10).repeat(255)).join('/');
      assert.equal(Buffer.byteLength(path), 4096);
      const mk = await post(`${api}/fs/mkdir`, JSON.stringify({ path, parents: true }));
      assert.equal(mk.status, 200, mk.body.toString().slice(0, 200));
      const st = await get(`${api}/fs/stat?path=${enc(path)}`);
      assert.equal(st.status, 200);
      assert.equal((JSON.parse(st.body.toString()) as { path: string }).path, path);
    });

    it('resolves .. inside the namespace: /../../etc is the sdfs directory /etc, never the host\'s', async () => {
      const passwd = await readFile('/etc/passwd').catch(() => undefined);
      const mk = await post(`${api}/fs/mkdir`, JSON.stringify({ path: '/../../etc', parents: true }));
      assert.equal(mk.status, 200);
      assert.equal((JSON.parse(mk.body.toString()) as { path: string }).path, '/etc');
      const data = randomBytes(5000);
      const up = await put(`${api}/fs/content?path=${enc('/x/../../../etc/./passwd')}`, data);
      assert.equal(up.status, 200, up.body.toString());
      assert.equal((JSON.parse(up.body.toString()) as { path: string }).path, '/etc/passwd');
      const back = await get(`${api}/fs/content?path=${enc('/etc/passwd')}`);
      assert.equal(sha256(back.body), sha256(data));
      if (passwd) assert.equal(sha256(await readFile('/etc/passwd')), sha256(passwd), 'the host\'s /etc/passwd is untouched');
      // A name with backslashes is one name, stored as such.
      const bs = await put(`${api}/fs/content?path=${enc('/..\\..\\evil')}`, 'x');
      assert.equal(bs.status, 200);
      const list = await get(`${api}/fs/list?path=/`);
      assert.ok((JSON.parse(list.body.toString()) as { entries: { name: string }[] }).entries.some((e) => e.name === '..\\..\\evil'));
      assertOnlyExpectedNewFiles(tree, await listTree(root));
    });

    it('the sdfs command refuses such names with a clear message and exit code 6, and keeps .. inside the namespace', async () => {
      const local = join(root, 'local.bin');
      const bad = [
        ['mkdir', `/a\u0001b`, /control character/],
        ['put', local, `/${'n'.repeat(256)}`, /longer than 255 bytes/],
        ['stat', `/${'p/'.repeat(2100)}`, /longer than 4096 bytes|more than 4096 characters/],
        ['mkdir', '-p', '/a'.repeat(257), /deeper than 256 levels/],
      ] as const;
      for (const args of bad) {
        const re = args[args.length - 1] as RegExp;
        const r = await cluster.cli(args.slice(0, -1) as string[]);
        assert.equal(r.code, 6, `${args[0]}: ${r.stderr}`);
        assert.match(r.stderr, re);
        assert.equal(r.stderr.trim().split('\n').length, 1, 'one line on stderr');
      }
      const mk = await cluster.cli(['mkdir', '-p', '/../../tmp/../sdfs-hostile-dir']);
      assert.equal(mk.code, 0, mk.stderr);
      assert.ok(!existsSync('/sdfs-hostile-dir') && !existsSync('/tmp/sdfs-hostile-dir'), 'nothing on the host');
      const ls = await cluster.cli(['ls', '/']);
      assert.match(ls.stdout, /^sdfs-hostile-dir\/?$/m);
      // A download of a path that tries to climb out names an sdfs file, here a missing one: no local file either.
      const out = join(root, 'out.bin');
      const gets = await cluster.cli(['get', '/../../etc/shadow', out]);
      assert.equal(gets.code, 2, gets.stderr);
      assert.ok(!existsSync(out));
      assertOnlyExpectedNewFiles(tree, await listTree(root));
    });
  });

  describe('block ids', () => {
    it('refuses ids that try to climb out of the data dir on every block route, as literal or encoded dots, NUL or invalid UTF-8', async () => {
      const s = cluster.storages[0]!;
      // Signed as a cluster member's, the most any caller can be: what refuses them is the check of the id.
      const auth = clusterAuth(cluster.secretFile);
      const identity = await readFile(join(s.dataDir, 'storage.json'));
      const ids = ['..%2f..%2fstorage.json', '..%2fstorage.json', '%2e%2e%2f%2e%2e%2fetc%2fpasswd', '..', '%2e%2e', '.', '%00', `${'0'.repeat(31)}%00`,
        '%ff', '%c0%ae%c0%ae', `${'0'.repeat(32)}%2f..`, '..%5c..%5cstorage.json', 'a'.repeat(300), '0'.repeat(64), 'ABCDEF0123456789ABCDEF0123456789', 'tmp', '%2ftmp'];
      for (const id of ids) {
        for (const [method, suffix] of [['GET', ''], ['PUT', ''], ['DELETE', ''], ['POST', '/fetch']] as const) {
          const body = method === 'PUT' ? randomBytes(100) : method === 'POST' ? JSON.stringify({ source: '127.0.0.1:1', size: 1, digest: `xxh3:${'0'.repeat(16)}` }) : undefined;
          // Signed as sent: a URL parser resolves dots first.
          const url = new URL(`http://127.0.0.1:${s.port}/v1/blocks/${id}${suffix}`);
          const headers: Record<string, string> = { ...auth.signed(method, url.pathname + url.search), ...(method === 'POST' ? { 'content-type': 'application/json' } : {}) };
          const a = await send(url.href, { method, body, headers, dispatcher: agent });
          const code = assertSdfsError(a, `${method} ${id}${suffix}`);
          assert.ok(code === 'EINVAL' || code === 'ENOENT', `${method} ${id}${suffix}: ${code}`);
        }
      }
      // Dots that reach the server as they are (a URL parser would resolve them first).
      for (const path of ['/v1/blocks/../../storage.json', '/v1/blocks/../storage.json', '/v1/blocks/./../../../etc/passwd', '/v1/blocks/%2e%2e/%2e%2e/storage.json']) {
        for (const method of ['GET', 'DELETE']) {
          const signed = Object.entries(auth.signed(method, path)).map(([k, v]) => `${k}: ${v}\r\n`).join('');
          const { data } = await rawExchange(s.port, `${method} ${path} HTTP/1.1\r\nHost: x\r\n${signed}Connection: close\r\n\r\n`);
          const res = parseRawResponse(data);
          assert.ok(res, `${method} ${path}: ${data.toString()}`);
          assertSdfsError(res, `${method} ${path}`);
        }
      }
      assert.deepEqual(await readFile(join(s.dataDir, 'storage.json')), identity);
      assertOnlyExpectedNewFiles(tree, await listTree(root));
    });

    it('an empty block is refused and leaves nothing behind: the id can be written afterwards', async () => {
      const s = cluster.storages[1]!;
      const id = 'e'.repeat(32);
      const url = `http://127.0.0.1:${s.port}/v1/blocks/${id}`;
      const auth = clusterAuth(cluster.secretFile);
      const write = (body: Buffer | string): Promise<Answer> => send(url, { method: 'PUT', body, headers: auth.token(id, 'write'), dispatcher: agent });
      const empty = await write('');
      assert.equal(assertSdfsError(empty, 'empty block'), 'EINVAL');
      assert.deepEqual(await readdir(join(s.dataDir, 'tmp')), [], 'no temporary file left');
      const data = randomBytes(3000);
      const ok = await write(data);
      assert.equal(ok.status, 200, ok.body.toString());
      assert.equal(sha256((await get(url, auth.token(id, 'read'))).body), sha256(data));
      const del = await send(url, { method: 'DELETE', headers: auth.signed('DELETE', `/v1/blocks/${id}`), dispatcher: agent });
      assert.equal(del.status, 200, del.body.toString());
    });
    it('a block whose sender goes away in the middle leaves nothing behind, and the id can be written afterwards', async () => {
      const s = cluster.storages[0]!;
      const id = 'c'.repeat(32);
      const auth = clusterAuth(cluster.secretFile);
      const headers = Object.entries(auth.token(id, 'write')).map(([k, v]) => `${k}: ${v}\r\n`).join('');
      // 2 of the 3 MiB announced: past the first MiB, so the temporary file was made.
      const socket = netConnect(s.port, '127.0.0.1');
      await new Promise<void>((ok, fail) => socket.once('connect', ok).once('error', fail));
      socket.write(`PUT /v1/blocks/${id} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n${headers}Content-Length: ${3 * 1024 * 1024}\r\n\r\n`);
      await new Promise<void>((ok) => socket.write(randomBytes(2 * 1024 * 1024), () => ok()));
      await waitFor('the temporary file', async () => (await readdir(join(s.dataDir, 'tmp'))).length > 0);
      socket.destroy();
      await waitFor('no temporary file left', async () => (await readdir(join(s.dataDir, 'tmp'))).length === 0);
      const url = `http://127.0.0.1:${s.port}/v1/blocks/${id}`;
      assert.equal(assertSdfsError(await get(url, auth.token(id, 'read')), 'the half-sent block'), 'ENOENT');
      const data = randomBytes(3 * 1024 * 1024);
      const ok = await send(url, { method: 'PUT', body: data, headers: auth.token(id, 'write'), dispatcher: agent });
      assert.equal(ok.status, 200, ok.body.toString());
      assert.equal(sha256((await get(url, auth.token(id, 'read'))).body), sha256(data));
      const del = await send(url, { method: 'DELETE', headers: auth.signed('DELETE', `/v1/blocks/${id}`), dispatcher: agent });
      assert.equal(del.status, 200, del.body.toString());
    });
  });

  describe('sizes', () => {
    it('refuses a 64 KiB header with 431 and closes the connection, on the name server and on a storage server', async () => {
      for (const [what, port, path] of [['name', cluster.name.port, '/api/v1/cluster'], ['storage', cluster.storages[0]!.port, `/v1/blocks/${'0'.repeat(32)}`]] as const) {
        const r = await rawExchange(port, `GET ${path} HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`);
        const res = parseRawResponse(r.data);
        assert.ok(res, `${what}: ${r.data.toString().slice(0, 200)}`);
        assert.equal(res.status, 431, what);
        assert.equal(assertSdfsError(res, what, [431, 431]), 'ETOOBIG');
        assert.ok(r.closedByServer, `${what}: the server closed the connection`);
      }
    });

    it('refuses a JSON body over 1 MiB with 413 before reading it: by its length, or as it streams in', async () => {
      // Announced as 1 GiB, with a few bytes sent: the answer comes without the rest.
      const announced = await rawExchange(cluster.name.port, 'POST /api/v1/fs/mkdir HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
        `Content-Length: ${1024 ** 3}\r\n\r\n{"path":"/big`);
      const a = parseRawResponse(announced.data);
      assert.ok(a, announced.data.toString());
      assert.equal(a.status, 413);
      assert.equal(assertSdfsError(a, 'announced', [413, 413]), 'ETOOBIG');
      assert.ok(announced.closedByServer);
      // Chunked, with no length: refused once 1 MiB has come, though the body never ends.
      const s: Socket = netConnect({ port: cluster.name.port, host: '127.0.0.1' });
      const chunks: Buffer[] = [];
      s.on('data', (d: Buffer) => chunks.push(d));
      s.on('error', () => {});
      let closed = false;
      s.on('close', () => { closed = true; });
      await new Promise<void>((done) => s.on('connect', () => done()));
      s.write('POST /api/v1/fs/mkdir HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n');
      const piece = Buffer.alloc(64 * 1024, 0x20);
      for (let i = 0; i < 20 && !s.destroyed; i++) s.write(`${piece.length.toString(16)}\r\n${piece}\r\n`);
      // And more, slowly, as an endless body would, until the server answers or closes (12.8 MiB at most).
      let more = 180;
      const feeder = setInterval(() => {
        if (closed || s.destroyed || more-- <= 0 || Buffer.concat(chunks).includes('\r\n\r\n')) return clearInterval(feeder);
        s.write(`${piece.length.toString(16)}\r\n${piece}\r\n`);
      }, 20);
      // The server answers 413 and closes with our unread bytes still coming: the kernel may then reset
      // the connection, and a reset can drop the answer before this side reads it. Either way the body
      // was refused and the connection closed, which is what matters; an answer, when read, must be 413.
      await waitFor('an answer to the endless body, or the connection closed', () => closed || Buffer.concat(chunks).includes('\r\n\r\n'));
      if (Buffer.concat(chunks).includes('\r\n\r\n')) {
        const res = parseRawResponse(Buffer.concat(chunks));
        assert.ok(res);
        assert.equal(res.status, 413);
        assert.equal(assertSdfsError(res, 'chunked', [413, 413]), 'ETOOBIG');
      }
      await waitFor('the connection closed by the server', () => closed);
      clearInterval(feeder);
      s.destroy();
    });

    it('refuses deeply nested JSON and huge arrays where a field is expected; nesting elsewhere stays bounded by the body limit', async () => {
      const cases = [
        '['.repeat(400_000) + ']'.repeat(400_000),
        `{"path":${'['.repeat(200_000)}${']'.repeat(200_000)}}`,
        `{"path":${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}}`,
        `{"from":[${Array.from({ length: 200_000 }, () => '1').join(',')}],"to":"/x"}`,
        `{"path":"${'/a'.repeat(300_000)}"}`,
      ];
      for (const body of cases) {
        const a = await post(`${api}/fs/mkdir`, body);
        assert.equal(assertSdfsError(a, body.slice(0, 40)), 'EINVAL', body.slice(0, 40));
      }
      const upload = await post(`${api}/uploads`, JSON.stringify({ path: '/u', allocate: true }));
      assert.equal(upload.status, 200, upload.body.toString());
      const { uploadId } = JSON.parse(upload.body.toString()) as { uploadId: string };
      const excludes = await post(`${api}/uploads/${uploadId}/blocks`, JSON.stringify({ index: 1, exclude: Array.from({ length: 20_000 }, () => randomBytes(16).toString('hex')) }));
      assert.equal(assertSdfsError(excludes, 'exclude'), 'EINVAL');
      // A field no route reads is not looked into: parsed (within 1 MiB), ignored, and the server is fine.
      const ignored = await post(`${api}/fs/mkdir`, `{"path":"/nested-ok","x":${'['.repeat(300_000)}${']'.repeat(300_000)}}`);
      assert.equal(ignored.status, 200, ignored.body.toString().slice(0, 200));
      await serves('after large JSON');
    });
  });

  describe('connections', () => {
    /** Opens a connection that sends `head` and then one byte every 100 ms, until the server closes it. */
    const trickle = (port: number, head: string): Promise<{ data: Buffer; sent: number }> => new Promise((done) => {
      const s = netConnect({ port, host: '127.0.0.1' });
      const chunks: Buffer[] = [];
      let sent = 0;
      let timer: NodeJS.Timeout | undefined;
      s.on('connect', () => {
        s.write(head);
        timer = setInterval(() => {
          s.write('a');
          sent++;
        }, 100);
      });
      s.on('data', (d: Buffer) => chunks.push(d));
      s.on('error', () => {});
      s.on('close', () => {
        clearInterval(timer);
        done({ data: Buffer.concat(chunks), sent });
      });
    });

    it('cuts off a client that sends its headers a byte at a time, with 408, while others are served', async () => {
      const slow = [
        trickle(cluster.name.port, 'GET /api/v1/cluster HTTP/1.1\r\nHost: x\r\nX-Slow: '),
        trickle(cluster.storages[0]!.port, `GET /v1/blocks/${'0'.repeat(32)} HTTP/1.1\r\nHost: x\r\nX-Slow: `),
      ];
      await serves('during slow clients');
      // Only against a hang: a slow client that is never cut off fails here.
      let guard: NodeJS.Timeout | undefined;
      const results = await Promise.race([Promise.all(slow), new Promise<never>((_, fail) => {
        guard = setTimeout(() => fail(new Error('a slow client was never cut off')), 60_000);
      })]).finally(() => clearTimeout(guard));
      for (const [i, r] of results.entries()) {
        const res = parseRawResponse(r.data);
        assert.ok(res, `${i}: ${r.data.toString()}`);
        assert.equal(res.status, 408);
        assertSdfsError(res, `slow client ${i}`, [408, 408]);
        assert.ok(r.sent > 0);
      }
    });

    it('serves a normal client while a thousand idle connections are open to the name server and to a storage server', async () => {
      const sockets: Socket[] = [];
      const open = async (port: number, n: number, first?: string): Promise<void> => {
        for (let done = 0; done < n; done += 100) {
          await Promise.all(Array.from({ length: Math.min(100, n - done) }, () => new Promise<void>((ok, fail) => {
            const s = netConnect({ port, host: '127.0.0.1' });
            sockets.push(s);
            s.once('connect', () => {
              if (first) s.write(first);
              ok();
            });
            // Before it connects, an error fails the test; after, the server may close it as it likes.
            s.on('error', fail);
          })));
        }
      };
      try {
        await open(cluster.name.port, 1000);
        // Connections that began an HTTP request and went quiet, past the name server's protocol sniffing.
        await open(cluster.name.port, 200, 'GET /api/v1/cluster HTTP/1.1\r\n');
        for (const s of cluster.storages) await open(s.port, 1000);
        await serves('with 3200 idle connections open');
        const viaName = randomBytes(200_000);
        const up = await put(`${api}/fs/content?path=/idle-relay`, viaName);
        assert.equal(up.status, 200, up.body.toString());
        assert.equal(sha256((await get(`${api}/fs/content?path=/idle-relay`)).body), sha256(viaName));
        const r = await cluster.cli(['stat', '/idle-relay']);
        assert.equal(r.code, 0, r.stderr);
        console.log(`# ${sockets.filter((s) => !s.destroyed).length} of ${sockets.length} idle connections still open afterwards`);
      } finally {
        for (const s of sockets) s.destroy();
      }
      assert.equal(cluster.name.child.exitCode, null);
      await serves('after the idle connections');
    });
  });

  it('leaves the host as it found it: nothing outside the data dirs', async () => {
    assertOnlyExpectedNewFiles(tree, await listTree(root), [
      /^[^/]+\/storage-\d+\/blocks\/[0-9a-f]{2}\/[0-9a-f]{32}$/, /^[^/]+\/name\/[^/]+\.db(-wal|-shm|-journal)?$/, /^[^/]+\/client\.log$/,
    ]);
  });
});
