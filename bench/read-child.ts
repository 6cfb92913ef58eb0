/**
 * Reads one sdfs file to nowhere, in a process of its own, and prints one JSON line: the bytes and
 * the seconds from the block lookup to the last byte, and the CPU time it took (user + system, ms;
 * the process's own start-up is not counted in either).
 * It reads as `sdfs get` and `sdfs cat` do: through the library's FileReader, into two buffers of
 * 8 MiB reused in turn, each chunk's CRC-32 checked as it comes.
 *
 *   node --import tsx bench/read-child.ts NAME_SERVER_URL PATH
 */
import { connect } from '../src/client/index.js';

const [url, path] = process.argv.slice(2);
if (!url || !path) throw new Error('usage: read-child.ts NAME_SERVER_URL PATH');
const client = connect(url);
const t0 = performance.now();
const cpu0 = process.cpuUsage();
let bytes = 0;
for await (const view of (await client.open(path)).views()) bytes += view.length;
const seconds = (performance.now() - t0) / 1000;
const { user, system } = process.cpuUsage(cpu0);
await client.close();
console.log(JSON.stringify({ bytes, seconds, cpuMs: (user + system) / 1000 }));
