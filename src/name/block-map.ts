import { SdfsError } from '../protocol/errors.js';
import type { BlockHealth } from '../protocol/messages.js';
import { atomic, type Atomic, type Db } from './db.js';

/** The block ids `from` <= id < `to`: a slice of a block report. */
export interface IdRange {
  from: string;
  to: string;
}

/** Every block id (ids are 32 lowercase hex digits, all below "g"). */
const WHOLE_RANGE: IdRange = { from: '', to: 'g' };

/**
 * Applying a full block report costs the name server about 6 us a block (1,000,000 blocks: 6 s in
 * slices); at one report per interval from each server, this keeps that under 1% of its one core.
 */
const REPORT_MS_PER_BLOCK = 0.6;

/**
 * How often a storage server holding `blocks` blocks sends its full list: the configured interval,
 * longer for a server with more than 100,000 blocks (a million: every 10 minutes). HDFS sends its
 * full reports hours apart; between them, the commits and copies keep the map current.
 */
export function blockReportInterval(configuredMs: number, blocks: number): number {
  return Math.max(configuredMs, Math.ceil(blocks * REPORT_MS_PER_BLOCK));
}

/**
 * Cuts a block report into slices of the id space, each with `per` of the listed ids or fewer and
 * those ids: a long report is applied a slice at a time (applied whole, a report of a million blocks
 * held the name server's event loop for 8-10 s). The slices cover every id, listed or not: a replica
 * missing from the list is found in its slice. First by the first one or two hex digits (16 or 256
 * slices: random ids spread evenly over them); a slice still too full, as block ids since
 * 2026-11-29 begin with their time (newBlockId) and share their first digits, is cut again between
 * its own ids, in order.
 */
export function reportSlices(blocks: string[], per = 8192): { range: IdRange; ids: string[] }[] {
  if (blocks.length <= per) return [{ range: WHOLE_RANGE, ids: blocks }];
  const digits = blocks.length <= 16 * per ? 1 : 2;
  const hex = '0123456789abcdef';
  const prefixes = digits === 1 ? [...hex] : [...hex].flatMap((a) => [...hex].map((b) => a + b));
  const ids = new Map<string, string[]>(prefixes.map((p) => [p, []]));
  for (const id of blocks) ids.get(id.slice(0, digits))!.push(id);
  // From the prefix (the first from "") up to the next one (every id with this prefix is below it), and "g" after the last.
  return prefixes.flatMap((p, i) => cutSlice({ from: i === 0 ? '' : p, to: prefixes[i + 1] ?? 'g' }, ids.get(p)!, per));
}

/** A slice with more than `per` ids, cut at its own ids into slices of `per` or fewer (an id listed twice stays in one). */
function cutSlice(range: IdRange, ids: string[], per: number): { range: IdRange; ids: string[] }[] {
  if (ids.length <= per) return [{ range, ids }];
  // Mostly in order already: a server lists its blocks about in the order it got them, and the sort
  // takes runs as they come (a million ids: about 80 ms so, 600 in random order).
  ids.sort();
  const out: { range: IdRange; ids: string[] }[] = [];
  let from = range.from;
  for (let start = 0; start < ids.length;) {
    let end = Math.min(start + per, ids.length);
    while (end < ids.length && ids[end] === ids[end - 1]) end++;
    const to = end < ids.length ? ids[end]! : range.to;
    out.push({ range: { from, to }, ids: ids.slice(start, end) });
    from = to;
    start = end;
  }
  return out;
}

/** One block of a committed file, with where its replicas are and how many its files ask for. */
export interface BlockState {
  id: string;
  size: number;
  digest: string;
  /** The highest replication asked by a file that holds the block (copies share blocks). */
  want: number;
  holders: string[];
  /** Servers whose copy is queued for deletion (damaged or extra): never a target for a new copy. */
  doomed: string[];
}

/**
 * Reads and corrects the block map (which storage server holds which block) from what storage
 * servers report. Every block here belongs to a committed file; blocks of uploads in progress are
 * left alone.
 */
export class BlockMap {
  private readonly q;
  /** When each replica made by re-replication was recorded (`block@storage`), for the report's grace. */
  private readonly recent = new Map<string, number>();

  private readonly atomic: Atomic;
  private readonly report;

  constructor(private readonly db: Db) {
    this.atomic = atomic(db);
    this.report = this.prepareReport();
    this.q = {
      states: db.prepare<[], { id: string; size: number; digest: string; want: number; holders: string | null; doomed: string | null }>(`
        SELECT b.id, b.size, b.digest, w.want, (SELECT group_concat(storage) FROM replicas r WHERE r.block = b.id) AS holders,
          (SELECT group_concat(storage) FROM garbage g WHERE g.block = b.id) AS doomed
        FROM blocks b JOIN (
          SELECT fb.block, max(i.replication) AS want FROM file_blocks fb JOIN inodes i ON i.id = fb.file GROUP BY fb.block
        ) w ON w.block = b.id`),
      addReplica: db.prepare<[string, string, string]>(
        'INSERT OR IGNORE INTO replicas (block, storage) SELECT ?, ? WHERE EXISTS (SELECT 1 FROM blocks WHERE id = ?)'),
      dropReplica: db.prepare<[string, string]>('DELETE FROM replicas WHERE block = ? AND storage = ?'),
      addGarbage: db.prepare<[string, string]>('INSERT OR IGNORE INTO garbage (block, storage) VALUES (?, ?)'),
      otherHolders: db.prepare<[string, string], { n: number }>('SELECT count(*) AS n FROM replicas WHERE block = ? AND storage != ?'),
    };
  }

  /** Every block of every committed file; fine up to millions of rows, called only when something changed. */
  states(): BlockState[] {
    return this.q.states.all().map((r) => ({
      id: r.id, size: r.size, digest: r.digest, want: r.want, holders: r.holders ? r.holders.split(',') : [],
      doomed: r.doomed ? r.doomed.split(',') : [],
    }));
  }

  /**
   * Counts blocks by health. `usable` are the servers whose replicas count toward replication (alive,
   * not draining); `alive` those a reader can still read from (draining ones included). A block below
   * its files' replication is under-replicated even if no server is there to copy it to; it is missing
   * only when no live server holds it.
   */
  health(usable: Set<string>, alive: Set<string>, states = this.states()): BlockHealth {
    const out: BlockHealth = { blocks: states.length, underReplicated: 0, missing: 0, overReplicated: 0 };
    for (const b of states) {
      const counted = b.holders.filter((h) => usable.has(h)).length;
      if (!b.holders.some((h) => alive.has(h))) out.missing++;
      else if (counted < b.want) out.underReplicated++;
      else if (counted > b.want) out.overReplicated++;
    }
    return out;
  }

  /** Records a new replica; if the block was deleted meanwhile, the new copy is garbage. */
  addReplica(block: string, storage: string): void {
    if (this.q.addReplica.run(block, storage, block).changes === 0) this.q.addGarbage.run(block, storage);
    // A block list the server took just before this copy must not make it look lost.
    const now = Date.now();
    this.recent.set(`${block}@${storage}`, now);
    if (this.recent.size > 100_000) for (const [k, t] of this.recent) if (t < now - 3_600_000) this.recent.delete(k);
  }

  /** Forgets a replica and has it deleted from its storage server. */
  removeReplica(block: string, storage: string): void {
    this.atomic(() => {
      this.q.dropReplica.run(block, storage);
      this.q.addGarbage.run(block, storage);
    });
  }

  /**
   * A reader or the storage server's scrubber found a replica damaged. It is dropped if the block has
   * another replica to copy from; the last copy is kept, since a damaged block may still be partly read.
   */
  reportBad(block: string, storage: string): boolean {
    return this.atomic(() => {
      if (this.q.otherHolders.get(block, storage)!.n === 0) return false;
      this.q.dropReplica.run(block, storage);
      this.q.addGarbage.run(block, storage);
      return true;
    });
  }

  /**
   * Forgets every replica that a storage server was known to hold, and its queued deletions: the
   * server is gone for good. Refuses (EBUSY) if a block had no other replica, unless `force`.
   */
  forgetStorage(storage: string, force: boolean): { replicas: number; onlyCopies: number } {
    return this.atomic(() => {
      const { n: onlyCopies } = this.db.prepare<[string], { n: number }>(`SELECT count(*) AS n FROM replicas r WHERE r.storage = ?
        AND NOT EXISTS (SELECT 1 FROM replicas o WHERE o.block = r.block AND o.storage != r.storage)`).get(storage)!;
      if (onlyCopies > 0 && !force) {
        throw new SdfsError('EBUSY', `${onlyCopies} block(s) have their only replica on ${storage}: their files lose data if it is forgotten (force it once that disk is gone for good)`);
      }
      const replicas = this.db.prepare<[string]>('DELETE FROM replicas WHERE storage = ?').run(storage).changes;
      this.db.prepare<[string]>('DELETE FROM garbage WHERE storage = ?').run(storage);
      return { replicas, onlyCopies };
    });
  }

  /**
   * The statements of a block report, prepared once (a long report runs them once per slice), at
   * start: outside any transaction, whose rollback would drop the temporary table they read.
   */
  private prepareReport() {
    // The listed ids, in a table of this connection's own.
    this.db.exec('CREATE TEMP TABLE IF NOT EXISTS report (id TEXT PRIMARY KEY) WITHOUT ROWID');
    return {
      clear: this.db.prepare('DELETE FROM temp.report'),
      insert: this.db.prepare<[string]>('INSERT OR IGNORE INTO temp.report (id) VALUES (?)'),
      added: this.db.prepare<[{ storage: string }]>(`INSERT OR IGNORE INTO replicas (block, storage)
        SELECT r.id, @storage FROM temp.report r
        WHERE EXISTS (SELECT 1 FROM blocks b WHERE b.id = r.id)
        AND NOT EXISTS (SELECT 1 FROM garbage g WHERE g.block = r.id AND g.storage = @storage)`),
      unknown: this.db.prepare<[], string>('SELECT r.id FROM temp.report r WHERE NOT EXISTS (SELECT 1 FROM blocks b WHERE b.id = r.id)').pluck(),
      missing: this.db.prepare<[string, string, string, number], string>(`SELECT block FROM replicas
        WHERE storage = ? AND block >= ? AND block < ?
        AND NOT EXISTS (SELECT 1 FROM temp.report r WHERE r.id = replicas.block)
        AND EXISTS (SELECT 1 FROM blocks b WHERE b.id = replicas.block AND b.created < ?)`).pluck(),
    };
  }

  /**
   * Reconciles the map with a storage server's full list of blocks:
   * - a listed block that a file references becomes a known replica (over-replication is trimmed later),
   *   unless that replica is queued for deletion;
   * - a listed block that nothing references (deleted, or of an abandoned or lost upload) is queued for
   *   deletion, unless an upload in progress is writing it (`pending`);
   * - a known replica missing from the list is forgotten, unless the block, or this replica of it, is
   *   younger than `graceMs` (it may have been stored after the storage server took its list).
   * With `range`, `blocks` are the listed ids in that range (see reportSlices), and only the replicas
   * in it are compared.
   */
  applyReport(storage: string, blocks: string[], pending: Set<string>, graceMs: number, range: IdRange = WHOLE_RANGE): { added: number; strays: number; lost: number } {
    const q = this.report;
    return this.atomic(() => {
      q.clear.run();
      for (const id of blocks) q.insert.run(id);
      // Not a replica queued for deletion (trimmed, or damaged) that the server has not deleted yet.
      const added = q.added.run({ storage }).changes;
      let strays = 0;
      for (const id of q.unknown.all()) if (!pending.has(id)) strays += this.q.addGarbage.run(id, storage).changes;
      const since = Date.now() - graceMs;
      const missingHere = q.missing.all(storage, range.from, range.to, since);
      let lost = 0;
      for (const block of missingHere) {
        if ((this.recent.get(`${block}@${storage}`) ?? 0) >= since) continue;
        lost += this.q.dropReplica.run(block, storage).changes;
      }
      q.clear.run();
      return { added, strays, lost };
    });
  }
}
