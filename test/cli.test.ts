import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { basename, dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FileStat, SdfsClient } from '../src/client/index.js';
import type { BlockLocation, ClusterResponse } from '../src/protocol/messages.js';
import { CLI, Cluster, runCli } from './helpers/cluster.js';
import { blockDigest, sha256, sha256Of } from './helpers/data.js';

// The one-shot subcommands of `sdfs`, run as real processes against a real cluster: their output,
// their exit codes and one-line errors, the namespace and bytes they leave (checked through the
// client library), and the operation log they keep.
const BLOCK = 64 * 1024;

describe('sdfs subcommands', () => {
  let cluster: Cluster;
  let client: SdfsClient;
  let local: string;

  before(async () => {
    cluster = await Cluster.start({ blockSize: BLOCK });
    client = cluster.client();
    local = await cluster.scratchDir();
  });
  after(() => cluster?.stop());

  /** Runs a subcommand that must succeed; returns its stdout. */
  async function ok(args: string[], opts: { cwd?: string } = {}): Promise<string> {
    const r = await cluster.cli(args, opts);
    assert.equal(r.code, 0, `sdfs ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    assert.equal(r.stderr, '', `sdfs ${args.join(' ')} wrote on stderr`);
    return r.stdout;
  }

  /** Runs a subcommand that must fail with `code` and one line on stderr: `sdfs: <message>`. */
  async function fails(args: string[], code: number, message?: RegExp): Promise<string> {
    const r = await cluster.cli(args);
    assert.equal(r.code, code, `sdfs ${args.join(' ')}: exit code ${r.code}, stderr ${r.stderr}`);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^sdfs: [^\n]+\n$/, 'one line on stderr');
    if (message) assert.match(r.stderr.slice('sdfs: '.length, -1), message);
    return r.stderr;
  }

  const remoteSha = async (path: string): Promise<string> => (await sha256Of(await client.createReadStream(path))).sha256;
  const names = async (dir: string): Promise<string[]> => (await client.readdir(dir)).map((e) => (e.type === 'dir' ? `${e.name}/` : e.name));

  async function localFile(name: string, data: Buffer): Promise<string> {
    const dir = await mkdtemp(join(local, 'd-'));
    await writeFile(join(dir, name), data);
    return join(dir, name);
  }

  /** `sdfs cat` (or another subcommand that writes a file out), collecting stdout as bytes (the helper decodes it as text). */
  function catBytes(path: string, args = ['cat', path]): Promise<{ code: number; stdout: Buffer }> {
    return new Promise((done, fail) => {
      const child = spawn(process.execPath, [CLI, '--name-server', cluster.url, '--log-file', join(cluster.dataDir, 'client.log'), ...args],
        { stdio: ['ignore', 'pipe', 'inherit'] });
      const chunks: Buffer[] = [];
      child.stdout.on('data', (d: Buffer) => chunks.push(d));
      child.on('error', fail);
      child.on('close', (code) => done({ code: code ?? -1, stdout: Buffer.concat(chunks) }));
    });
  }

  it('put and get move the bytes; put into a directory or the root, get to a directory, -f, -r and -b', async () => {
    const data = randomBytes(3 * BLOCK + 4567);
    const src = await localFile('file.bin', data);
    const other = randomBytes(100);
    const otherFile = await localFile('other.bin', other);
    const rootData = randomBytes(777);
    const rootFile = await localFile('t-root-put.bin', rootData);
    await client.mkdir('/t-put');
    await client.writeFile('/t-put/replaced.bin', 'old bytes');
    const [named] = await Promise.all([
      ok(['put', src, '/t-put/named.bin']),
      ok(['put', src, '/t-put']), // into the existing directory, under its own name
      ok(['put', rootFile]), // no target: the root, under its own name
      ok(['put', src, '/t-put/r2.bin', '-r', '2', '-b', '8K']),
      ok(['put', otherFile, '/t-put/replaced.bin', '-f']),
    ]);
    assert.equal(named, '');
    assert.deepEqual(await names('/t-put'), ['file.bin', 'named.bin', 'r2.bin', 'replaced.bin']);
    for (const f of ['named.bin', 'file.bin', 'r2.bin']) assert.equal(await remoteSha(`/t-put/${f}`), sha256(data), f);
    assert.equal(await remoteSha('/t-root-put.bin'), sha256(rootData));
    assert.equal(await remoteSha('/t-put/replaced.bin'), sha256(other), '-f replaced the file');
    const st = await client.stat('/t-put/named.bin');
    assert.equal(st.size, data.length);
    assert.equal(st.blocks, 4);
    assert.equal(st.replication, 3);
    const r2 = await client.stat('/t-put/r2.bin');
    assert.equal(r2.replication, 2);
    assert.equal(r2.blockSize, 8192);
    const located = await client.blocks('/t-put/r2.bin');
    assert.equal(located.blocks.length, Math.ceil(data.length / 8192));
    for (const b of located.blocks) assert.equal(new Set(b.replicas.map((r) => r.id)).size, 2);

    const down = await mkdtemp(join(local, 'down-'));
    await Promise.all([
      ok(['get', '/t-put/file.bin', join(down, 'copy.bin')]),
      ok(['get', '/t-put/r2.bin', down]), // to a directory: under the file's name
      ok(['get', '/t-put/replaced.bin'], { cwd: down }), // default: the local current directory
      fails(['put', otherFile, '/t-put/named.bin'], 3, /already exists: \/t-put\/named\.bin/),
      fails(['put', src, '/t-put/bad-bs', '-b', '12'], 6, /block size/),
      fails(['get', '/t-put/nothing', join(down, 'x')], 2, /^no such file or directory: \/t-put\/nothing$/),
      fails(['get', '/t-put/file.bin', join(down, 'no-dir', 'x')], 2, /no-dir/),
      fails(['put', join(down, 'not-here.bin'), '/t-put/x'], 2, /not-here\.bin/),
    ]);
    assert.equal(sha256(await readFile(join(down, 'copy.bin'))), sha256(data));
    assert.equal(sha256(await readFile(join(down, 'r2.bin'))), sha256(data));
    assert.equal(sha256(await readFile(join(down, 'replaced.bin'))), sha256(other));
    assert.deepEqual((await readdir(down)).sort(), ['copy.bin', 'r2.bin', 'replaced.bin'], 'no partial files');
    assert.equal(await remoteSha('/t-put/named.bin'), sha256(data), 'the refused put changed nothing');
    assert.deepEqual(await names('/t-put'), ['file.bin', 'named.bin', 'r2.bin', 'replaced.bin']);
  });

  it('put -R and get -R move directory trees: nested, empty and unicode entries; -f to replace; into an existing directory', async () => {
    const tree = await mkdtemp(join(local, 'tree-'));
    const files: Record<string, Buffer> = {
      'top.bin': randomBytes(3 * BLOCK + 17),
      'sub/inner.txt': Buffer.from('inner\n'),
      'sub/deeper/日本 語.dat': randomBytes(5000),
      'sub/empty-file': Buffer.alloc(0),
    };
    for (const [rel, data] of Object.entries(files)) {
      await mkdir(join(tree, dirname(rel)), { recursive: true });
      await writeFile(join(tree, rel), data);
    }
    await mkdir(join(tree, 'empty-dir'));
    await symlink('top.bin', join(tree, 'a-link'));
    const name = basename(tree);
    // Only when asked for: a directory given by mistake (`put .`) is refused.
    await fails(['put', tree], 4, /is a directory: sdfs put -R uploads a directory tree/);
    assert.deepEqual((await names('/')).filter((n) => n === `${name}/`), []);
    // Into the root under its own name (no target); the link is skipped, with a line on stderr.
    const first = await cluster.cli(['put', '-R', tree]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, /^sdfs: skipped .*a-link: not a regular file or directory\n$/);
    assert.deepEqual(await names(`/${name}`), ['empty-dir/', 'sub/', 'top.bin']);
    assert.deepEqual(await names(`/${name}/sub`), ['deeper/', 'empty-file', 'inner.txt']);
    for (const [rel, data] of Object.entries(files)) assert.equal(await remoteSha(`/${name}/${rel}`), sha256(data), rel);
    // Again: the files are there (EEXIST, exit 3) unless -f, which replaces them.
    const again = await cluster.cli(['put', '-R', tree]);
    assert.equal(again.code, 3, again.stderr);
    assert.match(again.stderr, /already exists: /);
    files['top.bin'] = randomBytes(1000);
    await writeFile(join(tree, 'top.bin'), files['top.bin']);
    assert.equal((await cluster.cli(['put', '-R', '-f', tree])).code, 0);
    assert.equal(await remoteSha(`/${name}/top.bin`), sha256(files['top.bin']));
    // To a new name, and into an existing directory (under its own name), as cp -r.
    await ok(['mkdir', '/t-trees']);
    assert.equal((await cluster.cli(['put', '-R', tree, '/t-trees/renamed'])).code, 0);
    assert.equal((await cluster.cli(['put', tree, '/t-trees', '--recursive'])).code, 0);
    assert.deepEqual((await names('/t-trees')).sort(), [`${name}/`, 'renamed/'].sort());
    assert.equal(await remoteSha('/t-trees/renamed/sub/deeper/日本 語.dat'), sha256(files['sub/deeper/日本 語.dat']!));
    // Back down: to a new local directory, then into it (under the tree's name); the bytes are the same.
    const down = await mkdtemp(join(local, 'down-'));
    await fails(['get', '/t-trees/renamed', join(down, 'copy')], 4, /is a directory: sdfs get -R downloads a directory tree/);
    assert.deepEqual(await readdir(down), []);
    await ok(['get', '-R', '/t-trees/renamed', join(down, 'copy')]);
    await ok(['get', '-R', '/t-trees/renamed', join(down, 'copy')]);
    for (const base of [join(down, 'copy'), join(down, 'copy', 'renamed')]) {
      for (const [rel, data] of Object.entries(files)) assert.equal(sha256(await readFile(join(base, rel))), sha256(data), join(base, rel));
      assert.deepEqual(await readdir(join(base, 'empty-dir')), []);
    }
  });

  it('put - streams standard input into the file named, and needs that name', async () => {
    const data = randomBytes(3 * BLOCK + 999);
    await client.mkdir('/t-stdin');
    const r = await cluster.cli(['put', '-', '/t-stdin/piped.bin'], { input: data });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await remoteSha('/t-stdin/piped.bin'), sha256(data));
    assert.equal((await client.stat('/t-stdin/piped.bin')).blocks, 4);
    const empty = await cluster.cli(['put', '-', '/t-stdin/empty'], { input: '' });
    assert.equal(empty.code, 0, empty.stderr);
    assert.equal((await client.stat('/t-stdin/empty')).size, 0);
    // Without a file name (none to take from standard input), into a directory, or over a file without -f.
    await fails(['put', '-'], 6, /give the path of the file/);
    await fails(['put', '-', '/t-stdin'], 4, /\/t-stdin is a directory/);
    await fails(['put', '-', '/t-stdin/piped.bin'], 3, /already exists/);
    assert.equal(await remoteSha('/t-stdin/piped.bin'), sha256(data), 'the refused put changed nothing');
    const replaced = await cluster.cli(['put', '-f', '-', '/t-stdin/piped.bin'], { input: 'new bytes' });
    assert.equal(replaced.code, 0, replaced.stderr);
    assert.equal(await remoteSha('/t-stdin/piped.bin'), sha256(Buffer.from('new bytes')));
    assert.deepEqual(await names('/t-stdin'), ['empty', 'piped.bin']);
  });

  it('cat, and get with - for the local file, write the exact bytes to stdout', async () => {
    const bin = randomBytes(2 * BLOCK + 333);
    await client.writeFile('/t-cat.bin', bin);
    const text = 'line one\nline two, ünïcödé 日本 🎉\n'.repeat(500);
    await client.writeFile('/t-cat.txt', text);
    await client.create('/t-cat-empty');
    const [r, viaGet, t, empty] = await Promise.all([
      catBytes('/t-cat.bin'),
      catBytes('/t-cat.bin', ['get', '/t-cat.bin', '-']),
      ok(['cat', '/t-cat.txt']),
      ok(['cat', '/t-cat-empty']),
      fails(['cat', '/t-cat-missing'], 2, /no such file or directory: \/t-cat-missing/),
    ]);
    assert.equal(r.code, 0);
    assert.equal(r.stdout.length, bin.length);
    assert.ok(r.stdout.equals(bin), 'binary bytes are equal');
    // `get FILE -` writes to stdout as cat does, and makes no local file named `-`.
    assert.equal(viaGet.code, 0);
    assert.ok(viaGet.stdout.equals(bin), 'get - writes the bytes to stdout');
    assert.equal(existsSync(join(process.cwd(), '-')), false);
    assert.equal(t, text);
    assert.equal(empty, '');
  });

  it('cat and ls whose reader goes away stop quietly, as a tool killed by SIGPIPE (exit 141, nothing on stderr)', async () => {
    await client.writeFile('/t-pipe.bin', randomBytes(8 * 1024 * 1024));
    await client.mkdir('/t-pipe-dir');
    // Enough entries that `ls --json` (about 400 KB) fills the pipe, or the socket pair a test spawns with, before it is done.
    for (let i = 0; i < 2000; i += 100) await Promise.all(Array.from({ length: 100 }, (_, j) => client.create(`/t-pipe-dir/a-rather-long-file-name-${i + j}`)));
    const closedEarly = (args: string[]): Promise<{ code: number | null; stderr: string; got: number }> => new Promise((done, fail) => {
      const child = spawn(process.execPath, [CLI, '--name-server', cluster.url, '--log-file', join(cluster.dataDir, 'client.log'), ...args],
        { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      let got = 0;
      child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
      // The reader takes the first bytes and closes its end, as `| head -c 10` does.
      child.stdout.once('data', (d: Buffer) => { got = d.length; child.stdout.destroy(); });
      child.on('error', fail);
      child.on('close', (code) => done({ code, stderr, got }));
    });
    for (const args of [['cat', '/t-pipe.bin'], ['ls', '--json', '/t-pipe-dir']]) {
      const r = await closedEarly(args);
      assert.ok(r.got > 0, `sdfs ${args.join(' ')} wrote nothing`);
      assert.equal(r.stderr, '', `sdfs ${args.join(' ')} wrote on stderr`);
      assert.equal(r.code, 141, `sdfs ${args.join(' ')}`);
    }
  });

  it('ls: plain, -l and --json match the namespace', async () => {
    await client.mkdir('/t-ls/sub dir', { recursive: true });
    await client.mkdir('/t-ls/another');
    await client.writeFile('/t-ls/b.bin', randomBytes(BLOCK + 1));
    await client.writeFile('/t-ls/a é.txt', 'hello');
    const [plain, longText, jsonText, oneText, emptyText, rootText] = await Promise.all([
      ok(['ls', '/t-ls']), ok(['ls', '/t-ls', '-l']), ok(['ls', '/t-ls', '--json']), ok(['ls', '/t-ls/b.bin', '--json']),
      ok(['ls', '/t-ls/another']), ok(['ls']), fails(['ls', '/t-ls/missing'], 2, /no such file or directory/),
    ]);
    assert.equal(plain, 'another/\nsub dir/\na é.txt\nb.bin\n');
    const long = longText.split('\n');
    assert.equal(long.pop(), '');
    assert.equal(long.length, 4);
    assert.match(long[0]!, /^d +- {2}\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ {2}another\/$/);
    assert.match(long[1]!, /^d +- {2}\S+ \S+ {2}sub dir\/$/);
    assert.match(long[2]!, /^- +5 {2}\S+ \S+ {2}a é\.txt$/);
    assert.match(long[3]!, new RegExp(`^- +${BLOCK + 1} {2}\\S+ \\S+ {2}b\\.bin$`));

    const json = JSON.parse(jsonText) as FileStat[];
    assert.deepEqual(json, await client.readdir('/t-ls'));
    assert.deepEqual(json.map((e) => [e.name, e.type, e.size, e.path]), [
      ['another', 'dir', 0, '/t-ls/another'], ['sub dir', 'dir', 0, '/t-ls/sub dir'],
      ['a é.txt', 'file', 5, '/t-ls/a é.txt'], ['b.bin', 'file', BLOCK + 1, '/t-ls/b.bin'],
    ]);
    const one = JSON.parse(oneText) as FileStat[];
    assert.deepEqual(one.map((e) => e.path), ['/t-ls/b.bin'], 'ls of a file lists the file');
    assert.equal(emptyText, '', 'an empty directory lists nothing');
    assert.ok(rootText.split('\n').includes('t-ls/'), 'ls with no path lists the root');
  });

  it('stat --json lists each block with 3 replicas on distinct storage servers', async () => {
    const data = randomBytes(3 * BLOCK + 10);
    await client.writeFile('/t-stat', data);
    await client.mkdir('/t-stat-dir');
    const [jsonText, text, infoText, dirText] = await Promise.all([
      ok(['stat', '/t-stat', '--json']), ok(['stat', '/t-stat']), ok(['info', '/t-stat']), ok(['stat', '/t-stat-dir', '--json']),
      fails(['stat', '/t-stat-missing', '--json'], 2, /no such file or directory: \/t-stat-missing/),
    ]);
    const st = JSON.parse(jsonText) as FileStat & { blockList: BlockLocation[] };
    assert.equal(st.path, '/t-stat');
    assert.equal(st.type, 'file');
    assert.equal(st.size, data.length);
    assert.equal(st.blocks, 4);
    assert.equal(st.replication, 3);
    assert.equal(st.blockList.length, 4);
    const servers = new Map(cluster.storages.map((s) => [s.id!, `127.0.0.1:${s.port}`]));
    const located = await client.blocks('/t-stat');
    for (const [i, b] of st.blockList.entries()) {
      assert.equal(b.index, i);
      assert.equal(b.offset, i * BLOCK);
      assert.equal(b.size, i < 3 ? BLOCK : 10);
      assert.equal(b.digest, blockDigest(data.subarray(b.offset, b.offset + b.size)));
      assert.equal(b.id, located.blocks[i]!.id);
      assert.equal(b.replicas.length, 3);
      assert.equal(new Set(b.replicas.map((r) => r.id)).size, 3, 'distinct storage ids');
      assert.equal(new Set(b.replicas.map((r) => r.addr)).size, 3, 'distinct addresses');
      for (const r of b.replicas) {
        assert.equal(servers.get(r.id), r.addr, 'the id and the address are those of one storage server');
        assert.equal(r.alive, true);
      }
    }
    assert.match(text, new RegExp(`^size: +${data.length} bytes`, 'm'));
    assert.equal(text.match(/^ {2}replicas \(3\): /gm)?.length, 4);
    // Replicas come in random order (readers spread over them): compare them as sets.
    const sortReplicas = (t: string): string => t.replace(/^( {2}replicas \(\d+\): )(.*)$/gm, (_l, head: string, list: string) => head + list.split(', ').sort().join(', '));
    assert.equal(sortReplicas(infoText), sortReplicas(text), 'info is an alias of stat');
    for (const b of st.blockList) {
      assert.ok(sortReplicas(text).includes(`  replicas (3): ${b.replicas.map((r) => `${r.id.slice(0, 8)}@${r.addr}`).sort().join(', ')}`));
    }
    const dir = JSON.parse(dirText) as FileStat & { blockList: unknown[] };
    assert.equal(dir.type, 'dir');
    assert.deepEqual(dir.blockList, []);
  });

  it('mkdir, and mkdir -p', async () => {
    await client.mkdir('/t-mk');
    await client.writeFile('/t-mk/file', 'f');
    const [out] = await Promise.all([
      ok(['mkdir', '/t-mk/plain']),
      ok(['mkdir', '-p', '/t-mk/a/b/c']),
      fails(['mkdir', '/t-mk'], 3, /already exists: \/t-mk/),
      fails(['mkdir', '/t-mk/x/y/z'], 2, /no such directory: \/t-mk\/x\/y/),
      fails(['mkdir', '-p', '/t-mk/file/x'], 4, /not a directory: \/t-mk\/file/),
      fails(['mkdir', '-p', '/t-mk/file'], 3),
    ]);
    assert.equal(out, '');
    assert.deepEqual(await names('/t-mk'), ['a/', 'plain/', 'file']);
    assert.deepEqual(await names('/t-mk/a/b'), ['c/']);
    await ok(['mkdir', '-p', '/t-mk/a/b/c']); // no error when it exists
    assert.deepEqual(await names('/t-mk/a/b/c'), []);
  });

  it('rm removes files and empty directories; a non-empty directory needs -r', async () => {
    await client.mkdir('/t-rm/full/sub', { recursive: true });
    await client.mkdir('/t-rm/empty');
    await client.writeFile('/t-rm/file', randomBytes(BLOCK + 5));
    await client.writeFile('/t-rm/full/a', 'a');
    await client.writeFile('/t-rm/full/sub/b', 'b');
    const [removed] = await Promise.all([
      ok(['rm', '/t-rm/file']),
      ok(['rm', '/t-rm/empty']),
      fails(['rm', '/t-rm/full'], 5, /^\/t-rm\/full is a directory and not empty: use rm -r$/),
      fails(['rm', '/t-rm/nothing'], 2, /no such file or directory: \/t-rm\/nothing/),
    ]);
    assert.equal(removed, '');
    assert.equal(await client.exists('/t-rm/file'), false);
    assert.equal(await client.exists('/t-rm/empty'), false);
    assert.deepEqual(await names('/t-rm/full'), ['sub/', 'a'], 'nothing was removed');
    assert.deepEqual(await names('/t-rm/full/sub'), ['b']);
    await Promise.all([ok(['rm', '-r', '/t-rm/full']), fails(['rm', '-r', '/'], 6, /root/)]);
    assert.deepEqual(await names('/t-rm'), []);
    assert.equal(await client.exists('/t-rm/full/sub/b'), false);
    assert.ok((await names('/')).includes('t-rm/'), 'the root is intact');
  });

  it('mv renames and moves into a directory; a taken name needs -f', async () => {
    const data = randomBytes(2 * BLOCK);
    await client.mkdir('/t-mv/dir', { recursive: true });
    await client.mkdir('/t-mv/tree/sub', { recursive: true });
    await client.writeFile('/t-mv/a', data);
    await client.writeFile('/t-mv/b', 'bee');
    await client.writeFile('/t-mv/c', 'sea');
    await client.writeFile('/t-mv/taken', 'taken');
    await client.writeFile('/t-mv/tree/sub/leaf', 'leaf');
    const [out] = await Promise.all([
      ok(['mv', '/t-mv/a', '/t-mv/renamed']),
      ok(['mv', '/t-mv/b', '/t-mv/dir']), // into the directory
      ok(['mv', '/t-mv/tree', '/t-mv/moved tree']),
      fails(['mv', '/t-mv/c', '/t-mv/taken'], 3, /already exists: \/t-mv\/taken/),
      fails(['mv', '/t-mv/nothing', '/t-mv/x'], 2, /no such file or directory: \/t-mv\/nothing/),
    ]);
    assert.equal(out, '');
    assert.deepEqual(await names('/t-mv'), ['dir/', 'moved tree/', 'c', 'renamed', 'taken']);
    assert.deepEqual(await names('/t-mv/dir'), ['b']);
    assert.equal(await remoteSha('/t-mv/renamed'), sha256(data));
    assert.equal(await remoteSha('/t-mv/dir/b'), sha256(Buffer.from('bee')));
    assert.equal(await remoteSha('/t-mv/moved tree/sub/leaf'), sha256(Buffer.from('leaf')));
    assert.equal(await remoteSha('/t-mv/taken'), sha256(Buffer.from('taken')), 'the refused move changed nothing');
    await ok(['mv', '/t-mv/c', '/t-mv/taken', '-f']);
    assert.equal(await remoteSha('/t-mv/taken'), sha256(Buffer.from('sea')));
    assert.deepEqual(await names('/t-mv'), ['dir/', 'moved tree/', 'renamed', 'taken']);
  });

  it('cp copies files and directory trees, sharing blocks; a taken name needs -f', async () => {
    const data = randomBytes(2 * BLOCK + 1);
    await client.mkdir('/t-cp/tree/sub', { recursive: true });
    await client.mkdir('/t-cp/into');
    await client.writeFile('/t-cp/tree/f', data);
    await client.writeFile('/t-cp/tree/sub/g', 'gee');
    await client.writeFile('/t-cp/other', 'other');
    await client.writeFile('/t-cp/taken', 'taken');
    const [out] = await Promise.all([
      ok(['cp', '/t-cp/tree/f', '/t-cp/f2']),
      ok(['cp', '/t-cp/tree/f', '/t-cp/into']),
      ok(['cp', '/t-cp/tree', '/t-cp/tree2']),
      fails(['cp', '/t-cp/other', '/t-cp/taken'], 3, /already exists: \/t-cp\/taken/),
      fails(['cp', '/t-cp/none', '/t-cp/x'], 2, /no such file or directory: \/t-cp\/none/),
    ]);
    assert.equal(out, '');
    for (const p of ['/t-cp/f2', '/t-cp/into/f', '/t-cp/tree2/f', '/t-cp/tree/f']) assert.equal(await remoteSha(p), sha256(data), p);
    const ids = async (p: string): Promise<string[]> => (await client.blocks(p)).blocks.map((b) => b.id);
    assert.deepEqual(await ids('/t-cp/f2'), await ids('/t-cp/tree/f'), 'the copy shares the blocks');
    assert.deepEqual(await names('/t-cp/tree2'), ['sub/', 'f']);
    assert.equal(await remoteSha('/t-cp/tree2/sub/g'), sha256(Buffer.from('gee')));
    assert.equal(await remoteSha('/t-cp/taken'), sha256(Buffer.from('taken')), 'the refused copy changed nothing');
    await ok(['cp', '/t-cp/other', '/t-cp/taken', '-f']);
    assert.equal(await remoteSha('/t-cp/taken'), sha256(Buffer.from('other')));
    assert.equal(await remoteSha('/t-cp/other'), sha256(Buffer.from('other')), 'the source is still there');
    assert.deepEqual(await names('/t-cp'), ['into/', 'tree/', 'tree2/', 'f2', 'other', 'taken']);
  });

  it('df --json lists the 3 storage servers, alive, with capacity and free space', async () => {
    const c = JSON.parse(await ok(['df', '--json'])) as ClusterResponse;
    assert.equal(c.storages.length, 3);
    assert.deepEqual(c.storages.map((s) => s.id).sort(), cluster.storages.map((s) => s.id!).sort());
    assert.deepEqual(c.storages.map((s) => s.addr).sort(), cluster.storages.map((s) => `127.0.0.1:${s.port}`).sort());
    for (const s of c.storages) {
      assert.equal(s.alive, true);
      assert.ok(s.capacity > 0);
      assert.ok(s.free > 0 && s.free <= s.capacity);
    }
    // The three share this machine's one file system: its space counts once (storage-space.test.ts).
    assert.equal(c.capacity, c.storages[0]!.capacity);
    assert.equal(c.free, Math.min(...c.storages.map((s) => s.free)));
    assert.equal(c.replication, 3);
    assert.equal(c.blockSize, BLOCK);
    const text = (await ok(['df'])).trimEnd().split('\n');
    assert.equal(text.length, 5);
    for (const s of cluster.storages) assert.ok(text.some((l) => l.includes(`127.0.0.1:${s.port}`) && l.includes('alive')));
    assert.match(text[4]!, /3 of 3 storage servers alive$/);
  });

  // Every command's missing-file (2) and taken-name (3) failure is checked above, by fails(): the exit
  // code and one line on stderr, starting with 'sdfs: '. Here, what is left.
  it('exit codes: 3 for a copy onto itself, 6 for bad usage', async () => {
    await client.writeFile('/t-codes', 'f');
    const [same, usage, unknown] = await Promise.all([
      fails(['cp', '/t-codes', '/t-codes'], 3, /same/),
      cluster.cli(['mv', '/t-codes']),
      cluster.cli(['frobnicate']),
    ]);
    assert.match(same, /^sdfs: /);
    assert.equal(usage.code, 6);
    assert.match(usage.stderr, /missing required argument/);
    assert.equal(unknown.code, 6);
    assert.equal(await remoteSha('/t-codes'), sha256(Buffer.from('f')));
  });

  it('the operation log has one JSON line per operation with op, args and outcome', async () => {
    const logFile = join(cluster.dataDir, 'client.log');
    const before = (await readFile(logFile, 'utf8').catch(() => '')).split('\n').filter(Boolean).length;
    await ok(['mkdir', '/t-log']);
    const src = await localFile('logged.bin', Buffer.from('logged'));
    await ok(['put', src, '/t-log/f']);
    await fails(['mkdir', '/t-log'], 3);
    await ok(['ls', '/t-log', '--json']);
    const shell = await cluster.cli(['shell'], { input: 'mkdir /t-log/from-shell\ndelete /t-log/nothing\n' });
    assert.equal(shell.code, 2);
    const lines = (await readFile(logFile, 'utf8')).split('\n');
    assert.equal(lines.pop(), '', 'the log ends with a newline');
    const entries = lines.slice(before).map((l) => JSON.parse(l) as { time: string; nameServer: string; op: string; args: string[]; outcome: string });
    assert.deepEqual(entries.map(({ op, args, outcome }) => ({ op, args, outcome })), [
      { op: 'mkdir', args: ['/t-log'], outcome: 'ok' },
      { op: 'put', args: [src, '/t-log/f'], outcome: 'ok' },
      { op: 'mkdir', args: ['/t-log'], outcome: 'EEXIST' },
      { op: 'ls', args: ['/t-log'], outcome: 'ok' },
      { op: 'mkdir', args: ['/t-log/from-shell'], outcome: 'ok' },
      { op: 'delete', args: ['/t-log/nothing'], outcome: 'ENOENT' },
      { op: 'shell', args: [], outcome: 'ok' },
    ]);
    for (const e of entries) {
      assert.equal(e.nameServer, cluster.url);
      assert.ok(!Number.isNaN(Date.parse(e.time)), e.time);
    }
    assert.deepEqual(await names('/t-log'), ['from-shell/', 'f']);
  });

  it('SDFS_NAME_SERVER works instead of --name-server; the flag wins; the log goes to $XDG_CONFIG_HOME by default', async () => {
    const config = await mkdtemp(join(local, 'config-'));
    await client.mkdir('/t-env');
    await client.writeFile('/t-env/f', 'via env');
    const env = { SDFS_NAME_SERVER: cluster.url, XDG_CONFIG_HOME: config };
    const r = await runCli(['ls', '/t-env', '--json'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((JSON.parse(r.stdout) as FileStat[]).map((e) => e.name), ['f']);
    const made = await runCli(['mkdir', '/t-env/made'], { env });
    assert.equal(made.code, 0, made.stderr);
    assert.equal((await client.stat('/t-env/made')).type, 'dir');
    const log = (await readFile(join(config, 'sdfs', 'operations.log'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { op: string; nameServer: string });
    assert.deepEqual(log.map((e) => e.op), ['ls', 'mkdir']);
    assert.ok(log.every((e) => e.nameServer === cluster.url));

    // A name server where nothing listens: unavailable (10), in one line.
    const closed = await new Promise<number>((done) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const { port } = srv.address() as { port: number };
        srv.close(() => done(port));
      });
    });
    const dead = `http://127.0.0.1:${closed}`;
    const [down, flag] = await Promise.all([
      runCli(['ls', '/'], { env: { SDFS_NAME_SERVER: dead, XDG_CONFIG_HOME: config } }),
      // --name-server wins over the environment.
      runCli(['--name-server', cluster.url, 'ls', '/t-env'], { env: { SDFS_NAME_SERVER: dead, XDG_CONFIG_HOME: config } }),
    ]);
    assert.equal(down.code, 10);
    assert.match(down.stderr, /^sdfs: [^\n]+\n$/);
    assert.equal(flag.code, 0, flag.stderr);
    assert.equal(flag.stdout, 'made/\nf\n');
  });
});
