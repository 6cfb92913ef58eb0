import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';

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
