/**
 * What every workload is given (the cluster and the sizes of this run), the sizes of a full and a
 * quick run, and the machine limits each figure is read against.
 */
import { locateBlocks } from '../src/storage/block-store.js';
import type { Cluster } from '../test/helpers/cluster.js';
import { FULL_LIMITS, QUICK_LIMITS, type LimitSizes } from './limits.js';
import type { Vs } from './report.js';
import { dropCache, GiB, MiB, type PoolResult } from './util.js';

export interface Sizes {
  limits: LimitSizes;
  /** W1 and W5: the large file. */
  bigFile: number;
  /** W2: how many 4 KiB files, and how many 1 MiB files. */
  smallFiles: number;
  mediumFiles: number;
  /** W3: operations of each kind. */
  metadataOps: number;
  /** W5: 4 KiB files through the classic protocol. */
  classicFiles: number;
  /** No phase (one operation kind at one concurrency) starts new operations after this many seconds. */
  phaseDeadlineS: number;
}

export const FULL: Sizes = {
  limits: FULL_LIMITS, bigFile: GiB, smallFiles: 10_000, mediumFiles: 1000, metadataOps: 10_000, classicFiles: 1000, phaseDeadlineS: 30,
};

export const QUICK: Sizes = {
  limits: QUICK_LIMITS, bigFile: 64 * MiB, smallFiles: 500, mediumFiles: 50, metadataOps: 500, classicFiles: 30, phaseDeadlineS: 3,
};

export interface Context {
  cluster: Cluster;
  sizes: Sizes;
  /** The repository's root (children run from there). */
  root: string;
}

/** MiB/s as files of `size` bytes per second. */
const inFiles = (mibps: number, size: number): number => (mibps * MiB) / size;

/** The limits each figure is read against. */
export const VS = {
  disk: { limit: 'disk write', of: (l) => l['disk.write'].value },
  /** Three replicas share the one disk here. */
  diskThird: { limit: 'disk write / 3', of: (l) => l['disk.write'].value / 3 },
  diskThirdFiles: (size: number): Vs => ({ limit: 'disk write / 3', of: (l) => inFiles(l['disk.write'].value / 3, size) }),
  /** What a read by another process can reach: the lower of the cold disk read and loopback TCP. */
  read: { limit: 'lower of cold read, TCP', of: (l) => Math.min(l['disk.readCold'].value, l.tcp.value) },
  tcpFiles: (size: number): Vs => ({ limit: 'TCP loopback', of: (l) => inFiles(l.tcp.value, size) }),
  fsyncThird: { limit: '4 KiB fsync / 3', of: (l) => l['disk.fsync4k'].value / 3 },
  http: (c: number): Vs => ({ limit: `HTTP round trip, ${c} at once`, of: (l) => l[c === 1 ? 'http.c1' : 'http.c16'].value }),
} satisfies Record<string, Vs | ((...args: never[]) => Vs)>;

/**
 * Drops the page cache of the block files of one sdfs file on every storage server, so that the
 * next read of it is cold: each block's file, or the log segment that holds its record.
 */
export async function dropFileCache(ctx: Context, path: string): Promise<boolean> {
  const client = ctx.cluster.client();
  const ids = (await client.blocks(path)).blocks.map((b) => b.id);
  const files = new Set<string>();
  for (const s of ctx.cluster.storages) {
    for (const at of (await locateBlocks(s.dataDir, ids)).values()) files.add(at.path);
  }
  return files.size > 0 && dropCache([...files]);
}

/** What a figure should say about its pool: items cut by the deadline, and errors. */
export function poolNote(r: PoolResult, asked: number, deadlineS: number): string | undefined {
  const parts: string[] = [];
  if (r.started < asked) parts.push(`${r.started} of ${asked} (stopped at the ${deadlineS} s limit)`);
  if (r.errors) parts.push(`${r.errors} errors, first: ${r.firstError}`);
  return parts.length ? parts.join('; ') : undefined;
}
