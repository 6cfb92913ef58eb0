import Database from 'better-sqlite3';
import { closeSync, fdatasync, fsyncSync, openSync } from 'node:fs';
import { dirname, join } from 'node:path';

export type Db = Database.Database;

/** Runs `fn` all or nothing. */
export type Atomic = <T>(fn: () => T) => T;

/**
 * All or nothing for the namespace's and the block map's changes: `fn` runs in a transaction of its
 * own, or, when one is open already, as part of it, and whoever opened it undoes it all on a throw
 * (the committer runs each change in a savepoint of its own; nothing inside a change catches and
 * goes on). A savepoint per nested call cost a fifth of a mkdir's database time.
 */
export function atomic(db: Db): Atomic {
  const run = db.transaction((fn: () => unknown) => fn());
  return <T>(fn: () => T): T => (db.inTransaction ? fn() : run(fn) as T);
}

/**
 * Runs `fn` in a transaction, or in a savepoint of its own when one is open: a throw undoes `fn`'s
 * changes only, and the transaction goes on. One wrapper per database, made once (better-sqlite3's
 * `db.transaction(fn)` builds its wrappers on every call: 7% of the name server under mkdirs).
 */
export function savepoint(db: Db): Atomic {
  const run = db.transaction((fn: () => unknown) => fn());
  return <T>(fn: () => T): T => run(fn) as T;
}

/** Inode id of `/`; its parent is 0, which names no inode. */
export const ROOT_ID = 1;

/**
 * The name server's database: the namespace, the block map and the storage servers, in one SQLite
 * file in WAL mode. SQLite itself does not fsync a commit (`synchronous = NORMAL`): the committer
 * makes each batch durable with an fdatasync of the WAL file on the thread pool (`WalSync`), and
 * answers only after it, so an acknowledged change survives kill -9 and power loss while the event
 * loop goes on serving.
 * Migrations run in order by `user_version`; a new schema change is a new entry at the end.
 */
const MIGRATIONS: string[] = [
  `
  CREATE TABLE inodes (
    id INTEGER PRIMARY KEY,
    parent INTEGER NOT NULL,
    name TEXT NOT NULL,
    type TEXT NOT NULL CHECK (type IN ('file', 'dir')),
    size INTEGER NOT NULL DEFAULT 0,
    replication INTEGER NOT NULL DEFAULT 0,
    block_size INTEGER NOT NULL DEFAULT 0,
    ctime INTEGER NOT NULL,
    mtime INTEGER NOT NULL,
    UNIQUE (parent, name)
  );
  -- A block is immutable; several files may share it (a copy costs no data).
  CREATE TABLE blocks (
    id TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    created INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE file_blocks (
    file INTEGER NOT NULL REFERENCES inodes(id),
    idx INTEGER NOT NULL,
    block TEXT NOT NULL REFERENCES blocks(id),
    PRIMARY KEY (file, idx)
  ) WITHOUT ROWID;
  CREATE INDEX file_blocks_block ON file_blocks(block);
  CREATE TABLE replicas (
    block TEXT NOT NULL,
    storage TEXT NOT NULL,
    PRIMARY KEY (block, storage)
  ) WITHOUT ROWID;
  CREATE INDEX replicas_storage ON replicas(storage);
  -- A file being written: invisible until committed.
  CREATE TABLE uploads (
    id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    overwrite INTEGER NOT NULL,
    replication INTEGER NOT NULL,
    block_size INTEGER NOT NULL,
    created INTEGER NOT NULL,
    touched INTEGER NOT NULL
  ) WITHOUT ROWID;
  -- Blocks allocated to an upload; size is NULL until the client reports the block stored.
  CREATE TABLE upload_blocks (
    upload TEXT NOT NULL,
    idx INTEGER NOT NULL,
    block TEXT NOT NULL,
    targets TEXT NOT NULL,
    size INTEGER,
    PRIMARY KEY (upload, idx)
  ) WITHOUT ROWID;
  CREATE TABLE storages (
    id TEXT PRIMARY KEY,
    addr TEXT NOT NULL,
    capacity INTEGER NOT NULL,
    free INTEGER NOT NULL,
    used INTEGER NOT NULL,
    blocks INTEGER NOT NULL,
    last_heartbeat INTEGER NOT NULL
  ) WITHOUT ROWID;
  -- Replicas to remove from storage servers, drained in the background.
  CREATE TABLE garbage (
    block TEXT NOT NULL,
    storage TEXT NOT NULL,
    PRIMARY KEY (block, storage)
  ) WITHOUT ROWID;
  `,
  `
  ALTER TABLE storages ADD COLUMN state TEXT NOT NULL DEFAULT 'normal' CHECK (state IN ('normal', 'draining'));
  `,
  // Uploads in progress moved to memory: only the commit of a file is durable.
  `
  DROP TABLE upload_blocks;
  DROP TABLE uploads;
  `,
  // A block's digest names its algorithm (src/protocol/block-digest.ts): new blocks are hashed with
  // XXH3, the blocks written before keep their SHA-256.
  `
  ALTER TABLE blocks RENAME COLUMN sha256 TO digest;
  UPDATE blocks SET digest = 'sha256:' || digest;
  `,
];

export function openDb(dataDir: string): Db {
  const db = new Database(join(dataDir, 'namespace.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  const version = db.pragma('user_version', { simple: true }) as number;
  for (let v = version; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
  const now = Date.now();
  db.prepare(`INSERT OR IGNORE INTO inodes (id, parent, name, type, ctime, mtime) VALUES (?, 0, '', 'dir', ?, ?)`).run(ROOT_ID, now, now);
  return db;
}

/**
 * Makes what SQLite wrote to the WAL durable: an fdatasync of the `-wal` file, on libuv's thread pool.
 * In WAL mode a commit appends its frames to that file (write(2), no fsync with synchronous=NORMAL),
 * and recovery replays every frame up to the last valid commit, so once the file's data is on disk,
 * so is every transaction committed before the call. SQLite syncs the WAL itself before a checkpoint
 * copies it into the database, and resets it in place (same file), so one descriptor serves for good.
 */
export class WalSync {
  private readonly fd: number;

  constructor(db: Db) {
    // The WAL file exists once the database has been read in WAL mode.
    db.prepare('SELECT 1 FROM inodes LIMIT 1').get();
    this.fd = openSync(`${db.name}-wal`, 'r+');
    // And its name is on disk too: a WAL file just made has a directory entry of its own.
    const dir = openSync(dirname(db.name), 'r');
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
  }

  /** The committer calls it once per batch, one at a time (batches that commit meanwhile wait for the next). */
  sync(): Promise<void> {
    return new Promise((resolve, reject) => fdatasync(this.fd, (err) => (err ? reject(err) : resolve())));
  }

  close(): void {
    closeSync(this.fd);
  }
}
