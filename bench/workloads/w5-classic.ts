/**
 * W5, the seed's way: W1's large file and W2's 4 KiB files through the classic protocol
 * (../shared/seed/PROTOCOL.md) on the name server's port, with the tests' classic client
 * (test/helpers/classic-client.ts). The name server relays the bytes between the client's data port
 * and the storage servers, at the cluster's R=3.
 *
 * The large file is sent in 1 MiB writes rather than the seed client's 2048-byte sends, so that the
 * figure is the server's and not this test client's; the small files go in 2048-byte sends, as the
 * seed's client sends them. The classic read hashes what it receives (SHA-256), in this process.
 *
 * The protocol may not be there in the build being measured: `classicAvailable` sends a classic
 * `rddir` request and looks for a classic answer.
 */
import { existsSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { dropFileCache, poolNote, VS, type Context } from '../context.js';
import type { Figure } from '../report.js';
import { bigChunks, fmtBytes, itemData, KiB, log, MiB, runPool, seconds } from '../util.js';

type ClassicModule = typeof import('../../test/helpers/classic-client.js');
type ClassicClient = Awaited<ReturnType<ClassicModule['ClassicClient']['connect']>>;

const FRAME = 2048;

/** Whether the name server on `port` answers a classic `rddir][` frame with a classic reply. */
export function classicAvailable(port: number, ms = 3000): Promise<boolean> {
  return new Promise((done) => {
    const sock = netConnect({ port, host: '127.0.0.1' });
    let got = Buffer.alloc(0);
    const finish = (ok: boolean): void => {
      clearTimeout(timer);
      sock.destroy();
      done(ok);
    };
    const timer = setTimeout(() => finish(false), ms);
    sock.on('connect', () => sock.write('rddir]['.padEnd(FRAME, ' ')));
    sock.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      const text = got.toString('latin1');
      if (/^rddir\]\[\d+\]\[/.test(text)) finish(true);
      else if (!'rddir]['.startsWith(text.slice(0, 7)) || text.length > 64) finish(false);
    });
    sock.on('error', () => finish(false));
    sock.on('close', () => finish(false));
  });
}

/** The tests' classic client, if this checkout has it. */
export async function loadClassicClient(root: string): Promise<ClassicModule | undefined> {
  const file = join(root, 'test', 'helpers', 'classic-client.ts');
  if (!existsSync(file)) return undefined;
  return await import(pathToFileURL(file).href) as ClassicModule;
}

export async function classic(ctx: Context, mod: ClassicModule): Promise<Figure[]> {
  const { cluster, sizes } = ctx;
  const port = cluster.name.port;
  const size = sizes.bigFile;
  const figures: Figure[] = [];
  const deadline = sizes.phaseDeadlineS;

  const c = await mod.ClassicClient.connect(port);
  try {
    await c.mkdir('w5');
    await c.cd('w5');

    const wname = `write ${fmtBytes(size)}, R=3`;
    log(`W5: ${wname}`);
    let t0 = performance.now();
    try {
      const w = await c.write('big', bigChunks(size), size, { chunk: MiB });
      if (w.refused) throw new Error('the name server refused the write (port 0000)');
      figures.push({ workload: 'W5', name: wname, value: size / MiB / seconds(t0), unit: 'MiB/s', vs: VS.diskThird });
    } catch (err) {
      figures.push({ workload: 'W5', name: wname, value: null, unit: 'MiB/s', vs: VS.diskThird, note: `failed: ${String(err)}` });
    }

    const cold = await dropFileCache(ctx, '/w5/big').catch(() => false);
    const rname = `read ${fmtBytes(size)}, ${cold ? 'cold' : 'WARM'}`;
    log(`W5: ${rname}`);
    t0 = performance.now();
    try {
      const r = await c.read('big');
      if (r.missing) throw new Error('the name server answered 0][0 (no such file)');
      if (r.size !== size) throw new Error(`read ${r.size} bytes of ${size}`);
      figures.push({ workload: 'W5', name: rname, value: size / MiB / seconds(t0), unit: 'MiB/s', vs: VS.read, note: 'includes SHA-256 of the bytes in the reader' });
    } catch (err) {
      figures.push({ workload: 'W5', name: rname, value: null, unit: 'MiB/s', vs: VS.read, note: `failed: ${String(err)}` });
    }
    await c.delete('big');
  } finally {
    c.close();
  }

  const count = sizes.classicFiles;
  for (const n of [1, 16]) {
    const sessions: ClassicClient[] = [];
    try {
      for (let i = 0; i < n; i++) {
        const s = await mod.ClassicClient.connect(port);
        sessions.push(s);
        await s.mkdir(`w5-${n}`).catch(() => '');
        await s.cd(`w5-${n}`);
      }
      const label = `${fmtBytes(4 * KiB)} files, ${n} session${n > 1 ? 's' : ''}`;
      log(`W5: create ${count} ${label}`);
      const w = await runPool(count, n, async (i, loop) => {
        const res = await sessions[loop]!.write(`f${i}`, itemData(i, 4 * KiB), 4 * KiB);
        if (res.refused) throw new Error('refused (port 0000)');
      }, deadline);
      figures.push({
        workload: 'W5', name: `create ${label}`, value: w.done / w.seconds, unit: 'files/s',
        vs: VS.fsyncThird, note: poolNote(w, count, deadline),
      });
      log(`W5: read ${w.started} ${label}`);
      const r = await runPool(w.started, n, async (i, loop) => {
        const res = await sessions[loop]!.read(`f${i}`);
        if (res.missing || res.size !== 4 * KiB) throw new Error(res.missing ? 'missing' : `size ${res.size}`);
      }, deadline);
      figures.push({
        workload: 'W5', name: `read ${label}`, value: r.done / r.seconds, unit: 'files/s',
        vs: VS.http(n), note: poolNote(r, w.started, deadline),
      });
    } finally {
      for (const s of sessions) s.close();
    }
  }
  return figures;
}
