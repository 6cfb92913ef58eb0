import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Agent, request } from 'undici';
import { connect } from '../src/client/index.js';
import { AUTH_HEADERS, deriveKeys, issueBlockToken, signRequest } from '../src/protocol/auth.js';
import { SdfsError } from '../src/protocol/errors.js';
import type { BlocksResponse } from '../src/protocol/messages.js';
import { ClassicClient, frame } from './helpers/classic-client.js';
import { Cluster, runCli, startProcess, stopProcess, waitFor } from './helpers/cluster.js';
import { sha256Of } from './helpers/data.js';

/** Sends a request without any of the client library's help, and returns status and body. */
async function raw(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string | Buffer; dispatcher?: Agent } = {}) {
  const res = await request(url, { method: (opts.method ?? 'GET') as 'GET', headers: opts.headers, body: opts.body, dispatcher: opts.dispatcher });
  const body = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers, body, json: () => JSON.parse(body.toString()) as { error?: { code: string; message: string } } };
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

const rejects = async (p: Promise<unknown>, code: string): Promise<void> => {
  await assert.rejects(p, (err: unknown) => err instanceof SdfsError && err.code === code);
};

describe('the cluster secret and block tokens', () => {
  let cluster: Cluster;
  let storageUrl: string;
  let keys: ReturnType<typeof deriveKeys>;
  const data = randomBytes(200 * 1024);
  let located: BlocksResponse;

  before(async () => {
    cluster = await Cluster.start({ storages: 2, replication: 2, blockSize: 64 * 1024, nameArgs: ['--block-token-ttl-ms', '1500'] });
    const client = cluster.client();
    await client.writeFile('/f', data);
    located = await client.blocks('/f');
    storageUrl = `http://127.0.0.1:${cluster.storages[0]!.port}`;
    keys = deriveKeys(readFileSync(cluster.secretFile, 'utf8').trim());
  });
  after(async () => { await cluster?.stop(); });

  it('the name server made the secret on its first start, readable by its owner only', () => {
    const st = statSync(cluster.secretFile);
    assert.equal(st.mode & 0o777, 0o600);
    assert.ok(readFileSync(cluster.secretFile, 'utf8').trim().length >= 32);
  });

  it('a name server given a secret file that does not exist yet makes it there, and a storage server joins with it', async () => {
    const dir = join(cluster.dataDir, 'elsewhere');
    const file = join(dir, 'shared', 'cluster.secret');
    const procs: Awaited<ReturnType<typeof startProcess>>[] = [];
    try {
      const name = await startProcess(['name', '--host', '127.0.0.1', '--port', '0', '--data-dir', join(dir, 'name'), '--no-broadcast',
        '--heartbeat-ms', '300', '--secret-file', file]);
      procs.push(name);
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.equal(statSync(join(dir, 'name', 'cluster.secret'), { throwIfNoEntry: false }), undefined, 'a second secret was made in the data dir');
      const url = `http://127.0.0.1:${name.port}`;
      const storage = await startProcess(['storage', '--name-server', url, '--host', '127.0.0.1', '--port', '0',
        '--data-dir', join(dir, 'storage'), '--secret-file', file, '--heartbeat-ms', '300']);
      procs.push(storage);
      const c = connect(url);
      try {
        await waitFor('the storage server to join', async () => (await c.cluster()).storages.some((s) => s.id === storage.id && s.alive));
      } finally {
        await c.close();
      }
    } finally {
      await Promise.all(procs.map((p) => stopProcess(p)));
    }
  });

  it('a storage server without the secret does not start; with a wrong one it cannot join', async () => {
    const none = await runCli(['storage', '--name-server', cluster.url, '--port', '0', '--host', '127.0.0.1', '--data-dir', join(cluster.dataDir, 'nosecret')]);
    assert.equal(none.code, 6);
    assert.match(none.stderr, /needs the cluster secret/);

    const intruder = await startProcess(['storage', '--name-server', cluster.url, '--host', '127.0.0.1', '--port', '0',
      '--data-dir', join(cluster.dataDir, 'intruder'), '--secret', 'not-the-secret-of-this-cluster', '--heartbeat-ms', '200']);
    let stderr = '';
    intruder.child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    try {
      await waitFor('the registration to be refused', () => /cannot report.*cluster secret/.test(stderr));
      const ids = (await cluster.client().cluster()).storages.map((s) => s.id);
      assert.ok(!ids.includes(intruder.id!), 'the intruder joined');
      assert.equal(ids.length, 2);
    } finally {
      await stopProcess(intruder);
    }
  });

  it('the name server refuses unsigned, wrongly signed and replayed-elsewhere storage calls', async () => {
    const report = JSON.stringify({ id: 'a'.repeat(32), port: 1, capacity: 1, free: 1, used: 0, blocks: 0 });
    const url = `${cluster.url}/api/v1/storages/register`;
    const json = { 'content-type': 'application/json' };
    assert.equal((await raw(url, { method: 'POST', headers: json, body: report })).status, 401);
    const wrong = deriveKeys('some-other-secret-of-enough-length');
    assert.equal((await raw(url, { method: 'POST', headers: { ...json, [AUTH_HEADERS.cluster]: signRequest(wrong, 'POST', '/api/v1/storages/register') }, body: report })).status, 401);
    // A signature is for one method and path.
    assert.equal((await raw(url, { method: 'POST', headers: { ...json, [AUTH_HEADERS.cluster]: signRequest(keys, 'POST', '/api/v1/storages/heartbeat') }, body: report })).status, 401);
    // Too old.
    assert.equal((await raw(url, { method: 'POST', headers: { ...json, [AUTH_HEADERS.cluster]: signRequest(keys, 'POST', '/api/v1/storages/register', Date.now() - 3_600_000) }, body: report })).status, 401);
    assert.ok(!(await cluster.client().cluster()).storages.some((s) => s.id === 'a'.repeat(32)));
  });

  it('a storage server deletes, wipes, fetches and reports only for cluster members', async () => {
    const block = located.blocks[0]!.id;
    const holder = located.blocks[0]!.replicas.find((r) => r.addr.endsWith(`:${cluster.storages[0]!.port}`)) ? 0 : 1;
    const url = `http://127.0.0.1:${cluster.storages[holder]!.port}`;
    assert.equal((await raw(`${url}/v1/blocks/${block}`, { method: 'DELETE' })).status, 401);
    assert.equal((await raw(`${url}/v1/wipe`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status, 401);
    assert.equal((await raw(`${url}/v1/blocks/${block}/fetch`, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ source: '127.0.0.1:1', size: 1, digest: `xxh3:${'0'.repeat(16)}` }) })).status, 401);
    assert.equal((await raw(`${url}/v1/status`)).status, 401);
    // A read token does not let its bearer delete either.
    const token = issueBlockToken(keys, block, 'read', 60_000);
    assert.equal((await raw(`${url}/v1/blocks/${block}`, { method: 'DELETE', headers: { [AUTH_HEADERS.blockToken]: token } })).status, 401);
    assert.ok((await cluster.blocksOnDisk(holder)).has(block), 'the block is still on disk');
    // And a signed request passes.
    const signed = await raw(`${url}/v1/status`, { headers: { [AUTH_HEADERS.cluster]: signRequest(keys, 'GET', '/v1/status') } });
    assert.equal(signed.status, 200);
  });

  it('a block is read with its token only: none, forged, other block, other operation or expired are refused', async () => {
    const b = located.blocks[0]!;
    const other = located.blocks[1]!;
    const replica = b.replicas[0]!;
    const url = `http://${replica.addr}/v1/blocks/${b.id}`;
    const fresh = issueBlockToken(keys, b.id, 'read', 60_000);
    const ok = await raw(url, { headers: { [AUTH_HEADERS.blockToken]: fresh } });
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.body, data.subarray(0, b.size));

    const refused = async (headers: Record<string, string>, why: RegExp): Promise<void> => {
      const r = await raw(url, { headers });
      assert.equal(r.status, 403, `expected 403 for ${JSON.stringify(headers)}`);
      assert.equal(r.json().error?.code, 'EACCES');
      assert.match(r.json().error!.message, why);
    };
    await refused({}, /token is required/);
    const forged = fresh.slice(0, -2) + (fresh.endsWith('AA') ? 'BB' : 'AA');
    await refused({ [AUTH_HEADERS.blockToken]: forged }, /not valid for block/);
    await refused({ [AUTH_HEADERS.blockToken]: issueBlockToken(keys, other.id, 'read', 60_000) }, /not valid for block/);
    await refused({ [AUTH_HEADERS.blockToken]: issueBlockToken(keys, b.id, 'write', 60_000) }, /not for read/);
    await refused({ [AUTH_HEADERS.blockToken]: issueBlockToken(keys, b.id, 'read', 60_000, Date.now() - 120_000) }, /expired/);
    await refused({ [AUTH_HEADERS.blockToken]: 'r.99999999999.' + 'A'.repeat(43) }, /not valid/);
    await refused({ [AUTH_HEADERS.blockToken]: issueBlockToken(deriveKeys('some-other-secret-of-enough-length'), b.id, 'read', 60_000) }, /not valid/);
  });

  it('a block is stored with its write token only, and for that block id', async () => {
    const id = randomBytes(16).toString('hex');
    const put = (token?: string) => raw(`${storageUrl}/v1/blocks/${id}`, {
      method: 'PUT', body: Buffer.from('hello'), headers: { 'content-type': 'application/octet-stream', ...(token ? { [AUTH_HEADERS.blockToken]: token } : {}) },
    });
    assert.equal((await put()).status, 403);
    assert.equal((await put(issueBlockToken(keys, id, 'read', 60_000))).status, 403);
    assert.equal((await put(issueBlockToken(keys, randomBytes(16).toString('hex'), 'write', 60_000))).status, 403);
    assert.equal((await put(issueBlockToken(keys, id, 'write', 60_000, Date.now() - 120_000))).status, 403);
    assert.ok(!(await cluster.blocksOnDisk(0)).has(id), 'a refused block reached the disk');
    const stored = await put(issueBlockToken(keys, id, 'write', 60_000));
    assert.equal(stored.status, 200);
    assert.ok((await cluster.blocksOnDisk(0)).has(id));
  });

  it('a read that reaches a block after its token expired asks for new tokens and goes on', async () => {
    const client = cluster.client();
    const stream = await client.createReadStream('/f');
    // Tokens live 1.5 s in this cluster; nothing is read from the stream until it is consumed.
    await new Promise((r) => setTimeout(r, 2500));
    const got = await sha256Of(stream);
    assert.equal(got.size, data.length);
    assert.equal(got.sha256, sha(data));
  });
});

describe('access keys', () => {
  let cluster: Cluster;
  let keysFile: string;
  const rw = `rw-${randomBytes(16).toString('hex')}`;
  const ro = `ro-${randomBytes(16).toString('hex')}`;
  const data = randomBytes(150 * 1024);

  before(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sdfs-keys-'));
    keysFile = join(dir, 'keys');
    writeFileSync(keysFile, `# the test's keys\nrw ${rw}\nro ${ro}\n`, { mode: 0o600 });
    cluster = await Cluster.start({ storages: 2, replication: 2, nameArgs: ['--access-keys-file', keysFile], clientKey: rw });
    await cluster.client().writeFile('/f', data);
  });
  after(async () => {
    await cluster?.stop();
    if (keysFile) await rm(join(keysFile, '..'), { recursive: true, force: true });
  });

  it('a client without a key, or with an unknown one, is refused (401, exit 15)', async () => {
    const anon = connect(cluster.url);
    try {
      await rejects(anon.stat('/f'), 'EAUTH');
      await rejects(anon.readdir('/'), 'EAUTH');
      await rejects(anon.createReadStream('/f'), 'EAUTH');
    } finally {
      await anon.close();
    }
    await rejects(cluster.client(`x${rw}`).stat('/f'), 'EAUTH');
    const r = await runCli(['--name-server', cluster.url, 'ls', '/']);
    assert.equal(r.code, 15);
    assert.match(r.stderr, /access key is required/);
    assert.equal((await raw(`${cluster.url}/api/v1/fs/content?path=/f`)).status, 401);
  });

  it('a read-only key reads, and cannot change anything (403, exit 14)', async () => {
    const c = cluster.client(ro);
    assert.equal((await c.stat('/f')).size, data.length);
    assert.equal((await sha256Of(await c.createReadStream('/f'))).sha256, sha(data));
    await rejects(c.mkdir('/d'), 'EACCES');
    await rejects(c.writeFile('/g', 'x'), 'EACCES');
    await rejects(c.rm('/f'), 'EACCES');
    await rejects(c.rename('/f', '/h'), 'EACCES');
    await rejects(c.init(), 'EACCES');
    const r = await runCli(['--name-server', cluster.url, '--key', ro, 'mkdir', '/d']);
    assert.equal(r.code, 14);
    assert.match(r.stderr, /read-only/);
    // The content route too.
    const content = await raw(`${cluster.url}/api/v1/fs/content?path=/f`, { headers: { authorization: `Bearer ${ro}` } });
    assert.equal(content.status, 200);
    assert.deepEqual(content.body, data);
    assert.equal((await raw(`${cluster.url}/api/v1/fs/content?path=/g`, { method: 'PUT', headers: { authorization: `Bearer ${ro}` }, body: 'x' })).status, 403);
    // Block lists asked for together are a POST, and still a read.
    const lists = await raw(`${cluster.url}/api/v1/fs/blocks`, {
      method: 'POST', headers: { authorization: `Bearer ${ro}`, 'content-type': 'application/json' }, body: JSON.stringify({ paths: ['/f', '/f'] }),
    });
    assert.equal(lists.status, 200);
    assert.equal((JSON.parse(lists.body.toString()) as { files: unknown[] }).files.length, 2);
    assert.equal((await raw(`${cluster.url}/api/v1/uploads/pool`, {
      method: 'POST', headers: { authorization: `Bearer ${ro}`, 'content-type': 'application/json' }, body: JSON.stringify({ count: 1, maxSize: 10 }),
    })).status, 403);
    assert.equal((await cluster.client().readdir('/')).map((e) => e.name).join(), 'f');
  });

  it('a read-write key does everything, from the library, the command and a key file', async () => {
    const c = cluster.client(rw);
    await c.mkdir('/d');
    await c.writeFile('/d/g', data);
    assert.equal((await sha256Of(await c.createReadStream('/d/g'))).sha256, sha(data));
    const keyFile = join(cluster.dataDir, 'my-key');
    writeFileSync(keyFile, `${rw}\n`, { mode: 0o600 });
    const r = await runCli(['--name-server', cluster.url, '--key-file', keyFile, 'ls', '/d']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /\bg\b/);
    const e = await runCli(['--name-server', cluster.url, 'rm', '/d/g'], { env: { SDFS_KEY: rw } });
    assert.equal(e.code, 0, e.stderr);
  });

  it('the web UI logs in with a key and gets a session cookie that cannot be forged', async () => {
    const page = await raw(`${cluster.url}/`);
    assert.equal(page.status, 200, 'the web UI itself is public: it shows the login page');
    assert.deepEqual(JSON.parse((await raw(`${cluster.url}/api/v1/session`)).body.toString()), { keysRequired: true, role: 'none' });
    const json = { 'content-type': 'application/json' };
    assert.equal((await raw(`${cluster.url}/api/v1/session`, { method: 'POST', headers: json, body: JSON.stringify({ key: 'wrong-key-wrong-key' }) })).status, 401);
    const login = await raw(`${cluster.url}/api/v1/session`, { method: 'POST', headers: json, body: JSON.stringify({ key: ro }) });
    assert.equal(login.status, 200);
    const setCookie = String(login.headers['set-cookie']);
    assert.match(setCookie, /HttpOnly/);
    assert.match(setCookie, /SameSite=Strict/);
    const cookie = setCookie.split(';')[0]!;
    assert.equal((await raw(`${cluster.url}/api/v1/fs/list?path=/`, { headers: { cookie } })).status, 200);
    assert.equal((await raw(`${cluster.url}/api/v1/fs/mkdir`, { method: 'POST', headers: { ...json, cookie }, body: JSON.stringify({ path: '/w' }) })).status, 403);
    // Promoting the read-only session to read-write breaks its signature.
    const forged = cookie.replace('=ro.', '=rw.');
    assert.notEqual(forged, cookie);
    assert.equal((await raw(`${cluster.url}/api/v1/fs/mkdir`, { method: 'POST', headers: { ...json, cookie: forged }, body: JSON.stringify({ path: '/w' }) })).status, 401);
    assert.equal((await raw(`${cluster.url}/api/v1/fs/list?path=/`, { headers: { cookie: 'sdfs_session=rw.99999999999.' + 'A'.repeat(43) } })).status, 401);
    const logout = await raw(`${cluster.url}/api/v1/session`, { method: 'DELETE', headers: { cookie } });
    assert.match(String(logout.headers['set-cookie']), /Max-Age=0/);
  });

  it('the classic protocol, which has no authentication, is off when keys are configured', async () => {
    const answer = await new Promise<string>((done) => {
      const socket = netConnect(cluster.name.port, '127.0.0.1');
      let got = '';
      socket.on('data', (d: Buffer) => { got += d.toString('latin1'); });
      socket.on('close', () => done(got));
      socket.on('error', () => done(got));
      socket.write(frame(['rddir', '.']));
      setTimeout(() => socket.destroy(), 3000);
    });
    assert.ok(!answer.includes('rddir]['), `a classic answer came back: ${answer.slice(0, 80)}`);
    assert.ok(answer === '' || answer.startsWith('HTTP/1.1 400'), answer.slice(0, 80));
  });

  it('keys are read again on SIGHUP: a revoked key is refused and a new one works, without a restart', async () => {
    const added = `new-${randomBytes(16).toString('hex')}`;
    const pid = cluster.name.child.pid!;
    const before = cluster.client(ro);
    assert.equal((await before.stat('/f')).size, data.length);
    // A file that does not parse keeps the old keys, and the server running.
    writeFileSync(keysFile, `rw ${rw}\nnot a key line\n`);
    process.kill(pid, 'SIGHUP');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await before.stat('/f')).size, data.length, 'a bad keys file took effect');
    // The ro key revoked, a new one added.
    writeFileSync(keysFile, `rw ${rw}\nro ${added}\n`);
    process.kill(pid, 'SIGHUP');
    await waitFor('the ro key to be refused', async () => {
      try {
        await before.stat('/f');
        return false;
      } catch (err) {
        return (err as SdfsError).code === 'EAUTH';
      }
    }, 5000);
    assert.equal((await cluster.client(added).stat('/f')).size, data.length);
    await rejects(cluster.client(added).mkdir('/no'), 'EACCES');
    assert.equal(cluster.name.child.exitCode, null, 'the name server did not survive SIGHUP');
    writeFileSync(keysFile, `rw ${rw}\nro ${ro}\n`);
    process.kill(pid, 'SIGHUP');
    await waitFor('the ro key back', async () => (await cluster.client(ro).stat('/f').catch(() => undefined)) !== undefined, 5000);
  });
});

describe('TLS', () => {
  let dir: string;
  let cluster: Cluster;
  let tls: { cert: string; key: string; ca: string };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sdfs-tls-'));
    tls = { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem'), ca: join(dir, 'cert.pem') };
    // A self-signed certificate for 127.0.0.1, made now, valid for a day.
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-keyout', tls.key, '-out', tls.cert, '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    cluster = await Cluster.start({ storages: 3, replication: 3, blockSize: 64 * 1024, tls, nameArgs: ['--classic', '127.0.0.1:0'] });
  });
  after(async () => {
    await cluster?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('files go through HTTPS end to end: name server, storage servers and the pipeline between them', async () => {
    assert.match(cluster.url, /^https:/);
    const data = randomBytes(300 * 1024);
    const c = cluster.client();
    await c.writeFile('/secret-file', data);
    const located = await c.blocks('/secret-file');
    assert.equal(located.blocks.length, 5);
    for (const b of located.blocks) {
      assert.equal(b.replicas.length, 3);
      for (const r of b.replicas) assert.match(r.addr, /^https:\/\/127\.0\.0\.1:\d+$/);
    }
    assert.equal((await sha256Of(await c.createReadStream('/secret-file'))).sha256, sha(data));
    // Reads into memory go over connections of their own (BlockChannel), over TLS too.
    const into = Buffer.alloc(data.length + 10);
    assert.equal(await (await c.open('/secret-file')).read(into, 0), data.length);
    assert.deepEqual(into.subarray(0, data.length), data);
    const local = join(dir, 'got');
    const r = await cluster.cli(['get', '/secret-file', local]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readFileSync(local), data);
  });

  it('plain HTTP is not served, and a client that does not trust the certificate is told why', async () => {
    const plain = await request(`http://127.0.0.1:${cluster.name.port}/api/v1/cluster`).then((res) => res.statusCode, () => 'refused');
    assert.notEqual(plain, 200);
    const untrusting = connect(cluster.url);
    try {
      await assert.rejects(untrusting.stat('/'), (err: unknown) => err instanceof SdfsError && err.code === 'EPROTO' && /TLS/.test(err.message));
    } finally {
      await untrusting.close();
    }
    const r = await runCli(['--name-server', cluster.url, 'ls', '/']);
    assert.equal(r.code, 11);
    assert.match(r.stderr, /certificate/);
  });

  it('the classic protocol runs on an address of its own, beside HTTPS', async () => {
    assert.ok(cluster.name.classicPort, 'the name server said where the classic protocol listens');
    const c = await ClassicClient.connect(cluster.name.classicPort);
    try {
      assert.ok((await c.ls()).some((line) => line.includes('secret-file')));
    } finally {
      c.socket.destroy();
    }
  });
});
