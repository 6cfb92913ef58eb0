import type { ApiCaller } from '../../protocol/api-caller.js';
import { SdfsError } from '../../protocol/errors.js';
import type { BlocksResponse, ClusterResponse, FileStat, ListResponse } from '../../protocol/messages.js';
import { baseName, isWithin, joinPath, parentOf, resolvePath } from '../../protocol/paths.js';

/**
 * The classic requests other than read and write (PROTOCOL.md §2), each mapped to the operation the
 * sdfs shell runs for the same command, through the name server's own API. Each answers the text the
 * client prints; success texts are the seed's, so that anything that read them still works.
 */
export interface CommandSession {
  /** The session's working directory: absolute and normalized. */
  cwd: string;
  readonly api: ApiCaller;
}

interface Command {
  /** Argument counts accepted. */
  min: number;
  max: number;
  run(s: CommandSession, args: string[]): Promise<string>;
}

const at = (s: CommandSession, path: string): string => resolvePath(path, s.cwd);
const stat = (s: CommandSession, path: string): Promise<FileStat> => s.api<FileStat>('GET', '/fs/stat', undefined, { path });

export const COMMANDS: Readonly<Record<string, Command>> = {
  init: {
    min: 0, max: 0,
    async run(s) {
      const c = await s.api<ClusterResponse>('POST', '/cluster/init', {});
      s.cwd = '/';
      return c.storages.filter((x) => x.alive).map((x) => `storage ${x.addr} ${formatAvail(x.free)}\n`).join('');
    },
  },
  crf: {
    min: 1, max: 1,
    async run(s, [f]) {
      await s.api('POST', '/fs/create', { path: at(s, f!) });
      return 'File created';
    },
  },
  rmf: {
    min: 1, max: 1,
    async run(s, [f]) {
      const path = at(s, f!);
      if ((await stat(s, path)).type === 'dir') throw new SdfsError('EISDIR', `${path} is a directory: use deldir`);
      await s.api('POST', '/fs/delete', { path });
      return 'Done';
    },
  },
  inf: {
    min: 1, max: 1,
    async run(s, [f]) {
      const st = await stat(s, at(s, f!));
      if (st.type === 'dir') {
        const list = await s.api<ListResponse>('GET', '/fs/list', undefined, { path: st.path });
        return `${st.path}: directory, ${list.entries.length} entries`;
      }
      return describeFile(await s.api<BlocksResponse>('GET', '/fs/blocks', undefined, { path: st.path }));
    },
  },
  cpf: {
    min: 2, max: 2,
    async run(s, [from, to]) {
      const source = at(s, from!);
      await s.api('POST', '/fs/copy', { from: source, to: await target(s, source, to!), overwrite: false });
      return 'Done';
    },
  },
  mvf: {
    min: 2, max: 2,
    async run(s, [from, to]) {
      const source = at(s, from!);
      await s.api('POST', '/fs/move', { from: source, to: await target(s, source, to!), overwrite: false });
      return 'Done';
    },
  },
  opdir: {
    min: 0, max: 1,
    async run(s, [d]) {
      const path = at(s, d ?? '/');
      if ((await stat(s, path)).type !== 'dir') throw new SdfsError('ENOTDIR', `not a directory: ${path}`);
      s.cwd = path;
      return 'Done';
    },
  },
  rddir: {
    min: 0, max: 1,
    async run(s, [d]) {
      const list = await s.api<ListResponse>('GET', '/fs/list', undefined, { path: at(s, d ?? '.') });
      return list.entries.map((e) => (e.type === 'dir' ? `${e.name}/\n` : `${e.name}\n`)).join('');
    },
  },
  mkdir: {
    min: 1, max: 1,
    async run(s, [d]) {
      await s.api('POST', '/fs/mkdir', { path: at(s, d!), parents: false });
      return 'done';
    },
  },
  rmdir: {
    min: 1, max: 1,
    async run(s, [d]) {
      const path = at(s, d!);
      if ((await stat(s, path)).type !== 'dir') throw new SdfsError('ENOTDIR', `not a directory: ${path}`);
      // The shell asks before it deletes a directory that is not empty; this protocol cannot ask.
      const list = await s.api<ListResponse>('GET', '/fs/list', undefined, { path });
      if (list.entries.length > 0) throw new SdfsError('ENOTEMPTY', `Directory is not empty: ${path} (${list.entries.length} entries)`);
      await s.api('POST', '/fs/delete', { path, recursive: false });
      if (isWithin(s.cwd, path)) s.cwd = parentOf(path);
      return 'Done';
    },
  },
};

/**
 * The target of a copy or move, as the seed read it: `DIR/` means into DIR, keeping the name, and
 * DIR must exist; otherwise an existing directory also means into it (as mv and cp do), and anything
 * else is the new name.
 */
async function target(s: CommandSession, source: string, to: string): Promise<string> {
  const path = at(s, to);
  if (!to.endsWith('/')) return path;
  if ((await stat(s, path)).type !== 'dir') throw new SdfsError('ENOTDIR', `not a directory: ${path}`);
  return joinPath(path, baseName(source));
}

/** Blocks listed in an `inf` answer; the client reads an answer in one recv, so it stays small. */
const MAX_LISTED_BLOCKS = 16;

function describeFile(located: BlocksResponse): string {
  const st = located.stat;
  const lines = [`size=${st.size} blocks=${located.blocks.length} replication=${st.replication} blocksize=${st.blockSize}`];
  for (const b of located.blocks.slice(0, MAX_LISTED_BLOCKS)) {
    const replicas = b.replicas.map((r) => `${r.addr}${r.alive ? '' : ' (down)'}`).join(', ');
    lines.push(`block ${b.index}: ${b.size} bytes, digest ${b.digest}, replicas ${replicas || 'none'}`);
  }
  if (located.blocks.length > MAX_LISTED_BLOCKS) lines.push(`... and ${located.blocks.length - MAX_LISTED_BLOCKS} more blocks`);
  return lines.join('\n');
}

/** Bytes as `df -h` shows them (the seed's `init` answered with its Avail column): 64G, 3.5G, 812M. */
export function formatAvail(bytes: number): string {
  const units = ['K', 'M', 'G', 'T', 'P'];
  if (bytes < 1024) return `${bytes}`;
  let v = bytes;
  let i = -1;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? (Math.ceil(v * 10) / 10).toFixed(1) : Math.ceil(v)}${units[i]}`;
}
