import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Cluster, runCli, waitFor } from './helpers/cluster.js';
import { ClassicClient, frame, FRAME_CHARS } from './helpers/classic-client.js';
import { randomStream, sha256, sha256Of } from './helpers/data.js';
import { FrameScanner, parseRequest } from '../src/name/classic/framing.js';
import { classify } from '../src/name/classic/shared-port.js';
import { DataPorts } from '../src/name/classic/ports.js';

// The seed's classic protocol (../shared/seed/PROTOCOL.md) on the name server's port, spoken byte for
// byte by the test client: every command, files of every size that matters, unicode names, sessions
// each with its own working directory, the same files seen through HTTP, and hostile input.
const BLOCK = 64 * 1024;
// Short, so that the tests of clients that never connect end soon; long enough for a loaded machine's fsync stalls mid-transfer.
const TIMEOUT_MS = 4000;
const IDLE_MS = 6000;

describe('the classic protocol on the name server port', () => {
  let cluster: Cluster;
  let port: number;
  const open = async (): Promise<ClassicClient> => ClassicClient.connect(port);

  before(async () => {
    cluster = await Cluster.start({
      blockSize: BLOCK,
      nameArgs: ['--classic-data-ports', '7100-7399', '--classic-data-timeout-ms', String(TIMEOUT_MS),
        '--classic-request-timeout-ms', String(TIMEOUT_MS), '--classic-idle-timeout-ms', String(IDLE_MS)],
    });
    port = cluster.name.port;
  });
  after(async () => { await cluster?.stop(); });

  it('init wipes everything and lists each storage server with its available space', async () => {
    const http = cluster.client();
    await http.writeFile('/before-init', 'x');
    const c = await open();
    const body = await c.init();
    const lines = body.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 3, body);
    for (const line of lines) assert.match(line, /^storage 127\.0\.0\.1:\d+ \d+(\.\d)?[KMGTP]?$/);
    assert.equal(await http.exists('/before-init'), false);
    assert.deepEqual(await c.ls(), []);
    c.close();
  });

  it('every other command of the seed shell, with the seed\'s answers', async () => {
    const c = await open();
    assert.equal(await c.mkdir('cmd'), 'done');
    assert.match(await c.mkdir('cmd'), /^Error: already exists: \/cmd$/);
    assert.equal(await c.cd('cmd'), 'Done');
    assert.equal(await c.create('a.txt'), 'File created');
    assert.match(await c.create('a.txt'), /^Error: already exists/);
    assert.deepEqual(await c.ls(), ['a.txt']);
    assert.match(await c.info('a.txt'), /^size=0 blocks=0 replication=3/);
    await c.write('w.txt', Buffer.from('hello dfs\n'), 10);
    const info = await c.info('w.txt');
    assert.match(info, /^size=10 blocks=1 replication=3 blocksize=65536\nblock 0: 10 bytes, digest xxh3:[0-9a-f]{16}, replicas (127\.0\.0\.1:\d+(, )?){3}$/);
    assert.match(await c.info('nope'), /^Error: no such file or directory: \/cmd\/nope$/);

    // copy and move: a new name; `DIR/` (into DIR, which must exist); an existing DIR without the slash
    assert.equal(await c.mkdir('sub'), 'done');
    assert.equal(await c.copy('w.txt', 'w2.txt'), 'Done');
    assert.equal(await c.copy('w.txt', 'sub/'), 'Done');
    assert.match(await c.copy('w.txt', 'missing/'), /^Error: no such file or directory: \/cmd\/missing$/);
    assert.match(await c.copy('w.txt', 'w2.txt'), /^Error: already exists/);
    assert.equal(await c.move('a.txt', 'sub'), 'Done');
    assert.equal(await c.move('w2.txt', 'moved.txt'), 'Done');
    assert.match(await c.move('ghost', 'x'), /^Error: no such file or directory/);
    assert.deepEqual(await c.ls(), ['sub/', 'moved.txt', 'w.txt']);
    assert.match(await c.info('sub'), /^\/cmd\/sub: directory, 2 entries$/);

    // delete: files only
    assert.match(await c.delete('sub'), /^Error: \/cmd\/sub is a directory/);
    assert.equal(await c.delete('moved.txt'), 'Done');
    assert.match(await c.delete('moved.txt'), /^Error: no such file or directory/);

    // cd: relative, `..`, multi-level, not above the root, not into a file
    assert.equal(await c.cd('sub'), 'Done');
    assert.deepEqual(await c.ls(), ['a.txt', 'w.txt']);
    assert.equal(await c.cd('..'), 'Done');
    assert.equal(await c.cd('..'), 'Done');
    assert.equal(await c.cd('..'), 'Done', 'cd .. at the root stays at the root');
    assert.deepEqual(await c.ls(), ['cmd/']);
    assert.equal(await c.cd('cmd/sub'), 'Done');
    assert.match(await c.cd('a.txt'), /^Error: not a directory: \/cmd\/sub\/a\.txt$/);
    assert.match(await c.cd('nowhere'), /^Error: no such file or directory/);

    // deldir: refuses a directory that is not empty (the protocol cannot ask), and files
    assert.equal(await c.cd('/cmd'), 'Done');
    assert.match(await c.deldir('sub'), /^Error: Directory is not empty: \/cmd\/sub \(2 entries\)$/);
    assert.match(await c.deldir('w.txt'), /^Error: not a directory/);
    assert.match(await c.deldir('none'), /^Error: no such file or directory/);
    assert.equal(await c.mkdir('empty'), 'done');
    assert.equal(await c.cd('empty'), 'Done');
    assert.equal(await c.deldir('/cmd/empty'), 'Done');
    assert.deepEqual(await c.ls(), ['sub/', 'w.txt'], 'deleting the working directory moves the session to its parent');

    // ls of another directory (the seed's client sends `ls DIR` as rddir][DIR][)
    assert.equal(await c.request(['rddir', 'sub']), 'a.txt\nw.txt\n');
    assert.equal(c.pending().length, 0, 'no stray bytes after the replies');

    // exit: no reply, and the server closes
    c.exit();
    assert.equal(await c.closedWithin(2000), true);
    assert.equal(c.pending().length, 0);
  });

  for (const size of [0, 1, 2048, 3 * BLOCK + 12345]) {
    it(`write then read back ${size} bytes`, async () => {
      const c = await open();
      const data = randomBytes(size);
      const w = await c.write(`size-${size}`, data, size);
      assert.deepEqual(w, { refused: false, port: w.refused ? 0 : w.port, reply: `wrote /size-${size} (${size} bytes)` });
      assert.ok(!w.refused && w.port >= 7100 && w.port <= 7399);
      const r = await c.read(`size-${size}`, { keep: true });
      assert.ok(!r.missing);
      assert.equal(r.size, size);
      assert.equal(r.sha256, sha256(data));
      assert.equal(r.reply, `sent /size-${size} (${size} bytes)`);
      assert.equal((await cluster.client().stat(`/size-${size}`)).blocks, Math.ceil(size / BLOCK));
      c.close();
    });
  }

  it('write then read back 50 MiB', async () => {
    const c = await open();
    const size = 50 * 1024 * 1024;
    const src = randomStream(size);
    const started = Date.now();
    const w = await c.write('big', src.stream, size);
    const wrote = Date.now();
    assert.equal(w.refused, false);
    assert.match(w.reply, /^wrote /);
    const r = await c.read('big');
    assert.ok(!r.missing);
    assert.equal(r.size, size);
    assert.equal(r.sha256, src.sha256());
    const secs = (t: number): string => (t / 1000).toFixed(2);
    console.log(`# 50 MiB through the classic protocol: write ${secs(wrote - started)} s, read ${secs(Date.now() - wrote)} s`);
    c.close();
  });

  it('unicode names (the frame is longer than 2048 bytes, reply lengths count bytes) and spaces', async () => {
    const c = await open();
    const dir = 'répertoire-日本';
    const name = 'résumé-日本語-🎉.txt';
    assert.ok(frame(['wrf', name, '5']).length > FRAME_CHARS);
    assert.equal(await c.mkdir(dir), 'done');
    assert.equal(await c.cd(dir), 'Done');
    const data = Buffer.from('ünï\n');
    const w = await c.write(name, data, data.length);
    assert.equal(w.refused, false);
    assert.deepEqual(await c.ls(), [name]);
    assert.match(await c.info(name), /^size=6 /);
    const r = await c.read(name, { keep: true });
    assert.ok(!r.missing);
    assert.deepEqual(r.data, data);
    assert.equal(await c.copy(name, `${name}.bak`), 'Done');
    // The seed's client cannot send a name with a space (it splits its command line on them); the server takes one.
    assert.equal(await c.create('with space'), 'File created');
    assert.deepEqual(await c.ls(), [name, `${name}.bak`, 'with space']);
    assert.equal(c.pending().length, 0);
    assert.equal((await cluster.client().stat(`/${dir}/${name}`)).size, data.length);
    c.close();
  });

  it('each connection has its own working directory: 3 clients at once', async () => {
    const clients = await Promise.all([0, 1, 2].map(() => open()));
    await Promise.all(clients.map(async (c, i) => {
      assert.equal(await c.mkdir(`home-${i}`), 'done');
      assert.equal(await c.cd(`home-${i}`), 'Done');
    }));
    const files = await Promise.all(clients.map(async (c, i) => {
      const data = randomBytes(100_000 + i * 7919);
      for (let j = 0; j < 3; j++) assert.equal((await c.write(`f${j}`, data, data.length)).refused, false);
      return data;
    }));
    await Promise.all(clients.map(async (c, i) => {
      assert.deepEqual(await c.ls(), ['f0', 'f1', 'f2']);
      const r = await c.read('f1');
      assert.ok(!r.missing);
      assert.equal(r.sha256, sha256(files[i]!));
    }));
    // A new connection starts at the root, wherever the others are.
    const fresh = await open();
    const root = await fresh.ls();
    for (const i of [0, 1, 2]) assert.ok(root.includes(`home-${i}/`));
    for (const c of [...clients, fresh]) c.close();
  });

  it('16 clients writing and reading at once', async () => {
    const results = await Promise.all(Array.from({ length: 16 }, async (_, i) => {
      const c = await open();
      const data = randomBytes(30_000 + i * 1000);
      const w = await c.write(`many-${i}`, data, data.length);
      const r = await c.read(`many-${i}`);
      c.close();
      return !w.refused && !r.missing && r.sha256 === sha256(data);
    }));
    assert.deepEqual(results, Array(16).fill(true));
  });

  it('a classic file is visible to the HTTP client library, and the other way round', async () => {
    const http = cluster.client();
    const c = await open();
    const data = randomBytes(2 * BLOCK + 1);
    assert.equal((await c.write('from-classic', data, data.length)).refused, false);
    const back = await sha256Of(await http.createReadStream('/from-classic'));
    assert.equal(back.sha256, sha256(data));

    const src = randomStream(BLOCK * 2 + 77, 10_000);
    await http.mkdir('/from-http');
    await http.writeFile('/from-http/file', src.stream);
    assert.equal(await c.cd('from-http'), 'Done');
    assert.deepEqual(await c.ls(), ['file']);
    const r = await c.read('file');
    assert.ok(!r.missing);
    assert.equal(r.sha256, src.sha256());
    c.close();
  });

  it('HTTP still works on the same port, even a request that arrives a byte at a time', async () => {
    const response = await new Promise<string>((resolve, reject) => {
      const s = netConnect({ port, host: '127.0.0.1' });
      let out = '';
      s.on('data', (d: Buffer) => { out += d.toString(); });
      s.on('close', () => resolve(out));
      s.on('error', reject);
      const req = 'GET /api/v1/fs/stat?path=/ HTTP/1.1\r\nHost: x\r\n\r\nGET /api/v1/cluster HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
      void (async () => {
        for (const ch of req) {
          s.write(ch);
          await new Promise((r) => setTimeout(r, 1));
        }
      })();
    });
    assert.equal(response.match(/HTTP\/1\.1 200 OK/g)?.length, 2, response);
    assert.match(response, /"type":"dir"/);
  });

  describe('hostile input', () => {
    /** Block replicas held by the storage servers, as their heartbeats report them. */
    const storedBlocks = async (): Promise<number> => (await cluster.client().cluster()).storages.reduce((n, x) => n + x.blocks, 0);
    /** The server still answers a normal request on a new connection. */
    const stillServes = async (): Promise<void> => {
      const c = await open();
      assert.ok(Array.isArray(await c.ls()));
      c.close();
    };

    it('a short frame, then a close: the server closes too, and serves others', async () => {
      const c = await open();
      c.send('rddir][ ');
      c.socket.end();
      assert.equal(await c.closedWithin(2000), true);
      await stillServes();
    });

    it('a short frame, then silence: closed after the request timeout', async () => {
      const c = await open();
      c.send('rddir][   ');
      const t = Date.now();
      assert.equal(await c.closedWithin(TIMEOUT_MS + 3000), true);
      assert.ok(Date.now() - t >= TIMEOUT_MS - 100);
      assert.equal(c.pending().length, 0, 'no reply to half a request');
    });

    it('a connection that sends nothing is closed after the idle timeout', async () => {
      const c = await open();
      assert.equal(await c.closedWithin(IDLE_MS + 3000), true);
    });

    it('an oversized frame gets an error, and the session goes on', async () => {
      const c = await open();
      c.send(`crf][${'x'.repeat(3000)}][`);
      const r = await c.readReply('crf');
      assert.match(r.body, /^Error: request longer than 2048 characters/);
      assert.equal(c.pending().length, 0);
      assert.equal(await c.mkdir('after-oversized'), 'done');
      c.close();
    });

    it('a frame that is not UTF-8 gets an error, and the session goes on', async () => {
      const c = await open();
      const bad = Buffer.concat([Buffer.from('crf]['), Buffer.from([0xff, 0xfe, 0xc3, 0x28]), Buffer.from('][')]);
      c.send(Buffer.concat([bad, Buffer.alloc(FRAME_CHARS - bad.length, 0x20)]));
      assert.match((await c.readReply('crf')).body, /^Error: the request is not valid UTF-8$/);
      assert.equal(await c.mkdir('after-bad-utf8'), 'done');
      c.close();
    });

    it('an unknown type, or garbage, gets an error', async () => {
      const c = await open();
      assert.match(await c.request(['bogus', 'x']), /^Error: unknown request type "bogus"/);
      c.send(Buffer.alloc(FRAME_CHARS, 0x41));
      assert.match((await c.readReply('err')).body, /^Error: not a request/);
      c.send(frame(['', 'x']));
      assert.match((await c.readReply('err')).body, /^Error: unknown request type ""/);
      assert.ok(Array.isArray(await c.ls()));
      c.close();
    });

    it('the wrong number of arguments gets an error (0000 for a write, 0][0 for a read)', async () => {
      const c = await open();
      assert.equal(await c.request(['crf']), 'Error: crf takes 1 argument(s), got 0');
      assert.equal(await c.request(['crf', 'a', 'b']), 'Error: crf takes 1 argument(s), got 2');
      assert.equal(await c.request(['cpf', 'a']), 'Error: cpf takes 2 argument(s), got 1');
      assert.equal(await c.request(['inf']), 'Error: inf takes 1 argument(s), got 0');
      assert.equal(await c.request(['rddir', 'a', 'b']), 'Error: rddir takes 0 to 1 argument(s), got 2');
      c.sendFrame(['wrf', 'only-a-name']);
      assert.equal((await c.readBytes(4)).toString(), '0000');
      assert.equal(await c.request(['rdf', 'a', 'b']), '0][0');
      assert.equal(await c.request(['rdf']), '0][0');
      assert.ok(Array.isArray(await c.ls()));
      c.close();
    });

    it('a bad size, a taken name or a missing directory: the write is refused with 0000', async () => {
      const c = await open();
      await c.create('taken');
      for (const [name, size] of [['s1', '-5'], ['s2', 'abc'], ['s3', '1e3'], ['s4', '99999999999999999999'], ['s5', ''], ['s6', '12 '],
        ['taken', '3'], ['no-such-dir/x', '3'], ['', '3'], ['a\u0001b', '3']] as const) {
        c.sendFrame(['wrf', name, size]);
        assert.equal((await c.readBytes(4)).toString(), '0000', `${name} ${size}`);
      }
      assert.equal(c.pending().length, 0);
      assert.match(await c.info('taken'), /^size=0 /);
      const http = cluster.client();
      for (const n of ['s1', 's2', 's3', 's4', 's5', 's6']) assert.equal(await http.exists(`/${n}`), false);
      c.close();
    });

    it('a read of a missing file or a directory answers 0][0', async () => {
      const c = await open();
      assert.deepEqual(await c.read('missing-file'), { missing: true });
      await c.mkdir('a-dir');
      assert.deepEqual(await c.read('a-dir'), { missing: true });
      c.close();
    });

    it('a client that never opens its data port: an error after the timeout, others served meanwhile, nothing visible', async () => {
      const c = await open();
      const started = Date.now();
      const pending = c.write('never', Buffer.alloc(10), 10, { neverListen: true });
      await stillServes();
      const other = await open();
      assert.equal((await other.write('meanwhile', Buffer.from('ok'), 2)).refused, false);
      other.close();
      const w = await pending;
      assert.ok(!w.refused);
      assert.match(w.reply, new RegExp(`^Error: could not connect to the client's data port 127\\.0\\.0\\.1:\\d+ within ${TIMEOUT_MS} ms`));
      assert.ok(Date.now() - started >= TIMEOUT_MS - 100);
      assert.equal(await cluster.client().exists('/never'), false);
      assert.ok(Array.isArray(await c.ls()), 'the session goes on');
      c.close();
    });

    it('a client that disconnects mid-upload: no file, and the server goes on', async () => {
      // Replicas on the storage servers, once no heartbeat changes them any more.
      let baseline = -1;
      await waitFor('a steady block count', async () => {
        const before = await storedBlocks();
        await new Promise((r) => setTimeout(r, 1200));
        if (before === (await storedBlocks())) baseline = before;
        return baseline >= 0;
      });
      const c = await open();
      const size = 5 * BLOCK;
      const w = await c.write('half', randomBytes(size), size, {
        // Some bytes of the third block go out, so that the first two are ended and on the storage
        // servers (3 replicas each) before the client dies (a full block is ended only when more come).
        dieAfter: 2 * BLOCK + 5000,
        beforeDying: () => waitFor('the first blocks to be stored', async () => (await storedBlocks()) >= baseline + 6),
      });
      assert.ok(!w.refused);
      await c.closed;
      await stillServes();
      const http = cluster.client();
      assert.equal(await http.exists('/half'), false);
      // The upload was aborted at once (not left to expire in an hour): the blocks it stored are deleted.
      await waitFor('the blocks of the aborted upload to be deleted', async () => (await storedBlocks()) <= baseline, 15_000);
      const again = await open();
      const data = randomBytes(1000);
      assert.equal((await again.write('half', data, data.length)).refused, false);
      assert.equal((await http.stat('/half')).size, 1000);
      again.close();
    });

    it('a client that confirms a read and disconnects: the server goes on', async () => {
      const c = await open();
      const data = randomBytes(4 * 1024 * 1024);
      assert.equal((await c.write('to-abandon', data, data.length)).refused, false);
      c.sendFrame(['rdf', 'to-abandon']);
      assert.match((await c.readReply('rdf')).body, /^\d+\]\[4194304$/);
      c.send('y');
      c.close();
      await stillServes();
    });

    it('the data port flags must lie within 1-9999', async () => {
      for (const bad of ['0-10', '9000-10000', '70000', '20-10', 'abc']) {
        const r = await runCli(['name', '--port', '0', '--data-dir', `${cluster.dataDir}/never`, '--classic-data-ports', bad]);
        assert.notEqual(r.code, 0, bad);
        assert.match(r.stderr, /data ports must be FROM-TO within 1-9999/, bad);
      }
    });

    it('a fuzz of random and mutated requests for 6 s; then the server still answers', async () => {
      const corpus = [
        frame(['rddir']), frame(['opdir', '..']), frame(['mkdir', 'fz']), frame(['crf', 'fz-file']), frame(['inf', 'fz-file']),
        frame(['cpf', 'fz-file', 'fz-copy']), frame(['mvf', 'fz-copy', 'fz/']), frame(['rmf', 'fz-copy']), frame(['rmdir', 'fz']),
        frame(['wrf', 'fz-w', '10']), frame(['rdf', 'fz-file']), frame(['wrf', 'ñ', '3']), frame(['opdir', 'fz']), frame(['exit']),
      ];
      const mutate = (b: Buffer): Buffer => {
        const out = Buffer.from(b);
        const kind = randomInt(6);
        if (kind === 0) for (let i = randomInt(1, 8); i > 0; i--) out[randomInt(out.length)] = randomInt(256);
        if (kind === 1) return out.subarray(0, randomInt(out.length));
        if (kind === 2) return Buffer.concat([out, randomBytes(randomInt(1, 3000))]);
        if (kind === 3) return randomBytes(randomInt(1, 5000));
        if (kind === 4) return Buffer.concat([out.subarray(0, randomInt(40)), Buffer.from('][][][]['), out.subarray(randomInt(40))]);
        return Buffer.concat([out, mutate(corpus[randomInt(corpus.length)]!)]);
      };
      const deadline = Date.now() + 6000;
      let sent = 0;
      let answered = 0;
      const worker = async (): Promise<void> => {
        while (Date.now() < deadline) {
          const s: Socket = netConnect({ port, host: '127.0.0.1' });
          s.on('error', () => {});
          let got = 0;
          s.on('data', (d: Buffer) => { got += d.length; });
          await new Promise<void>((r) => { s.once('connect', () => r()); s.once('close', () => r()); });
          for (let i = randomInt(1, 4); i > 0; i--) s.write(mutate(corpus[randomInt(corpus.length)]!));
          sent++;
          await new Promise((r) => setTimeout(r, randomInt(5, 150)));
          if (got > 0) answered++;
          if (randomInt(2) === 0) s.end(); else s.destroy();
        }
      };
      await Promise.all(Array.from({ length: 8 }, worker));
      console.log(`# fuzz: ${sent} connections, ${answered} got an answer`);
      assert.ok(sent > 100);
      assert.equal(cluster.name.child.exitCode, null, 'the name server is alive');
      const c = await open();
      assert.equal(await c.mkdir('after-fuzz'), 'done');
      const data = randomBytes(5000);
      assert.equal((await c.write('after-fuzz/f', data, data.length)).refused, false);
      const r = await c.read('after-fuzz/f');
      assert.ok(!r.missing && r.sha256 === sha256(data));
      c.close();
      assert.ok((await cluster.client().cluster()).storages.length > 0, 'HTTP too');
    });
  });
});

describe('classic framing and port sharing, in-process', () => {
  it('names a data port again as late as it can: fresh ports first, then the one released longest ago', () => {
    // A client closes its data port only after the final reply, which comes after the release here.
    const ports = new DataPorts(8000, 8009);
    const host = '127.0.0.1';
    const first = Array.from({ length: 10 }, () => ports.acquire(host)!);
    assert.deepEqual([...first].sort((a, b) => a - b), Array.from({ length: 10 }, (_, i) => 8000 + i), 'each port once before any again');
    assert.equal(ports.acquire(host), undefined, 'all ten in use');
    assert.notEqual(ports.acquire('10.0.0.2'), undefined, 'another host has ports of its own');
    for (const p of [8003, 8007, 8001]) ports.release(host, p);
    assert.deepEqual([ports.acquire(host), ports.acquire(host), ports.acquire(host)], [8003, 8007, 8001]);
    for (const p of first) ports.release(host, p);
    assert.deepEqual(Array.from({ length: 10 }, () => ports.acquire(host)), first, 'in the order they were released');
    ports.release(host, 8005);
    ports.release(host, 8005); // twice: no harm
    assert.equal(ports.acquire(host), 8005);
  });


  it('tells HTTP from classic by the first bytes, waiting while it cannot tell', () => {
    for (const http of ['GET ', 'POST /x', 'OPTIONS *', 'PROPFIND /', 'M-SEARCH *']) assert.equal(classify(Buffer.from(http)), 'http', http);
    for (const classic of ['rddir][', 'r', 'wrf][a', ' GET', 'get /', 'GET\r', 'A'.repeat(21)]) assert.equal(classify(Buffer.from(classic)), 'classic', classic);
    assert.equal(classify(Buffer.from([0x16, 0x03, 0x01])), 'classic', 'a TLS hello');
    for (const unsure of ['', 'G', 'GET', 'PROPFIN']) assert.equal(classify(Buffer.from(unsure)), undefined, unsure);
  });

  it('finds the end of a frame by characters, whichever way the bytes are cut', () => {
    const f = frame(['wrf', 'ñ-日本-🎉', '3']);
    const next = frame(['rddir']);
    const stream = Buffer.concat([f, next]);
    for (const cut of [1, 2, 3, 7, 2048, 4096]) {
      const scanner = new FrameScanner();
      let used = 0;
      for (let off = 0; off < stream.length && !scanner.complete; off += cut) used += scanner.scan(stream.subarray(off, off + cut));
      assert.equal(used, f.length, `pieces of ${cut}`);
    }
    assert.deepEqual(parseRequest(f), { ok: true, type: 'wrf', args: ['ñ-日本-🎉', '3'] });
    // Bytes that are not UTF-8 count one character each: the frame is never longer than 4 bytes a character.
    const scanner = new FrameScanner();
    assert.equal(scanner.scan(Buffer.alloc(5000, 0xff)), 2048);
    const leads = new FrameScanner();
    assert.equal(leads.scan(Buffer.alloc(20000, 0xf0)), 2048, 'a lead byte cut short by another ends its character');
  });
});

describe('sdfs name --no-classic', () => {
  let cluster: Cluster;
  before(async () => { cluster = await Cluster.start({ storages: 1, replication: 1, nameArgs: ['--no-classic'] }); });
  after(async () => { await cluster?.stop(); });

  it('serves HTTP only: a classic request gets a 400 from the HTTP server and a close', async () => {
    const c = await ClassicClient.connect(cluster.name.port);
    c.sendFrame(['rddir']);
    assert.equal(await c.closedWithin(5000), true);
    assert.match(c.pending().toString(), /^HTTP\/1\.1 400/);
    assert.ok((await cluster.client().cluster()).storages.length === 1);
  });
});
