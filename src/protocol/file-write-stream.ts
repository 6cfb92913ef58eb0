import { Writable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { BlockLinks } from './block-link.js';
import { BlockSender } from './block-sender.js';
import { SdfsError } from './errors.js';
import type { AllocateBlockResponse, CompleteBlockRequest, FileStat, OpenUploadResponse, PutBlockResponse } from './messages.js';
import type { ApiCaller } from './api-caller.js';

/** A block's bytes are kept until it is stored, so that it can be sent again, if blocks are no larger than this. */
const RETRY_BUFFER_LIMIT = 64 * 1024 * 1024;
const MAX_BLOCK_ATTEMPTS = 3;

interface CurrentBlock {
  index: number;
  alloc: AllocateBlockResponse;
  sender: BlockSender;
  /** The block's bytes so far, for a retry (empty if the block is too large to keep). */
  kept: Buffer[];
  size: number;
}

type SendResult = Awaited<ReturnType<BlockSender['finish']>>;

function incomplete(alloc: AllocateBlockResponse, r: SendResult): boolean {
  return !r.reply || r.reply.stored.length < alloc.targets.length;
}

/**
 * The storage server where the pipeline broke: the first target that did not store the block. The
 * ones after it never received it, through no fault of their own, so they are not blamed.
 */
function failedIds(alloc: AllocateBlockResponse, r: SendResult): string[] {
  const broken = alloc.targets.find((t) => !r.reply?.stored.includes(t.id));
  return broken ? [broken.id] : [];
}

/** An upload opened ahead with no path (`POST /uploads/pool`); the stream names its file at commit. */
export interface PooledUpload {
  uploadId: string;
  replication: number;
  blockSize: number;
  first: AllocateBlockResponse;
}

/** How a writer's blocks travel: HTTP through `dispatcher`, and small ones through `links` when given (see BlockSender). */
export interface BlockTransport {
  dispatcher: Dispatcher;
  links?: BlockLinks;
}

/** Gives a stream an upload opened ahead, or undefined: the stream then opens its own. */
export type UploadSource = () => Promise<PooledUpload | undefined>;

export interface WriteOptions {
  /** Replace an existing file at the path (atomically, at the end). Default: fail if it exists. */
  overwrite?: boolean;
  /** Replicas per block; default: the cluster's. */
  replication?: number;
  /** Block size in bytes; default: the cluster's. */
  blockSize?: number;
  signal?: AbortSignal;
}

/**
 * A writable stream that stores a file in sdfs: the bytes are cut into blocks, each block streamed
 * once to a pipeline of storage servers, and the file committed when the stream ends. Until then
 * the file is invisible; if the stream is destroyed, the upload is aborted and nothing is left.
 * After 'finish', `stat` holds the committed file.
 */
export class FileWriteStream extends Writable {
  stat: FileStat | undefined;
  private upload: OpenUploadResponse | undefined;
  private block: CurrentBlock | undefined;
  /** Storage servers that failed this file's writes; not asked again for its later blocks. */
  private readonly avoid = new Set<string>();
  private blockIndex = 0;
  /**
   * The previous block, sent and waiting for its replicas' fsync, while the next one is sent: the
   * disks sync one block as the network carries the next. Never more than one.
   */
  private storing: { block: CurrentBlock; done: Promise<void> } | undefined;
  private storeError: unknown;
  private committed = false;
  /** Block 0's placement, made when the upload was opened; used by the first block. */
  private firstAllocation: AllocateBlockResponse | undefined;
  /** The upload came from a pool: the commit gives its path. */
  private pooled = false;

  constructor(
    private readonly api: ApiCaller,
    private readonly transport: BlockTransport,
    readonly path: string,
    private readonly opts: WriteOptions = {},
    /** Only for a file whose size the caller knows to fit the pool's uploads, written with the pool's replication and block size. */
    private readonly pool?: UploadSource,
  ) {
    super({ highWaterMark: 1024 * 1024, signal: opts.signal });
  }

  override _construct(callback: (err?: Error | null) => void): void {
    this.openUpload().then((u) => {
      this.upload = u;
      this.firstAllocation = u.first;
      callback();
    }, callback);
  }

  private async openUpload(): Promise<OpenUploadResponse> {
    const pooled = await this.pool?.();
    if (pooled) {
      this.pooled = true;
      return { ...pooled, path: this.path };
    }
    // The first block is placed in the same call, so that a small file costs two calls to the name
    // server: this one, and the commit that also records its only block.
    return this.api<OpenUploadResponse>('POST', '/uploads', {
      path: this.path, overwrite: this.opts.overwrite, replication: this.opts.replication, blockSize: this.opts.blockSize, allocate: true,
    });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.writeChunk(chunk).then(() => callback(), callback);
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.finishFile().then(() => callback(), callback);
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.block?.sender.abort();
    this.storing?.block.sender.abort();
    if (this.upload && !this.committed) {
      this.api('DELETE', `/uploads/${this.upload.uploadId}`).catch(() => {}).finally(() => callback(err));
    } else callback(err);
  }

  private async writeChunk(chunk: Buffer): Promise<void> {
    const blockSize = this.upload!.blockSize;
    let off = 0;
    while (off < chunk.length) {
      if (this.storeError !== undefined) throw this.storeError;
      // A full block is ended only when more bytes come: if none do, the commit records it (one call less).
      if (this.block && this.block.size === blockSize) await this.endBlock();
      const current = this.block ?? (await this.startBlock());
      const take = Math.min(blockSize - current.size, chunk.length - off);
      const piece = chunk.subarray(off, off + take);
      if (blockSize <= RETRY_BUFFER_LIMIT) current.kept.push(piece);
      current.size += take;
      await current.sender.write(piece);
      off += take;
    }
  }

  private async startBlock(): Promise<CurrentBlock> {
    const index = this.blockIndex++;
    const alloc = await this.allocate(index);
    this.block = { index, alloc, sender: this.send(alloc), kept: [], size: 0 };
    return this.block;
  }

  /** Hands the full current block over to be stored, once the one before it is. */
  private async endBlock(): Promise<void> {
    // The block stays current while it waits, so that a destroy meanwhile aborts its upload.
    await this.storing?.done;
    if (this.storeError !== undefined) throw this.storeError;
    const block = this.block!;
    this.block = undefined;
    const done = this.finishBlock(block).then(() => undefined, (err: unknown) => {
      this.storeError = err;
    });
    this.storing = { block, done };
  }

  private async allocate(index: number): Promise<AllocateBlockResponse> {
    const first = this.firstAllocation;
    this.firstAllocation = undefined;
    if (first && index === 0 && this.avoid.size === 0) return first;
    return this.api<AllocateBlockResponse>('POST', `/uploads/${this.upload!.uploadId}/blocks`, {
      index, exclude: [...this.avoid],
    });
  }

  private send(alloc: AllocateBlockResponse): BlockSender {
    const [head, ...rest] = alloc.targets;
    if (!head) throw new SdfsError('ENOSTORAGE', 'the name server gave no storage server for the block');
    return new BlockSender(head, rest, alloc.blockId, alloc.token, this.transport.dispatcher, { links: this.transport.links });
  }

  /**
   * Ends the current block. If a storage server of the pipeline failed and the block's bytes are still
   * here, the block is sent again to a fresh pipeline without the failed servers (and those are avoided
   * for the rest of the file); otherwise a block stored on fewer servers than asked is kept, and an
   * unstored one fails the write.
   */
  private async finishBlock(current: CurrentBlock, last = false): Promise<CompleteBlockRequest | undefined> {
    let { alloc, sender } = current;
    let result = await sender.finish();
    for (let attempt = 1; attempt < MAX_BLOCK_ATTEMPTS && current.kept.length > 0 && incomplete(alloc, result); attempt++) {
      for (const id of failedIds(alloc, result)) this.avoid.add(id);
      try {
        alloc = await this.allocate(current.index);
      } catch (err) {
        if (result.reply) break; // no other server to try: keep the replicas that were stored
        throw err;
      }
      sender = this.send(alloc);
      current.sender = sender;
      for (const piece of current.kept) await sender.write(piece);
      result = await sender.finish();
    }
    if (result.error || !result.reply) {
      throw new SdfsError(result.error?.code ?? 'EUNAVAILABLE',
        `writing block ${alloc.index} of ${this.path} failed: ${result.error?.message ?? 'no reply'}`);
    }
    const reply: PutBlockResponse = result.reply;
    const stored: CompleteBlockRequest = {
      blockId: alloc.blockId, index: alloc.index, size: result.size, digest: reply.digest, replicas: reply.stored,
    };
    // The last block is recorded by the commit itself.
    if (last) return stored;
    await this.api('POST', `/uploads/${this.upload!.uploadId}/stored`, stored);
    return undefined;
  }

  private async finishFile(): Promise<void> {
    const current = this.block;
    const [, last] = await Promise.all([this.storing?.done, current && this.finishBlock(current, true)]);
    this.block = undefined;
    this.storing = undefined;
    if (this.storeError !== undefined) throw this.storeError;
    const naming = this.pooled ? { path: this.path, overwrite: this.opts.overwrite } : {};
    this.stat = await this.api<FileStat>('POST', `/uploads/${this.upload!.uploadId}/commit`, last ? { last, ...naming } : naming);
    this.committed = true;
  }
}
