/**
 * Where the CPU goes, in every run: the CPU time (user + system, all threads) that the client side
 * and each server process used during one phase, per unit of its figure (per file, per operation,
 * per MiB). Their sum says how many units per second the machine's cores can carry at that cost, and
 * no process can go faster than one core carries its own share (its JavaScript runs on one thread):
 * the lower of the two is the ceiling. When a goal is above it, no amount of waiting less can reach
 * it; only less CPU per unit can. The cost is measured at the phase's own load, where it is higher
 * than alone (the processes share the cores and their caches).
 */
import { cpus } from 'node:os';
import type { Cluster } from '../test/helpers/cluster.js';
import { cpuTicksOf } from './util.js';

/** Milliseconds of CPU per unit of the figure, by process, and what the cores allow at that cost. */
export interface CpuPerUnit {
  client: number;
  name: number;
  /** All storage servers together. */
  storages: number;
  total: number;
  /**
   * Units per second that the machine's cores could carry at this cost: all of them for the whole,
   * at most one for each process (the busiest one sets it when it needs more than its share).
   */
  ceiling: number;
}

/** /proc counts in USER_HZ, which Linux fixes at 100 per second for user space. */
const cpuMsOf = async (pid: number): Promise<number> => (await cpuTicksOf(pid)) * 10;

const ownMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

export class CpuMeter {
  private constructor(
    private readonly pids: { name: number; storages: number[] },
    private readonly start: { client: number; name: number; storages: number[] },
  ) {}

  /** Starts counting. The client side is this process, unless `per` is told the client's own figure. */
  static async start(cluster: Cluster): Promise<CpuMeter> {
    const pids = { name: cluster.name.child.pid!, storages: cluster.storages.map((s) => s.child.pid!) };
    const [name, ...storages] = await Promise.all([cpuMsOf(pids.name), ...pids.storages.map(cpuMsOf)]);
    return new CpuMeter(pids, { client: ownMs(), name: name!, storages });
  }

  /**
   * The CPU used since `start`, per unit: `units` is what the figure counts (files, operations, MiB).
   * `clientMs`: the client's CPU when it ran in a process of its own (W1's reader).
   */
  async per(units: number, clientMs?: number): Promise<CpuPerUnit | undefined> {
    if (!(units > 0)) return undefined;
    try {
      const [name, ...storages] = await Promise.all([cpuMsOf(this.pids.name), ...this.pids.storages.map(cpuMsOf)]);
      const perStorage = storages.map((ms, i) => (ms - this.start.storages[i]!) / units);
      const used = {
        client: (clientMs ?? ownMs() - this.start.client) / units,
        name: (name! - this.start.name) / units,
        storages: sum(perStorage),
      };
      const total = used.client + used.name + used.storages;
      const busiest = Math.max(used.client, used.name, ...perStorage);
      const ceiling = Math.min(total > 0 ? (cpus().length * 1000) / total : Infinity, busiest > 0 ? 1000 / busiest : Infinity);
      return { ...used, total, ceiling };
    } catch {
      return undefined; // a server exited meanwhile: no figure rather than a wrong one
    }
  }
}

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
