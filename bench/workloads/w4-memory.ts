/**
 * W4, memory. From /proc/<pid>/status of the server processes that the Cluster started:
 * - during W1: VmHWM (the peak RSS since the process started; the cluster starts just before W1);
 * - after W2: VmRSS at that moment;
 * - with `--scale N`: N empty files made with `create` (64 at once, 1,000 to a directory), then the
 *   name server's RSS and its database (namespace.db with its -wal and -shm) per file, as the growth
 *   over the state before, divided by N.
 */
import type { SdfsClient } from '../../src/client/index.js';
import { poolNote, VS, type Context } from '../context.js';
import type { Figure } from '../report.js';
import { bytesOf, log, memoryOf, MiB, runPool } from '../util.js';

const RSS_GOAL_MIB = 200;

function servers(ctx: Context): { label: string; pid: number }[] {
  const { cluster } = ctx;
  return [
    { label: 'name server', pid: cluster.name.child.pid! },
    ...cluster.storages.map((s, i) => ({ label: `storage ${i + 1}`, pid: s.child.pid! })),
  ];
}

/** One figure per server: its peak RSS so far (`during`), or its RSS now (`after`). */
export async function serverMemory(ctx: Context, when: 'during W1' | 'after W2'): Promise<Figure[]> {
  const figures: Figure[] = [];
  for (const { label, pid } of servers(ctx)) {
    const m = await memoryOf(pid);
    const peak = when === 'during W1';
    const value = m ? (peak ? m.hwm : m.rss) / MiB : null;
    figures.push({
      workload: 'W4', name: `${label}, ${peak ? 'peak RSS' : 'RSS'} ${when}`, value, unit: 'MiB',
      goal: peak ? { on: 'value', op: '<=', target: RSS_GOAL_MIB } : undefined,
      note: m ? (peak ? undefined : `peak so far ${Math.round(m.hwm / MiB)} MiB`) : 'process gone',
    });
  }
  return figures;
}

export async function scale(ctx: Context, n: number): Promise<Figure[]> {
  const { cluster } = ctx;
  const clients: SdfsClient[] = Array.from({ length: 16 }, () => cluster.client());
  const pid = cluster.name.child.pid!;
  const dataDir = cluster.name.dataDir;
  const perDir = 1000;
  const dirs = Math.ceil(n / perDir);
  await clients[0]!.mkdir('/scale');
  await runPool(dirs, 16, (k, loop) => clients[loop]!.mkdir(`/scale/d${k}`));

  const before = await memoryOf(pid);
  const dbBefore = await bytesOf(dataDir, 'namespace.db');
  log(`W4: creating ${n} empty files (name server RSS ${Math.round((before?.rss ?? 0) / MiB)} MiB, database ${Math.round(dbBefore / MiB)} MiB)`);
  let reported = 0;
  const r = await runPool(n, 64, async (i, loop) => {
    await clients[loop % 16]!.create(`/scale/d${Math.floor(i / perDir)}/f${i}`);
    if (i - reported >= n / 10) {
      reported = i;
      log(`W4: ${i} files`);
    }
  });
  const after = await memoryOf(pid);
  const dbAfter = await bytesOf(dataDir, 'namespace.db');
  const files = r.done;
  const at = `${files.toLocaleString('en-US')} files`;
  const note = files < 1_000_000 ? 'the goal is stated at 1,000,000 files' : undefined;
  return [
    {
      workload: 'W4', name: `create empty files, 64 at once (${at})`, value: r.done / r.seconds, unit: 'files/s',
      vs: VS.http(16), note: poolNote(r, n, Infinity),
    },
    { workload: 'W4', name: `name server RSS at ${at}`, value: after ? after.rss / MiB : null, unit: 'MiB', note: after ? `peak ${Math.round(after.hwm / MiB)} MiB` : 'process gone' },
    {
      workload: 'W4', name: `name server RSS growth per file (${at})`, value: after && before && files ? (after.rss - before.rss) / files : null, unit: 'B/file',
      goal: { on: 'value', op: '<=', target: 1024 }, note,
    },
    { workload: 'W4', name: `database bytes per file (${at})`, value: files ? (dbAfter - dbBefore) / files : null, unit: 'B/file', note: `namespace.db* ${Math.round(dbAfter / MiB)} MiB` },
  ];
}
