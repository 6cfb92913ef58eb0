import { newId } from '../protocol/blocks.js';
import { SdfsError } from '../protocol/errors.js';
import type {
  AllocateBlockResponse, CompleteBlockRequest, FileStat, OpenUploadRequest, OpenUploadResponse,
} from '../protocol/messages.js';
import { resolvePath } from '../protocol/paths.js';
import type { Db } from './db.js';
import { toStat, type Namespace } from './namespace.js';
import type { StorageRegistry } from './storages.js';

interface UploadRow {
  id: string;
  path: string;
  overwrite: number;
  replication: number;
  block_size: number;
  created: number;
  touched: number;
}

/**
 * The write path. An upload is a file being written: its blocks are allocated one at a time, each
 * on R storage servers, and reported stored by the client. The file appears in the namespace only
 * at commit, in one transaction that also replaces any file it overwrites, so readers never see a
 * half-written file. An upload abandoned by its client expires and its blocks go to the garbage.
 */
export class Uploads {
  private readonly q;

  constructor(
    private readonly db: Db,
    private readonly ns: Namespace,
    private readonly storages: StorageRegistry,
    private readonly defaults: { replication: number; blockSize: number },
  ) {
    this.q = {
      get: db.prepare<[string], UploadRow>('SELECT * FROM uploads WHERE id = ?'),
      insert: db.prepare<[string, string, number, number, number, number, number]>(
        'INSERT INTO uploads (id, path, overwrite, replication, block_size, created, touched) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      touch: db.prepare<[number, string]>('UPDATE uploads SET touched = ? WHERE id = ?'),
      delete: db.prepare<[string]>('DELETE FROM uploads WHERE id = ?'),
      blocks: db.prepare<[string], { idx: number; block: string; targets: string; size: number | null }>(
        'SELECT idx, block, targets, size FROM upload_blocks WHERE upload = ? ORDER BY idx'),
      block: db.prepare<[string, number], { block: string; targets: string; size: number | null }>(
        'SELECT block, targets, size FROM upload_blocks WHERE upload = ? AND idx = ?'),
      putBlock: db.prepare<[string, number, string, string]>(
        'INSERT OR REPLACE INTO upload_blocks (upload, idx, block, targets, size) VALUES (?, ?, ?, ?, NULL)'),
      setBlockSize: db.prepare<[number, string, number]>('UPDATE upload_blocks SET size = ? WHERE upload = ? AND idx = ?'),
      deleteBlocks: db.prepare<[string]>('DELETE FROM upload_blocks WHERE upload = ?'),
      insertBlock: db.prepare<[string, number, string, number]>('INSERT OR IGNORE INTO blocks (id, size, sha256, created) VALUES (?, ?, ?, ?)'),
      insertReplica: db.prepare<[string, string]>('INSERT OR IGNORE INTO replicas (block, storage) VALUES (?, ?)'),
      addGarbage: db.prepare<[string, string]>('INSERT OR IGNORE INTO garbage (block, storage) VALUES (?, ?)'),
      expired: db.prepare<[number], { id: string }>('SELECT id FROM uploads WHERE touched < ?'),
    };
  }

  open(req: OpenUploadRequest): OpenUploadResponse {
    const path = resolvePath(req.path);
    const replication = req.replication ?? this.defaults.replication;
    const blockSize = req.blockSize ?? this.defaults.blockSize;
    // Fail early on what would fail at commit; commit checks again, since the tree may change meanwhile.
    this.ns.parentDir(path);
    const existing = this.ns.lookup(path);
    if (existing?.type === 'dir') throw new SdfsError('EISDIR', `a directory exists at ${path}`);
    if (existing && !req.overwrite) throw new SdfsError('EEXIST', `already exists: ${path}`);
    const id = newId();
    const now = Date.now();
    this.q.insert.run(id, path, req.overwrite ? 1 : 0, replication, blockSize, now, now);
    return { uploadId: id, path, replication, blockSize };
  }

  private get(id: string): UploadRow {
    const row = this.q.get.get(id);
    if (!row) throw new SdfsError('ENOENT', `no upload ${id} (committed, aborted or expired)`);
    return row;
  }

  /** Places block `index` of an upload on R distinct live storage servers (fewer if fewer are alive). */
  allocate(uploadId: string, index: number, exclude: string[] = []): AllocateBlockResponse {
    return this.db.transaction(() => {
      const up = this.get(uploadId);
      const done = this.q.blocks.all(uploadId);
      if (index > done.length) throw new SdfsError('EINVAL', `block ${index} allocated before block ${done.length}`);
      const targets = this.storages.choose(up.replication, up.block_size, exclude);
      const previous = this.q.block.get(uploadId, index);
      if (previous) this.garbage(previous.block, previous.targets);
      const blockId = newId();
      this.q.putBlock.run(uploadId, index, blockId, JSON.stringify(targets.map((t) => t.id)));
      if (previous) this.ns.releaseBlock(previous.block);
      this.q.touch.run(Date.now(), uploadId);
      this.storages.reserve(targets.map((t) => t.id), up.block_size);
      return { blockId, index, targets };
    })();
  }

  completeBlock(uploadId: string, req: CompleteBlockRequest): void {
    this.db.transaction(() => {
      const up = this.get(uploadId);
      const row = this.q.block.get(uploadId, req.index);
      if (!row || row.block !== req.blockId) throw new SdfsError('EINVAL', `block ${req.index} of upload ${uploadId} is not ${req.blockId}`);
      if (req.size > up.block_size) throw new SdfsError('EINVAL', `block larger than the block size ${up.block_size}`);
      const targets = JSON.parse(row.targets) as string[];
      if (!req.replicas.every((r) => targets.includes(r))) throw new SdfsError('EINVAL', 'replica on a storage server that was not a target');
      this.q.insertBlock.run(req.blockId, req.size, req.sha256, Date.now());
      for (const r of req.replicas) this.q.insertReplica.run(req.blockId, r);
      // A target that did not store the block may still hold part or all of it.
      for (const t of targets) if (!req.replicas.includes(t)) this.q.addGarbage.run(req.blockId, t);
      this.q.setBlockSize.run(req.size, uploadId, req.index);
      this.q.touch.run(Date.now(), uploadId);
    })();
  }

  /** Makes the upload a file at its path, atomically replacing an existing file if asked to. */
  commit(uploadId: string): FileStat {
    return this.db.transaction(() => {
      const up = this.get(uploadId);
      const blocks = this.q.blocks.all(uploadId);
      let size = 0;
      blocks.forEach((b, i) => {
        if (b.idx !== i || b.size === null) throw new SdfsError('EINVAL', `block ${i} of the upload was not stored`);
        if (i < blocks.length - 1 && b.size !== up.block_size) throw new SdfsError('EINVAL', `block ${i} is not full`);
        size += b.size;
      });
      this.ns.clearTarget(up.path, 'file', up.overwrite === 1);
      const node = this.ns.insert(up.path, 'file', size, up.replication, up.block_size);
      this.q.deleteBlocks.run(uploadId);
      this.q.delete.run(uploadId);
      this.ns.setFileBlocks(node.id, blocks.map((b) => b.block));
      return toStat(node, up.path);
    })();
  }

  abort(uploadId: string): void {
    this.db.transaction(() => {
      this.get(uploadId);
      this.drop(uploadId);
    })();
  }

  /** Aborts uploads that no client has touched for `maxIdleMs`. */
  expire(maxIdleMs: number): number {
    const ids = this.q.expired.all(Date.now() - maxIdleMs);
    this.db.transaction(() => ids.forEach(({ id }) => this.drop(id)))();
    return ids.length;
  }

  private drop(uploadId: string): void {
    const blocks = this.q.blocks.all(uploadId);
    this.q.deleteBlocks.run(uploadId);
    this.q.delete.run(uploadId);
    for (const b of blocks) {
      this.garbage(b.block, b.targets);
      this.ns.releaseBlock(b.block);
    }
  }

  /** Every target may hold a copy of an allocated block, whether or not the client reported it. */
  private garbage(block: string, targetsJson: string): void {
    for (const t of JSON.parse(targetsJson) as string[]) this.q.addGarbage.run(block, t);
  }
}
