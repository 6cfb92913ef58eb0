import { open } from 'node:fs/promises';
import { locateBlocks, type BlockOnDisk } from '../../src/storage/block-store.js';

/** Where a storage server keeps a block's bytes (its file, or its record in the block log); fails if it has none. */
export async function blockOnDisk(dataDir: string, id: string): Promise<BlockOnDisk> {
  const at = (await locateBlocks(dataDir, [id])).get(id);
  if (!at) throw new Error(`no block ${id} in ${dataDir}`);
  return at;
}

/** Overwrites bytes of a block's data on disk, at `offset` into the block, as bit rot would. */
export async function damageBlock(dataDir: string, id: string, offset: number, bytes: Buffer): Promise<void> {
  const at = await blockOnDisk(dataDir, id);
  if (offset + bytes.length > at.size) throw new Error(`damage past the end of block ${id}`);
  const fh = await open(at.path, 'r+');
  try {
    await fh.write(bytes, 0, bytes.length, at.offset + offset);
  } finally {
    await fh.close();
  }
}

/** A block's data as it is on disk. */
export async function storedBlock(dataDir: string, id: string): Promise<Buffer> {
  const at = await blockOnDisk(dataDir, id);
  const fh = await open(at.path, 'r');
  try {
    const data = Buffer.alloc(at.size);
    await fh.read(data, 0, at.size, at.offset);
    return data;
  } finally {
    await fh.close();
  }
}
