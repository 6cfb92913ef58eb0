import type { FsckFile, FsckResponse, StatusResponse } from '../protocol/messages.js';
import { resolvePath } from '../protocol/paths.js';
import type { BlockMap } from './block-map.js';
import type { Db } from './db.js';
import type { Namespace } from './namespace.js';
import type { Replicator } from './replicator.js';
import type { StorageRegistry } from './storages.js';
import type { Uploads } from './uploads.js';

/** `sdfs status` and `sdfs fsck`: the cluster's and each file's replication health. */
export class Health {
  constructor(
    private readonly db: Db,
    private readonly ns: Namespace,
    private readonly map: BlockMap,
    private readonly storages: StorageRegistry,
    private readonly replicator: Replicator,
    private readonly uploads: Uploads,
  ) {}

  status(): StatusResponse {
    const usable = new Set(this.storages.usable().map((s) => s.id));
    const states = this.map.states();
    const alive = new Set(this.storages.live().map((s) => s.id));
    const health = this.map.health(usable, alive, states);
    // A draining server is drained when every block it holds has its full replication elsewhere.
    const undrained = new Set<string>();
    for (const b of states) {
      const elsewhere = b.holders.filter((h) => usable.has(h)).length;
      if (elsewhere < b.want) for (const h of b.holders) undrained.add(h);
    }
    const all = this.storages.all();
    const counts = this.db.prepare<[], { files: number; dirs: number }>(
      `SELECT sum(type = 'file') AS files, sum(type = 'dir') AS dirs FROM inodes`).get()!;
    return {
      storages: all.map((s) => ({ ...s, drained: s.state === 'draining' && !undrained.has(s.id) })),
      files: counts.files ?? 0,
      dirs: counts.dirs ?? 0,
      ...this.storages.liveTotals(),
      health,
      replicationInFlight: this.replicator.copiesInFlight,
      uploadsInProgress: this.uploads.count,
    };
  }

  fsck(path: string): FsckResponse {
    const abs = resolvePath(path);
    const start = this.ns.get(abs);
    const usable = new Set(this.storages.usable().map((s) => s.id));
    const alive = new Set(this.storages.live().map((s) => s.id));
    const states = new Map(this.map.states().map((b) => [b.id, b]));
    const files = this.db.prepare<[{ id: number; path: string }], { id: number; path: string; size: number; replication: number }>(`
      WITH RECURSIVE t(id, path, type, size, replication) AS (
        SELECT id, @path, type, size, replication FROM inodes WHERE id = @id
        UNION ALL
        SELECT i.id, CASE WHEN t.path = '/' THEN '/' || i.name ELSE t.path || '/' || i.name END, i.type, i.size, i.replication
        FROM inodes i JOIN t ON i.parent = t.id
      )
      SELECT id, path, size, replication FROM t WHERE type = 'file' ORDER BY path`).all({ id: start.id, path: abs });
    const out: FsckFile[] = files.map((f) => {
      let underReplicated = 0;
      let missing = 0;
      const blocks = this.ns.fileBlocks(f.id);
      for (const { block } of blocks) {
        const holders = states.get(block)?.holders ?? [];
        if (!holders.some((h) => alive.has(h))) missing++;
        else if (holders.filter((h) => usable.has(h)).length < f.replication) underReplicated++;
      }
      const status = missing > 0 ? 'missing-blocks' : underReplicated > 0 ? 'under-replicated' : 'healthy';
      return { path: f.path, size: f.size, replication: f.replication, blocks: blocks.length, underReplicated, missing, status };
    });
    return { path: abs, files: out, healthy: out.every((f) => f.status === 'healthy') };
  }
}
