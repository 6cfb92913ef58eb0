#!/usr/bin/env node
import { Command, Option } from 'commander';
import { isIPv4 } from 'node:net';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { connect, type SdfsClient } from '../client/index.js';
import { CLASSIC_DEFAULTS, parseDataPorts, type ClassicConfig } from '../name/classic/config.js';
import { NAME_DEFAULTS } from '../name/config.js';
import { validateClusterName } from '../protocol/announcement.js';
import { SdfsError, toSdfsError } from '../protocol/errors.js';
import { MAX_BLOCK_SIZE, MIN_BLOCK_SIZE } from '../protocol/messages.js';
import { resolvePath } from '../protocol/paths.js';
import { STORAGE_DEFAULTS } from '../storage/config.js';
import { formatDf, formatFsck, formatInfo, formatListing, formatStatus } from './format.js';
import { OperationLog } from './oplog.js';
import { runShell } from './shell.js';
import { download, upload } from './transfer.js';
import { parseIntArg, parseSize } from './units.js';

/**
 * The `sdfs` command. Configuration enters here (flags, then environment, then defaults) and is
 * passed down as typed objects; errors leave here, as one line on stderr and the exit code of
 * their stable code.
 */
// fsync runs on libuv's thread pool: the default 4 threads would let only 4 block writes of a storage
// server wait on the disk at once, and the disk commits concurrent fsyncs together.
process.env.UV_THREADPOOL_SIZE ??= '16';

const DEFAULT_NAME_SERVER = `http://127.0.0.1:${NAME_DEFAULTS.port}`;

const program = new Command('sdfs')
  .description('sdfs: a simple distributed file system. With no command, starts the interactive shell.')
  .addOption(new Option('-n, --name-server <url>', 'name server URL').env('SDFS_NAME_SERVER').default(DEFAULT_NAME_SERVER))
  .option('--log-file <path>', `client operation log (default ${OperationLog.defaultPath()})`)
  .version((JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version)
  .exitOverride();

/** The servers' code (fastify, SQLite) loads only for the commands that run a server: client commands start faster. */
const servers = (): Promise<typeof import('./servers.js')> => import('./servers.js');

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
const clusterOpt = (v: string): string => validateClusterName(v);

/** The flags of `sdfs name` for the seed's classic protocol, as parsed, and the config they make. */
interface ClassicOpts {
  classic: boolean; classicDataPorts: { min: number; max: number }; classicIdleTimeoutMs: number;
  classicRequestTimeoutMs: number; classicDataTimeoutMs: number; classicMaxSessions: number;
}
const classicConfig = (o: ClassicOpts): ClassicConfig => ({
  enabled: o.classic, dataPortMin: o.classicDataPorts.min, dataPortMax: o.classicDataPorts.max, idleTimeoutMs: o.classicIdleTimeoutMs,
  requestTimeoutMs: o.classicRequestTimeoutMs, dataTimeoutMs: o.classicDataTimeoutMs, maxSessions: o.classicMaxSessions,
});
const udpPortOpt = (v: string): number => parseIntArg(v, 'discovery port', 1, 65535);
const ipv4Opt = (v: string): string => {
  if (!isIPv4(v)) throw new SdfsError('EINVAL', `not an IPv4 address: ${v}`);
  return v;
};

program.command('name')
  .description('run a name server')
  .option('--host <addr>', 'address to listen on', NAME_DEFAULTS.host)
  .option('-p, --port <port>', 'port of the HTTP API and of the classic protocol', portOpt, NAME_DEFAULTS.port)
  .option('--classic', 'serve the seed\'s classic protocol on the same port', true)
  .option('--no-classic', 'serve HTTP only')
  .addOption(new Option('--classic-data-ports <from-to>', 'data ports named to classic clients for read and write, within 1-9999')
    .argParser(parseDataPorts)
    .default({ min: CLASSIC_DEFAULTS.dataPortMin, max: CLASSIC_DEFAULTS.dataPortMax }, `${CLASSIC_DEFAULTS.dataPortMin}-${CLASSIC_DEFAULTS.dataPortMax}`))
  .option('--classic-idle-timeout-ms <ms>', 'a classic connection silent this long between requests is closed', msOpt, CLASSIC_DEFAULTS.idleTimeoutMs)
  .option('--classic-request-timeout-ms <ms>', 'a classic request begun must arrive in full within this', msOpt, CLASSIC_DEFAULTS.requestTimeoutMs)
  .option('--classic-data-timeout-ms <ms>', 'time to reach a classic client\'s data port; longest silence of a transfer', msOpt, CLASSIC_DEFAULTS.dataTimeoutMs)
  .option('--classic-max-sessions <n>', 'classic sessions at once', (v) => parseIntArg(v, 'classic sessions', 1, 100_000), CLASSIC_DEFAULTS.maxSessions)
  .option('-d, --data-dir <dir>', 'directory of the namespace database', './.sdfs/name')
  .option('-r, --replication <n>', 'default replicas per block', replicationOpt, NAME_DEFAULTS.replication)
  .option('-b, --block-size <size>', 'default block size (e.g. 64M)', sizeOpt, NAME_DEFAULTS.blockSize)
  .option('--heartbeat-ms <ms>', 'storage heartbeat interval', msOpt, NAME_DEFAULTS.heartbeatMs)
  .option('--dead-after-ms <ms>', 'a storage server silent this long is dead', msOpt, NAME_DEFAULTS.deadAfterMs)
  .option('--gc-interval-ms <ms>', 'interval of the background cleaner', msOpt, NAME_DEFAULTS.gcIntervalMs)
  .option('--upload-expiry-ms <ms>', 'an upload idle this long is aborted', msOpt, NAME_DEFAULTS.uploadExpiryMs)
  .option('--block-report-ms <ms>', 'how often storage servers send their full block list', msOpt, NAME_DEFAULTS.blockReportMs)
  .option('--replication-interval-ms <ms>', 'how often liveness and replication are checked', msOpt, NAME_DEFAULTS.replicationIntervalMs)
  .option('--max-copies <n>', 'block copies in flight at once when re-replicating', (v) => parseIntArg(v, 'max copies', 1, 1000), NAME_DEFAULTS.maxCopies)
  .option('--cluster <name>', 'cluster name, announced in the broadcasts', clusterOpt, NAME_DEFAULTS.cluster)
  .option('--no-broadcast', 'do not announce this name server on the LAN')
  .option('--broadcast-address <addr>', 'where the announcements go (e.g. a subnet\'s broadcast address, 10.0.0.255)', ipv4Opt, NAME_DEFAULTS.broadcastAddress)
  .option('--broadcast-interval-ms <ms>', 'interval between two announcements', msOpt, NAME_DEFAULTS.broadcastIntervalMs)
  .option('--discovery-port <port>', 'UDP port the announcements go to', udpPortOpt, NAME_DEFAULTS.discoveryPort)
  .action(async (o: { host: string; port: number; dataDir: string; replication: number; blockSize: number;
    heartbeatMs: number; deadAfterMs: number; gcIntervalMs: number; uploadExpiryMs: number;
    blockReportMs: number; replicationIntervalMs: number; maxCopies: number;
    cluster: string; broadcast: boolean; broadcastAddress: string; broadcastIntervalMs: number; discoveryPort: number }) => {
    const { classic, classicDataPorts, classicIdleTimeoutMs, classicRequestTimeoutMs, classicDataTimeoutMs, classicMaxSessions, ...rest } = o as typeof o & ClassicOpts;
    await (await servers()).runNameServer({ ...rest, classic: classicConfig({
      classic, classicDataPorts, classicIdleTimeoutMs, classicRequestTimeoutMs, classicDataTimeoutMs, classicMaxSessions }) });
  });

program.command('storage')
  .description('run a storage server (it reports to the name server given by --name-server or SDFS_NAME_SERVER; '
    + 'with neither, to the first name server of its cluster heard on the LAN)')
  .option('--host <addr>', 'address to listen on', STORAGE_DEFAULTS.host)
  .option('-p, --port <port>', 'port to listen on', portOpt, STORAGE_DEFAULTS.port)
  .option('--advertise-host <host>', 'host that clients use to reach this server (default: as the name server sees it)')
  .option('-d, --data-dir <dir>', 'directory of the block files', './.sdfs/storage')
  .option('--max-block-size <size>', 'largest block accepted', parseSize, STORAGE_DEFAULTS.maxBlockSize)
  .option('--heartbeat-ms <ms>', 'heartbeat interval until the name server sets one', msOpt, STORAGE_DEFAULTS.heartbeatMs)
  .option('--scrub-rate <size>', 'bytes per second the background scrub reads (0: off)', parseSize, STORAGE_DEFAULTS.scrubBytesPerSecond)
  .option('--scrub-interval-ms <ms>', 'pause between two scrub passes', msOpt, STORAGE_DEFAULTS.scrubPassIntervalMs)
  .option('--cluster <name>', 'cluster to join when the name server is found by broadcast', clusterOpt, STORAGE_DEFAULTS.cluster)
  .option('--discovery-port <port>', 'UDP port to listen on for name server broadcasts', udpPortOpt, STORAGE_DEFAULTS.discoveryPort)
  .action(async (o: { host: string; port: number; advertiseHost?: string; dataDir: string; maxBlockSize: number; heartbeatMs: number;
    scrubRate: number; scrubIntervalMs: number; cluster: string; discoveryPort: number }) => {
    // --name-server has a default for the clients; a storage server takes it only when it was given
    // (flag or SDFS_NAME_SERVER), and otherwise finds its name server by broadcast.
    const source = program.getOptionValueSource('nameServer');
    const given = source !== undefined && source !== 'default';
    await (await servers()).runStorageServer({
      host: o.host, port: o.port, advertiseHost: o.advertiseHost, dataDir: o.dataDir, maxBlockSize: o.maxBlockSize, heartbeatMs: o.heartbeatMs,
      scrubBytesPerSecond: o.scrubRate, scrubPassIntervalMs: o.scrubIntervalMs,
      nameServer: given ? connect(program.opts<GlobalOpts>().nameServer).url : undefined,
      cluster: o.cluster, discoveryPort: o.discoveryPort,
    });
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
    process.exitCode = await (await servers()).runUp({ ...o, firstStoragePort: o.storagePort });
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

program.command('status')
  .description('the cluster: storage servers alive and dead, space, files, under-replicated and missing blocks')
  .option('--json', 'JSON output')
  .action(clientAction('status', async (client, o: { json?: boolean }) => {
    const st = await client.status();
    console.log(o.json ? JSON.stringify(st, null, 2) : formatStatus(st));
  }));

program.command('fsck')
  .description('check the health of every file under a path; exits non-zero if any file lost data or is under-replicated')
  .argument('[path]', 'file or directory', '/')
  .option('--json', 'JSON output')
  .action(clientAction('fsck', async (client, path: string, o: { json?: boolean }) => {
    const r = await client.fsck(path);
    console.log(o.json ? JSON.stringify(r, null, 2) : formatFsck(r));
    if (r.healthy) return 0;
    return r.files.some((f) => f.status === 'missing-blocks') ? 12 : 13;
  }));

program.command('decommission')
  .description('drain a storage server (id, id prefix or address): its blocks are copied elsewhere so that it can be stopped without loss')
  .argument('<storage>')
  .option('--cancel', 'stop draining; the server takes new blocks again')
  .option('--wait', 'wait until the server is drained')
  .action(clientAction('decommission', async (client, storage: string, o: { cancel?: boolean; wait?: boolean }) => {
    const s = await client.decommission(storage, { cancel: o.cancel });
    console.log(o.cancel ? `${s.id} (${s.addr}) is back in service` : `${s.id} (${s.addr}) is draining`);
    if (!o.wait || o.cancel) return;
    for (;;) {
      const st = (await client.status()).storages.find((x) => x.id === s.id);
      if (!st || st.drained) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    console.log(`${s.id} (${s.addr}) is drained: it can be stopped`);
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
