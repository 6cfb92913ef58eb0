/**
 * W1, large file: one file of 1 GiB written through the client library at R=1, then another at R=3
 * (the per-file replication option), each read back cold by another process.
 *
 * Write: this process streams the file (1 MiB pieces of random data made beforehand, so the producer
 * costs nothing) with `writeFile`; the time runs from the open to the commit, so it includes every
 * replica's fsync. Read: the page cache of every block file is dropped first, then
 * bench/read-child.ts reads the file in a child process and reports its own time.
 */
import { join } from 'node:path';
import { CpuMeter } from '../cpu-meter.js';
import { dropFileCache, VS, type Context } from '../context.js';
import type { Figure } from '../report.js';
import { bigStream, fmtBytes, log, MiB, run, seconds } from '../util.js';

export async function largeFile(ctx: Context): Promise<Figure[]> {
  const { cluster, sizes } = ctx;
  const size = sizes.bigFile;
  const client = cluster.client();
  const figures: Figure[] = [];
  await client.mkdir('/w1');

  for (const r of [1, 3]) {
    const path = `/w1/big-r${r}`;
    const name = `write ${fmtBytes(size)}, R=${r}`;
    const vs = r === 1 ? VS.disk : VS.diskThird;
    log(`W1: ${name}`);
    const meter = await CpuMeter.start(cluster);
    const t0 = performance.now();
    try {
      const st = await client.writeFile(path, bigStream(size), { replication: r });
      const s = seconds(t0);
      if (st.size !== size) throw new Error(`committed ${st.size} bytes of ${size}`);
      figures.push({
        workload: 'W1', name, value: size / MiB / s, unit: 'MiB/s', vs, goal: { on: 'ratio', op: '>=', target: 0.6 }, cpu: await meter.per(size / MiB),
      });
    } catch (err) {
      figures.push({ workload: 'W1', name, value: null, unit: 'MiB/s', vs, goal: { on: 'ratio', op: '>=', target: 0.6 }, note: `failed: ${String(err)}` });
    }
  }

  for (const r of [1, 3]) {
    const path = `/w1/big-r${r}`;
    const cold = await dropFileCache(ctx, path).catch(() => false);
    const name = `read ${fmtBytes(size)}, R=${r}, ${cold ? 'cold' : 'WARM'}, other process`;
    log(`W1: ${name}`);
    const meter = await CpuMeter.start(cluster);
    const got = await readInChild(ctx, path);
    figures.push(typeof got === 'string'
      ? { workload: 'W1', name, value: null, unit: 'MiB/s', vs: VS.read, goal: { on: 'ratio', op: '>=', target: 0.6 }, note: `failed: ${got}` }
      : {
        workload: 'W1', name, value: got.bytes / MiB / got.seconds, unit: 'MiB/s', vs: VS.read,
        goal: { on: 'ratio', op: '>=', target: 0.6 },
        note: got.bytes === size ? undefined : `read ${got.bytes} bytes of ${size}`,
        cpu: await meter.per(got.bytes / MiB, got.cpuMs),
      });
  }
  return figures;
}

/** Deletes W1's files (run after W4 has looked at the servers' memory), so that their blocks free the disk. */
export async function cleanLargeFiles(ctx: Context): Promise<void> {
  const client = ctx.cluster.client();
  await client.rm('/w1', { recursive: true }).catch(() => {});
}

/** Reads `path` in a child process; its own measure, or the error text. */
export async function readInChild(ctx: Context, path: string): Promise<{ bytes: number; seconds: number; cpuMs?: number } | string> {
  const r = await run(process.execPath, ['--import', 'tsx', join(ctx.root, 'bench', 'read-child.ts'), ctx.cluster.url, path], { cwd: ctx.root });
  const last = r.stdout.trim().split('\n').at(-1) ?? '';
  if (r.code !== 0 || !last.startsWith('{')) return `reader exited ${r.code}: ${r.stderr.trim().split('\n').slice(-3).join(' / ')}`;
  return JSON.parse(last) as { bytes: number; seconds: number; cpuMs?: number };
}
