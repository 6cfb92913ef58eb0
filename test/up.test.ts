import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { createServer, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CLI, runCli, waitFor } from './helpers/cluster.js';
import { sha256 } from './helpers/data.js';

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((ok) => srv.listen(0, '127.0.0.1', ok));
  const { port } = srv.address() as { port: number };
  await new Promise((ok) => srv.close(ok));
  return port;
}

function refuses(port: number): Promise<boolean> {
  return new Promise((ok) => {
    const s = tcpConnect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); ok(false); });
    s.once('error', () => ok(true));
  });
}

/** Starts `sdfs up`, waits until it says it is up, and returns the process and the addresses it printed. */
async function up(dataDir: string, port: number) {
  const child = spawn(process.execPath, [CLI, 'up', '--data-dir', dataDir, '--port', String(port), '--storage-port', '0', '--block-size', '64K'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
  await waitFor('sdfs up to be ready', () => out.includes('Press Ctrl-C'));
  const storagePorts = [...out.matchAll(/storage server {2}http:\/\/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1]));
  return { child, out: () => out, storagePorts };
}

describe('sdfs up', () => {
  let dir: string;
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'sdfs-up-')); });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  it('starts a working cluster, stops it all on SIGTERM, and comes back with the files', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const data = join(dir, 'cluster');
    const local = join(dir, 'local.bin');
    const content = Buffer.alloc(300_000);
    for (let i = 0; i < content.length; i++) content[i] = (i * 31) & 0xff;
    await writeFile(local, content);

    const first = await up(data, port);
    try {
      assert.equal(first.storagePorts.length, 3);
      assert.match(first.out(), new RegExp(`name server +${url}`));
      const put = await runCli(['--name-server', url, 'put', local, '/kept.bin'], { cwd: dir });
      assert.equal(put.code, 0, put.stderr);
      const st = await runCli(['--name-server', url, 'stat', '--json', '/kept.bin']);
      const parsed = JSON.parse(st.stdout) as { blockList: { replicas: { id: string }[] }[] };
      assert.equal(parsed.blockList.length, 5);
      for (const b of parsed.blockList) assert.equal(new Set(b.replicas.map((r) => r.id)).size, 3);
    } finally {
      first.child.kill('SIGTERM');
    }
    const code = await new Promise((ok) => first.child.once('exit', (c) => ok(c)));
    assert.equal(code, 0, first.out());
    // Every server is gone: their ports refuse connections.
    assert.ok(await refuses(port), 'name server stopped');
    for (const p of first.storagePorts) assert.ok(await refuses(p), `storage server on ${p} stopped`);

    const second = await up(data, port);
    try {
      const out = join(dir, 'back.bin');
      // Storage servers take a moment to report after the restart; the read waits for nothing else.
      const get = await runCli(['--name-server', url, 'get', '/kept.bin', out]);
      assert.equal(get.code, 0, get.stderr);
      assert.equal(sha256(await readFile(out)), sha256(content));
    } finally {
      second.child.kill('SIGINT');
      await new Promise((ok) => second.child.once('exit', ok));
    }
  });
});
