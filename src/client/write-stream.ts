import { Writable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { BlockSender } from '../protocol/block-sender.js';
import { SdfsError } from '../protocol/errors.js';
import type { AllocateBlockResponse, FileStat, OpenUploadResponse, PutBlockResponse } from '../protocol/messages.js';
import type { ApiCaller } from './api.js';

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
  private block: { alloc: AllocateBlockResponse; sender: BlockSender } | undefined;
  private blockIndex = 0;
  private committed = false;

  constructor(
    private readonly api: ApiCaller,
    private readonly dispatcher: Dispatcher,
    readonly path: string,
    private readonly opts: WriteOptions = {},
  ) {
    super({ highWaterMark: 1024 * 1024, signal: opts.signal });
  }

  override _construct(callback: (err?: Error | null) => void): void {
    this.api<OpenUploadResponse>('POST', '/uploads', {
      path: this.path, overwrite: this.opts.overwrite, replication: this.opts.replication, blockSize: this.opts.blockSize,
    }).then((u) => { this.upload = u; callback(); }, callback);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.writeChunk(chunk).then(() => callback(), callback);
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.finishFile().then(() => callback(), callback);
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.block?.sender.abort();
    if (this.upload && !this.committed) {
      this.api('DELETE', `/uploads/${this.upload.uploadId}`).catch(() => {}).finally(() => callback(err));
    } else callback(err);
  }

  private async writeChunk(chunk: Buffer): Promise<void> {
    const blockSize = this.upload!.blockSize;
    let off = 0;
    while (off < chunk.length) {
      const current = this.block ?? (await this.startBlock());
      const take = Math.min(blockSize - current.sender.size, chunk.length - off);
      await current.sender.write(chunk.subarray(off, off + take));
      off += take;
      if (current.sender.size === blockSize) await this.finishBlock();
    }
  }

  private async startBlock(): Promise<{ alloc: AllocateBlockResponse; sender: BlockSender }> {
    const alloc = await this.api<AllocateBlockResponse>('POST', `/uploads/${this.upload!.uploadId}/blocks`, { index: this.blockIndex });
    const [head, ...rest] = alloc.targets;
    if (!head) throw new SdfsError('ENOSTORAGE', 'the name server gave no storage server for the block');
    this.block = { alloc, sender: new BlockSender(head, rest, alloc.blockId, this.dispatcher) };
    return this.block;
  }

  private async finishBlock(): Promise<void> {
    const { alloc, sender } = this.block!;
    this.block = undefined;
    const result = await sender.finish();
    if (result.error || !result.reply) {
      throw new SdfsError(result.error?.code ?? 'EUNAVAILABLE',
        `writing block ${alloc.index} of ${this.path} to ${sender.head.addr} failed: ${result.error?.message ?? 'no reply'}`);
    }
    const reply: PutBlockResponse = result.reply;
    await this.api('POST', `/uploads/${this.upload!.uploadId}/stored`, {
      blockId: alloc.blockId, index: alloc.index, size: result.size, sha256: result.sha256, replicas: reply.stored,
    });
    this.blockIndex++;
  }

  private async finishFile(): Promise<void> {
    if (this.block) await this.finishBlock();
    this.stat = await this.api<FileStat>('POST', `/uploads/${this.upload!.uploadId}/commit`, {});
    this.committed = true;
  }
}
