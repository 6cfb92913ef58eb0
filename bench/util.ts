/**
 * Small helpers that every part of the bench shares: sizes, test data, timing, a pool of concurrent
 * loops, and what /proc says about processes and the machine.
 */
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

/** Progress lines go to stderr, so that stdout holds the report alone. */
export function log(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

export const seconds = (startMs: number): number => (performance.now() - startMs) / 1000;

export function fmtBytes(n: number): string {
  if (n >= GiB && n % GiB === 0) return `${n / GiB} GiB`;
  if (n >= MiB && n % MiB === 0) return `${n / MiB} MiB`;
  if (n >= KiB && n % KiB === 0) return `${n / KiB} KiB`;
  return `${n} B`;
}

/**
 * Random test data, made once. The pool is 67 MiB (a prime number of MiB), so that no two of the
 * first 67 blocks of 64 MiB cut from it are alike, and no two small files either: what the servers
 * store is never the same bytes over and over.
 */
const POOL_MIB = 67;
let pool: Buffer | undefined;
function dataPool(): Buffer {
  pool ??= randomBytes(POOL_MIB * MiB);
  return pool;
}

/** `size` bytes for item `i` (a small file), distinct from its neighbours. A view of the pool: no copy. */
export function itemData(i: number, size: number): Buffer {
  const p = dataPool();
  const span = p.length - size;
  // Each lap around the pool starts 4 KiB further on, so that laps differ too.
  const at = (i * size + Math.floor((i * size) / span) * 4 * KiB) % span;
  return p.subarray(at, at + size);
}

/** A stream of `size` bytes in 1 MiB pieces (views of the pool: the producer costs next to nothing). */
export function bigStream(size: number): Readable {
  const p = dataPool();
  let sent = 0;
  let k = 0;
  return new Readable({
    highWaterMark: 4 * MiB,
    read() {
      if (sent >= size) return void this.push(null);
      const n = Math.min(MiB, size - sent);
      const at = (k++ % POOL_MIB) * MiB;
      sent += n;
      this.push(p.subarray(at, at + n));
    },
  });
}

/** The same bytes as an async iterable of Buffers (for clients that take one). */
export async function* bigChunks(size: number): AsyncGenerator<Buffer> {
  for await (const chunk of bigStream(size)) yield chunk as Buffer;
}

export interface PoolResult {
  /** Items started: 0..started-1 (fewer than asked if the deadline came first); each one ended, done or failed. */
  started: number;
  /** Items done without error. */
  done: number;
  seconds: number;
  errors: number;
  firstError?: string;
}

/**
 * Runs `fn(i)` for i = 0..n-1 over `concurrency` loops. After `deadlineS` seconds no new item is
 * started (the rate is then over the items done), so that a slow build cannot stretch the run.
 * `fn` receives the loop number too, for one client per loop.
 */
export async function runPool(n: number, concurrency: number, fn: (i: number, loop: number) => Promise<unknown>,
  deadlineS = Infinity): Promise<PoolResult> {
  let next = 0;
  let done = 0;
  let errors = 0;
  let firstError: string | undefined;
  const t0 = performance.now();
  const stopAt = t0 + deadlineS * 1000;
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, async (_, loop) => {
    while (next < n && performance.now() < stopAt) {
      const i = next++;
      try {
        await fn(i, loop);
        done++;
      } catch (err) {
        errors++;
        firstError ??= err instanceof Error ? err.message : String(err);
      }
    }
  }));
  return { started: next, done, seconds: seconds(t0), errors, firstError };
}

/** VmRSS and VmHWM (peak RSS) of a process, in bytes; undefined once it is gone. */
export async function memoryOf(pid: number): Promise<{ rss: number; hwm: number } | undefined> {
  try {
    const text = await readFile(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) * 1024;
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return undefined;
  }
}

/** Runs a command to its end; resolves with its exit code and output. */
export function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}):
  Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((ok) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', (err) => ok({ code: -1, stdout, stderr: stderr + err.message }));
    child.on('close', (code) => ok({ code: code ?? -1, stdout, stderr }));
  });
}

/**
 * Drops the page cache of the given files (`dd iflag=nocache count=0` calls posix_fadvise
 * DONTNEED on the whole file; clean pages go, so the next read comes from the disk). No root needed.
 * Returns false if it could not be done, and then reads are warm.
 */
export async function dropCache(files: string[]): Promise<boolean> {
  let ok = true;
  for (let i = 0; i < files.length; i += 32) {
    const batch = files.slice(i, i + 32);
    const results = await Promise.all(batch.map((f) => run('dd', [`if=${f}`, 'iflag=nocache', 'count=0', 'status=none'])));
    if (results.some((r) => r.code !== 0)) ok = false;
  }
  return ok;
}


/** Bytes of the files whose names start with `prefix` in `dir` (a SQLite database with its -wal and -shm). */
export async function bytesOf(dir: string, prefix: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (name.startsWith(prefix)) total += (await stat(join(dir, name)).catch(() => ({ size: 0 }))).size;
  }
  return total;
}

/** Jiffies of the whole machine (busy and total) from /proc/stat. */
export async function machineCpu(): Promise<{ busy: number; total: number }> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0); // user nice system idle iowait irq softirq steal
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: total - idle, total };
}

/**
 * Jiffies (USER_HZ, 100 a second on Linux) of CPU from `/proc/<pid>/stat`: user and system time of
 * all its threads, and with `children` those of its children that have ended.
 */
export async function cpuTicksOf(pid: number | 'self', children = false): Promise<number> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // After the command name: state is field 3; utime, stime, cutime, cstime are fields 14-17.
  return (children ? [11, 12, 13, 14] : [11, 12]).reduce((sum, i) => sum + Number(fields[i] ?? 0), 0);
}

/**
 * Processes of this machine that run an sdfs server (`<cli> name|storage|up`) and are not this run's:
 * a cluster left running beside a benchmark takes CPU from it (heartbeats, its replicator) unseen.
 */
export async function otherSdfsServers(cli: string): Promise<number> {
  let count = 0;
  for (const pid of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    const args = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
    const at = args.findIndex((a) => a === cli || /(^|\/)(dist\/cli\/main\.js|sdfs)$/.test(a));
    if (at >= 0 && ['name', 'storage', 'up'].includes(args[at + 1] ?? '')) count++;
  }
  return count;
}

/** Jiffies of CPU used by this process and by its children that have ended (the servers, once stopped). */
export const ownCpu = (): Promise<number> => cpuTicksOf('self', true);
