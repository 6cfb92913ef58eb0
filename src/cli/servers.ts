import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { resolve, join } from 'node:path';
import type { AccessKeys } from '../name/access-keys.js';
import { NAME_DEFAULTS, type NameConfig } from '../name/config.js';
import { startNameServer } from '../name/server.js';
import { STORAGE_DEFAULTS, type StorageConfig } from '../storage/config.js';
import { startStorageServer } from '../storage/server.js';
import { SECRET_FILE } from '../protocol/cluster-secret.js';

/** `sdfs name`, `sdfs storage` and `sdfs up`: the server processes and the local cluster. */

/**
 * Runs until SIGINT or SIGTERM, then stops cleanly. Prints one JSON line when listening. On SIGHUP it
 * reads the access keys again (`loadAccessKeys`): a key is added or revoked without a restart.
 */
export async function runNameServer(config: NameConfig, loadAccessKeys?: () => AccessKeys): Promise<void> {
  const server = await startNameServer(config);
  if (loadAccessKeys) process.on('SIGHUP', () => reloadAccessKeys(config.accessKeys, loadAccessKeys));
  console.log(JSON.stringify({ event: 'listening', role: 'name', port: server.port, url: server.url, classicPort: server.classicPort, dataDir: config.dataDir }));
  // A name server whose database log cannot be synced exits (non-zero), to be restarted and recover.
  const failure = await Promise.race([untilSignal().then(() => undefined), server.failed]);
  await server.stop();
  if (failure) throw failure;
}

function reloadAccessKeys(current: AccessKeys, load: () => AccessKeys): void {
  let fresh: AccessKeys;
  try {
    fresh = load();
  } catch (err) {
    console.error(`name server: access keys not reloaded, the old ones stay: ${(err as Error).message}`);
    return;
  }
  // With keys or without is decided at start (the classic protocol, for one, is off with keys).
  if (fresh.required !== current.required) {
    console.error(`name server: access keys not reloaded: going ${fresh.required ? 'from no keys to keys' : 'from keys to none'} needs a restart`);
    return;
  }
  current.replaceWith(fresh);
  console.log(JSON.stringify({ event: 'access-keys', keys: fresh.size }));
}

export async function runStorageServer(config: StorageConfig): Promise<void> {
  const server = await startStorageServer(config);
  console.log(JSON.stringify({ event: 'listening', role: 'storage', id: server.id, port: server.port, dataDir: config.dataDir }));
  await untilSignal();
  await server.stop();
}

function untilSignal(signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM']): Promise<void> {
  return new Promise((done) => {
    const stop = (): void => {
      for (const s of signals) process.off(s, stop);
      done();
    };
    for (const s of signals) process.on(s, stop);
  });
}

export interface UpOptions {
  dataDir: string;
  port: number;
  storages: number;
  firstStoragePort: number;
  replication: number;
  blockSize: number;
}

/**
 * Starts a name server and N storage servers on 127.0.0.1, each its own process under one data dir,
 * and stops them all on Ctrl-C or SIGTERM. Started again on the same data dir, it finds every file.
 */
export async function runUp(o: UpOptions): Promise<number> {
  const dataDir = resolve(o.dataDir);
  const self = process.argv[1]!;
  const children: ChildProcess[] = [];
  let stopping = false;
  const stopAll = async (): Promise<void> => {
    stopping = true;
    await Promise.all(children.map((c) => new Promise<void>((done) => {
      if (c.exitCode !== null || c.signalCode !== null) return done();
      c.once('exit', () => done());
      c.kill('SIGTERM');
    })));
  };

  const start = (args: string[]): Promise<{ port: number }> => new Promise((ok, fail) => {
    const child = spawn(process.execPath, [self, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    const lines = createInterface({ input: child.stdout! });
    let ready = false;
    lines.on('line', (line) => {
      try {
        const msg = JSON.parse(line) as { event?: string; port?: number };
        if (msg.event === 'listening' && !ready) {
          ready = true;
          ok({ port: msg.port! });
        }
      } catch {
        process.stdout.write(line + '\n');
      }
    });
    child.once('exit', (code, signal) => {
      if (!ready) fail(new Error(`sdfs ${args[0]} exited (${signal ?? code}) before it was ready`));
      else if (!stopping) {
        console.error(`sdfs up: a ${args[0]} server exited (${signal ?? code}); stopping the cluster`);
        void stopAll().then(() => process.exit(1));
      }
    });
  });

  try {
    // Its storage servers are given the name server's address, and it is reachable on 127.0.0.1 only:
    // it announces nothing, so that no storage server on the LAN tries to join it.
    const name = await start(['name', '--host', '127.0.0.1', '--port', String(o.port), '--data-dir', join(dataDir, 'name'),
      '--replication', String(o.replication), '--block-size', String(o.blockSize), '--no-broadcast']);
    const url = `http://127.0.0.1:${name.port}`;
    const storagePorts = await Promise.all(Array.from({ length: o.storages }, (_, i) =>
      start(['storage', '--name-server', url, '--host', '127.0.0.1', '--port', String(o.firstStoragePort === 0 ? 0 : o.firstStoragePort + i),
        '--data-dir', join(dataDir, `storage-${i + 1}`), '--secret-file', join(dataDir, 'name', SECRET_FILE)])));
    console.log([
      `sdfs is up: a name server and ${o.storages} storage servers, data under ${dataDir}`,
      `  name server     ${url}`,
      ...storagePorts.map((s, i) => `  storage server  http://127.0.0.1:${s.port}  (${join(dataDir, `storage-${i + 1}`)})`),
      '',
      'Use it from another terminal:',
      `  export SDFS_NAME_SERVER=${url}`,
      '  npx sdfs                  # the interactive shell',
      '  npx sdfs put ./file /     # upload; then: npx sdfs ls /, npx sdfs get /file',
      '',
      'Press Ctrl-C to stop the cluster.',
    ].join('\n'));
  } catch (err) {
    await stopAll();
    throw err;
  }
  // Also when its terminal closes (SIGHUP): the name server takes SIGHUP as "read the keys again",
  // so it would outlive the cluster if this process did not stop it.
  await untilSignal(['SIGINT', 'SIGTERM', 'SIGHUP']);
  console.log('stopping sdfs...');
  await stopAll();
  return 0;
}

export const DEFAULTS = { name: NAME_DEFAULTS, storage: STORAGE_DEFAULTS };
