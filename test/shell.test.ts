import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { SdfsClient } from '../src/client/index.js';
import { formatSize } from '../src/cli/units.js';
import { Cluster } from './helpers/cluster.js';
import { blockDigest, sha256, sha256Of } from './helpers/data.js';

// The interactive shell (`sdfs shell`), driven through its standard input by real processes: every
// command, its errors, quoting and unicode names. Each mutation is checked through the client library
// too, and downloaded bytes against what was uploaded.
const BLOCK = 64 * 1024;

describe('sdfs shell', () => {
  let cluster: Cluster;
  let client: SdfsClient;
  let local: string;

  before(async () => {
    cluster = await Cluster.start({ blockSize: BLOCK });
    client = cluster.client();
    local = await cluster.scratchDir();
  });
  after(() => cluster?.stop());

  /** Runs one shell session with these input lines; returns its exit code and output lines. */
  async function shell(input: string[], cwd = local): Promise<{ code: number; out: string[] }> {
    const r = await cluster.cli(['shell'], { input: input.join('\n') + '\n', cwd });
    assert.equal(r.stderr, '', 'the shell writes nothing on stderr');
    const out = r.stdout.split('\n');
    assert.equal(out.pop(), '', 'output ends with a newline');
    return { code: r.code, out };
  }

  const names = async (dir: string): Promise<string[]> => (await client.readdir(dir)).map((e) => (e.type === 'dir' ? `${e.name}/` : e.name));
  const remoteSha = async (path: string): Promise<string> => (await sha256Of(await client.createReadStream(path))).sha256;

  /** A fresh local directory, with files of the given sizes (random bytes). */
  async function localFiles(files: Record<string, number>): Promise<{ dir: string; data: Record<string, Buffer> }> {
    const dir = await mkdtemp(join(local, 'd-'));
    const data: Record<string, Buffer> = {};
    for (const [name, size] of Object.entries(files)) {
      data[name] = randomBytes(size);
      await writeFile(join(dir, name), data[name]!);
    }
    return { dir, data };
  }

  async function blocksOnDisk(): Promise<number> {
    let n = 0;
    for (const [i] of cluster.storages.entries()) n += (await cluster.blocksOnDisk(i)).size;
    return n;
  }

  it('init answered n keeps everything; answered y wipes every file and storage server and prints the space', async () => {
    await client.mkdir('/keep/sub', { recursive: true });
    const kept = randomBytes(2 * BLOCK + 10);
    const dataSha = sha256(kept);
    await client.writeFile('/keep/sub/data', kept);
    await client.writeFile('/top', 'top');
    assert.ok((await blocksOnDisk()) >= 9, 'three replicas of each block are on disk');
    const question = 'This deletes every file and directory in the cluster. Continue? [y/N] ';

    for (const kept of await Promise.all(['n', '', 'no'].map((answer) => shell(['init', answer, 'pwd'])))) {
      assert.deepEqual(kept.out, [question, 'init canceled', '/']);
      assert.equal(kept.code, 0);
    }
    assert.deepEqual(await names('/'), ['keep/', 'top']);
    assert.equal(await remoteSha('/keep/sub/data'), dataSha);

    const wiped = await shell(['cd /keep/sub', 'init', 'y', 'pwd', 'ls']);
    assert.equal(wiped.code, 0);
    assert.equal(wiped.out[0], question);
    const info = await client.cluster();
    const live = info.storages.filter((s) => s.alive);
    assert.equal(live.length, 3);
    const storageLines = wiped.out.slice(1, 4);
    assert.deepEqual(storageLines.map((l) => /^storage (\S+) capacity .+ available .+$/.exec(l)?.[1]).sort(),
      cluster.storages.map((s) => `127.0.0.1:${s.port}`).sort(), 'one line per storage server, with its address');
    for (const s of live) {
      assert.ok(storageLines.some((l) => l.startsWith(`storage ${s.addr} capacity ${formatSize(s.capacity)} available `)), `capacity of ${s.addr}`);
    }
    assert.match(wiped.out[4]!, new RegExp(`^total: capacity ${formatSize(info.capacity)}, available \\d+(\\.\\d)? [KMGTP]iB$`));
    assert.deepEqual(wiped.out.slice(5), ['/'], 'the working directory is back at / and / is empty');
    assert.deepEqual(await client.readdir('/'), []);
    assert.equal(await client.exists('/keep/sub/data'), false);
    assert.equal(await blocksOnDisk(), 0, 'every storage server was wiped');
    // The cluster works after init.
    await client.writeFile('/after-init', 'still works');
    assert.equal(await remoteSha('/after-init'), sha256(Buffer.from('still works')));
  });

  it('create makes empty files; a taken name, a missing directory and wrong arguments fail', async () => {
    await client.mkdir('/t-create');
    const r = await shell([
      'cd /t-create', 'create a.txt', 'create a.txt', "create 'with space.txt'", 'create "double quoted.txt"',
      'create /t-create/abs', 'create no-such-dir/x', 'create', 'create x y', 'mkdir d', 'create d',
    ]);
    assert.deepEqual(r.out, [
      'created /t-create/a.txt',
      'error: already exists: /t-create/a.txt',
      'created /t-create/with space.txt',
      'created /t-create/double quoted.txt',
      'created /t-create/abs',
      'error: no such directory: /t-create/no-such-dir',
      'usage: create FILE',
      'usage: create FILE',
      'created directory /t-create/d',
      'error: already exists: /t-create/d',
    ]);
    assert.equal(r.code, 3, 'the exit code is that of the last failure (already exists)');
    assert.deepEqual(await names('/t-create'), ['d/', 'a.txt', 'abs', 'double quoted.txt', 'with space.txt']);
    for (const f of ['a.txt', 'with space.txt', 'double quoted.txt', 'abs']) {
      const st = await client.stat(`/t-create/${f}`);
      assert.equal(st.type, 'file');
      assert.equal(st.size, 0);
      assert.equal(await remoteSha(`/t-create/${f}`), sha256(Buffer.alloc(0)));
    }
  });

  it('write uploads local files and read downloads them byte for byte; -f replaces; errors', async () => {
    const { dir, data } = await localFiles({ 'data.bin': 3 * BLOCK + 123, 'small.bin': 10, 'empty.bin': 0, 'exact.bin': BLOCK });
    const down = join(dir, 'down');
    await mkdir(down);
    await client.mkdir('/t-rw');
    const r = await shell([
      'cd /t-rw',
      'write data.bin', // default name, in the working directory
      'write data.bin', // taken
      'write small.bin copy.bin',
      'write empty.bin',
      'write exact.bin /t-rw/exact',
      'write -f small.bin data.bin', // replaced by a smaller file
      'write missing.bin',
      'write a b c',
      'read copy.bin down/copy.bin',
      'read exact down', // into a local directory
      'read empty.bin down/empty.bin',
      'read /t-rw/data.bin', // default: same name, in the local directory
      'read copy.bin no-such-dir/copy.bin',
      'read nothing-here',
    ], dir);
    assert.deepEqual(r.out, [
      `wrote data.bin -> /t-rw/data.bin (${3 * BLOCK + 123} bytes)`,
      'error: already exists: /t-rw/data.bin',
      'wrote small.bin -> /t-rw/copy.bin (10 bytes)',
      'wrote empty.bin -> /t-rw/empty.bin (0 bytes)',
      `wrote exact.bin -> /t-rw/exact (${BLOCK} bytes)`,
      'wrote small.bin -> /t-rw/data.bin (10 bytes)',
      'error: no such local file or directory: missing.bin',
      'usage: write [-f] LOCAL [FILE]',
      'read /t-rw/copy.bin -> down/copy.bin (10 bytes)',
      `read /t-rw/exact -> ${join('down', 'exact')} (${BLOCK} bytes)`,
      'read /t-rw/empty.bin -> down/empty.bin (0 bytes)',
      'read /t-rw/data.bin -> data.bin (10 bytes)',
      'error: no such local file or directory: no-such-dir',
      'error: no such file or directory: /t-rw/nothing-here',
    ]);
    assert.equal(r.code, 2);

    // The namespace and the bytes, through the library.
    assert.deepEqual(await names('/t-rw'), ['copy.bin', 'data.bin', 'empty.bin', 'exact']);
    assert.equal(await remoteSha('/t-rw/data.bin'), sha256(data['small.bin']!));
    assert.equal(await remoteSha('/t-rw/copy.bin'), sha256(data['small.bin']!));
    assert.equal(await remoteSha('/t-rw/exact'), sha256(data['exact.bin']!));
    assert.equal((await client.stat('/t-rw/exact')).blocks, 1);
    assert.equal((await client.stat('/t-rw/empty.bin')).size, 0);
    // The downloaded files.
    assert.equal(sha256(await readFile(join(down, 'copy.bin'))), sha256(data['small.bin']!));
    assert.equal(sha256(await readFile(join(down, 'exact'))), sha256(data['exact.bin']!));
    assert.equal((await readFile(join(down, 'empty.bin'))).length, 0);
    assert.equal(sha256(await readFile(join(dir, 'data.bin'))), sha256(data['small.bin']!), 'read replaced the local file');
    assert.deepEqual((await readdir(down)).sort(), ['copy.bin', 'empty.bin', 'exact'], 'no partial files left');
    assert.equal(await client.exists('/t-rw/missing.bin'), false);
  });

  it('a multi-block file written by the shell reads back byte for byte', async () => {
    const { dir, data } = await localFiles({ 'big.bin': 5 * BLOCK + 7 });
    await client.mkdir('/t-big');
    const r = await shell(['write big.bin /t-big/big.bin', 'read /t-big/big.bin back.bin'], dir);
    assert.equal(r.code, 0, r.out.join('\n'));
    assert.equal(sha256(await readFile(join(dir, 'back.bin'))), sha256(data['big.bin']!));
    assert.equal(await remoteSha('/t-big/big.bin'), sha256(data['big.bin']!));
    const st = await client.stat('/t-big/big.bin');
    assert.equal(st.size, 5 * BLOCK + 7);
    assert.equal(st.blocks, 6);
  });

  it('delete removes files; a missing file and a directory fail', async () => {
    await client.mkdir('/t-del/dir', { recursive: true });
    await client.writeFile('/t-del/one', randomBytes(BLOCK + 1));
    await client.writeFile('/t-del/two words', 'x');
    await client.writeFile('/t-del/dir/inside', 'y');
    const r = await shell(['cd /t-del', 'delete one', "delete 'two words'", 'delete one', 'delete dir', 'delete', 'delete dir/inside']);
    assert.deepEqual(r.out, [
      'deleted /t-del/one',
      'deleted /t-del/two words',
      'error: no such file or directory: /t-del/one',
      'error: /t-del/dir is a directory: use deldir',
      'usage: delete FILE',
      'deleted /t-del/dir/inside',
    ]);
    assert.equal(r.code, 6);
    assert.deepEqual(await names('/t-del'), ['dir/']);
    assert.deepEqual(await names('/t-del/dir'), []);
    await assert.rejects(client.createReadStream('/t-del/one'), { code: 'ENOENT' });
  });

  it('info shows the size, the blocks with their checksums, and 3 replicas per block on distinct servers', async () => {
    const data = randomBytes(3 * BLOCK + 100);
    await client.mkdir('/t-info/dir', { recursive: true });
    await client.writeFile('/t-info/file', data);
    const r = await shell(['info /t-info/file', 'info /t-info/dir', 'info /t-info/nope']);
    const out = r.out;
    const file = out.slice(0, out.indexOf('path:        /t-info/dir'));
    assert.equal(file[0], 'path:        /t-info/file');
    assert.ok(file.includes('type:        file'));
    assert.ok(file.includes(`size:        ${data.length} bytes (${formatSize(data.length)})`), file.join('\n'));
    assert.ok(file.includes(`block size:  ${BLOCK} bytes (${formatSize(BLOCK)})`));
    assert.ok(file.includes('replication: 3'));
    assert.ok(file.includes('blocks:      4'));
    const located = await client.blocks('/t-info/file');
    const addrs = new Set(cluster.storages.map((s) => `127.0.0.1:${s.port}`));
    const ids = new Map(cluster.storages.map((s) => [`127.0.0.1:${s.port}`, s.id!]));
    for (let i = 0; i < 4; i++) {
      const at = file.findIndex((l) => l.startsWith(`block ${i}: `));
      assert.ok(at > 0, `block ${i} is listed`);
      const m = /^block (\d+): id ([0-9a-f]{32}), offset (\d+), (\d+) bytes, digest (xxh3:[0-9a-f]{16})$/.exec(file[at]!);
      assert.ok(m, file[at]);
      const [offset, size] = [Number(m[3]), Number(m[4])];
      assert.equal(offset, i * BLOCK);
      assert.equal(size, i < 3 ? BLOCK : 100);
      assert.equal(m[2], located.blocks[i]!.id);
      assert.equal(m[5], blockDigest(data.subarray(offset, offset + size)), 'the digest is that of the block bytes');
      const rm = /^ {2}replicas \(3\): (\S+), (\S+), (\S+)$/.exec(file[at + 1]!);
      assert.ok(rm, file[at + 1]);
      const replicas = rm.slice(1, 4).map((x) => x.split('@') as [string, string]);
      assert.equal(new Set(replicas.map(([, a]) => a)).size, 3, 'three distinct addresses');
      for (const [id, addr] of replicas) {
        assert.ok(addrs.has(addr), `${addr} is one of the storage servers`);
        assert.equal(id, ids.get(addr)!.slice(0, 8), 'the id is that of the server at this address');
      }
      assert.deepEqual(replicas.map(([, a]) => a).sort(), located.blocks[i]!.replicas.map((x) => x.addr).sort());
    }
    const dir = out.slice(out.indexOf('path:        /t-info/dir'));
    assert.equal(dir[1], 'type:        dir');
    assert.ok(!dir.some((l) => l.startsWith('block ')));
    assert.equal(dir.at(-1), 'error: no such file or directory: /t-info/nope');
    assert.equal(r.code, 2);
  });

  it('copy copies files and directories, into a directory too; the copies share the bytes', async () => {
    const data = randomBytes(2 * BLOCK + 5);
    await client.mkdir('/t-copy/src/sub', { recursive: true });
    await client.mkdir('/t-copy/into');
    await client.writeFile('/t-copy/src/f', data);
    await client.writeFile('/t-copy/src/sub/g', 'gee');
    const r = await shell([
      'cd /t-copy', 'copy src/f f2', 'copy src/f into', 'copy src src2', 'copy src/f f2', 'copy nothing x', 'copy src/f', 'ls into',
    ]);
    assert.deepEqual(r.out, [
      'copied /t-copy/src/f -> /t-copy/f2',
      'copied /t-copy/src/f -> /t-copy/into/f',
      'copied /t-copy/src -> /t-copy/src2',
      'error: already exists: /t-copy/f2',
      'error: no such file or directory: /t-copy/nothing',
      'usage: copy SOURCE TARGET',
      'f',
    ]);
    assert.deepEqual(await names('/t-copy'), ['into/', 'src/', 'src2/', 'f2']);
    assert.deepEqual(await names('/t-copy/src2'), ['sub/', 'f']);
    for (const p of ['/t-copy/src/f', '/t-copy/f2', '/t-copy/into/f', '/t-copy/src2/f']) assert.equal(await remoteSha(p), sha256(data), p);
    assert.equal(await remoteSha('/t-copy/src2/sub/g'), sha256(Buffer.from('gee')));
    const ids = async (p: string): Promise<string[]> => (await client.blocks(p)).blocks.map((b) => b.id);
    assert.deepEqual(await ids('/t-copy/f2'), await ids('/t-copy/src/f'), 'blocks are shared');
    // Deleting the source leaves the copy intact.
    await client.rm('/t-copy/src', { recursive: true });
    assert.equal(await remoteSha('/t-copy/f2'), sha256(data));
  });

  it('move renames, moves into a directory, moves directories; errors leave things in place', async () => {
    const data = randomBytes(BLOCK + 3);
    await client.mkdir('/t-move/dir', { recursive: true });
    await client.mkdir('/t-move/tree/sub', { recursive: true });
    await client.writeFile('/t-move/a', data);
    await client.writeFile('/t-move/b', 'bee');
    await client.writeFile('/t-move/tree/sub/leaf', 'leaf');
    const r = await shell([
      'cd /t-move', 'move a renamed', 'move renamed dir', 'move b dir/renamed', 'move nothing x', 'move tree dir/tree2',
      'move dir dir/inside', 'move x', 'cd dir', 'move renamed ../back',
    ]);
    assert.deepEqual(r.out, [
      'moved /t-move/a -> /t-move/renamed',
      'moved /t-move/renamed -> /t-move/dir/renamed',
      'error: already exists: /t-move/dir/renamed',
      'error: no such file or directory: /t-move/nothing',
      'moved /t-move/tree -> /t-move/dir/tree2',
      'error: cannot move /t-move/dir into itself',
      'usage: move SOURCE TARGET',
      'moved /t-move/dir/renamed -> /t-move/back',
    ]);
    assert.deepEqual(await names('/t-move'), ['dir/', 'b', 'back']);
    assert.deepEqual(await names('/t-move/dir'), ['tree2/']);
    assert.equal(await remoteSha('/t-move/back'), sha256(data));
    assert.equal(await remoteSha('/t-move/b'), sha256(Buffer.from('bee')));
    assert.equal(await remoteSha('/t-move/dir/tree2/sub/leaf'), sha256(Buffer.from('leaf')));
  });

  it('cd and pwd: relative, absolute, .., the root, quoted names; cd into a file or nowhere fails', async () => {
    await client.mkdir('/t-cd/a/b', { recursive: true });
    await client.mkdir('/t-cd/with space');
    await client.writeFile('/t-cd/file', 'f');
    const r = await shell([
      'pwd', 'cd /t-cd/a/b', 'pwd', 'cd ..', 'pwd', 'cd ../..', 'pwd', 'cd ..', 'pwd', 'cd t-cd', 'pwd',
      "cd 'with space'", 'pwd', 'create here', 'cd /t-cd/./a/../a/b/', 'pwd', 'cd /t-cd/file', 'pwd', 'cd /t-cd/nowhere', 'pwd',
      'cd', 'pwd', 'cd a b',
    ]);
    assert.deepEqual(r.out, [
      '/', '/t-cd/a/b', '/t-cd/a', '/', '/', '/t-cd', '/t-cd/with space', 'created /t-cd/with space/here', '/t-cd/a/b',
      'error: not a directory: /t-cd/file', '/t-cd/a/b',
      'error: no such file or directory: /t-cd/nowhere', '/t-cd/a/b',
      '/',
      'usage: cd [DIR]',
    ]);
    assert.equal(r.code, 6);
    assert.equal((await client.stat('/t-cd/with space/here')).type, 'file');
  });

  it('mkdir and ls: listings match the namespace; errors for taken and missing names', async () => {
    await client.mkdir('/t-ls');
    await client.writeFile('/t-ls/zeta.bin', randomBytes(1234));
    const r = await shell([
      'cd /t-ls', 'ls', 'mkdir sub', 'mkdir sub', "mkdir 'two words'", 'mkdir missing/child', 'mkdir /t-ls/sub/deeper',
      'create alpha', 'ls', 'ls -l', 'ls sub', 'ls /t-ls/sub', 'ls nowhere', 'ls zeta.bin', 'ls -l sub', 'ls a b', 'mkdir',
    ]);
    const listing = ['sub/', 'two words/', 'alpha', 'zeta.bin'];
    assert.deepEqual(r.out.slice(0, 6), [
      'zeta.bin',
      'created directory /t-ls/sub',
      'error: already exists: /t-ls/sub',
      'created directory /t-ls/two words',
      'error: no such directory: /t-ls/missing',
      'created directory /t-ls/sub/deeper',
    ]);
    assert.deepEqual(r.out.slice(6, 11), ['created /t-ls/alpha', ...listing]);
    assert.deepEqual(await names('/t-ls'), listing, 'the listing is the namespace');
    const long = r.out.slice(11, 15);
    assert.match(long[0]!, /^d {12}- {2}\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ {2}sub\/$/);
    assert.match(long[1]!, /^d +- +\S+ \S+ {2}two words\/$/);
    assert.match(long[2]!, /^- {12}0 {2}\S+ \S+ {2}alpha$/);
    assert.match(long[3]!, /^- +1234 {2}\S+ \S+ {2}zeta\.bin$/);
    assert.deepEqual(r.out.slice(15), [
      'deeper/', 'deeper/',
      'error: no such file or directory: /t-ls/nowhere',
      'error: not a directory: /t-ls/zeta.bin',
      r.out[19]!,
      'usage: ls [-l] [DIR]',
      'usage: mkdir DIR',
    ]);
    assert.match(r.out[19]!, /^d +- +\S+ \S+ {2}deeper\/$/);
    assert.equal((await client.stat('/t-ls/two words')).type, 'dir');
    assert.equal((await client.stat('/t-ls/sub/deeper')).type, 'dir');
    assert.equal(await client.exists('/t-ls/missing'), false);
  });

  it('deldir: an empty directory goes; a non-empty one stays when answered n or not at all, and goes with all in it on y', async () => {
    await client.mkdir('/t-dd/empty', { recursive: true });
    await client.mkdir('/t-dd/full/sub', { recursive: true });
    await client.writeFile('/t-dd/full/a', randomBytes(BLOCK + 9));
    await client.writeFile('/t-dd/full/sub/b', 'b');
    await client.writeFile('/t-dd/file', 'f');
    await client.mkdir('/t-dd/one');
    await client.writeFile('/t-dd/one/only', 'only');
    const ask = '/t-dd/full is not empty (2 entries). Delete it and everything in it? [y/N] ';

    const first = await shell(['cd /t-dd', 'deldir empty', 'deldir full', 'n', 'deldir one', 'no', 'deldir file', 'deldir nowhere', 'deldir', 'ls']);
    assert.deepEqual(first.out, [
      'deleted directory /t-dd/empty',
      ask, 'deldir canceled',
      '/t-dd/one is not empty (1 entry). Delete it and everything in it? [y/N] ', 'deldir canceled',
      'error: not a directory: /t-dd/file',
      'error: no such file or directory: /t-dd/nowhere',
      'usage: deldir DIR',
      'full/', 'one/', 'file',
    ]);
    assert.deepEqual(await names('/t-dd'), ['full/', 'one/', 'file']);
    assert.deepEqual(await names('/t-dd/one'), ['only']);
    assert.deepEqual(await names('/t-dd/full'), ['sub/', 'a']);

    // Input ends at the question: no confirmation, nothing deleted.
    const unanswered = await shell(['deldir /t-dd/full']);
    assert.deepEqual(unanswered.out, [ask, 'deldir canceled']);
    assert.deepEqual(await names('/t-dd/full/sub'), ['b']);

    // Answered y from inside the directory: all of it goes, and the working directory moves up.
    const yes = await shell(['cd /t-dd/full/sub', 'deldir /t-dd/full', 'y', 'pwd']);
    assert.deepEqual(yes.out, [ask, 'deleted directory /t-dd/full', '/t-dd']);
    assert.equal(yes.code, 0);
    assert.deepEqual(await names('/t-dd'), ['one/', 'file']);
    assert.equal(await client.exists('/t-dd/full/sub/b'), false);
  });

  it('names with spaces and unicode work for create, write, read, ls, move, copy and delete', async () => {
    const résumé = 'résumé 日本.txt';
    const party = '🎉 party time.bin';
    const { dir, data } = await localFiles({ [résumé]: 2 * BLOCK + 17, [party]: 4321 });
    const out = join(dir, 'out');
    await mkdir(out);
    await client.mkdir('/t-uni/dossier été', { recursive: true });
    const r = await shell([
      'cd /t-uni',
      `write '${résumé}'`,
      `write "${party}" "fête 🎂.bin"`,
      `create 'it''s'`, // adjacent quoted words join: it + s
      `create "say \\"hi\\""`,
      "create '📄 notes ünï.txt'",
      `copy '${résumé}' 'copie de ${résumé}'`,
      `move "fête 🎂.bin" 'dossier été'`,
      'ls',
      `ls 'dossier été'`,
      `read 'dossier été/fête 🎂.bin' 'out/${party}'`,
      `read 'copie de ${résumé}' out`,
      `delete '${résumé}'`,
      `delete "say \\"hi\\""`,
      'ls',
    ], dir);
    assert.deepEqual(r.out, [
      `wrote ${résumé} -> /t-uni/${résumé} (${2 * BLOCK + 17} bytes)`,
      `wrote ${party} -> /t-uni/fête 🎂.bin (4321 bytes)`,
      'created /t-uni/its',
      'created /t-uni/say "hi"',
      'created /t-uni/📄 notes ünï.txt',
      `copied /t-uni/${résumé} -> /t-uni/copie de ${résumé}`,
      'moved /t-uni/fête 🎂.bin -> /t-uni/dossier été/fête 🎂.bin',
      'dossier été/', `copie de ${résumé}`, 'its', `${résumé}`, 'say "hi"', '📄 notes ünï.txt',
      'fête 🎂.bin',
      `read /t-uni/dossier été/fête 🎂.bin -> out/${party} (4321 bytes)`,
      `read /t-uni/copie de ${résumé} -> ${join('out', `copie de ${résumé}`)} (${2 * BLOCK + 17} bytes)`,
      `deleted /t-uni/${résumé}`,
      'deleted /t-uni/say "hi"',
      'dossier été/', `copie de ${résumé}`, 'its', '📄 notes ünï.txt',
    ]);
    assert.equal(r.code, 0);
    assert.deepEqual(await names('/t-uni'), ['dossier été/', `copie de ${résumé}`, 'its', '📄 notes ünï.txt']);
    assert.equal((await client.stat('/t-uni/📄 notes ünï.txt')).size, 0);
    assert.deepEqual(await names('/t-uni/dossier été'), ['fête 🎂.bin']);
    assert.equal(await remoteSha(`/t-uni/copie de ${résumé}`), sha256(data[résumé]!));
    assert.equal(await remoteSha('/t-uni/dossier été/fête 🎂.bin'), sha256(data[party]!));
    assert.equal(sha256(await readFile(join(out, party))), sha256(data[party]!));
    assert.equal(sha256(await readFile(join(out, `copie de ${résumé}`))), sha256(data[résumé]!));
  });

  it('df lists the storage servers with their space', async () => {
    const r = await shell(['df']);
    assert.equal(r.code, 0);
    assert.match(r.out[0]!, /^id +address +state +capacity +used +available +blocks$/);
    const rows = r.out.slice(1, 4);
    for (const s of cluster.storages) {
      assert.ok(rows.some((l) => l.startsWith(`${s.id!.slice(0, 8)}  127.0.0.1:${s.port} `) && / alive /.test(l)), `${s.port} in\n${r.out.join('\n')}`);
    }
    assert.match(r.out[4]!, /^total \(live\): capacity .+, available .+; 3 of 3 storage servers alive$/);
    assert.equal(r.out.length, 5);
  });

  it('help lists every command; exit and quit end the session, and nothing after them runs', async () => {
    const [r, q, eof] = await Promise.all([
      shell(['help', 'help create', 'exit', 'mkdir /t-after-exit']),
      shell(['quit', 'mkdir /t-after-quit']),
      shell(['mkdir /t-eof']), // the end of the input ends the session as well
    ]);
    assert.equal(r.code, 0);
    const commands = ['init', 'create', 'read', 'write', 'delete', 'info', 'copy', 'move', 'cd', 'pwd', 'ls', 'mkdir', 'deldir', 'df', 'help', 'exit'];
    assert.match(r.out[0]!, /^Commands/);
    const listed = r.out.slice(1, r.out.length / 2).map((l) => l.trim().split(' ')[0]);
    assert.deepEqual(listed, commands);
    assert.deepEqual(r.out.slice(r.out.length / 2), r.out.slice(0, r.out.length / 2), 'help ignores an argument');
    assert.equal(await client.exists('/t-after-exit'), false, 'exit stops the shell');
    assert.deepEqual(q.out, []);
    assert.equal(await client.exists('/t-after-quit'), false);
    assert.deepEqual(eof.out, ['created directory /t-eof']);
    assert.equal(eof.code, 0);
  });

  it('unknown commands, wrong argument counts and unterminated quotes are reported, and the session goes on', async () => {
    const r = await shell([
      'frobnicate x', "create 'unterminated", 'create "also unterminated', 'pwd extra', 'init now', 'read', 'read a b c',
      'write', 'write -f', 'write -f a b c', 'info', 'copy a b c', 'move', 'ls a b', 'ls -l a b', 'deldir a b', 'df x', '', '   ', 'mkdir /t-err',
    ]);
    assert.deepEqual(r.out, [
      'unknown command: frobnicate. Type help for the commands.',
      'error: unterminated single quote',
      'error: unterminated double quote',
      'usage: pwd',
      'usage: init',
      'usage: read FILE [LOCAL]',
      'usage: read FILE [LOCAL]',
      'usage: write [-f] LOCAL [FILE]',
      'usage: write [-f] LOCAL [FILE]',
      'usage: write [-f] LOCAL [FILE]',
      'usage: info PATH',
      'usage: copy SOURCE TARGET',
      'usage: move SOURCE TARGET',
      'usage: ls [-l] [DIR]',
      'usage: ls [-l] [DIR]',
      'usage: deldir DIR',
      'usage: df',
      'created directory /t-err',
    ]);
    assert.equal(r.code, 6, 'the last failure was an invalid argument');
    assert.equal((await client.stat('/t-err')).type, 'dir');
    assert.equal(await client.exists('/unterminated'), false);
    assert.equal(await client.exists("/'unterminated"), false);
    const unknownOnly = await shell(['frobnicate']);
    assert.equal(unknownOnly.code, 6);
  });
});
