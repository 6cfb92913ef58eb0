import { issueBlockToken, type ClusterKeys } from '../protocol/auth.js';
import { SdfsError } from '../protocol/errors.js';
import type { BlocksResponse } from '../protocol/messages.js';
import { resolvePath } from '../protocol/paths.js';
import type { Db } from './db.js';
import { toStat, type Namespace } from './namespace.js';
import type { StorageRegistry } from './storages.js';

/**
 * A file's blocks and where their replicas live, as readers ask for them (`GET /fs/blocks`): each block
 * with a read token, its live replicas first, each group in random order so that readers spread over them.
 */
export class BlockLocator {
  private readonly q;

  constructor(db: Db, private readonly ns: Namespace, private readonly storages: StorageRegistry,
    private readonly keys: ClusterKeys, private readonly tokenTtlMs: number) {
    // Prepared once: this runs for every read of every file.
    this.q = {
      blocks: db.prepare<[number], { idx: number; id: string; size: number; digest: string }>(
        'SELECT fb.idx, b.id, b.size, b.digest FROM file_blocks fb JOIN blocks b ON b.id = fb.block WHERE fb.file = ? ORDER BY fb.idx'),
      replicas: db.prepare<[string], string>('SELECT storage FROM replicas WHERE block = ?').pluck(),
      count: db.prepare<[number], number>('SELECT count(*) FROM file_blocks WHERE file = ?').pluck(),
    };
  }

  /** `maxBlocks`: a file with more blocks fails with ETOOBIG before its list is built. */
  locate(path: string, maxBlocks = Infinity): BlocksResponse {
    const abs = resolvePath(path);
    const node = this.ns.get(abs);
    if (node.type !== 'file') throw new SdfsError('EISDIR', `is a directory: ${abs}`);
    if (maxBlocks !== Infinity && this.q.count.get(node.id)! > maxBlocks) {
      throw new SdfsError('ETOOBIG', `${abs} has more blocks than this answer may hold: ask for it alone`);
    }
    let offset = 0;
    const blocks = this.q.blocks.all(node.id).map((r) => {
      const replicas: BlocksResponse['blocks'][number]['replicas'] = [];
      for (const storage of this.q.replicas.all(r.id)) {
        const s = this.storages.get(storage);
        if (s && s.addr !== '') replicas.push({ id: storage, addr: s.addr, alive: s.alive });
      }
      shuffle(replicas);
      replicas.sort((a, b) => Number(b.alive) - Number(a.alive));
      const out = { id: r.id, index: r.idx, offset, size: r.size, digest: r.digest, replicas, token: issueBlockToken(this.keys, r.id, 'read', this.tokenTtlMs) };
      offset += r.size;
      return out;
    });
    return { stat: toStat(node, abs), blocks };
  }
}

function shuffle<T>(items: T[]): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
}
