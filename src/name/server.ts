import { join } from 'node:path';
import * as fs from 'node:fs/promises';
import { SdfsError } from '../protocol/errors.js';
import { clusterDispatcher, clusterSigner, deriveKeys, issueBlockToken, proveNameServer } from '../protocol/auth.js';
import { loadOrCreateSecret, SECRET_FILE } from '../protocol/cluster-secret.js';
import { addrToUrl, callJson, newAgent } from '../protocol/http.js';
import { BlockChannel } from '../protocol/block-channel.js';
import { memberLinks } from '../protocol/block-link.js';
import { installErrorHandler, newApp } from '../protocol/http-server.js';
import type { ClusterResponse } from '../protocol/messages.js';
import type { NameConfig } from './config.js';
import { openDb, WalSync, type Db } from './db.js';
import { BlockMap } from './block-map.js';
import { BlockLocator } from './block-locator.js';
import { Committer } from './committer.js';
import { startBroadcasting } from './broadcaster.js';
import { GarbageCollector } from './garbage.js';
import { Health } from './health.js';
import { attachClassic } from './classic/index.js';
import { injectApiCaller } from './inject-api.js';
import { registerContentRoutes } from './content-routes.js';
import { Namespace } from './namespace.js';
import { Replicator } from './replicator.js';
import { registerApiRoutes } from './routes.js';
import { StorageRegistry } from './storages.js';
import { Uploads } from './uploads.js';
import { registerOpenApi } from './openapi.js';
import { registerWebUi } from './web-static.js';
import { installAccessControl } from './access.js';
import { registerSessionRoutes } from './session-routes.js';

export interface RunningNameServer {
  port: number;
  /** The classic protocol's own port, when it has one. */
  classicPort?: number;
  url: string;
  /** Settles with the reason if the server stops taking changes (its database log could not be synced). */
  failed: Promise<Error>;
  stop(): Promise<void>;
}

/** Starts a name server: opens its database, serves the API, and runs the background cleaner. */
export async function startNameServer(config: NameConfig): Promise<RunningNameServer> {
  await fs.mkdir(config.dataDir, { recursive: true });
  const keys = deriveKeys(await loadOrCreateSecret(config.secretFile ?? join(config.dataDir, SECRET_FILE)));
  const db = openDb(config.dataDir);
  const ns = new Namespace(db);
  const storages = new StorageRegistry(db, config.deadAfterMs);
  const wal = new WalSync(db);
  const committer = new Committer(db, wal);
  const uploads = new Uploads(db, ns, storages, committer, { replication: config.replication, blockSize: config.blockSize, maxUploads: config.maxUploads },
    (blockId) => issueBlockToken(keys, blockId, 'write', config.blockTokenTtlMs));
  // Its calls to storage servers are signed with the cluster secret.
  const agent = newAgent(config.tlsCa);
  const dispatcher = clusterDispatcher(agent, keys);
  const channel = new BlockChannel({ ca: config.tlsCa, sign: clusterSigner(keys) });
  // Small blocks it writes for others (content uploads, the classic protocol) go through block links.
  const links = memberLinks(keys, config.tlsCa);
  const gc = new GarbageCollector(db, storages, uploads, committer, {
    intervalMs: config.gcIntervalMs, uploadExpiryMs: config.uploadExpiryMs, dispatcher,
  });
  const map = new BlockMap(db);
  const replicator = new Replicator(map, storages, committer, {
    intervalMs: config.replicationIntervalMs, fullScanMs: 10 * config.blockReportMs, maxCopies: config.maxCopies, startupGraceMs: config.deadAfterMs, dispatcher,
  });
  storages.onChange = () => replicator.markDirty();
  uploads.onUnderReplicated = () => replicator.markDirty();
  const locator = new BlockLocator(db, ns, storages, keys, config.blockTokenTtlMs);
  const health = new Health(db, ns, map, storages, replicator, uploads);

  const cluster = (): ClusterResponse => {
    const { capacity, free } = storages.liveTotals();
    return {
      storages: storages.all(),
      capacity,
      free,
      replication: config.replication,
      blockSize: config.blockSize,
    };
  };

  const app = newApp(config.tls);
  installErrorHandler(app);
  // First, so that it records every route registered after it (GET /api/v1/openapi.json).
  registerOpenApi(app);
  const access = installAccessControl(app, keys, config.accessKeys);
  registerSessionRoutes(app, { keys, access, secureCookie: config.tls !== undefined });
  // The web UI at `/` (dist/web); never answers under /api.
  registerWebUi(app);
  registerApiRoutes(app, {
    config, ns, uploads, storages, cluster, map, replicator, health, committer,
    blocksOf: (path, maxBlocks) => locator.locate(path, maxBlocks),
    prove: (nonce, address) => proveNameServer(keys, nonce, address),
    async init() {
      await committer.run(() => wipeNamespace(db));
      uploads.clear();
      const results = await Promise.allSettled(storages.live().map((s) =>
        callJson(addrToUrl(s.addr), '/v1/wipe', { method: 'POST', body: {}, dispatcher })));
      const failed = results.filter((r) => r.status === 'rejected').length;
      if (failed > 0) throw new SdfsError('EUNAVAILABLE', `namespace wiped, but ${failed} storage server(s) could not be wiped`);
      return cluster();
    },
  });

  // File bytes relayed through the name server, for clients that cannot reach the storage servers.
  registerContentRoutes(app, { api: injectApiCaller(app, access.internalToken), dispatcher, links, channel });

  // The seed's classic protocol shares the port: connections are told apart by their first bytes.
  const classic = config.classic.listen === 'off' ? undefined : await attachClassic(app, config.classic, access.internalToken, { dispatcher, links }, channel);
  await app.listen({ host: config.host, port: config.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  gc.start();
  replicator.start();
  const broadcaster = await startBroadcasting(config, port, keys);

  return {
    port,
    classicPort: classic?.port,
    failed: committer.failed,
    url: `${config.tls ? 'https' : 'http'}://${config.host === '0.0.0.0' ? '127.0.0.1' : config.host}:${port}`,
    async stop() {
      await broadcaster?.stop();
      await classic?.stop();
      await app.close();
      await replicator.stop();
      await gc.stop();
      channel.close();
      links.close();
      await agent.close();
      wal.close();
      db.close();
    },
  };
}


/** The shell's `init`: every file and directory goes; the replicas are wiped by the caller. */
function wipeNamespace(db: Db): void {
  db.exec(`DELETE FROM file_blocks; DELETE FROM replicas; DELETE FROM blocks; DELETE FROM garbage;
    DELETE FROM inodes WHERE id != 1;`);
}
