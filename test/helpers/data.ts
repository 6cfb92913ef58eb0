import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { xxh3 } from '@node-rs/xxhash';

/** A stream of `size` random bytes, with the SHA-256 of what it produced once it has ended. */
export function randomStream(size: number, chunk = 1024 * 1024): { stream: Readable; sha256: () => string } {
  const hash = createHash('sha256');
  let left = size;
  let digest: string | undefined;
  const stream = new Readable({
    read() {
      if (left === 0) return void this.push(null);
      const n = Math.min(chunk, left);
      const buf = randomBytes(n);
      hash.update(buf);
      left -= n;
      this.push(buf);
    },
  });
  return { stream, sha256: () => (digest ??= hash.digest('hex')) };
}

export async function sha256Of(stream: AsyncIterable<Uint8Array>): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of stream) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { sha256: hash.digest('hex'), size };
}

export function sha256(buf: Uint8Array): string {
  return createHash('sha256').update(buf).digest('hex');
}

/** A block's digest as the storage servers record it (XXH3-64, seed 0), computed in one call. */
export function blockDigest(buf: Uint8Array): string {
  return `xxh3:${xxh3.xxh64(buf, 0n).toString(16).padStart(16, '0')}`;
}

/** The block digest of what a stream gives (see blockDigest). */
export async function blockDigestOf(stream: AsyncIterable<Uint8Array>): Promise<string> {
  const hash = xxh3.Xxh3.withSeed(0n);
  for await (const chunk of stream) hash.update(chunk);
  return `xxh3:${hash.digest().toString(16).padStart(16, '0')}`;
}
