/**
 * W3, metadata: 10,000 each of mkdir, stat, list of the parent, rename and delete, one kind after
 * the other, by 1 client and then by 16 clients at once. The directories are spread over parents of
 * 100 entries each (`/w3-cN/pK/dI`), so that "list of the parent" lists 100 names, not a directory
 * that grows to 10,000 (which would measure JSON, not the name server). The rename stays in the
 * parent (dI -> rI); the delete removes rI.
 */
import type { SdfsClient } from '../../src/client/index.js';
import { CpuMeter } from '../cpu-meter.js';
import { poolNote, VS, type Context } from '../context.js';
import type { Figure, Goal } from '../report.js';
import { log, runPool } from '../util.js';

const PER_PARENT = 100;

/** The goals, with 16 clients, in ops/s. */
const GOALS: Partial<Record<string, number>> = { mkdir: 7000, stat: 12_000 };

export async function metadata(ctx: Context): Promise<Figure[]> {
  const { cluster, sizes } = ctx;
  const clients: SdfsClient[] = Array.from({ length: 16 }, () => cluster.client());
  const figures: Figure[] = [];
  const deadline = sizes.phaseDeadlineS;

  for (const c of [1, 16]) {
    const base = `/w3-c${c}`;
    const asked = sizes.metadataOps;
    const parents = Math.ceil(asked / PER_PARENT);
    await clients[0]!.mkdir(base);
    await runPool(parents, 16, (k, loop) => clients[loop]!.mkdir(`${base}/p${k}`));
    const parent = (i: number): string => `${base}/p${i % parents}`;

    const kinds: [string, (i: number, cl: SdfsClient) => Promise<unknown>][] = [
      ['mkdir', (i, cl) => cl.mkdir(`${parent(i)}/d${i}`)],
      ['stat', (i, cl) => cl.stat(`${parent(i)}/d${i}`)],
      ['list parent', (i, cl) => cl.readdir(parent(i))],
      ['rename', (i, cl) => cl.rename(`${parent(i)}/d${i}`, `${parent(i)}/r${i}`)],
      ['delete', (i, cl) => cl.rm(`${parent(i)}/r${i}`)],
    ];
    let n = asked;
    for (const [kind, op] of kinds) {
      log(`W3: ${n} x ${kind}, ${c} client${c > 1 ? 's' : ''}`);
      const meter = await CpuMeter.start(cluster);
      const r = await runPool(n, c, (i, loop) => op(i, clients[loop]!), deadline);
      const cpu = await meter.per(r.done);
      const note = poolNote(r, n, deadline);
      // Later kinds need what this one made: the directories, then their new names.
      if (kind === 'mkdir' || kind === 'rename') n = r.started;
      const goal: Goal | undefined = c === 16 && GOALS[kind] ? { on: 'value', op: '>=', target: GOALS[kind] } : undefined;
      figures.push({
        workload: 'W3', name: `${kind}, ${c} client${c > 1 ? 's' : ''}`, value: r.done / r.seconds, unit: 'ops/s',
        vs: VS.http(c),
        goal, note, cpu,
      });
    }
  }
  return figures;
}
