import { SdfsError } from '../protocol/errors.js';
import type { FileStat } from '../protocol/messages.js';
import { baseName, isWithin, joinPath, parentOf, resolvePath, splitPath } from '../protocol/paths.js';
import { atomic, ROOT_ID, type Atomic, type Db } from './db.js';

export interface Inode {
  id: number;
  parent: number;
  name: string;
  type: 'file' | 'dir';
  size: number;
  replication: number;
  block_size: number;
  ctime: number;
  mtime: number;
}

/**
 * The directory tree: every namespace operation is one SQLite transaction, so a rename or a recursive
 * delete is all or nothing, and a reader never sees half of one. Paths arrive here unvalidated and are
 * normalized first.
 */
export class Namespace {
  private readonly q;

  private readonly atomic: Atomic;

  constructor(db: Db) {
    this.atomic = atomic(db);
    this.q = {
      child: db.prepare<[number, string], Inode>('SELECT * FROM inodes WHERE parent = ? AND name = ?'),
      childDir: db.prepare<[number, string], number>("SELECT id FROM inodes WHERE parent = ? AND name = ? AND type = 'dir'").pluck(),
      byId: db.prepare<[number], Inode>('SELECT * FROM inodes WHERE id = ?'),
      children: db.prepare<[number], Inode>('SELECT * FROM inodes WHERE parent = ? ORDER BY name'),
      hasChildren: db.prepare<[number], { one: number }>('SELECT 1 AS one FROM inodes WHERE parent = ? LIMIT 1'),
      insert: db.prepare<[number, string, string, number, number, number, number, number]>(
        'INSERT INTO inodes (parent, name, type, size, replication, block_size, ctime, mtime) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
      move: db.prepare<[number, string, number, number]>('UPDATE inodes SET parent = ?, name = ?, mtime = ? WHERE id = ?'),
      touch: db.prepare<[number, number]>('UPDATE inodes SET mtime = ? WHERE id = ?'),
      deleteInode: db.prepare<[number]>('DELETE FROM inodes WHERE id = ?'),
      fileBlocks: db.prepare<[number], { idx: number; block: string }>('SELECT idx, block FROM file_blocks WHERE file = ? ORDER BY idx'),
      deleteFileBlocks: db.prepare<[number]>('DELETE FROM file_blocks WHERE file = ?'),
      insertFileBlock: db.prepare<[number, number, string]>('INSERT INTO file_blocks (file, idx, block) VALUES (?, ?, ?)'),
      blockRefs: db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM file_blocks WHERE block = ?'),
      insertBlock: db.prepare<[string, number, string, number]>('INSERT OR IGNORE INTO blocks (id, size, digest, created) VALUES (?, ?, ?, ?)'),
      insertReplica: db.prepare<[string, string]>('INSERT OR IGNORE INTO replicas (block, storage) VALUES (?, ?)'),
      replicasOf: db.prepare<[string], { storage: string }>('SELECT storage FROM replicas WHERE block = ?'),
      addGarbage: db.prepare<[string, string]>('INSERT OR IGNORE INTO garbage (block, storage) VALUES (?, ?)'),
      deleteReplicas: db.prepare<[string]>('DELETE FROM replicas WHERE block = ?'),
      deleteBlock: db.prepare<[string]>('DELETE FROM blocks WHERE id = ?'),
      subtree: db.prepare<[number], Inode>(`
        WITH RECURSIVE t(id) AS (SELECT ? UNION ALL SELECT i.id FROM inodes i JOIN t ON i.parent = t.id)
        SELECT inodes.* FROM inodes JOIN t ON inodes.id = t.id`),
    };
  }

  /** The inode at a normalized path, or undefined. Only the last component's row is read whole. */
  lookup(absPath: string): Inode | undefined {
    const names = splitPath(absPath);
    if (names.length === 0) return this.q.byId.get(ROOT_ID);
    const dir = this.dirOf(names);
    return dir === undefined ? undefined : this.q.child.get(dir, names[names.length - 1]!);
  }

  /** The id of the directory that holds the path `names` (not the root), or undefined if there is none. */
  private dirOf(names: string[]): number | undefined {
    let dir = ROOT_ID;
    for (let i = 0; i < names.length - 1; i++) {
      const next = this.q.childDir.get(dir, names[i]!);
      if (next === undefined) return undefined;
      dir = next;
    }
    return dir;
  }

  get(absPath: string): Inode {
    const node = this.lookup(absPath);
    if (!node) throw new SdfsError('ENOENT', `no such file or directory: ${absPath}`);
    return node;
  }

  /** The directory that is to hold `absPath`: it must exist and be a directory. */
  parentDir(absPath: string): Inode {
    if (absPath === '/') throw new SdfsError('EINVAL', 'the root has no parent');
    const parent = this.lookup(parentOf(absPath));
    if (!parent) throw new SdfsError('ENOENT', `no such directory: ${parentOf(absPath)}`);
    if (parent.type !== 'dir') throw new SdfsError('ENOTDIR', `not a directory: ${parentOf(absPath)}`);
    return parent;
  }

  stat(path: string): FileStat {
    const abs = resolvePath(path);
    return toStat(this.get(abs), abs);
  }

  list(path: string): { path: string; entries: FileStat[] } {
    const abs = resolvePath(path);
    const dir = this.get(abs);
    if (dir.type !== 'dir') throw new SdfsError('ENOTDIR', `not a directory: ${abs}`);
    const entries = this.q.children.all(dir.id).map((n) => toStat(n, joinPath(abs, n.name)));
    entries.sort((a, b) => (a.type === b.type ? (a.name < b.name ? -1 : a.name > b.name ? 1 : 0) : a.type === 'dir' ? -1 : 1));
    return { path: abs, entries };
  }

  mkdir(path: string, parents = false): FileStat {
    const abs = resolvePath(path);
    return this.atomic(() => {
      const existing = this.lookup(abs);
      if (existing) {
        if (parents && existing.type === 'dir') return toStat(existing, abs);
        throw new SdfsError('EEXIST', `already exists: ${abs}`);
      }
      if (parents) {
        let cur = '/';
        for (const name of splitPath(abs)) {
          cur = joinPath(cur, name);
          const node = this.lookup(cur);
          if (node && node.type !== 'dir') throw new SdfsError('ENOTDIR', `not a directory: ${cur}`);
          if (!node) this.insert(cur, 'dir');
        }
        return this.stat(abs);
      }
      return toStat(this.insert(abs, 'dir'), abs);
    });
  }

  /** Creates an empty file; fails if the name is taken (the seed's `create`). */
  createEmpty(path: string, replication: number, blockSize: number): FileStat {
    const abs = resolvePath(path);
    return this.atomic(() => {
      if (this.lookup(abs)) throw new SdfsError('EEXIST', `already exists: ${abs}`);
      return toStat(this.insert(abs, 'file', 0, replication, blockSize), abs);
    });
  }

  insert(abs: string, type: 'file' | 'dir', size = 0, replication = 0, blockSize = 0): Inode {
    const names = splitPath(abs);
    if (names.length === 0) throw new SdfsError('EEXIST', 'the root already exists');
    // By ids alone; parentDir says what is wrong (no such directory, or not one) when that fails.
    const parent = this.dirOf(names) ?? this.parentDir(abs).id;
    const name = names[names.length - 1]!;
    const now = Date.now();
    const info = this.q.insert.run(parent, name, type, size, replication, blockSize, now, now);
    this.q.touch.run(now, parent);
    return { id: Number(info.lastInsertRowid), parent, name, type, size, replication, block_size: blockSize, ctime: now, mtime: now };
  }

  /**
   * Where a move or copy of `from` to `to` lands: into `to` if it is a directory (as mv and cp do),
   * else at `to` itself.
   */
  private target(fromAbs: string, toPath: string): string {
    const toAbs = resolvePath(toPath);
    const existing = this.lookup(toAbs);
    return existing?.type === 'dir' && toAbs !== fromAbs ? joinPath(toAbs, baseName(fromAbs)) : toAbs;
  }

  rename(from: string, to: string, overwrite = false): FileStat {
    const fromAbs = resolvePath(from);
    return this.atomic(() => {
      const node = this.get(fromAbs);
      if (fromAbs === '/') throw new SdfsError('EINVAL', 'cannot move the root');
      const toAbs = this.target(fromAbs, to);
      if (toAbs === fromAbs) return toStat(node, fromAbs);
      if (node.type === 'dir' && isWithin(toAbs, fromAbs)) throw new SdfsError('EINVAL', `cannot move ${fromAbs} into itself`);
      const parent = this.parentDir(toAbs);
      this.clearTarget(toAbs, node.type, overwrite);
      const now = Date.now();
      this.q.move.run(parent.id, baseName(toAbs), now, node.id);
      this.q.touch.run(now, parent.id);
      this.q.touch.run(now, node.parent);
      return toStat(this.q.byId.get(node.id)!, toAbs);
    });
  }

  /** Copies a file or a directory tree; files share their (immutable) blocks with the source. */
  copy(from: string, to: string, overwrite = false): FileStat {
    const fromAbs = resolvePath(from);
    return this.atomic(() => {
      const node = this.get(fromAbs);
      const toAbs = this.target(fromAbs, to);
      if (toAbs === fromAbs) throw new SdfsError('EEXIST', `source and target are the same: ${fromAbs}`);
      if (node.type === 'dir' && isWithin(toAbs, fromAbs)) throw new SdfsError('EINVAL', `cannot copy ${fromAbs} into itself`);
      this.parentDir(toAbs);
      this.clearTarget(toAbs, node.type, overwrite);
      this.copyNode(node, toAbs);
      return this.stat(toAbs);
    });
  }

  private copyNode(node: Inode, toAbs: string): void {
    const copy = this.insert(toAbs, node.type, node.size, node.replication, node.block_size);
    if (node.type === 'file') {
      for (const fb of this.q.fileBlocks.all(node.id)) this.q.insertFileBlock.run(copy.id, fb.idx, fb.block);
      return;
    }
    for (const child of this.q.children.all(node.id)) this.copyNode(child, joinPath(toAbs, child.name));
  }

  /** Makes room at `abs` for a new entry of `type`: replaces a file there only if `overwrite`. */
  clearTarget(abs: string, type: 'file' | 'dir', overwrite: boolean): void {
    const existing = this.lookup(abs);
    if (!existing) return;
    if (existing.type === 'dir') throw new SdfsError(type === 'dir' ? 'EEXIST' : 'EISDIR', `a directory exists at ${abs}`);
    if (!overwrite || type === 'dir') throw new SdfsError('EEXIST', `already exists: ${abs}`);
    this.deleteFile(existing);
  }

  remove(path: string, recursive = false): void {
    const abs = resolvePath(path);
    this.atomic(() => {
      const node = this.get(abs);
      if (abs === '/') throw new SdfsError('EINVAL', 'cannot remove the root');
      if (node.type === 'dir' && this.q.hasChildren.get(node.id) && !recursive) {
        throw new SdfsError('ENOTEMPTY', `directory not empty: ${abs}`);
      }
      // Children before parents, so that no row ever points at a removed directory.
      const nodes = node.type === 'dir' ? this.q.subtree.all(node.id).reverse() : [node];
      for (const n of nodes) {
        if (n.type === 'file') this.deleteFile(n);
        else this.q.deleteInode.run(n.id);
      }
      this.q.touch.run(Date.now(), node.parent);
    });
  }

  private deleteFile(node: Inode): void {
    const blocks = this.q.fileBlocks.all(node.id);
    this.q.deleteFileBlocks.run(node.id);
    this.q.deleteInode.run(node.id);
    for (const { block } of blocks) this.releaseBlock(block);
  }

  /** Sends a block's replicas to the garbage queue once nothing references the block. */
  releaseBlock(block: string): void {
    if (this.q.blockRefs.get(block)!.n > 0) return;
    for (const { storage } of this.q.replicasOf.all(block)) this.q.addGarbage.run(block, storage);
    this.q.deleteReplicas.run(block);
    this.q.deleteBlock.run(block);
  }

  fileBlocks(fileId: number): { idx: number; block: string }[] {
    return this.q.fileBlocks.all(fileId);
  }

  /** Records a new file's blocks and where their replicas are. */
  addFileBlocks(fileId: number, blocks: { id: string; size: number; digest: string; replicas: string[] }[]): void {
    const now = Date.now();
    blocks.forEach((b, i) => {
      this.q.insertBlock.run(b.id, b.size, b.digest, now);
      for (const r of b.replicas) this.q.insertReplica.run(b.id, r);
      this.q.insertFileBlock.run(fileId, i, b.id);
    });
  }
}

export function toStat(n: Inode, path: string): FileStat {
  return {
    path,
    name: n.id === ROOT_ID ? '/' : n.name,
    type: n.type,
    size: n.size,
    ctime: n.ctime,
    mtime: n.mtime,
    replication: n.replication,
    blockSize: n.block_size,
    blocks: n.type === 'file' && n.block_size > 0 ? Math.ceil(n.size / n.block_size) : 0,
  };
}
