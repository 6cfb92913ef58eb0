import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SdfsError } from '../protocol/errors.js';

/** What an access key lets a client do: read only, or read and write. */
export type Role = 'ro' | 'rw';

/** Shortest key accepted: a guessable key protects nothing. */
export const MIN_KEY_LENGTH = 16;
const KEY_PATTERN = /^[A-Za-z0-9._~+/=-]+$/;

export function validateKey(key: string, where: string): string {
  if (key.length < MIN_KEY_LENGTH || key.length > 256 || !KEY_PATTERN.test(key)) {
    throw new SdfsError('EINVAL', `${where}: an access key is ${MIN_KEY_LENGTH} to 256 characters of A-Z a-z 0-9 . _ ~ + / = -`);
  }
  return key;
}

/**
 * The access keys of a name server. With none, clients need no key (a cluster on a trusted network,
 * or one behind a proxy that checks them); with any, every client request needs one.
 */
export class AccessKeys {
  private readonly byDigest = new Map<string, Role>();

  /** Adds `role key` entries, one per line (`#` starts a comment), as in a keys file. */
  addLines(text: string, where: string): this {
    text.split('\n').forEach((raw, i) => {
      const line = raw.replace(/#.*/, '').trim();
      if (line === '') return;
      const m = /^(ro|rw)\s+(\S+)$/.exec(line);
      if (!m) throw new SdfsError('EINVAL', `${where}:${i + 1}: expected "rw KEY" or "ro KEY"`);
      this.add(m[1] as Role, validateKey(m[2]!, `${where}:${i + 1}`));
    });
    return this;
  }

  /** Adds `role:key` entries separated by commas, as in SDFS_ACCESS_KEYS. */
  addList(text: string, where: string): this {
    for (const item of text.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
      const m = /^(ro|rw):(.+)$/.exec(item);
      if (!m) throw new SdfsError('EINVAL', `${where}: expected rw:KEY or ro:KEY, comma-separated`);
      this.add(m[1] as Role, validateKey(m[2]!, where));
    }
    return this;
  }

  addFile(path: string): this {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new SdfsError('EINVAL', `cannot read the access keys file ${path}: ${(err as Error).message}`);
    }
    return this.addLines(text, path);
  }

  /** Takes the keys of `other` in place of its own (a reload: the server holds this object). */
  replaceWith(other: AccessKeys): void {
    this.byDigest.clear();
    for (const [digest, role] of other.byDigest) this.byDigest.set(digest, role);
  }

  add(role: Role, key: string): void {
    const digest = keyDigest(key);
    // The same key listed twice with both roles gets the lesser one.
    if (this.byDigest.get(digest) === 'ro') return;
    this.byDigest.set(digest, role);
  }

  get required(): boolean {
    return this.byDigest.size > 0;
  }

  get size(): number {
    return this.byDigest.size;
  }

  roleOf(key: string): Role | undefined {
    return this.byDigest.get(keyDigest(key));
  }
}

/** Keys are looked up by their hash, so that a lookup's time says nothing about a key's bytes. */
function keyDigest(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}
