import { SingleBar } from 'cli-progress';
import * as fs from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { SdfsClient } from '../client/index.js';
import { SdfsError } from '../protocol/errors.js';
import type { FileStat } from '../protocol/messages.js';
import { baseName, joinPath, resolvePath } from '../protocol/paths.js';
import { formatSize } from './units.js';

/** Uploads and downloads with the target rules of cp: into a directory if the target is one. */

/** `-` as the local file: standard input to `put`, standard output to `get`. */
export const STDIO_NAME = '-';

export async function upload(client: SdfsClient, local: string, remote: string | undefined, cwd: string,
  opts: { overwrite?: boolean; replication?: number; blockSize?: number; progress: boolean }): Promise<FileStat> {
  if (local === STDIO_NAME) return uploadStdin(client, remote, cwd, opts);
  let target = resolvePath(remote ?? basename(local), cwd);
  const existing = await client.stat(target).catch(() => undefined);
  if (existing?.type === 'dir') target = joinPath(target, basename(local));
  const { size } = await fs.stat(local).catch((err) => { throw localError(err, local); });
  const bar = progressBar(opts.progress, size, `put ${basename(local)}`);
  try {
    return await client.put(local, target, { ...opts, onProgress: bar?.update });
  } finally {
    bar?.stop();
  }
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

export async function download(client: SdfsClient, remote: string, local: string | undefined, cwd: string,
  opts: { progress: boolean }): Promise<{ stat: FileStat; local: string }> {
  const source = resolvePath(remote, cwd);
  let target = local ?? baseName(source);
  if ((await fs.stat(target).catch(() => undefined))?.isDirectory()) target = join(target, baseName(source));
  const stat = await client.stat(source);
  const bar = progressBar(opts.progress, stat.size, `get ${stat.name}`);
  try {
    await client.get(source, target, { onProgress: bar?.update }).catch((err) => { throw localError(err, dirname(target)); });
  } finally {
    bar?.stop();
  }
  return { stat, local: target };
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
