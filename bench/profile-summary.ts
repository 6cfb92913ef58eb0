/**
 * Where the time went: reads the .cpuprofile files of a `npm run bench -- --profile` run and prints,
 * for each process, its CPU time by area (sdfs code, fastify, undici, SQLite, node internals, GC,
 * idle) and the functions with the most self time.
 *
 *   node --import tsx bench/profile-summary.ts bench/results/profiles/DATE [--top 15]
 */
import { readdir, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';

interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
interface Profile { nodes: Node[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '15' } } });
const dir = positionals[0];
if (!dir) throw new Error('usage: profile-summary.ts DIR [--top N]');

/** The area a function belongs to, from its script's URL. */
function area(url: string, fn: string): string {
  if (fn === '(idle)') return 'idle';
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(program)' || fn === '(root)') return 'native/program';
  if (url === '') return 'native/program';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
  if (pkg) return pkg;
  if (url.startsWith('node:')) return 'node internals';
  if (/\/(dist|src)\//.test(url)) return `sdfs ${/\/(?:dist|src)\/([^/]+)/.exec(url)?.[1] ?? ''}`.trim();
  return url.replace(/^file:\/\//, '');
}

for (const file of (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile')).sort()) {
  const p = JSON.parse(await readFile(join(dir, file), 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0));
  const total = [...self.values()].reduce((a, b) => a + b, 0) || 1;
  const areas = new Map<string, number>();
  const fns = new Map<string, number>();
  for (const [id, us] of self) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const a = area(url, functionName);
    areas.set(a, (areas.get(a) ?? 0) + us);
    const key = `${functionName || '(anonymous)'} ${url ? `${url.replace(/^.*\/(node_modules|dist|src)\//, '$1/')}:${lineNumber + 1}` : ''}`.trim();
    fns.set(key, (fns.get(key) ?? 0) + us);
  }
  const busy = total - (areas.get('idle') ?? 0);
  const pct = (us: number): string => `${((100 * us) / total).toFixed(1).padStart(5)}%`;
  console.log(`\n${basename(file)}: ${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s on CPU`);
  console.log('  by area:');
  for (const [a, us] of [...areas].sort((x, y) => y[1] - x[1]).slice(0, 12)) console.log(`    ${pct(us)}  ${a}`);
  console.log('  top functions (self time):');
  for (const [f, us] of [...fns].filter(([k]) => !k.startsWith('(idle)')).sort((x, y) => y[1] - x[1]).slice(0, Number(values.top))) {
    console.log(`    ${pct(us)}  ${f}`);
  }
}
