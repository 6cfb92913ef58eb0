import { newBlockId, newId } from '../protocol/blocks.js';
import { SdfsError } from '../protocol/errors.js';
import type {
  AllocateBlockResponse, CommitRequest, CompleteBlockRequest, FileStat, OpenUploadRequest, OpenUploadResponse,
  PoolUploadsRequest, PoolUploadsResponse,
} from '../protocol/messages.js';
import { resolvePath } from '../protocol/paths.js';
import type { Committer } from './committer.js';
import type { Db } from './db.js';
import { toStat, type Namespace } from './namespace.js';
import type { StorageRegistry } from './storages.js';

/** A pooled upload untouched this long is aborted (clients give theirs back after 5 s). */
const POOLED_IDLE_MS = 60_000;

interface UploadBlock {
  blockId: string;
  targets: string[];
  stored?: { size: number; digest: string; replicas: string[] };
}

interface Upload {
  id: string;
  /** Undefined for a pooled upload: its path comes with the commit. */
  path: string | undefined;
  overwrite: boolean;
  replication: number;
  blockSize: number;
  /** The largest block it may store, and the space counted on its targets for each: the block size, or a pooled upload's `maxSize`. */
  maxBlock: number;
  touched: number;
  blocks: UploadBlock[];
}

function newUpload(path: string | undefined, overwrite: boolean, replication: number, blockSize: number, maxBlock: number): Upload {
  return { id: newId(), path, overwrite, replication, blockSize, maxBlock, touched: Date.now(), blocks: [] };
}

/**
 * The write path. An upload is a file being written: its blocks are allocated one at a time, each
 * on R storage servers, and reported stored by the client. The file appears in the namespace only
 * at commit, in one transaction that also replaces any file it overwrites, so readers never see a
 * half-written file.
 *
 * Uploads live in memory only: the one durable step is the commit. If the name server dies, its
 * uploads die with it (their writers get an error), and the blocks they left on storage servers are
 * strays that the next block reports clean away. An upload abandoned by its client expires.
 */
export class Uploads {
  private readonly inProgress = new Map<string, Upload>();
  private readonly addGarbage;

  constructor(
    db: Db,
    private readonly ns: Namespace,
    private readonly storages: StorageRegistry,
    private readonly committer: Committer,
    private readonly limits: { replication: number; blockSize: number; maxUploads: number },
    /** Signs the token that lets the uploader store a block on its targets. */
    private readonly writeToken: (blockId: string) => string,
  ) {
    this.addGarbage = db.prepare<[string, string]>('INSERT OR IGNORE INTO garbage (block, storage) VALUES (?, ?)');
  }

  open(req: OpenUploadRequest): OpenUploadResponse {
    const path = resolvePath(req.path);
    const replication = req.replication ?? this.limits.replication;
    const blockSize = req.blockSize ?? this.limits.blockSize;
    this.checkRoom();
    // Fail early on what would fail at commit; commit checks again, since the tree may change meanwhile.
    this.ns.parentDir(path);
    const existing = this.ns.lookup(path);
    if (existing?.type === 'dir') throw new SdfsError('EISDIR', `a directory exists at ${path}`);
    if (existing && !req.overwrite) throw new SdfsError('EEXIST', `already exists: ${path}`);
    const up = newUpload(path, req.overwrite ?? false, replication, blockSize, blockSize);
    // Without a server to place it on, the first block waits for the first write (an empty file needs none).
    let first: AllocateBlockResponse | undefined;
    try {
      first = req.allocate ? this.place(up, 0, []) : undefined;
    } catch (err) {
      if (!(err instanceof SdfsError) || (err.code !== 'ENOSTORAGE' && err.code !== 'ENOSPACE')) throw err;
    }
    this.inProgress.set(up.id, up);
    return { uploadId: up.id, path, replication, blockSize, ...(first ? { first } : {}) };
  }

  /**
   * Opens up to `count` uploads with no path, each with its first block placed (see PoolUploadsRequest).
   * Fails only if not even one can be placed; the path is checked at commit.
   */
  pool(req: PoolUploadsRequest): PoolUploadsResponse {
    const replication = req.replication ?? this.limits.replication;
    const blockSize = req.blockSize ?? this.limits.blockSize;
    const maxBlock = Math.min(req.maxSize, blockSize);
    this.checkRoom();
    const uploads: PoolUploadsResponse['uploads'] = [];
    const count = Math.min(req.count, this.limits.maxUploads - this.inProgress.size);
    for (let i = 0; i < count; i++) {
      const up = newUpload(undefined, false, replication, blockSize, maxBlock);
      let first: AllocateBlockResponse;
      try {
        first = this.place(up, 0, []);
      } catch (err) {
        if (uploads.length > 0 && err instanceof SdfsError && err.code === 'ENOSPACE') break;
        throw err;
      }
      this.inProgress.set(up.id, up);
      uploads.push({ uploadId: up.id, first });
    }
    return { replication, blockSize, maxBlock, uploads };
  }

  /** Each upload holds memory and a placed block until it ends: a writer that opens and never ends them must not exhaust either. */
  private checkRoom(): void {
    if (this.inProgress.size >= this.limits.maxUploads) {
      throw new SdfsError('EUNAVAILABLE', `${this.limits.maxUploads} uploads are in progress already; try again later`);
    }
  }

  private get(id: string): Upload {
    const up = this.inProgress.get(id);
    if (!up) throw new SdfsError('ENOENT', `no upload ${id} (committed, aborted, expired, or lost in a name server restart)`);
    up.touched = Date.now();
    return up;
  }

  get count(): number {
    return this.inProgress.size;
  }

  /** Called when a file is committed with a block on fewer servers than it asks for, so that it is repaired. */
  onUnderReplicated: (() => void) | undefined;

  /** The block ids of every upload in progress (a block report must not call them strays). */
  pendingBlocks(): Set<string> {
    const out = new Set<string>();
    for (const up of this.inProgress.values()) for (const b of up.blocks) out.add(b.blockId);
    return out;
  }

  /** Places block `index` of an upload on R distinct live storage servers (fewer if fewer are alive). */
  async allocate(uploadId: string, index: number, exclude: string[] = []): Promise<AllocateBlockResponse> {
    const up = this.get(uploadId);
    if (index > up.blocks.length) throw new SdfsError('EINVAL', `block ${index} allocated before block ${up.blocks.length}`);
    // A writer may send the next block while this one is being stored, so any block not yet stored may be placed again.
    if (up.blocks[index]?.stored) throw new SdfsError('EINVAL', `block ${index} is already stored`);
    const previous = up.blocks[index];
    const alloc = this.place(up, index, exclude);
    // A block sent again: whatever the first attempt left on its targets is garbage.
    if (previous) await this.garbage(previous.blockId, previous.targets);
    return alloc;
  }

  private place(up: Upload, index: number, exclude: string[]): AllocateBlockResponse {
    const targets = this.storages.choose(up.replication, up.maxBlock, exclude);
    const blockId = newBlockId();
    up.blocks[index] = { blockId, targets: targets.map((t) => t.id) };
    this.storages.reserve(targets.map((t) => t.id), up.maxBlock);
    return { blockId, index, targets, token: this.writeToken(blockId) };
  }

  async completeBlock(uploadId: string, req: CompleteBlockRequest): Promise<void> {
    const unstored = this.record(this.get(uploadId), req);
    if (unstored.length > 0) await this.garbage(req.blockId, unstored);
  }

  /** Records a block as stored; returns the targets that did not store it. */
  private record(up: Upload, req: CompleteBlockRequest): string[] {
    const block = up.blocks[req.index];
    if (!block || block.blockId !== req.blockId) throw new SdfsError('EINVAL', `block ${req.index} of upload ${up.id} is not ${req.blockId}`);
    if (req.size > up.maxBlock) {
      throw new SdfsError('EINVAL', up.maxBlock < up.blockSize
        ? `block larger than the pooled upload's ${up.maxBlock} bytes` : `block larger than the block size ${up.blockSize}`);
    }
    if (!req.replicas.every((r) => block.targets.includes(r))) throw new SdfsError('EINVAL', 'replica on a storage server that was not a target');
    block.stored = { size: req.size, digest: req.digest, replicas: [...new Set(req.replicas)] };
    // A target that did not store the block may still hold part or all of it.
    return block.targets.filter((t) => !req.replicas.includes(t));
  }

  /**
   * Makes the upload a file at its path, atomically replacing an existing file if asked to. `last`
   * reports the last block in the same call. A block placed but never sent (an empty file's first)
   * is dropped. A pooled upload gets its path (and `overwrite`) here, and only a pooled one may.
   */
  async commit(uploadId: string, req: CommitRequest = {}): Promise<FileStat> {
    const { last } = req;
    const up = this.get(uploadId);
    if ((up.path === undefined) !== (req.path !== undefined)) {
      throw new SdfsError('EINVAL', up.path === undefined ? 'a pooled upload needs its path at commit' : 'this upload has its path already');
    }
    const path = up.path ?? resolvePath(req.path!);
    const overwrite = up.path === undefined ? req.overwrite ?? false : up.overwrite;
    const leftovers: { blockId: string; targets: string[] }[] = [];
    if (last) {
      const unstored = this.record(up, last);
      if (unstored.length > 0) leftovers.push({ blockId: last.blockId, targets: unstored });
    }
    const unsent = up.blocks.at(-1);
    if (unsent && !unsent.stored) {
      up.blocks.pop();
      leftovers.push(unsent);
    }
    let size = 0;
    up.blocks.forEach((b, i) => {
      if (!b.stored) throw new SdfsError('EINVAL', `block ${i} of the upload was not stored`);
      if (i < up.blocks.length - 1 && b.stored.size !== up.blockSize) throw new SdfsError('EINVAL', `block ${i} is not full`);
      size += b.stored.size;
    });
    const stat = await this.committer.run(() => {
      for (const l of leftovers) for (const t of l.targets) this.addGarbage.run(l.blockId, t);
      this.ns.clearTarget(path, 'file', overwrite);
      const node = this.ns.insert(path, 'file', size, up.replication, up.blockSize);
      this.ns.addFileBlocks(node.id, up.blocks.map((b) => ({ id: b.blockId, ...b.stored! })));
      return toStat(node, path);
    });
    this.inProgress.delete(uploadId);
    if (up.blocks.some((b) => b.stored!.replicas.length < up.replication)) this.onUnderReplicated?.();
    return stat;
  }

  async abort(uploadId: string): Promise<void> {
    const up = this.get(uploadId);
    this.inProgress.delete(uploadId);
    await this.dropBlocks(up);
  }

  /**
   * Aborts uploads that no client has touched for `maxIdleMs`; pooled ones never named after a minute
   * at most (a client takes them within seconds, or has gone).
   */
  async expire(maxIdleMs: number): Promise<number> {
    const limit = Date.now() - maxIdleMs;
    const pooledLimit = Date.now() - Math.min(maxIdleMs, POOLED_IDLE_MS);
    const expired = [...this.inProgress.values()].filter((u) => u.touched < (u.path === undefined ? pooledLimit : limit));
    for (const up of expired) {
      this.inProgress.delete(up.id);
      await this.dropBlocks(up);
    }
    return expired.length;
  }

  /** The shell's `init`: every upload in progress is forgotten. */
  clear(): void {
    this.inProgress.clear();
  }

  private async dropBlocks(up: Upload): Promise<void> {
    if (up.blocks.length === 0) return;
    await this.committer.run(() => {
      for (const b of up.blocks) for (const t of b.targets) this.addGarbage.run(b.blockId, t);
    });
  }

  /** Every target may hold a copy of an allocated block, whether or not the client reported it. */
  private garbage(block: string, targets: string[]): Promise<void> {
    return this.committer.run(() => {
      for (const t of targets) this.addGarbage.run(block, t);
    });
  }
}
