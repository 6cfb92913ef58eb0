#!/usr/bin/env node
import { Command, Option } from 'commander';
import { isIPv4 } from 'node:net';
import { readFileSync } from 'node:fs';
import { connect, type SdfsClient } from '../client/index.js';
import { AccessKeys } from '../name/access-keys.js';
import { CLASSIC_DEFAULTS, parseClassicListen, parseDataPorts, type ClassicConfig, type ClassicListen } from '../name/classic/config.js';
import { NAME_DEFAULTS } from '../name/config.js';
import { validateClusterName } from '../protocol/announcement.js';
import { validateSecret, waitForSecretFile } from '../protocol/cluster-secret.js';
import { SdfsError, toSdfsError } from '../protocol/errors.js';
import type { TlsFiles } from '../protocol/http-server.js';
import { MAX_BLOCK_SIZE, MIN_BLOCK_SIZE } from '../protocol/messages.js';
import { resolvePath } from '../protocol/paths.js';
import { STORAGE_DEFAULTS } from '../storage/config.js';
import { formatDf, formatFsck, formatInfo, formatListing, formatStatus } from './format.js';
import { OperationLog } from './oplog.js';
import { runShell } from './shell.js';
import { describe, download, STDIO_NAME, upload } from './transfer.js';
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
  .addOption(envOption('-k, --key <key>', 'access key, when the name server asks for one', 'SDFS_KEY'))
  .addOption(envOption('--key-file <path>', 'file holding the access key', 'SDFS_KEY_FILE'))
  .addOption(envOption('--tls-ca <path>', 'certificate authority (PEM) to trust besides the system\'s, for self-signed certificates', 'SDFS_TLS_CA'))
  .option('--log-file <path>', `client operation log (default ${OperationLog.defaultPath()})`)
  .version((JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version)
  .exitOverride();

/** The servers' code (fastify, SQLite) loads only for the commands that run a server: client commands start faster. */
const servers = (): Promise<typeof import('./servers.js')> => import('./servers.js');

interface GlobalOpts { nameServer: string; logFile?: string; key?: string; keyFile?: string; tlsCa?: string }

/** The client's connection, with the access key and certificate authority given. */
function connectGiven(): SdfsClient {
  const g = program.opts<GlobalOpts>();
  const key = g.key ?? (g.keyFile === undefined ? undefined : readGiven(g.keyFile, '--key-file').toString('utf8').trim());
  return connect(g.nameServer, { key, ca: tlsCa() });
}

let current: { client: SdfsClient; log: OperationLog; op: string; args: string[] } | undefined;

/** Runs a client command with a connection and an operation log entry. */
function clientAction<A extends unknown[]>(op: string, fn: (client: SdfsClient, ...args: A) => Promise<number | void>) {
  return async (...args: A): Promise<void> => {
    const g = program.opts<GlobalOpts>();
    const client = connectGiven();
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
  classic?: ClassicListen | false; classicDataPorts: { min: number; max: number }; classicIdleTimeoutMs: number;
  classicRequestTimeoutMs: number; classicDataTimeoutMs: number; classicMaxSessions: number;
}
/**
 * Where the classic protocol listens. It has no authentication, so when clients need access keys it is
 * off unless asked for; with TLS it cannot share the port (its clients speak plain TCP).
 */
function classicConfig(o: ClassicOpts, keysRequired: boolean, tls: boolean): ClassicConfig {
  const listen: ClassicListen = o.classic === false ? 'off' : o.classic ?? (keysRequired || tls ? 'off' : 'shared');
  if (listen === 'shared' && tls) throw new SdfsError('EINVAL', 'with TLS the classic protocol needs an address of its own: --classic HOST:PORT (or off)');
  return {
    listen, dataPortMin: o.classicDataPorts.min, dataPortMax: o.classicDataPorts.max, idleTimeoutMs: o.classicIdleTimeoutMs,
    requestTimeoutMs: o.classicRequestTimeoutMs, dataTimeoutMs: o.classicDataTimeoutMs, maxSessions: o.classicMaxSessions,
  };
}
const udpPortOpt = (v: string): number => parseIntArg(v, 'discovery port', 1, 65535);
const ipv4Opt = (v: string): string => {
  if (!isIPv4(v)) throw new SdfsError('EINVAL', `not an IPv4 address: ${v}`);
  return v;
};

/** An option that may also come from an environment variable (for containers and service managers). */
function envOption(flags: string, description: string, env: string): Option {
  return new Option(flags, description).env(env);
}

/** Reads a PEM or secret file given by a flag, with an error that names the flag. */
function readGiven(path: string, flag: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new SdfsError('EINVAL', `${flag} ${path}: ${(err as Error).message}`);
  }
}

interface TlsOpts { tlsCert?: string; tlsKey?: string }
function tlsFiles(o: TlsOpts): TlsFiles | undefined {
  if (o.tlsCert === undefined && o.tlsKey === undefined) return undefined;
  if (o.tlsCert === undefined || o.tlsKey === undefined) throw new SdfsError('EINVAL', '--tls-cert and --tls-key go together');
  return { cert: readGiven(o.tlsCert, '--tls-cert'), key: readGiven(o.tlsKey, '--tls-key') };
}
const tlsCa = (): Buffer | undefined => {
  const ca = program.opts<GlobalOpts>().tlsCa;
  return ca === undefined ? undefined : readGiven(ca, '--tls-ca');
};

program.command('name')
  .description('run a name server')
  .addOption(envOption('--host <addr>', 'address to listen on', 'SDFS_HOST').default(NAME_DEFAULTS.host))
  .addOption(envOption('-p, --port <port>', 'port of the HTTP API (and of the classic protocol when it shares it)', 'SDFS_PORT').argParser(portOpt).default(NAME_DEFAULTS.port))
  .addOption(envOption('--classic <where>', 'the seed\'s classic protocol (no authentication): shared (on --port), off, or HOST:PORT; '
    + 'default shared, or off when access keys or TLS are configured', 'SDFS_CLASSIC').argParser(parseClassicListen))
  .option('--no-classic', 'serve HTTP only (same as --classic off)')
  .addOption(new Option('--classic-data-ports <from-to>', 'data ports named to classic clients for read and write, within 1-9999')
    .argParser(parseDataPorts)
    .default({ min: CLASSIC_DEFAULTS.dataPortMin, max: CLASSIC_DEFAULTS.dataPortMax }, `${CLASSIC_DEFAULTS.dataPortMin}-${CLASSIC_DEFAULTS.dataPortMax}`))
  .option('--classic-idle-timeout-ms <ms>', 'a classic connection silent this long between requests is closed', msOpt, CLASSIC_DEFAULTS.idleTimeoutMs)
  .option('--classic-request-timeout-ms <ms>', 'a classic request begun must arrive in full within this', msOpt, CLASSIC_DEFAULTS.requestTimeoutMs)
  .option('--classic-data-timeout-ms <ms>', 'time to reach a classic client\'s data port; longest silence of a transfer', msOpt, CLASSIC_DEFAULTS.dataTimeoutMs)
  .option('--classic-max-sessions <n>', 'classic sessions at once', (v) => parseIntArg(v, 'classic sessions', 1, 100_000), CLASSIC_DEFAULTS.maxSessions)
  .addOption(envOption('-d, --data-dir <dir>', 'directory of the namespace database (and of the cluster secret)', 'SDFS_DATA_DIR').default('./.sdfs/name'))
  .addOption(envOption('-r, --replication <n>', 'default replicas per block', 'SDFS_REPLICATION').argParser(replicationOpt).default(NAME_DEFAULTS.replication))
  .addOption(envOption('-b, --block-size <size>', 'default block size (e.g. 64M)', 'SDFS_BLOCK_SIZE').argParser(sizeOpt).default(NAME_DEFAULTS.blockSize))
  .option('--heartbeat-ms <ms>', 'storage heartbeat interval', msOpt, NAME_DEFAULTS.heartbeatMs)
  .option('--dead-after-ms <ms>', 'a storage server silent this long is dead', msOpt, NAME_DEFAULTS.deadAfterMs)
  .option('--gc-interval-ms <ms>', 'interval of the background cleaner', msOpt, NAME_DEFAULTS.gcIntervalMs)
  .option('--upload-expiry-ms <ms>', 'an upload idle this long is aborted', msOpt, NAME_DEFAULTS.uploadExpiryMs)
  .option('--max-uploads <n>', 'uploads in progress at most', (v) => parseIntArg(v, 'max uploads', 1, 10_000_000), NAME_DEFAULTS.maxUploads)
  .option('--block-report-ms <ms>', 'how often storage servers send their full block list', msOpt, NAME_DEFAULTS.blockReportMs)
  .option('--replication-interval-ms <ms>', 'how often liveness and replication are checked', msOpt, NAME_DEFAULTS.replicationIntervalMs)
  .option('--max-copies <n>', 'block copies in flight at once when re-replicating', (v) => parseIntArg(v, 'max copies', 1, 1000), NAME_DEFAULTS.maxCopies)
  .addOption(envOption('--cluster <name>', 'cluster name, announced in the broadcasts', 'SDFS_CLUSTER').argParser(clusterOpt).default(NAME_DEFAULTS.cluster))
  .option('--no-broadcast', 'do not announce this name server on the LAN')
  .addOption(envOption('--broadcast-address <addr>', 'where the announcements go (e.g. a subnet\'s broadcast address, 10.0.0.255)', 'SDFS_BROADCAST_ADDRESS')
    .argParser(ipv4Opt).default(NAME_DEFAULTS.broadcastAddress))
  .option('--broadcast-interval-ms <ms>', 'interval between two announcements', msOpt, NAME_DEFAULTS.broadcastIntervalMs)
  .option('--discovery-port <port>', 'UDP port the announcements go to', udpPortOpt, NAME_DEFAULTS.discoveryPort)
  .addOption(envOption('--secret-file <path>', 'the file of the cluster secret, made there on the first start (default: <data-dir>/cluster.secret)', 'SDFS_SECRET_FILE'))
  .option('--block-token-ttl-ms <ms>', 'how long a block token handed to a client stays valid', msOpt, NAME_DEFAULTS.blockTokenTtlMs)
  .addOption(envOption('--access-keys-file <path>', 'clients\' access keys, a line each: "rw KEY" or "ro KEY"; with none, clients need no key', 'SDFS_ACCESS_KEYS_FILE'))
  .addOption(envOption('--access-keys <list>', 'access keys as rw:KEY,ro:KEY (prefer the file or the variable: flags show in ps)', 'SDFS_ACCESS_KEYS'))
  .addOption(envOption('--tls-cert <path>', 'certificate (PEM): serve HTTPS', 'SDFS_TLS_CERT'))
  .addOption(envOption('--tls-key <path>', 'private key (PEM) of --tls-cert', 'SDFS_TLS_KEY'))
  .action(async (o: ClassicOpts & TlsOpts & { host: string; port: number; dataDir: string; replication: number; blockSize: number;
    heartbeatMs: number; deadAfterMs: number; gcIntervalMs: number; uploadExpiryMs: number; maxUploads: number;
    blockReportMs: number; replicationIntervalMs: number; maxCopies: number;
    cluster: string; broadcast: boolean; broadcastAddress: string; broadcastIntervalMs: number; discoveryPort: number;
    secretFile?: string; blockTokenTtlMs: number; accessKeysFile?: string; accessKeys?: string }) => {
    // Read again on SIGHUP, so that a key is added or revoked without a restart.
    const loadAccessKeys = (): AccessKeys => {
      const keys = new AccessKeys();
      if (o.accessKeysFile !== undefined) keys.addFile(o.accessKeysFile);
      if (o.accessKeys !== undefined) keys.addList(o.accessKeys, '--access-keys');
      return keys;
    };
    const accessKeys = loadAccessKeys();
    const tls = tlsFiles(o);
    await (await servers()).runNameServer({
      host: o.host, port: o.port, dataDir: o.dataDir, replication: o.replication, blockSize: o.blockSize,
      heartbeatMs: o.heartbeatMs, deadAfterMs: o.deadAfterMs, gcIntervalMs: o.gcIntervalMs, uploadExpiryMs: o.uploadExpiryMs, maxUploads: o.maxUploads,
      blockReportMs: o.blockReportMs, replicationIntervalMs: o.replicationIntervalMs, maxCopies: o.maxCopies,
      cluster: o.cluster, broadcast: o.broadcast, broadcastAddress: o.broadcastAddress, broadcastIntervalMs: o.broadcastIntervalMs,
      discoveryPort: o.discoveryPort, classic: classicConfig(o, accessKeys.required, tls !== undefined),
      secretFile: o.secretFile,
      blockTokenTtlMs: o.blockTokenTtlMs, accessKeys, tls, tlsCa: tlsCa(),
    }, loadAccessKeys);
  });

program.command('storage')
  .description('run a storage server (it reports to the name server given by --name-server or SDFS_NAME_SERVER; '
    + 'with neither, to the first name server of its cluster heard on the LAN)')
  .addOption(envOption('--host <addr>', 'address to listen on', 'SDFS_HOST').default(STORAGE_DEFAULTS.host))
  .addOption(envOption('-p, --port <port>', 'port to listen on', 'SDFS_PORT').argParser(portOpt).default(STORAGE_DEFAULTS.port))
  .addOption(envOption('--advertise-host <host>', 'host that clients use to reach this server (default: as the name server sees it)', 'SDFS_ADVERTISE_HOST'))
  .addOption(envOption('-d, --data-dir <dir>', 'directory of the block files', 'SDFS_DATA_DIR').default('./.sdfs/storage'))
  .option('--max-block-size <size>', 'largest block accepted', parseSize, STORAGE_DEFAULTS.maxBlockSize)
  .option('--heartbeat-ms <ms>', 'heartbeat interval until the name server sets one', msOpt, STORAGE_DEFAULTS.heartbeatMs)
  .option('--scrub-rate <size>', 'bytes per second the background scrub reads (0: off)', parseSize, STORAGE_DEFAULTS.scrubBytesPerSecond)
  .option('--scrub-interval-ms <ms>', 'pause between two scrub passes', msOpt, STORAGE_DEFAULTS.scrubPassIntervalMs)
  .addOption(envOption('--cluster <name>', 'cluster to join when the name server is found by broadcast', 'SDFS_CLUSTER').argParser(clusterOpt).default(STORAGE_DEFAULTS.cluster))
  .option('--discovery-port <port>', 'UDP port to listen on for name server broadcasts', udpPortOpt, STORAGE_DEFAULTS.discoveryPort)
  .addOption(envOption('--secret-file <path>', 'file of the cluster secret (the name server\'s <data-dir>/cluster.secret); waits for it to exist', 'SDFS_SECRET_FILE'))
  .addOption(envOption('--secret <secret>', 'the cluster secret itself (prefer the file or the variable: flags show in ps)', 'SDFS_SECRET'))
  .addOption(envOption('--tls-cert <path>', 'certificate (PEM): serve HTTPS', 'SDFS_TLS_CERT'))
  .addOption(envOption('--tls-key <path>', 'private key (PEM) of --tls-cert', 'SDFS_TLS_KEY'))
  .action(async (o: TlsOpts & { host: string; port: number; advertiseHost?: string; dataDir: string; maxBlockSize: number; heartbeatMs: number;
    scrubRate: number; scrubIntervalMs: number; cluster: string; discoveryPort: number; secretFile?: string; secret?: string }) => {
    // --name-server has a default for the clients; a storage server takes it only when it was given
    // (flag or SDFS_NAME_SERVER), and otherwise finds its name server by broadcast.
    const source = program.getOptionValueSource('nameServer');
    const given = source !== undefined && source !== 'default';
    let secret: string;
    if (o.secret !== undefined) secret = validateSecret(o.secret, '--secret');
    else if (o.secretFile !== undefined) {
      // Stopped (a container's SIGTERM) while it waits for its name server to make the file: exit 0.
      const stop = new AbortController();
      const onSignal = (): void => stop.abort();
      process.once('SIGTERM', onSignal);
      process.once('SIGINT', onSignal);
      try {
        secret = await waitForSecretFile(o.secretFile, stop.signal);
      } catch (err) {
        if (stop.signal.aborted) return;
        throw err;
      } finally {
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
      }
    } else throw new SdfsError('EINVAL', 'a storage server needs the cluster secret to join: --secret-file PATH (the name server\'s '
      + '<data-dir>/cluster.secret), SDFS_SECRET_FILE, or SDFS_SECRET');
    await (await servers()).runStorageServer({
      host: o.host, port: o.port, advertiseHost: o.advertiseHost, dataDir: o.dataDir, maxBlockSize: o.maxBlockSize, heartbeatMs: o.heartbeatMs,
      scrubBytesPerSecond: o.scrubRate, scrubPassIntervalMs: o.scrubIntervalMs,
      nameServer: given ? connect(program.opts<GlobalOpts>().nameServer).url : undefined,
      cluster: o.cluster, discoveryPort: o.discoveryPort, secret, tls: tlsFiles(o), tlsCa: tlsCa(),
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
  .description('upload a local file, or a directory tree with -R (into REMOTE if it is a directory; default: / and the same name); `-` reads standard input into the file REMOTE')
  .argument('<local>').argument('[remote]')
  .option('-f, --force', 'replace an existing file')
  .option('-r, --replication <n>', 'replicas per block', replicationOpt)
  .option('-b, --block-size <size>', 'block size', sizeOpt)
  .option('-R, --recursive', 'upload a directory tree')
  .action(clientAction('put', async (client, local: string, remote: string | undefined,
    o: { force?: boolean; replication?: number; blockSize?: number; recursive?: boolean }) => {
    const st = await upload(client, local, remote, '/', {
      overwrite: o.force, replication: o.replication, blockSize: o.blockSize, progress: true, recursive: o.recursive,
    });
    if (process.stderr.isTTY) process.stderr.write(`${st.path}: ${describe(st)} in ${st.blocks} block(s)\n`);
  }));

program.command('get')
  .description('download a file, or a directory tree with -R (into LOCAL if it is a directory; default: its name, in the current directory); `-` writes a file to standard output')
  .argument('<remote>').argument('[local]')
  .option('-R, --recursive', 'download a directory tree')
  .action(clientAction('get', async (client, remote: string, local: string | undefined, o: { recursive?: boolean }) => {
    if (local === STDIO_NAME) await toStdout(client, remote);
    else await download(client, remote, local, '/', { progress: true, recursive: o.recursive });
  }));

program.command('cat')
  .description('write a file to standard output')
  .argument('<remote>')
  .action(clientAction('cat', toStdout));

/** Each of the reader's buffers is written out before it is filled again. */
async function toStdout(client: SdfsClient, remote: string): Promise<void> {
  const reader = await client.open(resolvePath(remote));
  for await (const view of reader.views()) {
    await new Promise<void>((resolve, reject) => process.stdout.write(view, (err) => (err ? reject(err) : resolve())));
  }
}

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

program.command('forget')
  .description('forget a dead storage server for good (id, id prefix or address): its disk is gone; the replicas it held are made again from the others')
  .argument('<storage>')
  .option('--force', 'also if some blocks had their only replica there (their files have lost data)')
  .action(clientAction('forget', async (client, storage: string, o: { force?: boolean }) => {
    const r = await client.forget(storage, { force: o.force });
    console.log(`${r.id} (${r.addr}) is forgotten: ${r.replicas} replica(s) it held will be made again from the others`
      + (r.onlyCopies > 0 ? `; ${r.onlyCopies} block(s) had no other replica and are lost (sdfs fsck lists their files)` : ''));
  }));

/** The exit status of a tool killed by SIGPIPE (128 + 13), as a shell reports the `cat` of `cat f | head`. */
const EXIT_BROKEN_PIPE = 141;

async function main(): Promise<void> {
  // Node ignores SIGPIPE, so a reader of our output that went away (`sdfs cat f | head`) comes as an
  // EPIPE error on stdout: stop at once and without a word, as a tool killed by SIGPIPE does.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(EXIT_BROKEN_PIPE);
    process.stderr.write(`sdfs: standard output: ${err.message}\n`);
    process.exit(toSdfsError(err).exitCode);
  });
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
