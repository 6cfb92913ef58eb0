/**
 * `npm run bench`: measures this machine's limits, starts a local cluster (one name server, three
 * storage servers, a temporary data dir), runs the workloads of issue 6 against it, and prints every
 * figure with its ratio to the machine's limit and its goal. The figures also go to a JSON file.
 *
 *   npm run bench [-- --quick] [-- --scale 1000000] [-- --only W1,W3] [-- --out FILE] [-- --profile]
 *
 *   --quick        every workload shrunk (64 MiB instead of 1 GiB, 500 small files, 3 s per phase at most,
 *                  limits measured once): checks that the bench works, in well under a minute
 *   --scale N      W4's name server memory and database per file after N empty files (default: off)
 *   --only LIST    only these workloads (the limits are always measured)
 *   --out FILE     where the JSON goes (default bench/results/latest.json)
 *   --profile      CPU profiles of the servers, the W1 reader child and this process (the client), in
 *                  bench/results/profiles/DATE/ (see bench/profile-summary.ts); slows everything a little
 *
 * Progress goes to stderr, the report to stdout. The exit code is 1 if a workload failed (a figure
 * could not be measured), whatever the goals say.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Cluster, CLI } from '../test/helpers/cluster.js';
import { FULL, QUICK, type Context } from './context.js';
import { combineLimits, measureLimits, type Limits } from './limits.js';
import { formatReport, load, machine, score, writeResults, type Figure, type Results, type WorkloadId } from './report.js';
import { log, machineCpu, MiB, otherSdfsServers, ownCpu, run, seconds } from './util.js';
import { cleanLargeFiles, largeFile } from './workloads/w1-large-file.js';
import { smallFiles } from './workloads/w2-small-files.js';
import { metadata } from './workloads/w3-metadata.js';
import { scale, serverMemory } from './workloads/w4-memory.js';
import { classic, classicAvailable, loadClassicClient } from './workloads/w5-classic.js';

const root = resolve(import.meta.dirname, '..');
const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    scale: { type: 'string', default: '0' },
    only: { type: 'string' },
    out: { type: 'string', default: join(root, 'bench', 'results', 'latest.json') },
    profile: { type: 'boolean', default: false },
  },
});
const sizes = args.quick ? QUICK : FULL;
const scaleFiles = Number(args.scale);
if (!Number.isSafeInteger(scaleFiles) || scaleFiles < 0) throw new Error(`--scale wants a number of files: ${args.scale}`);
const only = new Set((args.only ?? 'W1,W2,W3,W4,W5').toUpperCase().split(',').map((s) => s.trim()));
const wanted = (w: WorkloadId): boolean => only.has(w);
const outPath = resolve(args.out);

if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first (npm run bench does)`);
const warnings: string[] = [];
// A switch some builds have to skip fsync while profiling; a benchmark of durable writes must not inherit it.
if (process.env.XNOSYNC) {
  delete process.env.XNOSYNC;
  warnings.push('XNOSYNC was set in the environment; it was removed so that the servers fsync as they should');
}

const strangers = await otherSdfsServers(CLI);
if (strangers > 0) {
  warnings.push(`${strangers} sdfs server process(es) of another cluster were running when the run started: they take CPU from it; `
    + 'stop them (ps -ef | grep dist/cli/main.js) and run again');
}

const started = performance.now();
const date = new Date().toISOString();
const cpuStart = await machineCpu();
const ownStart = await ownCpu();
const loadStart = load();
const scratch = await mkdtemp(join(tmpdir(), 'sdfs-bench-'));
let cluster: Cluster | undefined;
let failures = 0;
/** The cluster once stopped, its data dir kept until the limits are measured again. */
let stopped: Cluster | undefined;

/**
 * Stops the cluster and removes what the run wrote; `keepData` leaves the files (the cluster's data
 * dir, the limits' files in `scratch`) and returns the stopped cluster, whose `removeData` is called
 * after the last measurement.
 */
async function cleanUp(opts: { keepData?: boolean } = {}): Promise<Cluster | undefined> {
  const c = cluster;
  cluster = undefined;
  await c?.stop(opts).catch(() => {});
  if (opts.keepData) return c;
  await rm(scratch, { recursive: true, force: true });
  return undefined;
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    log(`${sig}: stopping the cluster`);
    void cleanUp().finally(() => process.exit(130));
  });
}

const figures: Figure[] = [];
const skipped: Results['skipped'] = [];

/** Runs one workload; an exception becomes a failed row rather than the end of the run. */
async function step(w: WorkloadId, what: string, fn: () => Promise<Figure[]>): Promise<void> {
  try {
    figures.push(...await fn());
  } catch (err) {
    failures++;
    log(`${w} ${what} failed: ${err instanceof Error ? err.stack : String(err)}`);
    figures.push({ workload: w, name: what, value: null, unit: '', note: `failed: ${err instanceof Error ? err.message : String(err)}` });
  }
}

let limits: Limits;
const nodeOptions = process.env.NODE_OPTIONS;
try {
  limits = await measureLimits(join(scratch, 'limits'), sizes.limits);

  // Classic data ports: a window of its own, away from the default and from the tests' 7100-7399.
  const nameArgs: string[] = [];
  if ((await run(process.execPath, [CLI, 'name', '--help'])).stdout.includes('--classic-data-ports')) {
    const from = 8000 + Math.floor(Math.random() * 18) * 100;
    nameArgs.push('--classic-data-ports', `${from}-${from + 99}`);
  }
  const profileDir = join(dirname(outPath), 'profiles', date.replace(/[:.]/g, '-'));
  // Node 20 refuses --cpu-prof in NODE_OPTIONS: a preload starts the profiler instead (bench/cpu-profile.mjs).
  // The reader child of W1 inherits it too (it is started from this environment), and this process loads it.
  if (args.profile) {
    const preload = pathToFileURL(join(root, 'bench', 'cpu-profile.mjs')).href;
    process.env.NODE_OPTIONS = `${nodeOptions ?? ''} --import ${preload}`.trim();
    process.env.SDFS_BENCH_PROFILE_DIR = profileDir;
    await import(preload);
  }
  log('starting the cluster: 1 name server, 3 storage servers, block size 64 MiB, R=3');
  cluster = await Cluster.start({ storages: 3, replication: 3, blockSize: 64 * MiB, nameArgs });
  const ctx: Context = { cluster, sizes, root };

  if (wanted('W1')) {
    await step('W1', 'large file', () => largeFile(ctx));
    if (wanted('W4')) await step('W4', 'memory during W1', () => serverMemory(ctx, 'during W1'));
    await cleanLargeFiles(ctx);
  }
  if (wanted('W2')) {
    await step('W2', 'small files', () => smallFiles(ctx));
    if (wanted('W4')) await step('W4', 'memory after W2', () => serverMemory(ctx, 'after W2'));
  }
  if (wanted('W3')) await step('W3', 'metadata', () => metadata(ctx));
  if (wanted('W5')) {
    const mod = await loadClassicClient(root);
    if (!(await classicAvailable(cluster.name.port))) skipped.push({ workload: 'W5', reason: 'classic protocol not available' });
    else if (!mod) skipped.push({ workload: 'W5', reason: 'test/helpers/classic-client.ts not found' });
    else await step('W5', 'classic protocol', () => classic(ctx, mod));
  }
  if (wanted('W4') && scaleFiles > 0) await step('W4', `scale (${scaleFiles} files)`, () => scale(ctx, scaleFiles));
  else if (wanted('W4')) skipped.push({ workload: 'W4', reason: 'name server memory per file: no --scale N given' });
  if (args.profile) log(`CPU profiles (written as the processes exit): ${profileDir}; summary: node --import tsx bench/profile-summary.ts DIR`);
} finally {
  // Files are removed only when nothing is measured any more (the cluster's tens of thousands of
  // blocks, the limits' small files): this ext4 (no journal) skips every inode freed in the last 30 s
  // when it creates a file, which made the 4 KiB create limit measured right after the removal of
  // the cluster's blocks a fifth of the one at the start, and would slow W2 right after the limits.
  stopped = await cleanUp({ keepData: true });
  if (nodeOptions === undefined) delete process.env.NODE_OPTIONS;
  else process.env.NODE_OPTIONS = nodeOptions;
}
try {
  if (!args.quick) {
    log('limits again, with the cluster stopped');
    limits = combineLimits(limits, await measureLimits(join(scratch, 'limits-again'), sizes.limits));
  }
} finally {
  await stopped?.removeData();
  await rm(scratch, { recursive: true, force: true });
}

const cpuEnd = await machineCpu();
const ownEnd = await ownCpu();
const total = cpuEnd.total - cpuStart.total;
const othersShare = total > 0 ? Math.max(0, (cpuEnd.busy - cpuStart.busy) - (ownEnd - ownStart)) / total : 0;
// The goals are rates on two cores: what other processes took, the run did not have.
if (othersShare > 0.05) {
  warnings.push(`other processes used ${Math.round(othersShare * 100)}% of the CPU during the run: compare its CPU per unit with other runs, not its rates`);
}
const results: Results = {
  date,
  mode: args.quick ? 'quick' : 'full',
  seconds: seconds(started),
  machine: machine(tmpdir()),
  busy: {
    loadStart,
    loadEnd: load(),
    othersShare,
    ownShare: total > 0 ? (ownEnd - ownStart) / total : 0,
  },
  limits,
  figures: figures.map((f) => score(f, limits)),
  skipped,
  warnings,
};
await writeResults(outPath, results);
console.log(formatReport(results));
console.log(`\nJSON: ${relative(process.cwd(), outPath) || outPath}`);
if (failures || results.figures.some((f) => f.value === null && f.note?.startsWith('failed'))) process.exitCode = 1;
