import { SdfsError } from '../protocol/errors.js';
import { addrToUrl } from '../protocol/http.js';
import type { StorageInfo, StorageRef, StorageReport } from '../protocol/messages.js';
import type { Db } from './db.js';

interface StorageState extends StorageInfo {
  lastSeen: number;
  /** The file system it reported its data dir on (StorageReport.fsId), if it did. */
  fsId?: string;
}

/** The space of the cluster's live storage servers: a file system several of them share counts once. */
export interface SpaceTotals {
  capacity: number;
  free: number;
  used: number;
}

/**
 * The storage servers the name server knows, and which of them are alive. A storage server's
 * address is persisted when it registers, so that block locations stay known across a name server
 * restart; liveness is only ever learned from heartbeats to this process.
 */
export class StorageRegistry {
  private readonly byId = new Map<string, StorageState>();

  constructor(private readonly db: Db, private readonly deadAfterMs: number) {
    for (const row of db.prepare<[], { id: string; addr: string; capacity: number; free: number; used: number; blocks: number; last_heartbeat: number; state: StorageInfo['state'] }>(
      'SELECT * FROM storages').all()) {
      this.byId.set(row.id, {
        id: row.id, addr: row.addr, capacity: row.capacity, free: row.free, used: row.used, blocks: row.blocks,
        lastHeartbeat: row.last_heartbeat, alive: false, lastSeen: 0, state: row.state,
      });
    }
  }

  register(report: StorageReport, remoteHost: string): StorageInfo {
    const host = report.host || remoteHost;
    const hostPort = host.includes(':') && !host.startsWith('[') ? `[${host}]:${report.port}` : `${host}:${report.port}`;
    // A storage server that serves HTTPS is known by an https:// address (plain host:port is HTTP).
    const addr = report.tls ? `https://${hostPort}` : hostPort;
    const now = Date.now();
    const previous = this.byId.get(report.id);
    const state: StorageState = {
      id: report.id, addr, capacity: report.capacity, free: report.free, used: report.used, blocks: report.blocks,
      lastHeartbeat: now, alive: true, lastSeen: now, state: previous?.state ?? 'normal', fsId: report.fsId,
    };
    this.byId.set(report.id, state);
    this.db.prepare(`INSERT INTO storages (id, addr, capacity, free, used, blocks, last_heartbeat) VALUES (?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT (id) DO UPDATE SET addr = excluded.addr, capacity = excluded.capacity, free = excluded.free,
      used = excluded.used, blocks = excluded.blocks, last_heartbeat = excluded.last_heartbeat`)
      .run(state.id, addr, state.capacity, state.free, state.used, state.blocks, now);
    this.onChange?.();
    return this.info(state);
  }

  /** Called when the set of usable storage servers may have changed (a registration, a death, a state change). */
  onChange: (() => void) | undefined;

  setState(id: string, state: StorageInfo['state']): void {
    const s = this.byId.get(id);
    if (!s) throw new SdfsError('ENOENT', `no storage server ${id}`);
    s.state = state;
    this.db.prepare('UPDATE storages SET state = ? WHERE id = ?').run(state, id);
    this.onChange?.();
  }

  /** Throws unless the storage server may be forgotten: known, and not alive. */
  checkForgettable(id: string): void {
    const s = this.byId.get(id);
    if (!s) throw new SdfsError('ENOENT', `no storage server ${id}`);
    if (this.isAlive(s)) throw new SdfsError('EBUSY', `storage server ${id} (${s.addr}) is alive: decommission it, stop it, then forget it`);
  }

  /** Forgets a storage server that is not alive (the caller forgets its replicas in the same change). */
  forget(id: string): void {
    this.checkForgettable(id);
    this.byId.delete(id);
    this.db.prepare('DELETE FROM storages WHERE id = ?').run(id);
    this.onChange?.();
  }

  /** Finds a storage server by id, unique id prefix, or address. */
  find(ref: string): StorageInfo {
    const all = this.all();
    const exact = all.find((s) => s.id === ref || s.addr === ref);
    if (exact) return exact;
    const byPrefix = all.filter((s) => s.id.startsWith(ref.toLowerCase()));
    if (byPrefix.length === 1) return byPrefix[0]!;
    throw new SdfsError(byPrefix.length > 1 ? 'EINVAL' : 'ENOENT', byPrefix.length > 1 ? `ambiguous storage server: ${ref}` : `no storage server ${ref}`);
  }

  /** Alive and not draining: may receive new replicas, and its replicas count toward a block's replication. */
  usable(): StorageInfo[] {
    return this.live().filter((s) => s.state === 'normal');
  }

  /**
   * Notices storage servers whose heartbeats stopped since the last call; returns true if any
   * changed state, so that the caller can look for blocks to re-replicate.
   */
  checkLiveness(): boolean {
    const now = Date.now();
    let changed = false;
    for (const s of this.byId.values()) {
      const alive = this.isAlive(s, now);
      if (alive !== s.alive) {
        s.alive = alive;
        changed = true;
      }
    }
    if (changed) this.onChange?.();
    return changed;
  }

  /** Records a heartbeat; ENOENT tells a storage server this process does not know it yet. */
  heartbeat(report: StorageReport): void {
    const s = this.byId.get(report.id);
    if (!s || s.lastSeen === 0) throw new SdfsError('ENOENT', 'unknown storage server: register first');
    s.capacity = report.capacity;
    s.free = report.free;
    s.used = report.used;
    s.blocks = report.blocks;
    s.fsId = report.fsId;
    s.lastSeen = s.lastHeartbeat = Date.now();
    if (!s.alive) {
      s.alive = true;
      this.onChange?.();
    }
  }

  private isAlive(s: StorageState, now = Date.now()): boolean {
    return s.lastSeen > 0 && now - s.lastSeen <= this.deadAfterMs;
  }

  private info(s: StorageState): StorageInfo {
    const { lastSeen: _lastSeen, fsId: _fsId, ...rest } = s;
    return { ...rest, alive: this.isAlive(s) };
  }

  /**
   * Capacity, free and used bytes of the live storage servers. Servers of one host on one file system
   * (`sdfs up`, or several data dirs on one disk) report the same capacity and free space: counted
   * once, not once per server. Used bytes (their blocks) are each server's own.
   */
  liveTotals(): SpaceTotals {
    const disks = new Map<string, { capacity: number; free: number }>();
    let used = 0;
    for (const s of this.byId.values()) {
      if (!this.isAlive(s)) continue;
      used += s.used;
      const key = s.fsId === undefined ? `server ${s.id}` : `${new URL(addrToUrl(s.addr)).hostname} ${s.fsId}`;
      const seen = disks.get(key);
      // The same file system, measured at slightly different moments: its latest (lowest) free space.
      disks.set(key, seen ? { capacity: Math.max(seen.capacity, s.capacity), free: Math.min(seen.free, s.free) } : { capacity: s.capacity, free: s.free });
    }
    let capacity = 0;
    let free = 0;
    for (const d of disks.values()) {
      capacity += d.capacity;
      free += d.free;
    }
    return { capacity, free, used };
  }

  all(): StorageInfo[] {
    return [...this.byId.values()].map((s) => this.info(s)).sort((a, b) => a.addr.localeCompare(b.addr));
  }

  live(): StorageInfo[] {
    return this.all().filter((s) => s.alive);
  }

  get(id: string): StorageInfo | undefined {
    const s = this.byId.get(id);
    return s && this.info(s);
  }

  /**
   * Picks up to `count` distinct live storage servers with room for a block, favouring free space
   * with some randomness so that load spreads. Throws when none is available.
   */
  choose(count: number, blockSize: number, exclude: string[] = []): StorageRef[] {
    const candidates = this.usable().filter((s) => !exclude.includes(s.id));
    if (candidates.length === 0) throw new SdfsError('ENOSTORAGE', 'no live storage server is available');
    const roomy = candidates.filter((s) => s.free >= blockSize);
    if (roomy.length === 0) throw new SdfsError('ENOSPACE', 'no live storage server has room for another block');
    const scored = roomy.map((s) => ({ s, score: Math.random() * (0.5 + s.free / Math.max(1, s.capacity)) }));
    scored.sort((a, b) => b.score - a.score);
    return scored.slice(0, count).map(({ s }) => ({ id: s.id, addr: s.addr }));
  }

  /** The account of a block the name server just placed, until the next heartbeat brings the truth. */
  reserve(ids: string[], bytes: number): void {
    for (const id of ids) {
      const s = this.byId.get(id);
      if (s) s.free = Math.max(0, s.free - bytes);
    }
  }
}
