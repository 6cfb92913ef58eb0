import type { BlocksResponse, ClusterResponse, FileStat, FsckResponse, StatusResponse } from '../protocol/messages.js';
import { formatSize, formatTime } from './units.js';

/** Text renderings shared by the shell and the one-shot subcommands. */

export function formatListing(entries: FileStat[], long: boolean): string {
  if (!long) return entries.map((e) => (e.type === 'dir' ? `${e.name}/` : e.name)).join('\n');
  return entries.map((e) => {
    const size = e.type === 'dir' ? '-' : String(e.size);
    return `${e.type === 'dir' ? 'd' : '-'} ${size.padStart(12)}  ${formatTime(e.mtime)}  ${e.type === 'dir' ? `${e.name}/` : e.name}`;
  }).join('\n');
}

export function formatInfo(stat: FileStat, located?: BlocksResponse): string {
  const lines = [
    `path:        ${stat.path}`,
    `type:        ${stat.type}`,
  ];
  if (stat.type === 'file') {
    lines.push(
      `size:        ${stat.size} bytes (${formatSize(stat.size)})`,
      `block size:  ${stat.blockSize} bytes (${formatSize(stat.blockSize)})`,
      `replication: ${stat.replication}`,
      `blocks:      ${located?.blocks.length ?? stat.blocks}`,
    );
  }
  lines.push(`created:     ${formatTime(stat.ctime)}`, `modified:    ${formatTime(stat.mtime)}`);
  for (const b of located?.blocks ?? []) {
    lines.push(`block ${b.index}: id ${b.id}, offset ${b.offset}, ${b.size} bytes, digest ${b.digest}`);
    lines.push(`  replicas (${b.replicas.length}): ` + b.replicas.map((r) => `${r.id.slice(0, 8)}@${r.addr}${r.alive ? '' : ' (dead)'}`).join(', '));
  }
  return lines.join('\n');
}

export function formatDf(c: ClusterResponse): string {
  const rows = c.storages.map((s) =>
    `${s.id.slice(0, 8)}  ${s.addr.padEnd(21)}  ${(s.alive ? 'alive' : 'dead').padEnd(5)}  ${formatSize(s.capacity).padStart(10)}  ${formatSize(s.used).padStart(10)}  ${formatSize(s.free).padStart(10)}  ${String(s.blocks).padStart(7)}`);
  return [
    `${'id'.padEnd(8)}  ${'address'.padEnd(21)}  ${'state'.padEnd(5)}  ${'capacity'.padStart(10)}  ${'used'.padStart(10)}  ${'available'.padStart(10)}  ${'blocks'.padStart(7)}`,
    ...rows,
    `total (live): capacity ${formatSize(c.capacity)}, available ${formatSize(c.free)}; ${c.storages.filter((s) => s.alive).length} of ${c.storages.length} storage servers alive`,
  ].join('\n');
}

export function formatStatus(st: StatusResponse): string {
  const alive = st.storages.filter((s) => s.alive).length;
  const h = st.health;
  const rows = st.storages.map((s) => {
    const state = !s.alive ? 'dead' : s.state === 'draining' ? (s.drained ? 'drained' : 'draining') : 'alive';
    return `  ${s.id.slice(0, 8)}  ${s.addr.padEnd(21)}  ${state.padEnd(8)}  ${formatSize(s.capacity).padStart(10)}  ${formatSize(s.free).padStart(10)}  ${String(s.blocks).padStart(7)}  ${formatTime(s.lastHeartbeat)}`;
  });
  return [
    `storage servers: ${alive} alive, ${st.storages.length - alive} dead`,
    `  ${'id'.padEnd(8)}  ${'address'.padEnd(21)}  ${'state'.padEnd(8)}  ${'capacity'.padStart(10)}  ${'available'.padStart(10)}  ${'blocks'.padStart(7)}  last heartbeat`,
    ...rows,
    `capacity: ${formatSize(st.capacity)}, used by blocks ${formatSize(st.used)}, available ${formatSize(st.free)}`,
    `namespace: ${st.files} files, ${st.dirs} directories`,
    `blocks: ${h.blocks}; under-replicated ${h.underReplicated}; missing ${h.missing}; over-replicated ${h.overReplicated}; copies in flight ${st.replicationInFlight}`,
    `uploads in progress: ${st.uploadsInProgress}`,
  ].join('\n');
}

export function formatFsck(r: FsckResponse): string {
  const bad = r.files.filter((f) => f.status !== 'healthy');
  return [
    ...bad.map((f) => `${f.status.padEnd(16)}  ${f.path}  (${f.blocks} blocks: ${f.underReplicated} under-replicated, ${f.missing} missing; replication ${f.replication})`),
    `${r.path}: ${r.files.length} files checked, ${r.files.length - bad.length} healthy, ` +
      `${bad.filter((f) => f.status === 'under-replicated').length} under-replicated, ${bad.filter((f) => f.status === 'missing-blocks').length} with missing blocks`,
    r.healthy ? 'status: HEALTHY' : 'status: NOT HEALTHY',
  ].join('\n');
}
