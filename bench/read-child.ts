/**
 * Reads one sdfs file to nowhere, in a process of its own, and prints one JSON line: the bytes and
 * the seconds from the block lookup to the last byte, and the CPU time it took (user + system, ms;
 * the process's own start-up is not counted in either).
 * The client checks every chunk's CRC-32 as it reads, as any reader does (see countBytes).
 *
 *   node --import tsx bench/read-child.ts NAME_SERVER_URL PATH
 */
import { connect } from '../src/client/index.js';
import { countBytes } from './util.js';

const [url, path] = process.argv.slice(2);
if (!url || !path) throw new Error('usage: read-child.ts NAME_SERVER_URL PATH');
const client = connect(url);
const t0 = performance.now();
const cpu0 = process.cpuUsage();
const bytes = await countBytes(await client.createReadStream(path));
const seconds = (performance.now() - t0) / 1000;
const { user, system } = process.cpuUsage(cpu0);
await client.close();
console.log(JSON.stringify({ bytes, seconds, cpuMs: (user + system) / 1000 }));
