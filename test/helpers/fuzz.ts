import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import fc from 'fast-check';
import { Agent, request, type Dispatcher } from 'undici';
import { AUTH_HEADERS, deriveKeys, issueBlockToken, signRequest, type BlockOp } from '../../src/protocol/auth.js';
import { ERROR_TABLE } from '../../src/protocol/errors.js';
import { Cluster } from './cluster.js';

/**
 * Helpers for the fuzz and hostile-input tests: seeded, time-bounded property runs (fast-check), the
 * check that an HTTP answer is a proper sdfs error, raw HTTP over a socket, and snapshots of the
 * files under a directory, to show that hostile input created nothing where it should not.
 */

/** The seed of this run: FUZZ_SEED=<n> replays a failed run; otherwise a fresh one (printed). */
export function fuzzSeed(): number {
  const env = process.env.FUZZ_SEED;
  return env !== undefined && env !== '' ? Number(env) : Math.floor(Math.random() * 0x7fffffff);
}

/**
 * Checks `check` against values of `arb` for `ms` milliseconds (at least `minRuns` times), one at a
 * time, from a printed seed. A failure shows the seed and fast-check's replay path; with `shrink:
 * false` (for a stateful target, where a shrunk case replayed later means little) it stops at once.
 * FUZZ_SCALE=<n> runs each fuzz n times as long (CI runs them at 1).
 */
export async function fuzz<T>(name: string, arb: fc.Arbitrary<T>, check: (value: T) => Promise<void>,
  opts: { ms: number; minRuns: number; shrink?: boolean }): Promise<number> {
  const seed = fuzzSeed();
  const ms = opts.ms * Number(process.env.FUZZ_SCALE || 1);
  let runs = 0;
  const started = Date.now();
  try {
    await fc.assert(fc.asyncProperty(arb, async (value) => {
      runs++;
      await check(value);
    }), { seed, numRuns: Number.MAX_SAFE_INTEGER, interruptAfterTimeLimit: ms, markInterruptAsFailure: false, endOnFailure: opts.shrink === false });
  } finally {
    console.log(`# fuzz ${name}: seed ${seed}, ${runs} cases in ${Date.now() - started} ms (replay with FUZZ_SEED=${seed})`);
  }
  assert.ok(runs >= opts.minRuns, `only ${runs} cases ran (at least ${opts.minRuns} expected)`);
  return runs;
}

/** An agent for hostile requests: no connection reuse (a refused request may leave its connection closed). */
export function fuzzAgent(): Agent {
  return new Agent({ pipelining: 0, headersTimeout: 30_000, bodyTimeout: 30_000 });
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** Sends a request and reads the whole answer (bounded: a hostile request has no business getting megabytes back). */
export async function send(url: string, opts: { method: string; headers?: Record<string, string>; body?: string | Buffer; dispatcher: Dispatcher }): Promise<Answer> {
  const res = await request(url, { method: opts.method as Dispatcher.HttpMethod, headers: opts.headers, body: opts.body, dispatcher: opts.dispatcher });
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 8 * 1024 * 1024) {
      res.body.destroy();
      break;
    }
    chunks.push(chunk);
  }
  return { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) };
}

/** Asserts that an answer is an sdfs error: a status within `statuses`, and a JSON body `{error: {code, message}}` with a known code; returns the code. */
export function assertSdfsError(a: Pick<Answer, 'status' | 'body'>, what: string, statuses: [number, number] = [400, 499]): string {
  assert.ok(a.status >= statuses[0] && a.status <= statuses[1], `${what}: HTTP ${a.status} ${a.body.toString().slice(0, 300)}`);
  let parsed: { error?: { code?: unknown; message?: unknown } };
  try {
    parsed = JSON.parse(a.body.toString('utf8')) as typeof parsed;
  } catch {
    assert.fail(`${what}: HTTP ${a.status} with a body that is not JSON: ${JSON.stringify(a.body.toString().slice(0, 300))}`);
  }
  const code = parsed.error?.code;
  assert.ok(typeof code === 'string' && Object.hasOwn(ERROR_TABLE, code), `${what}: no known error code in ${a.body.toString().slice(0, 300)}`);
  assert.equal(typeof parsed.error?.message, 'string', `${what}: no message`);
  return code;
}

/**
 * Writes `bytes` on a fresh connection (then, with `end`, half-closes it) and collects what comes
 * back until the server closes the connection, or until `quietMs` pass without a byte (then it is
 * closed here: never a hang).
 */
export function rawExchange(port: number, bytes: Buffer | string, opts: { end?: boolean; quietMs?: number } = {}): Promise<{ data: Buffer; closedByServer: boolean }> {
  return new Promise((done) => {
    const s = netConnect({ port, host: '127.0.0.1' });
    const chunks: Buffer[] = [];
    let closedByServer = true;
    let timer: NodeJS.Timeout | undefined;
    const quiet = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => { closedByServer = false; s.destroy(); }, opts.quietMs ?? 5000);
    };
    s.on('connect', () => {
      if (opts.end) s.end(bytes);
      else s.write(bytes);
      quiet();
    });
    s.on('data', (d: Buffer) => { chunks.push(d); quiet(); });
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      done({ data: Buffer.concat(chunks), closedByServer });
    });
  });
}

/** Splits the first HTTP response out of raw bytes: its status and body (by content-length, or chunked). */
export function parseRawResponse(data: Buffer): { status: number; body: Buffer } | undefined {
  const end = data.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const head = data.subarray(0, end).toString('latin1');
  const m = /^HTTP\/1\.1 (\d{3}) /.exec(head);
  if (!m) return undefined;
  let rest = data.subarray(end + 4);
  const len = /\r\ncontent-length: *(\d+)/i.exec(head);
  if (len) return { status: Number(m[1]), body: rest.subarray(0, Number(len[1])) };
  if (!/\r\ntransfer-encoding: *chunked/i.test(head)) return { status: Number(m[1]), body: rest };
  const chunks: Buffer[] = [];
  for (;;) {
    const eol = rest.indexOf('\r\n');
    const size = eol < 0 ? NaN : parseInt(rest.subarray(0, eol).toString('latin1'), 16);
    if (!(size > 0)) break;
    chunks.push(rest.subarray(eol + 2, eol + 2 + size));
    rest = rest.subarray(eol + 2 + size + 2);
  }
  return { status: Number(m[1]), body: Buffer.concat(chunks) };
}

/**
 * Credentials made from a cluster's secret file, so that hostile requests also reach what lies behind
 * the storage servers' checks: a block token for one block and operation, or a cluster member's signature.
 */
export function clusterAuth(secretFile: string): {
  token(id: string, op: BlockOp): Record<string, string>;
  signed(method: string, pathAndQuery: string): Record<string, string>;
} {
  const keys = deriveKeys(readFileSync(secretFile, 'utf8').trim());
  return {
    token: (id, op) => ({ [AUTH_HEADERS.blockToken]: issueBlockToken(keys, id, op, 10 * 60_000) }),
    signed: (method, pathAndQuery) => ({ [AUTH_HEADERS.cluster]: signRequest(keys, method, pathAndQuery) }),
  };
}

/** Every file and directory under `root`, as paths relative to it (directories end with `/`). */
export async function listTree(root: string): Promise<Set<string>> {
  const out = new Set<string>();
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const full = join(dir, e.name);
      const rel = relative(root, full);
      if (e.isDirectory()) {
        out.add(rel + '/');
        await walk(full);
      } else out.add(rel);
    }
  };
  await walk(root);
  return out;
}

/**
 * Makes a fresh directory and points TMPDIR (this process's and its children's) at it, so that the
 * clusters a test starts (Cluster.start makes its dir in tmpdir()) live in a directory that nothing
 * else writes to: a snapshot of it before and after shows any file that hostile input created beside
 * or above a data dir.
 */
async function privateTmpRoot(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'sdfs-hostile-'));
  process.env.TMPDIR = root;
  return root;
}

/** What the fuzz and hostile-input tests attack: a cluster under a private root (privateTmpRoot), and an agent to send with. */
export interface HostileCluster {
  root: string;
  cluster: Cluster;
  agent: Agent;
  /** Ends the cluster's processes and removes the root. */
  stop(): Promise<void>;
}

/** Starts a name server and two storage servers (R=2, 64 KiB blocks) under a private root. */
export async function startHostileCluster(): Promise<HostileCluster> {
  const root = await privateTmpRoot();
  let cluster: Cluster | undefined;
  const agent = fuzzAgent();
  const stop = async (): Promise<void> => {
    await agent.close();
    await cluster?.stop();
    await rm(root, { recursive: true, force: true });
  };
  try {
    cluster = await Cluster.start({ storages: 2, replication: 2, blockSize: 64 * 1024 });
  } catch (err) {
    await stop();
    throw err;
  }
  return { root, cluster, agent, stop };
}

/**
 * What a cluster (in its dir under the private root) may add while it serves: block files and their
 * temporary files in a storage data dir, the name server's database files, the client log.
 */
export const CLUSTER_FILES = [
  /^[^/]+\/storage-\d+\/blocks\/[0-9a-f]{2}\/[0-9a-f]{32}$/,
  /^[^/]+\/storage-\d+\/tmp\/[0-9a-f]{32}\.[0-9a-f]{8}$/,
  /^[^/]+\/name\/[^/]+\.db(-wal|-shm|-journal)?$/,
  /^[^/]+\/client\.log$/,
];

/** Asserts that every path in `after` but not in `before` is one that `allowed` permits. */
export function assertOnlyExpectedNewFiles(before: Set<string>, after: Set<string>, allowed: RegExp[] = CLUSTER_FILES): void {
  const unexpected = [...after].filter((p) => !before.has(p) && !allowed.some((re) => re.test(p)));
  assert.deepEqual(unexpected, [], `files or directories that hostile input must not create: ${unexpected.join(', ')}`);
}
