import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import { newId, ID_PATTERN } from '../protocol/blocks.js';
import { SdfsError } from '../protocol/errors.js';
import { clusterDispatcher, clusterSigner, deriveKeys } from '../protocol/auth.js';
import { acceptBlockLinks, fromMember, memberLinks } from '../protocol/block-link.js';
import { BlockChannel } from '../protocol/block-channel.js';
import { callJson, newAgent } from '../protocol/http.js';
import { installErrorHandler, newApp } from '../protocol/http-server.js';
import { API_PREFIX, type StorageReport } from '../protocol/messages.js';
import { BlockStore } from './block-store.js';
import type { StorageConfig } from './config.js';
import { Discovery } from './discovery.js';
import { confirmNameServer } from './name-proof.js';
import { Reporter } from './reporter.js';
import { CLUSTER_ONLY, installStorageAuth, registerBlockRoutes } from './routes.js';
import { Scrubber } from './scrubber.js';

export interface RunningStorageServer {
  id: string;
  port: number;
  stop(): Promise<void>;
}

/** Starts a storage server: opens its block store, listens, and reports to the name server. */
export async function startStorageServer(config: StorageConfig): Promise<RunningStorageServer> {
  await fs.mkdir(config.dataDir, { recursive: true });
  const id = await loadIdentity(config.dataDir);
  // Which file system the blocks are on: servers of one host sharing one are counted once in the cluster's space.
  const fsId = (await fs.stat(config.dataDir)).dev.toString(36);
  const store = new BlockStore(config.dataDir);
  await store.open();
  const keys = deriveKeys(config.secret);
  // Every request it sends (to the name server, down a write pipeline, to fetch a block) is signed.
  const agent = newAgent(config.tlsCa);
  const dispatcher = clusterDispatcher(agent, keys);
  const channel = new BlockChannel({ ca: config.tlsCa, sign: clusterSigner(keys) });

  const app = newApp(config.tls);
  installErrorHandler(app);
  installStorageAuth(app, keys);
  app.get('/v1/status', CLUSTER_ONLY, async () => report());
  const links = memberLinks(keys, config.tlsCa);
  let closeLinks = async (): Promise<void> => {};
  registerBlockRoutes(app, {
    store, selfId: id, maxBlockSize: config.maxBlockSize, dispatcher, channel, onWipe: () => store.wipe(), keys, links,
    acceptLinks: (handle) => {
      closeLinks = acceptBlockLinks(app.server, (req) => fromMember(keys, req), handle);
    },
  });

  await app.listen({ host: config.host, port: config.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;

  async function report(): Promise<StorageReport> {
    const { capacity, free } = await store.space();
    return { id, host: config.advertiseHost, port, capacity, free, used: store.used, blocks: store.blockCount, tls: config.tls !== undefined, fsId };
  }

  // The name server: the one given, or else the first one of the cluster heard on the LAN.
  let nameServer: string | undefined;
  let reporter: Reporter | undefined;
  const join = (url: string): void => {
    nameServer = url;
    reporter = new Reporter(url, report, config.heartbeatMs, dispatcher, () => store.list());
    reporter.start();
  };
  let discovery: Discovery | undefined;
  if (config.nameServer !== undefined) join(config.nameServer);
  else {
    discovery = new Discovery({
      cluster: config.cluster, port: config.discoveryPort, keys,
      confirm: (url) => confirmNameServer(url, keys, dispatcher),
      onFound(found) {
        console.log(JSON.stringify({ event: 'discovered', cluster: found.cluster, nameServer: found.url, from: found.from }));
        join(found.url);
      },
    });
    await discovery.start().catch(async (err: unknown) => {
      await app.close();
      throw err;
    });
    console.log(JSON.stringify({ event: 'discovering', cluster: config.cluster, udpPort: config.discoveryPort }));
  }
  const scrubber = new Scrubber(store, config.scrubBytesPerSecond, async (block, reason) => {
    if (nameServer === undefined) throw new SdfsError('EUNAVAILABLE', 'no name server found yet');
    const res = await callJson<{ dropped: boolean }>(nameServer, `${API_PREFIX}/blocks/${block}/bad`, { body: { storage: id, reason }, dispatcher });
    return res.dropped;
  }, config.scrubPassIntervalMs);
  scrubber.start();

  return {
    id,
    port,
    async stop() {
      await discovery?.stop();
      reporter?.stop();
      await scrubber.stop();
      await closeLinks();
      await app.close();
      await store.close();
      channel.close();
      links.close();
      await agent.close();
    },
  };
}

/** A storage server keeps its id across restarts, so the name server knows the blocks it holds are the same. */
async function loadIdentity(dataDir: string): Promise<string> {
  const file = join(dataDir, 'storage.json');
  try {
    const { id } = JSON.parse(await fs.readFile(file, 'utf8')) as { id: unknown };
    if (typeof id === 'string' && ID_PATTERN.test(id)) return id;
    throw new Error(`${file} holds no valid id`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const id = newId();
  const tmp = `${file}.tmp`;
  await fs.writeFile(tmp, JSON.stringify({ id, created: new Date().toISOString() }) + '\n', { mode: 0o644, flush: true });
  await fs.rename(tmp, file);
  return id;
}
