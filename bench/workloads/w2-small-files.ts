/**
 * W2, small files: 10,000 files of 4 KiB and 1,000 files of 1 MiB, at the cluster's R=3, created
 * with `writeFile` and then read whole into a buffer of the reading loop's own (`open` and `read`,
 * as a program that reads files into memory does), by 1 client and then by 16 clients at once (16 SdfsClient objects in this process, each with its own connection pool, each looping
 * over its share). Each (size, clients) pair writes into a directory of its own.
 */
import type { SdfsClient } from '../../src/client/index.js';
import { CpuMeter } from '../cpu-meter.js';
import { poolNote, VS, type Context } from '../context.js';
import type { Figure, Goal } from '../report.js';
import { fmtBytes, itemData, KiB, log, MiB, runPool } from '../util.js';

/** The goals, with 16 clients at R=3, in files/s. */
const GOALS: Record<number, { create: number; read: number }> = {
  [4 * KiB]: { create: 1500, read: 4000 },
  [MiB]: { create: 150, read: 650 },
};

export async function smallFiles(ctx: Context): Promise<Figure[]> {
  const { cluster, sizes } = ctx;
  const clients: SdfsClient[] = Array.from({ length: 16 }, () => cluster.client());
  const figures: Figure[] = [];
  const deadline = sizes.phaseDeadlineS;
  await clients[0]!.mkdir('/w2');

  for (const [size, count] of [[4 * KiB, sizes.smallFiles], [MiB, sizes.mediumFiles]] as const) {
    for (const c of [1, 16]) {
      const dir = `/w2/${fmtBytes(size).replace(' ', '')}-c${c}`;
      await clients[0]!.mkdir(dir);
      const label = `${fmtBytes(size)} files, ${c} client${c > 1 ? 's' : ''}`;
      const goal = (target: number): Goal | undefined => (c === 16 ? { on: 'value', op: '>=', target } : undefined);

      log(`W2: create ${count} ${label}`);
      let meter = await CpuMeter.start(cluster);
      const created = await runPool(count, c, (i, loop) => clients[loop]!.writeFile(`${dir}/f${i}`, itemData(i, size)), deadline);
      figures.push({
        workload: 'W2', name: `create ${label}`, value: created.done / created.seconds, unit: 'files/s',
        // Three replicas on one disk: each file costs three fsyncs here.
        vs: size < MiB ? VS.fsyncThird : VS.diskThirdFiles(size),
        goal: goal(GOALS[size]!.create), note: poolNote(created, count, deadline), cpu: await meter.per(created.done),
      });

      log(`W2: read ${created.started} ${label}`);
      meter = await CpuMeter.start(cluster);
      const into = clients.map(() => Buffer.allocUnsafe(size + 1));
      const read = await runPool(created.started, c, async (i, loop) => {
        const got = await (await clients[loop]!.open(`${dir}/f${i}`)).read(into[loop]!, 0);
        if (got !== size) throw new Error(`read ${got} bytes of ${size}`);
      }, deadline);
      figures.push({
        workload: 'W2', name: `read ${label}`, value: read.done / read.seconds, unit: 'files/s',
        // Files just written are in the page cache: a read is two round trips (name server, storage server).
        vs: size < MiB ? VS.http(c) : VS.tcpFiles(size),
        goal: goal(GOALS[size]!.read), note: poolNote(read, created.started, deadline), cpu: await meter.per(read.done),
      });
    }
  }
  return figures;
}
