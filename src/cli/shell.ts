import { createInterface, type Interface } from 'node:readline';
import type { SdfsClient } from '../client/index.js';
import { SdfsError, toSdfsError } from '../protocol/errors.js';
import { parentOf, resolvePath } from '../protocol/paths.js';
import { formatDf, formatInfo, formatListing } from './format.js';
import type { OperationLog } from './oplog.js';
import { quoteWord, tokenize } from './tokenize.js';
import { describe, download, upload } from './transfer.js';
import { formatSize } from './units.js';

/**
 * The interactive shell: the seed's commands (init, create, read, write, delete, info, copy, move,
 * cd, ls, mkdir, deldir) over the client library, with a working directory, quoting, history and
 * tab completion. It reads commands from any stream, so scripts and tests can drive it.
 */
interface ShellContext {
  client: SdfsClient;
  cwd: string;
  print(text: string): void;
  confirm(question: string): Promise<boolean>;
  progress: boolean;
}

interface Command {
  usage: string;
  help: string;
  min: number;
  max: number;
  /** A further check of the arguments, for commands with options. */
  accepts?(args: string[]): boolean;
  run(ctx: ShellContext, args: string[]): Promise<void>;
}

const at = (ctx: ShellContext, p: string): string => resolvePath(p, ctx.cwd);

const COMMANDS: Record<string, Command> = {
  init: {
    usage: 'init', help: 'wipe every file and every storage server (asks first); prints the space', min: 0, max: 0,
    async run(ctx) {
      if (!(await ctx.confirm('This deletes every file and directory in the cluster. Continue? [y/N] '))) return ctx.print('init canceled');
      const c = await ctx.client.init();
      ctx.cwd = '/';
      for (const s of c.storages.filter((x) => x.alive)) ctx.print(`storage ${s.addr} capacity ${formatSize(s.capacity)} available ${formatSize(s.free)}`);
      ctx.print(`total: capacity ${formatSize(c.capacity)}, available ${formatSize(c.free)}`);
    },
  },
  create: {
    usage: 'create FILE', help: 'create an empty file', min: 1, max: 1,
    async run(ctx, [f]) {
      const st = await ctx.client.create(at(ctx, f!));
      ctx.print(`created ${st.path}`);
    },
  },
  read: {
    usage: 'read FILE [LOCAL]', help: 'download FILE to the local disk (default: its name, in the local directory)', min: 1, max: 2,
    async run(ctx, [f, local]) {
      const got = await download(ctx.client, f!, local, ctx.cwd, { progress: ctx.progress });
      ctx.print(`read ${got.path} -> ${got.local} (${describe(got)})`);
    },
  },
  write: {
    usage: 'write [-f] LOCAL [FILE]', help: 'upload a local file (default: same name, in the current directory); -f replaces', min: 1, max: 3,
    accepts: (args) => (args[0] === '-f' ? args.length >= 2 : args.length <= 2),
    async run(ctx, args) {
      const overwrite = args[0] === '-f';
      const [local, remote] = overwrite ? args.slice(1) : args;
      const st = await upload(ctx.client, local!, remote, ctx.cwd, { overwrite, progress: ctx.progress });
      ctx.print(`wrote ${local} -> ${st.path} (${describe(st)})`);
    },
  },
  delete: {
    usage: 'delete FILE', help: 'delete a file', min: 1, max: 1,
    async run(ctx, [f]) {
      const path = at(ctx, f!);
      if ((await ctx.client.stat(path)).type === 'dir') throw new SdfsError('EISDIR', `${path} is a directory: use deldir`);
      await ctx.client.rm(path);
      ctx.print(`deleted ${path}`);
    },
  },
  info: {
    usage: 'info PATH', help: 'size, blocks, and where each replica lives', min: 1, max: 1,
    async run(ctx, [f]) {
      const st = await ctx.client.stat(at(ctx, f!));
      ctx.print(formatInfo(st, st.type === 'file' ? await ctx.client.blocks(st.path) : undefined));
    },
  },
  copy: {
    usage: 'copy SOURCE TARGET', help: 'copy a file or directory (into TARGET if it is a directory)', min: 2, max: 2,
    async run(ctx, [a, b]) {
      const st = await ctx.client.copy(at(ctx, a!), at(ctx, b!));
      ctx.print(`copied ${at(ctx, a!)} -> ${st.path}`);
    },
  },
  move: {
    usage: 'move SOURCE TARGET', help: 'move or rename (into TARGET if it is a directory)', min: 2, max: 2,
    async run(ctx, [a, b]) {
      const st = await ctx.client.rename(at(ctx, a!), at(ctx, b!));
      ctx.print(`moved ${at(ctx, a!)} -> ${st.path}`);
    },
  },
  cd: {
    usage: 'cd [DIR]', help: 'change the working directory (default /)', min: 0, max: 1,
    async run(ctx, [d]) {
      const path = at(ctx, d ?? '/');
      const st = await ctx.client.stat(path);
      if (st.type !== 'dir') throw new SdfsError('ENOTDIR', `not a directory: ${path}`);
      ctx.cwd = path;
    },
  },
  pwd: {
    usage: 'pwd', help: 'print the working directory', min: 0, max: 0,
    async run(ctx) {
      ctx.print(ctx.cwd);
    },
  },
  ls: {
    usage: 'ls [-l] [DIR]', help: 'list a directory (-l: sizes and dates)', min: 0, max: 2,
    accepts: (args) => (args[0] === '-l' ? args.length <= 2 : args.length <= 1),
    async run(ctx, args) {
      const long = args[0] === '-l';
      const rest = long ? args.slice(1) : args;
      const text = formatListing(await ctx.client.readdir(at(ctx, rest[0] ?? '.')), long);
      if (text) ctx.print(text);
    },
  },
  mkdir: {
    usage: 'mkdir DIR', help: 'make a directory', min: 1, max: 1,
    async run(ctx, [d]) {
      const st = await ctx.client.mkdir(at(ctx, d!));
      ctx.print(`created directory ${st.path}`);
    },
  },
  deldir: {
    usage: 'deldir DIR', help: 'delete a directory; asks first if it is not empty, then deletes all in it', min: 1, max: 1,
    async run(ctx, [d]) {
      const path = at(ctx, d!);
      const st = await ctx.client.stat(path);
      if (st.type !== 'dir') throw new SdfsError('ENOTDIR', `not a directory: ${path}`);
      const entries = await ctx.client.readdir(path);
      const count = `${entries.length} ${entries.length === 1 ? 'entry' : 'entries'}`;
      if (entries.length > 0 && !(await ctx.confirm(`${path} is not empty (${count}). Delete it and everything in it? [y/N] `))) {
        return ctx.print('deldir canceled');
      }
      await ctx.client.rm(path, { recursive: true });
      if (ctx.cwd === path || ctx.cwd.startsWith(path + '/')) ctx.cwd = parentOf(path);
      ctx.print(`deleted directory ${path}`);
    },
  },
  df: {
    usage: 'df', help: 'capacity and free space of each storage server', min: 0, max: 0,
    async run(ctx) {
      ctx.print(formatDf(await ctx.client.cluster()));
    },
  },
  help: {
    usage: 'help', help: 'list the commands', min: 0, max: 1,
    async run(ctx) {
      ctx.print(helpText());
    },
  },
};

export function helpText(): string {
  const width = Math.max(...Object.values(COMMANDS).map((c) => c.usage.length), 'exit'.length);
  return ['Commands (paths are relative to the working directory, or absolute; quote names with spaces):',
    ...Object.values(COMMANDS).map((c) => `  ${c.usage.padEnd(width)}  ${c.help}`),
    `  ${'exit'.padEnd(width)}  leave the shell`].join('\n');
}

export interface ShellOptions {
  client: SdfsClient;
  log: OperationLog;
  input: NodeJS.ReadableStream;
  output: NodeJS.WritableStream;
  terminal: boolean;
}

/** Runs the shell until `exit` or end of input; returns the exit code (that of the last failure, if any). */
export async function runShell(o: ShellOptions): Promise<number> {
  const rl: Interface = createInterface({
    input: o.input, output: o.output, terminal: o.terminal, historySize: 1000,
    completer: (line: string, cb: (err: Error | null, result: [string[], string]) => void) => {
      complete(o.client, ctx.cwd, line).then((r) => cb(null, r), () => cb(null, [[], line]));
    },
  });
  const lines: string[] = [];
  const waiters: ((line: string | null) => void)[] = [];
  let ended = false;
  rl.on('line', (line) => (waiters.length > 0 ? waiters.shift()!(line) : lines.push(line)));
  rl.on('close', () => {
    ended = true;
    while (waiters.length > 0) waiters.shift()!(null);
  });
  const nextLine = (prompt: string): Promise<string | null> => {
    rl.setPrompt(prompt);
    if (o.terminal) rl.prompt();
    if (lines.length > 0) return Promise.resolve(lines.shift()!);
    if (ended) return Promise.resolve(null);
    return new Promise((done) => waiters.push(done));
  };
  const ctx: ShellContext = {
    client: o.client,
    cwd: '/',
    progress: o.terminal,
    print: (text) => void o.output.write(text + '\n'),
    async confirm(question) {
      if (!o.terminal) o.output.write(question + '\n');
      const answer = await nextLine(question);
      return answer !== null && /^\s*(y|yes)\s*$/i.test(answer);
    },
  };

  if (o.terminal) ctx.print(`sdfs shell on ${o.client.url}. Type help for the commands, exit to leave.`);
  let status = 0;
  for (;;) {
    const line = await nextLine(`sdfs:${ctx.cwd}> `);
    if (line === null) break;
    let words: string[];
    try {
      words = tokenize(line);
    } catch (err) {
      ctx.print(`error: ${(err as Error).message}`);
      status = toSdfsError(err).exitCode;
      continue;
    }
    const [name, ...args] = words;
    if (!name) continue;
    if (name === 'exit' || name === 'quit' || name === 'dfs_exit') break;
    const cmd = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
    if (!cmd) {
      ctx.print(`unknown command: ${name}. Type help for the commands.`);
      status = 6;
      continue;
    }
    if (args.length < cmd.min || args.length > cmd.max || (cmd.accepts && !cmd.accepts(args))) {
      ctx.print(`usage: ${cmd.usage}`);
      status = 6;
      continue;
    }
    try {
      await cmd.run(ctx, args);
      o.log.record(o.client.url, name, args, 'ok');
    } catch (err) {
      const e = toSdfsError(err);
      ctx.print(`error: ${e.message}`);
      o.log.record(o.client.url, name, args, e.code);
      status = e.exitCode;
    }
  }
  rl.close();
  return status;
}

/** Tab completion: commands for the first word, then names in the sdfs directory being typed. */
async function complete(client: SdfsClient, cwd: string, line: string): Promise<[string[], string]> {
  let words: string[];
  try {
    words = tokenize(line);
  } catch {
    return [[], line];
  }
  const endsWithBlank = /\s$/.test(line);
  if (words.length === 0 || (words.length === 1 && !endsWithBlank)) {
    const partial = words[0] ?? '';
    return [[...Object.keys(COMMANDS), 'exit'].filter((c) => c.startsWith(partial)).map((c) => c + ' '), partial];
  }
  const partial = endsWithBlank ? '' : words[words.length - 1]!;
  const slash = partial.lastIndexOf('/');
  const dirPart = slash >= 0 ? partial.slice(0, slash + 1) : '';
  const namePart = slash >= 0 ? partial.slice(slash + 1) : partial;
  const dir = resolvePath(dirPart || '.', cwd);
  const entries = await client.readdir(dir);
  const matches = entries.filter((e) => e.name.startsWith(namePart))
    .map((e) => quoteWord(dirPart + e.name) + (e.type === 'dir' ? '/' : ' '));
  // readline replaces the substring it is given; give back the raw text of the last word.
  const raw = endsWithBlank ? '' : line.slice(lastWordStart(line));
  return [matches, raw];
}

function lastWordStart(line: string): number {
  for (let i = line.length - 1; i >= 0; i--) if (line[i] === ' ' && line[i - 1] !== '\\') return i + 1;
  return 0;
}
