import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { connect, type SdfsClient } from '../../src/client/index.js';
import { deriveKeys, issueBlockToken, type BlockOp } from '../../src/protocol/auth.js';
import { blockIdsOnDisk } from '../../src/storage/block-store.js';

/**
 * Starts real sdfs processes (the built CLI, `dist/cli/main.js`) on 127.0.0.1 with free ports and a
 * temporary data dir, for integration tests. Every process started is ended by PID in `stop()`.
 */
export const CLI = resolve(import.meta.dirname, '../../dist/cli/main.js');

export interface Proc {
  child: ChildProcess;
  port: number;
  dataDir: string;
  args: string[];
  id?: string;
  /** A name server's classic protocol port, when it has its own. */
  classicPort?: number;
}

/**
 * Every server process started here and not yet ended. If the process that started them dies (an
 * uncaught error, a benchmark whose output pipe closed), they are killed as it exits, not left running
 * beside the next test or benchmark.
 */
const running = new Set<ChildProcess>();
/** The data dirs of clusters not yet stopped, removed as well in that case. */
const dataDirs = new Set<string>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
  for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
});

export async function startProcess(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Proc> {
  const child = spawn(process.execPath, [CLI, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env },
  });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  return new Promise((ok, fail) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      try {
        const msg = JSON.parse(line) as { event?: string; port?: number; id?: string; dataDir?: string; classicPort?: number };
        if (msg.event === 'listening') ok({ child, port: msg.port!, dataDir: msg.dataDir!, args, id: msg.id, classicPort: msg.classicPort });
      } catch {
        // Not one of our JSON lines.
      }
    });
    child.once('exit', (code, signal) => fail(new Error(`sdfs ${args.join(' ')} exited (${signal ?? code}) before listening:\n${stderr}`)));
  });
}

export async function stopProcess(p: Proc, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const { child } = p;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** Polls `check` until it returns a truthy value; fails after `ms`. Never a fixed sleep. */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface ClusterOptions {
  storages?: number;
  replication?: number;
  blockSize?: number;
  nameArgs?: string[];
  storageArgs?: string[];
  /** Serve HTTPS with this certificate and key (PEM files); every process trusts `ca`. */
  tls?: { cert: string; key: string; ca: string };
  /** The access key the cluster's clients (client(), cli()) send. */
  clientKey?: string;
}

/** Name server settings that make failure handling fast enough for tests. */
export const FAST_FAILURE = ['--dead-after-ms', '1500', '--replication-interval-ms', '100', '--block-report-ms', '1000', '--gc-interval-ms', '200'];

export class Cluster {
  name!: Proc;
  storages: Proc[] = [];
  private clients: SdfsClient[] = [];

  private constructor(readonly dataDir: string, readonly opts: Required<Omit<ClusterOptions, 'tls' | 'clientKey'>> & Pick<ClusterOptions, 'tls' | 'clientKey'>) {}

  /** The flags that make a server process serve HTTPS and trust the test's certificate authority. */
  private get tlsArgs(): string[] {
    const t = this.opts.tls;
    return t ? ['--tls-cert', t.cert, '--tls-key', t.key, '--tls-ca', t.ca] : [];
  }

  static async start(opts: ClusterOptions = {}): Promise<Cluster> {
    const dataDir = await mkdtemp(join(tmpdir(), 'sdfs-test-'));
    dataDirs.add(dataDir);
    const c = new Cluster(dataDir, {
      storages: opts.storages ?? 3, replication: opts.replication ?? 3, blockSize: opts.blockSize ?? 64 * 1024, nameArgs: opts.nameArgs ?? [],
      storageArgs: opts.storageArgs ?? ['--scrub-rate', '0'], tls: opts.tls, clientKey: opts.clientKey,
    });
    try {
      await c.startName(0);
      for (let i = 0; i < c.opts.storages; i++) await c.addStorage();
      await c.waitForLiveStorages(c.opts.storages);
    } catch (err) {
      await c.stop();
      throw err;
    }
    return c;
  }

  get url(): string {
    return `${this.opts.tls ? 'https' : 'http'}://127.0.0.1:${this.name.port}`;
  }

  /** The cluster secret, made by the name server in its data dir on its first start. */
  get secretFile(): string {
    return join(this.dataDir, 'name', 'cluster.secret');
  }

  /** A directory of the test's own (local files to upload, downloads), inside the cluster's dir: `stop` removes it too. */
  async scratchDir(name = 'local'): Promise<string> {
    const dir = join(this.dataDir, name);
    await mkdir(dir);
    return dir;
  }

  /** A block token signed with this cluster's secret, as the name server hands them out. */
  blockToken(blockId: string, op: BlockOp, ttlMs = 60_000): string {
    return issueBlockToken(deriveKeys(readFileSync(this.secretFile, 'utf8').trim()), blockId, op, ttlMs);
  }

  async startName(port: number): Promise<void> {
    this.name = await startProcess(['name', '--host', '127.0.0.1', '--port', String(port), '--data-dir', join(this.dataDir, 'name'),
      '--replication', String(this.opts.replication), '--block-size', String(this.opts.blockSize), '--heartbeat-ms', '500',
      '--no-broadcast', ...this.tlsArgs, ...this.opts.nameArgs]);
  }

  /** Kills the name server (kill -9 by default) and starts it again on the same port and data. */
  async restartName(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const port = this.name.port;
    await stopProcess(this.name, signal);
    await this.startName(port);
  }

  /** Starts one more storage server, in `storageDir(i)`; `env` is added to its environment. */
  async addStorage(env: NodeJS.ProcessEnv = {}): Promise<Proc> {
    const i = this.storages.length;
    const p = await this.startStorage(this.storageDir(i), 0, env);
    this.storages.push(p);
    return p;
  }

  /** The data dir of storage server i (from 0). */
  storageDir(i: number): string {
    return join(this.dataDir, `storage-${i + 1}`);
  }

  private startStorage(dir: string, port: number, env: NodeJS.ProcessEnv = {}): Promise<Proc> {
    return startProcess(['storage', '--name-server', this.url, '--host', '127.0.0.1', '--port', String(port), '--data-dir', dir, '--heartbeat-ms', '500',
      '--secret-file', this.secretFile, ...this.tlsArgs, ...this.opts.storageArgs], env);
  }

  async stopStorage(i: number, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await stopProcess(this.storages[i]!, signal);
  }

  /** Starts storage server i again, with its data dir and port. */
  async restartStorage(i: number, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const old = this.storages[i]!;
    await stopProcess(old, signal);
    this.storages[i] = await this.startStorage(this.storageDir(i), old.port);
  }

  async waitForLiveStorages(n: number): Promise<void> {
    const client = this.client();
    await waitFor(`${n} live storage servers`, async () => (await client.cluster()).storages.filter((s) => s.alive).length >= n);
  }

  /** The block ids in storage server i's data dir, read from its disk. */
  async blocksOnDisk(i: number): Promise<Set<string>> {
    return blockIdsOnDisk(this.storages[i]!.dataDir);
  }

  client(key = this.opts.clientKey): SdfsClient {
    const c = connect(this.url, { key, ca: this.opts.tls ? readFileSync(this.opts.tls.ca) : undefined });
    this.clients.push(c);
    return c;
  }

  /** Runs the sdfs command against this cluster and collects its output. */
  cli(args: string[], opts: { input?: string | Buffer; cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
    const auth = [...(this.opts.clientKey ? ['--key', this.opts.clientKey] : []), ...(this.opts.tls ? ['--tls-ca', this.opts.tls.ca] : [])];
    return runCli(['--name-server', this.url, '--log-file', join(this.dataDir, 'client.log'), ...auth, ...args], opts);
  }

  /**
   * Ends every process and removes the data dir; `keepData` leaves the dir to `removeData` (or to this
   * process's exit), for a caller that measures the disk next: removing many files slows the creation
   * of new ones for a while (ext4 without a journal).
   */
  async stop(opts: { keepData?: boolean } = {}): Promise<void> {
    await Promise.all(this.clients.map((c) => c.close().catch(() => {})));
    await Promise.all([...this.storages.map((s) => stopProcess(s)), this.name && stopProcess(this.name)]);
    if (!opts.keepData) await this.removeData();
  }

  async removeData(): Promise<void> {
    await rm(this.dataDir, { recursive: true, force: true });
    dataDirs.delete(this.dataDir);
  }
}

export function runCli(args: string[], opts: { input?: string | Buffer; cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((ok, fail) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', fail);
    // Decoded once at the end, so that a character split between two chunks stays whole.
    child.on('close', (code) => ok({ code: code ?? -1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }));
    child.stdin.end(opts.input ?? '');
  });
}
