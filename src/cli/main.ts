#!/usr/bin/env node
import { Command, Option } from 'commander';
import { basename } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { connect, type SdfsClient } from '../client/index.js';
import { NAME_DEFAULTS } from '../name/config.js';
import { SdfsError, toSdfsError } from '../protocol/errors.js';
import { MAX_BLOCK_SIZE, MIN_BLOCK_SIZE } from '../protocol/messages.js';
import { resolvePath } from '../protocol/paths.js';
import { STORAGE_DEFAULTS } from '../storage/config.js';
import { formatDf, formatInfo, formatListing } from './format.js';
import { OperationLog } from './oplog.js';
import { runNameServer, runStorageServer, runUp } from './servers.js';
import { runShell } from './shell.js';
import { download, upload } from './transfer.js';
import { parseIntArg, parseSize } from './units.js';

/**
 * The `sdfs` command. Configuration enters here (flags, then environment, then defaults) and is
 * passed down as typed objects; errors leave here, as one line on stderr and the exit code of
 * their stable code.
 */
const DEFAULT_NAME_SERVER = `http://127.0.0.1:${NAME_DEFAULTS.port}`;

const program = new Command('sdfs')
  .description('sdfs: a simple distributed file system. With no command, starts the interactive shell.')
  .addOption(new Option('-n, --name-server <url>', 'name server URL').env('SDFS_NAME_SERVER').default(DEFAULT_NAME_SERVER))
  .option('--log-file <path>', `client operation log (default ${OperationLog.defaultPath()})`)
  .showHelpAfterError()
  .exitOverride();

interface GlobalOpts { nameServer: string; logFile?: string }

let current: { client: SdfsClient; log: OperationLog; op: string; args: string[] } | undefined;

/** Runs a client command with a connection and an operation log entry. */
function clientAction<A extends unknown[]>(op: string, fn: (client: SdfsClient, ...args: A) => Promise<number | void>) {
  return async (...args: A): Promise<void> => {
    const g = program.opts<GlobalOpts>();
    const client = connect(g.nameServer);
    const log = new OperationLog(g.logFile ?? OperationLog.defaultPath());
    current = { client, log, op, args: args.filter((a): a is string => typeof a === 'string') };
    try {
      const code = await fn(client, ...args);
      log.record(client.url, op, current.args, 'ok');
      process.exitCode = code ?? 0;
    } finally {
      await client.close();
    }
  };
}

const sizeOpt = (v: string): number => {
  const n = parseSize(v);
  if (n < MIN_BLOCK_SIZE || n > MAX_BLOCK_SIZE) throw new SdfsError('EINVAL', `block size must be from ${MIN_BLOCK_SIZE} to ${MAX_BLOCK_SIZE} bytes`);
  return n;
};
const replicationOpt = (v: string): number => parseIntArg(v, 'replication', 1, 16);
const portOpt = (v: string): number => parseIntArg(v, 'port', 0, 65535);
const msOpt = (v: string): number => parseIntArg(v, 'interval', 1, 86_400_000);

program.command('name')
  .description('run a name server')
  .option('--host <addr>', 'address to listen on', NAME_DEFAULTS.host)
  .option('-p, --port <port>', 'port of the HTTP API', portOpt, NAME_DEFAULTS.port)
  .option('-d, --data-dir <dir>', 'directory of the namespace database', './.sdfs/name')
  .option('-r, --replication <n>', 'default replicas per block', replicationOpt, NAME_DEFAULTS.replication)
  .option('-b, --block-size <size>', 'default block size (e.g. 64M)', sizeOpt, NAME_DEFAULTS.blockSize)
  .option('--heartbeat-ms <ms>', 'storage heartbeat interval', msOpt, NAME_DEFAULTS.heartbeatMs)
  .option('--dead-after-ms <ms>', 'a storage server silent this long is dead', msOpt, NAME_DEFAULTS.deadAfterMs)
  .option('--gc-interval-ms <ms>', 'interval of the background cleaner', msOpt, NAME_DEFAULTS.gcIntervalMs)
  .option('--upload-expiry-ms <ms>', 'an upload idle this long is aborted', msOpt, NAME_DEFAULTS.uploadExpiryMs)
  .action(async (o: { host: string; port: number; dataDir: string; replication: number; blockSize: number;
    heartbeatMs: number; deadAfterMs: number; gcIntervalMs: number; uploadExpiryMs: number }) => {
    await runNameServer({ ...o });
  });

program.command('storage')
  .description('run a storage server (it reports to the name server given by --name-server)')
  .option('--host <addr>', 'address to listen on', STORAGE_DEFAULTS.host)
  .option('-p, --port <port>', 'port to listen on', portOpt, STORAGE_DEFAULTS.port)
  .option('--advertise-host <host>', 'host that clients use to reach this server (default: as the name server sees it)')
  .option('-d, --data-dir <dir>', 'directory of the block files', './.sdfs/storage')
  .option('--max-block-size <size>', 'largest block accepted', parseSize, STORAGE_DEFAULTS.maxBlockSize)
  .option('--heartbeat-ms <ms>', 'heartbeat interval until the name server sets one', msOpt, STORAGE_DEFAULTS.heartbeatMs)
  .action(async (o: { host: string; port: number; advertiseHost?: string; dataDir: string; maxBlockSize: number; heartbeatMs: number }) => {
    await runStorageServer({ ...o, nameServer: connect(program.opts<GlobalOpts>().nameServer).url });
  });

program.command('up')
  .description('start a local cluster: a name server and storage servers on 127.0.0.1 (Ctrl-C stops it)')
  .option('-d, --data-dir <dir>', 'data directory of the whole cluster', './.sdfs')
  .option('-p, --port <port>', 'name server port', portOpt, NAME_DEFAULTS.port)
  .option('-s, --storages <n>', 'number of storage servers', (v) => parseIntArg(v, 'storages', 1, 64), 3)
  .option('--storage-port <port>', 'port of the first storage server (the next ones follow; 0: any free)', portOpt, 3501)
  .option('-r, --replication <n>', 'default replicas per block', replicationOpt, NAME_DEFAULTS.replication)
  .option('-b, --block-size <size>', 'default block size (e.g. 64M)', sizeOpt, NAME_DEFAULTS.blockSize)
  .action(async (o: { dataDir: string; port: number; storages: number; storagePort: number; replication: number; blockSize: number }) => {
    process.exitCode = await runUp({ ...o, firstStoragePort: o.storagePort });
  });

program.command('shell', { isDefault: true })
  .description('the interactive shell (the default command)')
  .action(clientAction('shell', async (client) => {
    const g = program.opts<GlobalOpts>();
    return runShell({
      client, log: new OperationLog(g.logFile ?? OperationLog.defaultPath()),
      input: process.stdin, output: process.stdout, terminal: Boolean(process.stdin.isTTY && process.stdout.isTTY),
    });
  }));

program.command('put')
  .description('upload a local file (into REMOTE if it is a directory; default: / and the same name)')
  .argument('<local>').argument('[remote]')
  .option('-f, --force', 'replace an existing file')
  .option('-r, --replication <n>', 'replicas per block', replicationOpt)
  .option('-b, --block-size <size>', 'block size', sizeOpt)
  .action(clientAction('put', async (client, local: string, remote: string | undefined, o: { force?: boolean; replication?: number; blockSize?: number }) => {
    const st = await upload(client, local, remote ?? `/${basename(local)}`, '/', {
      overwrite: o.force, replication: o.replication, blockSize: o.blockSize, progress: true,
    });
    if (process.stderr.isTTY) process.stderr.write(`${st.path}: ${st.size} bytes in ${st.blocks} block(s)\n`);
  }));

program.command('get')
  .description('download a file (default: its name, in the current directory)')
  .argument('<remote>').argument('[local]')
  .action(clientAction('get', async (client, remote: string, local: string | undefined) => {
    await download(client, remote, local, '/', { progress: true });
  }));

program.command('cat')
  .description('write a file to standard output')
  .argument('<remote>')
  .action(clientAction('cat', async (client, remote: string) => {
    await pipeline(await client.createReadStream(resolvePath(remote)), process.stdout, { end: false });
  }));

program.command('ls')
  .description('list a directory')
  .argument('[path]', 'directory', '/')
  .option('-l, --long', 'sizes and dates')
  .option('--json', 'JSON output')
  .action(clientAction('ls', async (client, path: string, o: { long?: boolean; json?: boolean }) => {
    const st = await client.stat(path);
    const entries = st.type === 'dir' ? await client.readdir(path) : [st];
    if (o.json) console.log(JSON.stringify(entries, null, 2));
    else if (entries.length > 0) console.log(formatListing(entries, o.long ?? false));
  }));

program.command('stat').alias('info')
  .description('a file\'s size, blocks and the storage servers of each replica')
  .argument('<path>')
  .option('--json', 'JSON output')
  .action(clientAction('stat', async (client, path: string, o: { json?: boolean }) => {
    const st = await client.stat(path);
    const located = st.type === 'file' ? await client.blocks(path) : undefined;
    if (o.json) console.log(JSON.stringify({ ...st, blockList: located?.blocks ?? [] }, null, 2));
    else console.log(formatInfo(st, located));
  }));

program.command('mkdir')
  .description('make a directory')
  .argument('<path>')
  .option('-p, --parents', 'make parents as needed; no error if it exists')
  .action(clientAction('mkdir', async (client, path: string, o: { parents?: boolean }) => {
    await client.mkdir(path, { recursive: o.parents });
  }));

program.command('rm')
  .description('remove a file, or a directory with -r')
  .argument('<path>')
  .option('-r, --recursive', 'remove a directory and everything in it')
  .action(clientAction('rm', async (client, path: string, o: { recursive?: boolean }) => {
    const st = await client.stat(path);
    if (st.type === 'dir' && !o.recursive) {
      if ((await client.readdir(path)).length > 0) throw new SdfsError('ENOTEMPTY', `${st.path} is a directory and not empty: use rm -r`);
    }
    await client.rm(path, { recursive: o.recursive });
  }));

program.command('mv')
  .description('move or rename (into TARGET if it is a directory)')
  .argument('<source>').argument('<target>')
  .option('-f, --force', 'replace an existing file')
  .action(clientAction('mv', async (client, from: string, to: string, o: { force?: boolean }) => {
    await client.rename(from, to, { overwrite: o.force });
  }));

program.command('cp')
  .description('copy a file or directory (blocks are shared, no data moves)')
  .argument('<source>').argument('<target>')
  .option('-f, --force', 'replace an existing file')
  .action(clientAction('cp', async (client, from: string, to: string, o: { force?: boolean }) => {
    await client.copy(from, to, { overwrite: o.force });
  }));

program.command('df')
  .description('capacity and free space of each storage server')
  .option('--json', 'JSON output')
  .action(clientAction('df', async (client, o: { json?: boolean }) => {
    const c = await client.cluster();
    console.log(o.json ? JSON.stringify(c, null, 2) : formatDf(c));
  }));

async function main(): Promise<void> {
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (typeof code === 'string' && code.startsWith('commander.')) {
      // Help and version exit 0; usage errors were already printed by commander.
      process.exitCode = code === 'commander.helpDisplayed' || code === 'commander.version' || code === 'commander.help' ? 0 : 6;
      return;
    }
    const e = toSdfsError(err);
    if (current) current.log.record(current.client.url, current.op, current.args, e.code);
    process.stderr.write(`sdfs: ${e.message}\n`);
    process.exitCode = e.exitCode;
  }
}

await main();
