import { SingleBar } from 'cli-progress';
import * as fs from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { SdfsClient } from '../client/index.js';
import { SdfsError } from '../protocol/errors.js';
import type { FileStat } from '../protocol/messages.js';
import { baseName, joinPath, resolvePath, validateName } from '../protocol/paths.js';
import { formatSize } from './units.js';

// Uploads and downloads with the target rules of cp -r: into a directory if the target is one.

/** `-` as the local file: standard input to `put`, standard output to `get`. */
export const STDIO_NAME = '-';

type UploadOptions = { overwrite?: boolean; replication?: number; blockSize?: number; progress: boolean; recursive?: boolean };

/** What a transfer moved: one file, or the files of a directory tree (`files` counts them). */
export interface Transferred {
  /** The sdfs path written or read. */
  path: string;
  tree: boolean;
  size: number;
  blocks: number;
  files: number;
}

export async function upload(client: SdfsClient, local: string, remote: string | undefined, cwd: string,
  opts: UploadOptions): Promise<Transferred> {
  if (local === STDIO_NAME) return transferred(await uploadStdin(client, remote, cwd, opts));
  // No target: into the current directory, under the local name.
  let target = resolvePath(remote ?? '.', cwd);
  const existing = await client.stat(target).catch(() => undefined);
  if (existing?.type === 'dir') target = joinPath(target, basename(local));
  const st = await fs.stat(local).catch((err) => { throw localError(err, local); });
  if (!st.isDirectory()) return putFile(client, local, target, st.size, opts);
  // A tree only when asked for, as cp -r: `put .` or `put /` by mistake must not start copying a disk.
  if (!opts.recursive) throw new SdfsError('EISDIR', `${local} is a directory: sdfs put -R uploads a directory tree`);
  return uploadTree(client, local, target, opts);
}

async function putFile(client: SdfsClient, local: string, target: string, size: number, opts: UploadOptions): Promise<Transferred> {
  const bar = progressBar(opts.progress, size, `put ${basename(local)}`);
  try {
    return transferred(await client.put(local, target, { ...opts, onProgress: bar?.update }));
  } finally {
    bar?.stop();
  }
}

/**
 * A local directory, uploaded as a tree: `target` is made (and its parents) unless it is there, and
 * each entry goes into it under its own name, in name order. sdfs has only files and directories: a
 * symbolic link or a special file is skipped, with a line on stderr. The first error stops it; what
 * was uploaded before stays.
 */
async function uploadTree(client: SdfsClient, local: string, target: string, opts: UploadOptions): Promise<Transferred> {
  await client.mkdir(target, { recursive: true });
  const done: Transferred = { path: target, tree: true, size: 0, blocks: 0, files: 0 };
  const entries = await fs.readdir(local, { withFileTypes: true }).catch((err) => { throw localError(err, local); });
  for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const from = join(local, entry.name);
    const to = joinPath(target, entry.name);
    if (!entry.isDirectory() && !entry.isFile()) {
      process.stderr.write(`sdfs: skipped ${from}: not a regular file or directory\n`);
      continue;
    }
    add(done, entry.isDirectory()
      ? await uploadTree(client, from, to, opts)
      : await putFile(client, from, to, (await fs.stat(from)).size, opts));
  }
  return done;
}

function add(total: Transferred, one: Transferred): void {
  total.size += one.size;
  total.blocks += one.blocks;
  total.files += one.files;
}

/** "N bytes" for one file; "F files, N bytes" for a tree. */
export function describe(t: Transferred): string {
  return t.tree ? `${t.files} file(s), ${t.size} bytes` : `${t.size} bytes`;
}

function transferred(st: FileStat): Transferred {
  return { path: st.path, tree: false, size: st.size, blocks: st.blocks, files: 1 };
}

/** Standard input to a file named in full (it has no name to give a directory), streamed as it comes. */
async function uploadStdin(client: SdfsClient, remote: string | undefined, cwd: string,
  opts: { overwrite?: boolean; replication?: number; blockSize?: number }): Promise<FileStat> {
  if (remote === undefined) throw new SdfsError('EINVAL', 'put - reads standard input: give the path of the file to write');
  const target = resolvePath(remote, cwd);
  if ((await client.stat(target).catch(() => undefined))?.type === 'dir') {
    throw new SdfsError('EISDIR', `${target} is a directory: put - needs the path of the file to write`);
  }
  return client.writeFile(target, process.stdin, { overwrite: opts.overwrite, replication: opts.replication, blockSize: opts.blockSize });
}

/** A file or a directory tree, to `local` (into it if it is a directory; default: the name, in the current directory). */
export async function download(client: SdfsClient, remote: string, local: string | undefined, cwd: string,
  opts: { progress: boolean; recursive?: boolean }): Promise<Transferred & { local: string }> {
  const source = resolvePath(remote, cwd);
  let target = local ?? baseName(source);
  if ((await fs.stat(target).catch(() => undefined))?.isDirectory()) target = join(target, baseName(source));
  const stat = await client.stat(source);
  if (stat.type === 'dir') {
    if (!opts.recursive) throw new SdfsError('EISDIR', `${source} is a directory: sdfs get -R downloads a directory tree`);
    return { ...(await downloadTree(client, source, target)), local: target };
  }
  const bar = progressBar(opts.progress, stat.size, `get ${stat.name}`);
  try {
    await client.get(source, target, { onProgress: bar?.update }).catch((err) => { throw localError(err, dirname(target)); });
  } finally {
    bar?.stop();
  }
  return { ...transferred(stat), local: target };
}

/**
 * An sdfs directory, downloaded as a tree into the local directory `target` (made, and its parents,
 * unless it is there). Each file is written whole or not at all (`client.get`), and an existing local
 * file of the same name is replaced. The first error stops it.
 */
async function downloadTree(client: SdfsClient, source: string, target: string): Promise<Transferred> {
  await fs.mkdir(target, { recursive: true }).catch((err) => { throw localError(err, target); });
  const done: Transferred = { path: source, tree: true, size: 0, blocks: 0, files: 0 };
  for (const entry of await client.readdir(source)) {
    // A name from the server becomes a local path: one that could climb out of `target` (`..`, a
    // `/`) is refused, whatever sent it.
    const name = validateName(entry.name);
    const from = joinPath(source, name);
    const to = join(target, name);
    if (entry.type === 'dir') add(done, await downloadTree(client, from, to));
    else {
      await client.get(from, to).catch((err) => { throw localError(err, target); });
      add(done, { ...transferred(entry), path: from });
    }
  }
  return done;
}

/** A local file or directory that is missing is ENOENT, as a missing sdfs file is (exit code 2). */
function localError(err: unknown, path: string): unknown {
  if (err instanceof SdfsError || (err as { code?: unknown })?.code !== 'ENOENT') return err;
  return new SdfsError('ENOENT', `no such local file or directory: ${path}`, { cause: err });
}

/** A progress bar on stderr, only when it is a terminal. */
function progressBar(enabled: boolean, total: number, label: string): { update: (n: number) => void; stop: () => void } | undefined {
  if (!enabled || !process.stderr.isTTY) return undefined;
  const bar = new SingleBar({
    stream: process.stderr,
    format: `${label} [{bar}] {percentage}% | {done} of {size} | {speed}`,
    hideCursor: true,
  });
  const started = Date.now();
  bar.start(total, 0, { done: formatSize(0), size: formatSize(total), speed: '' });
  return {
    update: (n) => bar.update(n, { done: formatSize(n), speed: `${formatSize(n / Math.max(0.001, (Date.now() - started) / 1000))}/s` }),
    stop: () => bar.stop(),
  };
}
