/**
 * LAN discovery (issue 3, part 1): a name server announces itself by UDP broadcast, and a storage
 * server started with no name server address joins the first one of its cluster that it hears.
 *
 * The unit tests use loopback only. The integration test builds hosts out of network namespaces:
 * one namespace holds the test's own bridge, and the name server, each storage server and the
 * client have a namespace of their own, joined to the bridge by a veth pair, with addresses in
 * 10.213.X.0/24 and no route out. Nothing is created in the root namespace, and every namespace
 * (and with it every veth) is deleted in `after`. It needs root and iproute2: in CI (CI=true) it
 * fails when `ip netns` cannot be used; elsewhere it is skipped.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Broadcaster } from '../src/name/broadcaster.js';
import {
  ANNOUNCEMENT_TYPE, decodeAnnouncement, encodeAnnouncement, MAX_ANNOUNCEMENT_BYTES,
} from '../src/protocol/announcement.js';
import { Agent } from 'undici';
import { createServer, request as httpRequest } from 'node:http';
import { clusterDispatcher, deriveKeys, signAnnouncement } from '../src/protocol/auth.js';
import { SdfsError } from '../src/protocol/errors.js';
import { Discovery, type DiscoveredNameServer } from '../src/storage/discovery.js';
import { confirmNameServer } from '../src/storage/name-proof.js';
import { CLI, Cluster, waitFor } from './helpers/cluster.js';
import { sha256 } from './helpers/data.js';

const valid = { type: ANNOUNCEMENT_TYPE, version: 1, cluster: 'sdfs', scheme: 'http', port: 6235 };
const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));

/** Datagrams that are not a valid announcement, each with what it tests. */
const JUNK: [string, Buffer][] = [
  ['empty', Buffer.alloc(0)],
  ['not JSON', Buffer.from('hello')],
  ['invalid UTF-8', Buffer.from([0x7b, 0xff, 0xfe, 0x7d])],
  ['too large', json({ ...valid, pad: 'x'.repeat(MAX_ANNOUNCEMENT_BYTES) })],
  ['an array', json([valid])],
  ['null', Buffer.from('null')],
  ['a number', Buffer.from('6235')],
  ['another type', json({ ...valid, type: 'other' })],
  ['no type', json({ ...valid, type: undefined })],
  ['version 2', json({ ...valid, version: 2 })],
  ['version as a string', json({ ...valid, version: '1' })],
  ['no cluster', json({ ...valid, cluster: undefined })],
  ['empty cluster', json({ ...valid, cluster: '' })],
  ['cluster with a space', json({ ...valid, cluster: 'a b' })],
  ['cluster too long', json({ ...valid, cluster: 'c'.repeat(65) })],
  ['cluster not a string', json({ ...valid, cluster: 7 })],
  ['scheme ftp', json({ ...valid, scheme: 'ftp' })],
  ['port 0', json({ ...valid, port: 0 })],
  ['port 65536', json({ ...valid, port: 65536 })],
  ['port -1', json({ ...valid, port: -1 })],
  ['port 1.5', json({ ...valid, port: 1.5 })],
  ['port as a string', json({ ...valid, port: '6235' })],
  ['no port', json({ ...valid, port: undefined })],
];

describe('announcement datagrams', () => {
  it('encode and decode round trip, small and versioned', () => {
    const buf = encodeAnnouncement({ cluster: 'prod-1.eu_west', scheme: 'http', port: 6235 });
    assert.ok(buf.length < 128, `${buf.length} bytes`);
    assert.deepEqual(JSON.parse(buf.toString()), { type: 'sdfs.announce', version: 1, cluster: 'prod-1.eu_west', scheme: 'http', port: 6235 });
    assert.deepEqual(decodeAnnouncement(buf), { cluster: 'prod-1.eu_west', scheme: 'http', port: 6235 });
    assert.deepEqual(decodeAnnouncement(json({ ...valid, scheme: 'https', port: 1 })), { cluster: 'sdfs', scheme: 'https', port: 1 });
  });

  it('decode ignores fields it does not know (a later version-1 sender may add some)', () => {
    assert.deepEqual(decodeAnnouncement(json({ ...valid, id: 'x', extra: [1, 2] })), { cluster: 'sdfs', scheme: 'http', port: 6235 });
  });

  it('decode refuses junk with EPROTO', () => {
    for (const [what, buf] of JUNK) {
      assert.throws(() => decodeAnnouncement(buf), (e: unknown) => e instanceof SdfsError && e.code === 'EPROTO', what);
    }
  });

  it('encode refuses what decode would refuse', () => {
    for (const bad of [{ cluster: '', port: 1 }, { cluster: 'a/b', port: 1 }, { cluster: 'ok', port: 0 }, { cluster: 'ok', port: 70000 }]) {
      assert.throws(() => encodeAnnouncement({ ...bad, scheme: 'http' }), (e: unknown) => e instanceof SdfsError && e.code === 'EINVAL', JSON.stringify(bad));
    }
  });
});

describe('Broadcaster and Discovery on loopback', () => {
  it('a storage server ignores junk and other clusters, and joins the first name server of its own', async () => {
    let found: DiscoveredNameServer | undefined;
    let calls = 0;
    const discovery = new Discovery({ cluster: 'alpha', port: 0, host: '127.0.0.1', onFound: (f) => { found = f; calls++; } });
    const sender = createSocket('udp4');
    try {
      await discovery.start();
      const port = discovery.port;
      const junk = [...JUNK.map(([, b]) => b), encodeAnnouncement({ cluster: 'beta', scheme: 'http', port: 9999 })];
      for (const buf of junk) await new Promise<void>((ok, fail) => sender.send(buf, port, '127.0.0.1', (e) => (e ? fail(e) : ok())));
      await waitFor('every junk datagram to be ignored', () => discovery.ignored === junk.length, 5000);
      assert.equal(found, undefined);

      const real = new Broadcaster({ cluster: 'alpha', httpPort: 4321, scheme: 'http', address: '127.0.0.1', port, intervalMs: 50 });
      await real.start();
      try {
        const f = await waitFor('the name server to be found', () => found, 5000);
        assert.deepEqual(f, { url: 'http://127.0.0.1:4321', cluster: 'alpha', from: '127.0.0.1' });
        // It has stopped listening: a second name server is never joined.
        assert.throws(() => discovery.port);
        await waitFor('a few more announcements', () => real.sentCount >= 3, 5000);
        assert.equal(calls, 1);
      } finally {
        await real.stop();
      }
    } finally {
      sender.close();
      await discovery.stop();
    }
  });

  it('with the cluster secret, only recent announcements signed with it are followed', async () => {
    const keys = deriveKeys('the-secret-of-this-test-cluster');
    const other = deriveKeys('the-secret-of-someone-else');
    let found: DiscoveredNameServer | undefined;
    const discovery = new Discovery({ cluster: 'sdfs', port: 0, host: '127.0.0.1', keys, onFound: (f) => { found = f; } });
    const sender = createSocket('udp4');
    try {
      await discovery.start();
      const port = discovery.port;
      const a = { cluster: 'sdfs', scheme: 'http' as const, port: 9999 };
      const forged = [
        encodeAnnouncement(a), // unsigned
        encodeAnnouncement(a, (f, ts) => signAnnouncement(other, f, ts)), // another secret
        encodeAnnouncement(a, (f, ts) => signAnnouncement(keys, f, ts), Date.now() - 10 * 60_000), // an old one sent again
        // A signed announcement with its port changed.
        Buffer.from(encodeAnnouncement(a, (f, ts) => signAnnouncement(keys, f, ts)).toString().replace('9999', '9998')),
      ];
      for (const buf of forged) await new Promise<void>((ok, fail) => sender.send(buf, port, '127.0.0.1', (e) => (e ? fail(e) : ok())));
      await waitFor('every forged announcement to be ignored', () => discovery.ignored === forged.length, 5000);
      assert.equal(found, undefined);
      const real = new Broadcaster({ cluster: 'sdfs', httpPort: 4321, scheme: 'http', address: '127.0.0.1', port, intervalMs: 50, keys });
      await real.start();
      try {
        const f = await waitFor('the real name server to be found', () => found, 5000);
        assert.equal(f?.url, 'http://127.0.0.1:4321');
      } finally {
        await real.stop();
      }
    } finally {
      sender.close();
      await discovery.stop();
    }
  });

  it('the broadcaster sends at its interval, and stop() closes its socket', async () => {
    const fds = (): number => readdirSync('/proc/self/fd').length;
    const received: Buffer[] = [];
    const listener = createSocket('udp4');
    listener.on('message', (m) => received.push(m));
    await new Promise<void>((ok) => listener.bind(0, '127.0.0.1', ok));
    const before = existsSync('/proc/self/fd') ? fds() : 0;
    const b = new Broadcaster({ cluster: 'sdfs', httpPort: 6235, scheme: 'http', address: '127.0.0.1', port: listener.address().port, intervalMs: 20 });
    try {
      await b.start();
      await waitFor('3 announcements', () => received.length >= 3, 5000);
      for (const m of received) assert.deepEqual(decodeAnnouncement(m), { cluster: 'sdfs', scheme: 'http', port: 6235 });
      await b.stop();
      await b.stop();
      if (before > 0) assert.equal(fds(), before, 'the broadcaster left its socket open');
    } finally {
      await b.stop();
      listener.close();
    }
  });

  it('`sdfs storage` with SDFS_NAME_SERVER registers directly and does not listen for broadcasts', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sdfs-disc-'));
    const child = spawn(process.execPath, [CLI, 'storage', '--host', '127.0.0.1', '--port', '0', '--data-dir', join(dir, 's')], {
      stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SDFS_NAME_SERVER: 'http://127.0.0.1:9', SDFS_SECRET: 'a-cluster-secret-of-this-test-only' },
    });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    try {
      await waitFor('it to report to the name server it was given', () => err.includes('cannot report to http://127.0.0.1:9'));
      assert.match(out, /"event":"listening"/);
      assert.doesNotMatch(out, /discovering|discovered/);
    } finally {
      await kill(child);
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('a name server heard on the LAN must prove it holds the cluster secret', () => {
  let cluster: Cluster;
  /** Answers every request with a proof made up (it has no secret), on 127.0.0.2 at the name server's port. */
  let impostor: ReturnType<typeof createServer>;
  let impostorAsked = 0;
  /** Passes every request on to the real name server and its answer back, on 127.0.0.3 at the same port. */
  let relay: ReturnType<typeof createServer>;
  let relayed = 0;
  let agent: Agent;
  before(async () => {
    cluster = await Cluster.start({ storages: 0 });
    impostor = createServer((_req, res) => {
      impostorAsked++;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ proof: 'A'.repeat(43) }));
    });
    await new Promise<void>((ok) => impostor.listen(cluster.name.port, '127.0.0.2', ok));
    relay = createServer((req, res) => {
      const onward = httpRequest({ host: '127.0.0.1', port: cluster.name.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
        relayed++;
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      onward.on('error', () => res.destroy());
      req.pipe(onward);
    });
    await new Promise<void>((ok) => relay.listen(cluster.name.port, '127.0.0.3', ok));
    agent = new Agent();
  });
  after(async () => {
    await agent?.close();
    for (const server of [impostor, relay]) await new Promise<void>((ok) => (server ? server.close(() => ok()) : ok()));
    await cluster?.stop();
  });

  it('the real name server proves it; an impostor, a relay to the real one, a server of another secret, or no server does not', async () => {
    const keys = deriveKeys((await readFile(cluster.secretFile, 'utf8')).trim());
    const dispatcher = clusterDispatcher(agent, keys);
    await confirmNameServer(cluster.url, keys, dispatcher);
    await assert.rejects(confirmNameServer(`http://127.0.0.2:${cluster.name.port}`, keys, dispatcher), { code: 'EAUTH' });
    // The relay gets the real name server's answer, but it proves the real one's address, not the relay's.
    await assert.rejects(confirmNameServer(`http://127.0.0.3:${cluster.name.port}`, keys, dispatcher), { code: 'EAUTH' });
    assert.equal(relayed, 1, 'the question reached the real name server through the relay');
    // A storage server of another cluster: its signed request is refused, and it could not check the answer anyway.
    const other = deriveKeys('the-secret-of-someone-else');
    await assert.rejects(confirmNameServer(cluster.url, other, clusterDispatcher(agent, other)), { code: 'EAUTH' });
    await assert.rejects(confirmNameServer('http://127.0.0.1:9', keys, dispatcher), { code: 'EUNAVAILABLE' });
  });

  it('a signed announcement sent again from another address is not joined; the real one then is', async () => {
    const keys = deriveKeys((await readFile(cluster.secretFile, 'utf8')).trim());
    const dispatcher = clusterDispatcher(agent, keys);
    let found: DiscoveredNameServer | undefined;
    const checked: string[] = [];
    const discovery = new Discovery({
      cluster: 'sdfs', port: 0, host: '127.0.0.1', keys,
      confirm: (url) => { checked.push(url); return confirmNameServer(url, keys, dispatcher); },
      onFound: (f) => { found = f; },
    });
    // The replay comes from another machine of the LAN: here, another loopback address.
    const attacker = createSocket('udp4');
    const honest = createSocket('udp4');
    try {
      await discovery.start();
      await new Promise<void>((ok) => attacker.bind(0, '127.0.0.2', ok));
      await new Promise<void>((ok) => honest.bind(0, '127.0.0.1', ok));
      const announcement = encodeAnnouncement({ cluster: 'sdfs', scheme: 'http', port: cluster.name.port }, (f, ts) => signAnnouncement(keys, f, ts));
      const send = (from: typeof attacker): Promise<void> => new Promise((ok, fail) => from.send(announcement, discovery.port, '127.0.0.1', (e) => (e ? fail(e) : ok())));
      impostorAsked = 0;
      await send(attacker);
      await waitFor('the impostor to be asked for its proof', () => impostorAsked === 1, 5000);
      // It failed: a second copy within REFUSED_MS is not even checked.
      await send(attacker);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(found, undefined);
      assert.equal(impostorAsked, 1);
      assert.deepEqual(checked, [`http://127.0.0.2:${cluster.name.port}`]);
      await send(honest);
      const f = await waitFor('the real name server to be joined', () => found, 5000);
      assert.deepEqual(f, { url: cluster.url, cluster: 'sdfs', from: '127.0.0.1' });
    } finally {
      attacker.close();
      honest.close();
      await discovery.stop();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Across hosts: network namespaces.

const PREFIX = `sdfs-t-${process.pid}-`;
const IN_CI = Boolean(process.env.CI) && process.env.CI !== 'false';
/** 10.213.X.0/24, used only inside the test's namespaces. */
const X = (process.pid % 200) + 20;
const SUBNET = `10.213.${X}`;
const NAME_ADDR = `${SUBNET}.1`;
const STORAGE_ADDRS = [`${SUBNET}.11`, `${SUBNET}.12`, `${SUBNET}.13`];
const OTHER_CLUSTER_ADDR = `${SUBNET}.14`;
const CLIENT_ADDR = `${SUBNET}.100`;
const BROADCAST = `${SUBNET}.255`;

function ip(args: string[]): string {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 });
  if (r.error) throw new Error(`ip ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')} failed (${r.status}): ${r.stderr.trim()}`);
  return r.stdout;
}

function netnsList(): string[] {
  return ip(['netns', 'list']).split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.length > 0);
}

/** Why network namespaces cannot be used here, or undefined if they can. */
function netnsProblem(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'it must run as root';
  const probe = `${PREFIX}probe`;
  const r = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8', timeout: 10_000 });
  if (r.error) return `cannot run \`ip\` (install iproute2): ${r.error.message}`;
  if (r.status !== 0) return `\`ip netns add\` failed: ${r.stderr.trim()}`;
  spawnSync('ip', ['netns', 'del', probe]);
  return undefined;
}

/** Namespaces of earlier runs of this test whose process is gone (a run killed before its `after`). */
function deleteStaleNamespaces(): void {
  for (const name of netnsList()) {
    const m = /^sdfs-t-(\d+)-/.exec(name);
    if (!m || Number(m[1]) === process.pid) continue;
    try {
      process.kill(Number(m[1]), 0);
    } catch {
      spawnSync('ip', ['netns', 'del', name]);
    }
  }
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

interface NsProc { role: string; child: ChildProcess; out: string; err: string }

const problem = netnsProblem();

describe('LAN discovery across network namespaces', { skip: problem !== undefined && !IN_CI ? `needs root and iproute2: ${problem}` : false }, () => {
  const namespaces: string[] = [];
  const procs: NsProc[] = [];
  let dir: string;
  // Made by the name server on its first start; the storage servers wait for it.
  let secretFile: string;
  let nameNs: string;
  let clientNs: string;
  const storageNs: string[] = [];
  let otherNs: string;
  /** The environment of every process: no SDFS_NAME_SERVER, so that storage servers must discover. */
  const env = { ...process.env };
  delete env.SDFS_NAME_SERVER;

  const addNamespace = (role: string): string => {
    const ns = `${PREFIX}${role}`;
    ip(['netns', 'add', ns]);
    namespaces.push(ns);
    ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    return ns;
  };

  /** A host: a namespace with eth0 at `addr`/24, joined to the bridge; no default route. */
  const addHost = (bridgeNs: string, role: string, addr: string): string => {
    const ns = addNamespace(role);
    const port = `v-${role}`;
    ip(['-n', bridgeNs, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    ip(['-n', bridgeNs, 'link', 'set', port, 'master', 'br0']);
    ip(['-n', bridgeNs, 'link', 'set', port, 'up']);
    ip(['-n', ns, 'addr', 'add', `${addr}/24`, 'brd', '+', 'dev', 'eth0']);
    ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
    return ns;
  };

  /** Runs `node dist/cli/main.js ARGS` in a namespace; `ip netns exec` execs node, so the PID held is node's. */
  const startIn = (ns: string, role: string, args: string[]): NsProc => {
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    const p: NsProc = { role, child, out: '', err: '' };
    child.stdout!.on('data', (d: Buffer) => { p.out += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { p.err += d.toString(); });
    child.on('error', (e) => { p.err += `spawn failed: ${e.message}\n`; });
    procs.push(p);
    return p;
  };

  const events = (p: NsProc, event: string): Record<string, unknown>[] => p.out.split('\n').flatMap((line) => {
    try {
      const m = JSON.parse(line) as Record<string, unknown>;
      return m.event === event ? [m] : [];
    } catch {
      return [];
    }
  });

  const cliIn = (ns: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => new Promise((ok, fail) => {
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, CLI, '--log-file', join(dir, 'client.log'), ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', fail);
    child.on('close', (code) => ok({ code: code ?? -1, stdout, stderr }));
  });

  const logs = (): string => procs.map((p) => `--- ${p.role} (pid ${p.child.pid})\n${p.out}${p.err}`).join('\n');

  before(async () => {
    if (problem) throw new Error(`the discovery test needs root and iproute2 (\`ip netns\`), and CI must provide them: ${problem}`);
    deleteStaleNamespaces();
    dir = await mkdtemp(join(tmpdir(), 'sdfs-disc-'));
    secretFile = join(dir, 'name', 'cluster.secret');

    const bridgeNs = addNamespace('br');
    ip(['-n', bridgeNs, 'link', 'add', 'br0', 'type', 'bridge']);
    ip(['-n', bridgeNs, 'link', 'set', 'br0', 'up']);
    nameNs = addHost(bridgeNs, 'name', NAME_ADDR);
    STORAGE_ADDRS.forEach((addr, i) => storageNs.push(addHost(bridgeNs, `s${i + 1}`, addr)));
    otherNs = addHost(bridgeNs, 'other', OTHER_CLUSTER_ADDR);
    clientNs = addHost(bridgeNs, 'client', CLIENT_ADDR);
    for (const ns of namespaces) {
      assert.equal(ip(['-n', ns, 'route', 'show', 'default']).trim(), '', `${ns} has a default route`);
      assert.equal(ip(['-n', ns, '-6', 'route', 'show', 'default']).trim(), '', `${ns} has an IPv6 default route`);
    }

    startIn(nameNs, 'name', ['name', '--host', '0.0.0.0', '--broadcast-address', BROADCAST, '--broadcast-interval-ms', '500',
      '--data-dir', join(dir, 'name'), '--heartbeat-ms', '500', '--block-size', '64K', '--replication', '3']);
    // Another cluster's storage server on the same LAN: it must hear the announcements and not join.
    startIn(otherNs, 'other', ['storage', '--cluster', 'other', '--data-dir', join(dir, 'other'), '--heartbeat-ms', '500', '--secret', 'the-other-clusters-own-secret']);
    storageNs.forEach((ns, i) => startIn(ns, `s${i + 1}`, ['storage', '--data-dir', join(dir, `s${i + 1}`), '--heartbeat-ms', '500', '--secret-file', secretFile]));
  });

  after(async () => {
    await Promise.all(procs.map((p) => kill(p.child)));
    const failures: string[] = [];
    for (const ns of [...namespaces].reverse()) {
      try {
        ip(['netns', 'del', ns]);
      } catch (err) {
        failures.push(String(err));
      }
    }
    if (dir) await rm(dir, { recursive: true, force: true });
    if (problem) return;
    const left = netnsList().filter((n) => n.startsWith(PREFIX));
    assert.deepEqual(left, [], `namespaces left behind: ${left.join(', ')} ${failures.join('; ')}`);
  });

  it('storage servers started with no address find the name server by broadcast and register', async () => {
    const url = `http://${NAME_ADDR}:6235`;
    try {
      for (const p of procs.filter((x) => /^s\d$/.test(x.role))) {
        const d = await waitFor(`${p.role} to discover the name server`, () => events(p, 'discovered')[0]);
        assert.deepEqual(d, { event: 'discovered', cluster: 'sdfs', nameServer: url, from: NAME_ADDR });
        await waitFor(`${p.role} to register`, () => events(p, 'registered').some((e) => e.nameServer === url));
      }
      const df = await waitFor('3 live storage servers with their LAN addresses', async () => {
        const r = await cliIn(nameNs, ['--name-server', 'http://127.0.0.1:6235', 'df', '--json']);
        if (r.code !== 0) throw new Error(r.stderr);
        const c = JSON.parse(r.stdout) as { storages: { addr: string; alive: boolean }[] };
        return c.storages.filter((s) => s.alive).length === 3 ? c : undefined;
      });
      assert.ok(df);
      assert.deepEqual(df.storages.map((s) => s.addr).sort(), STORAGE_ADDRS.map((a) => `${a}:3500`).sort());

      // The other cluster's storage server heard the same announcements and stayed out.
      const other = procs.find((p) => p.role === 'other')!;
      await waitFor('the other cluster\'s storage server to ignore the announcement', () => other.err.includes('ignoring name server of cluster "sdfs"'));
      assert.deepEqual(events(other, 'discovered'), []);
      assert.equal(events(other, 'discovering')[0]?.cluster, 'other');
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${logs()}`, { cause: err });
    }
  });

  it('a client on a fifth host writes a multi-block file through them and reads it back', async () => {
    const local = join(dir, 'in.bin');
    const back = join(dir, 'out.bin');
    const content = randomBytes(700_000); // 11 blocks of 64 KiB
    await writeFile(local, content);
    const ns = ['--name-server', `http://${NAME_ADDR}:6235`];
    const put = await cliIn(clientNs, [...ns, 'put', local, '/across.bin']);
    assert.equal(put.code, 0, `${put.stderr}\n${logs()}`);
    const st = await cliIn(clientNs, [...ns, 'stat', '--json', '/across.bin']);
    assert.equal(st.code, 0, st.stderr);
    const blocks = (JSON.parse(st.stdout) as { blockList: { replicas: { addr: string }[] }[] }).blockList;
    assert.equal(blocks.length, 11);
    for (const b of blocks) assert.deepEqual(b.replicas.map((r) => r.addr).sort(), STORAGE_ADDRS.map((a) => `${a}:3500`).sort());
    const get = await cliIn(clientNs, [...ns, 'get', '/across.bin', back]);
    assert.equal(get.code, 0, get.stderr);
    assert.equal(sha256(await readFile(back)), sha256(content));
  });

  it('a second storage server on the same host hears the broadcasts too (the UDP port is shared)', async () => {
    const p = startIn(storageNs[0]!, 's1b', ['storage', '--port', '3501', '--data-dir', join(dir, 's1b'), '--heartbeat-ms', '500', '--secret-file', secretFile]);
    try {
      await waitFor('the second storage server to register', () => events(p, 'registered').length > 0);
      await waitFor('4 live storage servers', async () => {
        const r = await cliIn(nameNs, ['--name-server', 'http://127.0.0.1:6235', 'df', '--json']);
        const c = JSON.parse(r.stdout) as { storages: { addr: string; alive: boolean }[] };
        return c.storages.some((s) => s.alive && s.addr === `${STORAGE_ADDRS[0]}:3501`) && c.storages.filter((s) => s.alive).length === 4;
      });
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${logs()}`, { cause: err });
    }
  });
});
