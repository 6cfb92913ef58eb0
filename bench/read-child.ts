/**
 * Reads one sdfs file to nowhere, in a process of its own, and prints one JSON line: the bytes and
 * the seconds from the block lookup to the last byte, and the CPU time it took (user + system, ms;
 * the process's own start-up is not counted in either).
 * The client checks every chunk's CRC-32 as it reads, as any reader does. The bytes go to a sink
 * through a pipeline, as `sdfs get` and `sdfs cat` send them on: `for await` would gather the chunks
 * buffered at each step into one new buffer, a copy of every byte that those readers do not make.
 *
 *   node --import tsx bench/read-child.ts NAME_SERVER_URL PATH
 */
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { connect } from '../src/client/index.js';

const [url, path] = process.argv.slice(2);
if (!url || !path) throw new Error('usage: read-child.ts NAME_SERVER_URL PATH');
const client = connect(url);
const t0 = performance.now();
const cpu0 = process.cpuUsage();
let bytes = 0;
await pipeline(await client.createReadStream(path), new Writable({
  write(chunk: Buffer, _encoding, done) {
    bytes += chunk.length;
    done();
  },
}));
const seconds = (performance.now() - t0) / 1000;
const { user, system } = process.cpuUsage(cpu0);
await client.close();
console.log(JSON.stringify({ bytes, seconds, cpuMs: (user + system) / 1000 }));
