/**
 * The figures, their goals from issue 6, the machine they were measured on, and how they are shown:
 * one table on stdout and one JSON file.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { dirname } from 'node:path';
import type { CpuPerUnit } from './cpu-meter.js';
import type { Limits } from './limits.js';
import { GiB } from './util.js';

export type WorkloadId = 'W1' | 'W2' | 'W3' | 'W4' | 'W5';

/** A goal of the issue: on the figure itself (files/s, MiB) or on its ratio to its limit. */
export interface Goal {
  on: 'value' | 'ratio';
  op: '>=' | '<=';
  target: number;
}

export interface Figure {
  workload: WorkloadId;
  name: string;
  /** Null when the figure could not be measured (see `note`). */
  value: number | null;
  unit: string;
  /** The limit the ratio is taken to (scaled, e.g. a third of the disk for three replicas), once the limits are known. */
  vs?: Vs;
  goal?: Goal;
  note?: string;
  /** CPU time per unit of the figure (per file, operation or MiB), by process, during its phase. */
  cpu?: CpuPerUnit;
}

/** A limit to compare a figure with: its label, and its value in the figure's unit. */
export interface Vs {
  limit: string;
  of: (limits: Limits) => number;
}

export interface ScoredFigure extends Omit<Figure, 'vs'> {
  vs?: { limit: string; value: number };
  ratio: number | null;
  pass: boolean | null;
}

export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  node: string;
  kernel: string;
  dataDir: string;
}

export interface Busy {
  loadStart: number[];
  loadEnd: number[];
  /** Share of the machine's CPU time (all cores) used by processes other than the bench and its cluster. */
  othersShare: number;
  /** Share used by the bench itself, its cluster and its child processes. */
  ownShare: number;
}

export interface Results {
  date: string;
  mode: 'quick' | 'full';
  seconds: number;
  machine: Machine;
  busy: Busy;
  limits: Limits;
  figures: ScoredFigure[];
  skipped: { workload: WorkloadId; reason: string }[];
  warnings: string[];
}

export function machine(dataDir: string): Machine {
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / GiB),
    node: process.version,
    kernel: `${process.platform} ${release()}`,
    dataDir,
  };
}

export const load = (): number[] => loadavg().map((l) => Math.round(l * 100) / 100);

export function score(f: Figure, limits: Limits): ScoredFigure {
  const vs = f.vs && { limit: f.vs.limit, value: f.vs.of(limits) };
  const ratio = f.value !== null && vs && vs.value > 0 ? f.value / vs.value : null;
  let pass: boolean | null = null;
  if (f.goal && f.value !== null) {
    const x = f.goal.on === 'value' ? f.value : ratio;
    if (x !== null) pass = f.goal.op === '>=' ? x >= f.goal.target : x <= f.goal.target;
  }
  return { ...f, vs, ratio, pass };
}

/** 1,234 for large numbers, 12.3 and 1.23 for small ones. */
export function num(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const abs = Math.abs(x);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : 2;
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function goalText(f: ScoredFigure): string {
  if (!f.goal) return '';
  const { on, op, target } = f.goal;
  return on === 'ratio' ? `${op} ${target.toFixed(2)} x limit` : `${op} ${num(target)} ${f.unit}`;
}

/** What one unit of a figure is: `files/s` -> file. */
const perUnit = (unit: string): string => ({ 'files/s': 'file', 'ops/s': 'op', 'MiB/s': 'MiB' } as Record<string, string>)[unit] ?? unit;
const ms = (x: number): string => (x >= 10 ? x.toFixed(1) : x.toFixed(3));

function table(header: string[], rows: string[][], rightAligned: Set<number>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (rightAligned.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
    .join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

export function formatReport(r: Results): string {
  const m = r.machine;
  const out: string[] = [];
  out.push(`sdfs bench, ${r.mode} run, ${r.date} (${Math.round(r.seconds)} s)`);
  out.push(`machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB RAM, Node ${m.node}, ${m.kernel}`);
  out.push(`busy: load average ${r.busy.loadStart.join(' ')} at start, ${r.busy.loadEnd.join(' ')} at the end; `
    + `other processes used ${Math.round(r.busy.othersShare * 100)}% of the CPU during the run, the bench and its cluster ${Math.round(r.busy.ownShare * 100)}%`);
  out.push(`data dir: ${m.dataDir}`);
  for (const w of r.warnings) out.push(`WARNING: ${w}`);
  out.push('');
  out.push(r.mode === 'full'
    ? 'limits of this machine, measured at the start and at the end of this run; the higher is used'
    : 'limits of this machine, measured at the start of this run');
  out.push(table(['limit', 'value', 'unit', 'measured', 'how'],
    Object.values(r.limits).map((l) => [l.name, num(l.value), l.unit, l.samples?.map(num).join(' / ') ?? num(l.value), l.detail]), new Set([1])));
  out.push('');
  out.push('figures (ratio = figure / the limit named beside it)');
  out.push(table(['', 'figure', 'value', 'unit', 'ratio', 'limit', 'goal', 'result'],
    r.figures.map((f) => [
      f.workload, f.name, f.value === null ? '-' : num(f.value), f.unit,
      f.ratio === null ? '' : f.ratio.toFixed(2), f.vs?.limit ?? '', goalText(f),
      f.pass === null ? (f.value === null ? 'n/a' : '') : f.pass ? 'PASS' : 'MISS',
    ]), new Set([2, 4])));
  const costed = r.figures.filter((f) => f.cpu);
  if (costed.length) {
    out.push('', `CPU time per unit of each figure (ms, user + system, all threads), and the most the machine carries at that cost (all ${m.cores} cores for the whole, one for each process)`);
    out.push(table(['', 'figure', 'per', 'client', 'name', 'storages', 'total', 'ceiling', 'unit', 'goal'],
      costed.map((f) => {
        const c = f.cpu!;
        return [f.workload, f.name, perUnit(f.unit), ms(c.client), ms(c.name), ms(c.storages), ms(c.total), num(c.ceiling), f.unit, goalText(f)];
      }), new Set([3, 4, 5, 6, 7])));
  }
  const notes = r.figures.filter((f) => f.note).map((f) => `  ${f.workload} ${f.name}: ${f.note}`);
  if (notes.length) out.push('', 'notes', ...notes);
  for (const s of r.skipped) out.push(`${s.workload} skipped: ${s.reason}`);
  const goals = r.figures.filter((f) => f.pass !== null);
  out.push('', `goals: ${goals.filter((f) => f.pass).length} PASS, ${goals.filter((f) => !f.pass).length} MISS`
    + `${r.figures.some((f) => f.goal && f.pass === null) ? `, ${r.figures.filter((f) => f.goal && f.pass === null).length} not measured` : ''}`);
  return out.join('\n');
}

export async function writeResults(path: string, r: Results): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, `${JSON.stringify(r, null, 2)}\n`);
}
