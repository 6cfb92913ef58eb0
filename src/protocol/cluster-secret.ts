import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SdfsError } from './errors.js';

/**
 * The cluster secret: made by the name server on its first start and kept in its data dir (mode 0600);
 * storage servers are given it by flag, environment or file. Whoever holds it is a member of the cluster.
 */
export const SECRET_FILE = 'cluster.secret';

/** Shortest secret accepted: 128 bits of base64url. */
const MIN_SECRET_LENGTH = 22;

export function validateSecret(text: string, where: string): string {
  const secret = text.trim();
  if (secret.length < MIN_SECRET_LENGTH || secret.length > 1024 || !/^[\x21-\x7e]+$/.test(secret)) {
    throw new SdfsError('EINVAL', `${where}: a cluster secret is ${MIN_SECRET_LENGTH} to 1024 printable characters without spaces`);
  }
  return secret;
}

/**
 * The name server's secret: read from `file` (by default `cluster.secret` in its data dir), or made
 * there (atomically, mode 0600) on the first start.
 */
export async function loadOrCreateSecret(file: string): Promise<string> {
  try {
    return validateSecret(await fs.readFile(file, 'utf8'), file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const secret = randomBytes(32).toString('base64url');
  await fs.mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  await fs.writeFile(tmp, secret + '\n', { mode: 0o600, flush: true });
  // Another process may have made one meanwhile: link fails then, and the first one stays.
  try {
    await fs.link(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    await fs.rm(tmp, { force: true });
  }
  return validateSecret(await fs.readFile(file, 'utf8'), file);
}

/**
 * A storage server's secret from a file that may not exist yet (a name server on the same host, or
 * in a container beside it, makes it on its first start): waits for it, saying so once.
 */
export async function waitForSecretFile(file: string, signal?: AbortSignal): Promise<string> {
  let said = false;
  for (;;) {
    try {
      return validateSecret(await fs.readFile(file, 'utf8'), file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (!said) console.error(`storage server: waiting for the cluster secret file ${file}`);
    said = true;
    try {
      await sleep(500, undefined, { signal });
    } catch {
      throw new SdfsError('ECANCELED', 'stopped while waiting for the cluster secret');
    }
  }
}
