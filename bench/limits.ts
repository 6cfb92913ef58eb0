/**
 * The machine's own limits, measured in the same run as the workloads, so that every figure can be
 * read as a fraction of what this machine allows at that moment.
 *
 *   disk.write      1 GiB written sequentially in 8 MiB pieces, then fdatasync (the time includes it)
 *   disk.readCold   that file read back in 8 MiB pieces after its page cache was dropped
 *   disk.fsync4k    4 KiB files, each written and fdatasync'd, 16 at a time, for a few seconds: the small-file ceiling
 *   tcp             2 GiB over one loopback socket, from a child process to this one
 *   http.c1/c16     HTTP round trips/s (node:http server in a child, undici client here), 1 and 16 at once, for a few seconds each
 *   digest, crc32   hashing throughput of the block digest (XXH3-64, @node-rs/xxhash) and of the CRC-32 sdfs uses (@node-rs/crc32) on one core
 *
 * All on the same file system as the cluster's data dir (the `dir` given). A full run measures them
 * at the start and again at the end and keeps the higher of the two (`combineLimits`):
 * other processes come and go on a shared machine, and the ratio is to what the machine can do, so
 * that a busy moment during the limits does not flatter the figures.
 */
import { spawn } from 'node:child_process';
import { mkdir, open, rm } from 'node:fs/promises';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { crc32 } from '@node-rs/crc32';
import { Agent, request } from 'undici';
import { createDigester } from '../src/protocol/block-digest.js';
import { dropCache, itemData, KiB, log, MiB, GiB, runPool, seconds } from './util.js';

export interface Limit {
  name: string;
  value: number;
  unit: string;
  /** How it was measured, in a few words (sizes, and whether a read was really cold). */
  detail: string;
  /** Each measurement, when there were several (at the start and at the end of the run). */
  samples?: number[];
}

export type LimitId = 'disk.write' | 'disk.readCold' | 'disk.fsync4k' | 'tcp' | 'http.c1' | 'http.c16' | 'digest' | 'crc32';
export type Limits = Record<LimitId, Limit>;

export interface LimitSizes {
  disk: number;
  tcp: number;
  hash: number;
  /** Seconds of 4 KiB files with fdatasync. */
  fsyncSeconds: number;
  /** Seconds of HTTP round trips, at each concurrency. */
  httpSeconds: number;
}

export const FULL_LIMITS: LimitSizes = { disk: GiB, tcp: 2 * GiB, hash: GiB, fsyncSeconds: 3, httpSeconds: 3 };
export const QUICK_LIMITS: LimitSizes = { disk: 256 * MiB, tcp: 256 * MiB, hash: 256 * MiB, fsyncSeconds: 1, httpSeconds: 1 };

const mibps = (bytes: number, s: number): number => bytes / MiB / s;

/** Measures the limits in `dir`, which is left with files in it: the caller removes it when the run is over. */
export async function measureLimits(dir: string, sizes: LimitSizes): Promise<Limits> {
  await mkdir(dir, { recursive: true });
  log(`limits: disk write ${sizes.disk / MiB} MiB + fdatasync`);
  const file = join(dir, 'disk-limit.bin');
  const write = await diskWrite(file, sizes.disk);
  log('limits: cold disk read');
  const read = await diskRead(file, sizes.disk);
  await rm(file, { force: true });
  log('limits: 4 KiB files with fdatasync');
  const fsync4k = await smallFiles(join(dir, 'fsync-limit'), sizes.fsyncSeconds);
  log(`limits: TCP over loopback, ${sizes.tcp / MiB} MiB`);
  const tcp = await tcpThroughput(sizes.tcp);
  log('limits: HTTP round trips');
  const http = await httpRoundTrips(sizes.httpSeconds);
  log('limits: block digest and CRC-32');
  return {
    'disk.write': { name: 'disk write + fdatasync', value: write, unit: 'MiB/s', detail: `${sizes.disk / MiB} MiB in 8 MiB writes, one fdatasync` },
    'disk.readCold': {
      name: read.cold ? 'disk read, cold' : 'disk read (WARM: cache not dropped)', value: read.mibps, unit: 'MiB/s',
      detail: read.cold ? 'page cache dropped with posix_fadvise (dd iflag=nocache)' : 'dd iflag=nocache failed: the read came from the page cache',
    },
    'disk.fsync4k': { name: '4 KiB files + fdatasync', value: fsync4k, unit: 'files/s', detail: `for ${sizes.fsyncSeconds} s, 16 at a time` },
    tcp: { name: 'TCP loopback, 1 socket', value: tcp, unit: 'MiB/s', detail: `${sizes.tcp / MiB} MiB, sender in a child process` },
    'http.c1': { name: 'HTTP round trips, 1 at a time', value: http.c1, unit: 'req/s', detail: `for ${sizes.httpSeconds} s; node:http server in a child, undici client` },
    'http.c16': { name: 'HTTP round trips, 16 at once', value: http.c16, unit: 'req/s', detail: `for ${sizes.httpSeconds} s; node:http server in a child, undici client` },
    digest: { name: 'block digest, XXH3-64', value: digestRate(sizes.hash), unit: 'MiB/s', detail: `${sizes.hash / MiB} MiB in 1 MiB updates` },
    crc32: { name: 'CRC-32 (@node-rs/crc32)', value: crcRate(sizes.hash), unit: 'MiB/s', detail: `${sizes.hash / MiB} MiB in 1 MiB updates` },
  };
}

async function diskWrite(file: string, size: number): Promise<number> {
  const fh = await open(file, 'w');
  const t0 = performance.now();
  try {
    for (let off = 0; off < size; off += 8 * MiB) {
      const piece = itemData(off / (8 * MiB), Math.min(8 * MiB, size - off));
      await fh.write(piece, 0, piece.length, off);
    }
    await fh.datasync();
  } finally {
    await fh.close();
  }
  return mibps(size, seconds(t0));
}

async function diskRead(file: string, size: number): Promise<{ mibps: number; cold: boolean }> {
  const cold = await dropCache([file]);
  const fh = await open(file, 'r');
  const buf = Buffer.allocUnsafe(8 * MiB);
  const t0 = performance.now();
  let got = 0;
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
  } finally {
    await fh.close();
  }
  if (got !== size) throw new Error(`read ${got} bytes of ${size}`);
  return { mibps: mibps(size, seconds(t0)), cold };
}

/**
 * Left in `dir` for the caller to remove when nothing is measured any more: on ext4 without a journal,
 * creating files is slow for 30 s after many were removed (see docs/BENCHMARKS.md, The limits).
 */
async function smallFiles(dir: string, forS: number): Promise<number> {
  await mkdir(dir, { recursive: true });
  const r = await runPool(Infinity, 16, async (i) => {
    const fh = await open(join(dir, `f${i}`), 'w');
    try {
      await fh.write(itemData(i, 4 * KiB));
      await fh.datasync();
    } finally {
      await fh.close();
    }
  }, forS);
  if (r.errors) throw new Error(`small files: ${r.firstError}`);
  return r.done / r.seconds;
}

/** Plain JavaScript run by `node -e` in a child: connects and sends `size` bytes in 1 MiB writes. */
const TCP_SENDER = `
const net = require('node:net');
const [port, size] = process.argv.slice(1).map(Number);
const buf = require('node:crypto').randomBytes(1024 * 1024);
const sock = net.connect({ port, host: '127.0.0.1' }, () => {
  let sent = 0;
  const pump = () => {
    while (sent < size) {
      const n = Math.min(buf.length, size - sent);
      sent += n;
      if (!sock.write(n === buf.length ? buf : buf.subarray(0, n))) return void sock.once('drain', pump);
    }
    sock.end();
  };
  pump();
});
`;

async function tcpThroughput(size: number): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const port = (server.address() as AddressInfo).port;
  try {
    const received = new Promise<{ bytes: number; s: number }>((ok, fail) => {
      server.once('connection', (sock: Socket) => {
        const t0 = performance.now();
        let bytes = 0;
        sock.on('data', (d: Buffer) => { bytes += d.length; });
        sock.on('end', () => ok({ bytes, s: seconds(t0) }));
        sock.on('error', fail);
      });
    });
    const child = spawn(process.execPath, ['-e', TCP_SENDER, String(port), String(size)], { stdio: ['ignore', 'ignore', 'inherit'] });
    const exited = new Promise<void>((done) => child.once('exit', () => done()));
    const r = await received;
    await exited;
    if (r.bytes !== size) throw new Error(`TCP limit: received ${r.bytes} of ${size} bytes`);
    return mibps(size, r.s);
  } finally {
    server.close();
  }
}

/** Plain JavaScript run by `node -e` in a child: an HTTP server that answers every request with a small JSON body. */
const HTTP_SERVER = `
const http = require('node:http');
const body = JSON.stringify({ path: '/x', type: 'file', size: 4096, mtime: 0 });
const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => { res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }); res.end(body); });
});
server.keepAliveTimeout = 10000;
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
process.on('SIGTERM', () => process.exit(0));
`;

export async function httpRoundTrips(forS: number): Promise<{ c1: number; c16: number }> {
  const child = spawn(process.execPath, ['-e', HTTP_SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  const agent = new Agent({ keepAliveTimeout: 10_000, connections: 64 });
  try {
    const port = await new Promise<number>((ok, fail) => {
      createInterface({ input: child.stdout! }).once('line', (l) => ok(Number(l)));
      child.once('exit', () => fail(new Error('HTTP limit server exited')));
    });
    const url = `http://127.0.0.1:${port}/fs/stat?path=%2Fx`;
    const one = async (): Promise<void> => {
      const res = await request(url, { dispatcher: agent });
      await res.body.text();
    };
    await runPool(Infinity, 16, one, 0.3); // warm-up: connections, JIT
    const c1 = await runPool(Infinity, 1, one, forS);
    const c16 = await runPool(Infinity, 16, one, forS);
    return { c1: c1.done / c1.seconds, c16: c16.done / c16.seconds };
  } finally {
    await agent.close();
    child.kill('SIGTERM');
  }
}

function digestRate(size: number): number {
  const h = createDigester();
  const t0 = performance.now();
  for (let off = 0; off < size; off += MiB) h.update(itemData(off / MiB, MiB));
  h.digest();
  return mibps(size, seconds(t0));
}

function crcRate(size: number): number {
  let c = 0;
  const t0 = performance.now();
  for (let off = 0; off < size; off += MiB) c = crc32(itemData(off / MiB, MiB), c);
  return mibps(size, seconds(t0));
}

/** Each limit as the higher of two measurements, both kept as samples. */
export function combineLimits(a: Limits, b: Limits): Limits {
  const out = {} as Limits;
  for (const id of Object.keys(a) as LimitId[]) {
    const best = b[id].value > a[id].value ? b[id] : a[id];
    // A cold read that was not cold (the cache could not be dropped) is not a limit to prefer.
    const pick = id === 'disk.readCold' && a[id].name !== b[id].name ? (a[id].name.includes('WARM') ? b[id] : a[id]) : best;
    out[id] = { ...pick, samples: [a[id].value, b[id].value] };
  }
  return out;
}
