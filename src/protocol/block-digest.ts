import { createHash } from 'node:crypto';
import { xxh3 } from '@node-rs/xxhash';
import { SdfsError } from './errors.js';
import { DIGEST_BYTES, DIGEST_PATTERN } from './messages.js';

/**
 * A block's digest: one value for its whole content, by which copies are compared (a replica fetched
 * from another server, the scrubber's check of a copy on disk, the answers down a write pipeline). It
 * is written `<algorithm>:<hex>`:
 * - `xxh3`: XXH3-64 (seed 0), for every block written since 2026-11-28. The digest guards against
 *   damage, not against a forger (only the storage servers compute it, from the bytes they store, and
 *   a client cannot name one), so a checksum will do, as HDFS's CRC32C and MooseFS's CRC-32 do. XXH3
 *   runs at 4-10 GB/s here against SHA-256's 1.3: the head of a write pipeline hashes every byte, and
 *   SHA-256 was more than half of its thread's work at R=1 (docs/BENCHMARKS.md).
 * - `sha256`: blocks written before, which keep their digest; still checked where they are read.
 * Beside it every block keeps a CRC-32 per 1 MiB chunk, which readers check.
 */
export type DigestAlgorithm = keyof typeof DIGEST_BYTES;

/** What new blocks are hashed with. */
export const BLOCK_DIGEST: DigestAlgorithm = 'xxh3';

const DIGEST = new RegExp(DIGEST_PATTERN);

export interface Digester {
  update(data: Uint8Array): void;
  /** The digest of all the bytes given, as `<algorithm>:<hex>`; call once. */
  digest(): string;
}

export function createDigester(algorithm: DigestAlgorithm = BLOCK_DIGEST): Digester {
  if (algorithm === 'sha256') {
    const hash = createHash('sha256');
    return { update: (data) => void hash.update(data), digest: () => `sha256:${hash.digest('hex')}` };
  }
  const hash = xxh3.Xxh3.withSeed(0n);
  return { update: (data) => void hash.update(data), digest: () => `xxh3:${hash.digest().toString(16).padStart(16, '0')}` };
}

export function isDigestAlgorithm(name: string | undefined): name is DigestAlgorithm {
  return name !== undefined && Object.hasOwn(DIGEST_BYTES, name);
}

export function isDigest(value: unknown): value is string {
  return typeof value === 'string' && DIGEST.test(value);
}

/** The algorithm of a digest; throws EINVAL for anything that is not one. */
export function digestAlgorithm(digest: string): DigestAlgorithm {
  if (!isDigest(digest)) throw new SdfsError('EINVAL', 'invalid block digest');
  return digest.slice(0, digest.indexOf(':')) as DigestAlgorithm;
}

/** A digest's length in bytes: the size of the trailer that ends a block forwarded down a pipeline. */
export function digestLength(algorithm: DigestAlgorithm): number {
  return DIGEST_BYTES[algorithm];
}

/** A digest's raw bytes, as a pipeline's trailer carries them. */
export function digestToBytes(digest: string): Buffer {
  digestAlgorithm(digest);
  return Buffer.from(digest.slice(digest.indexOf(':') + 1), 'hex');
}

export function digestFromBytes(algorithm: DigestAlgorithm, bytes: Buffer): string {
  if (bytes.length !== DIGEST_BYTES[algorithm]) throw new SdfsError('EINVAL', `a ${algorithm} digest is ${DIGEST_BYTES[algorithm]} bytes`);
  return `${algorithm}:${bytes.toString('hex')}`;
}
