import { createReadStream as createLocalReadStream } from 'node:fs';
import * as fs from 'node:fs/promises';
import { Readable, Transform, type Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import type { Agent } from 'undici';
import { SdfsError } from '../protocol/errors.js';
import { newAgent } from '../protocol/http.js';
import type {
  BlocksResponse, ClusterResponse, FileStat, ForgetResponse, FsckResponse, ListResponse, StatusResponse, StorageInfo,
} from '../protocol/messages.js';
import { resolvePath } from '../protocol/paths.js';
import { apiCaller, type ApiCaller } from '../protocol/api-caller.js';
import { BlockChannel } from '../protocol/block-channel.js';
import { BlockLinks } from '../protocol/block-link.js';
import { createFileReadStream, type ReadOptions, type ReplicaFailure } from '../protocol/file-read-stream.js';
import { FileReader } from '../protocol/file-reader.js';
import { FileWriteStream, type BlockTransport, type WriteOptions } from '../protocol/file-write-stream.js';
import { BlockLookups } from './block-lookups.js';
import { POOLED_FILE_MAX, UploadPool } from './upload-pool.js';

export interface ClientOptions {
  /** An access key, when the name server asks for one. */
  key?: string;
  /** A certificate authority (PEM) to trust besides the system's, for a cluster with self-signed certificates. */
  ca?: Buffer;
  /** Called when a replica fails during a read (the read goes on from another one). */
  onReplicaFailure?: ReplicaFailure;
}

/** Reports bytes moved so far; for progress bars. */
export type Progress = (bytes: number) => void;

/**
 * A connection to an sdfs cluster, in the spirit of node:fs/promises. Paths are absolute sdfs paths
 * (or relative to `/`). Data streams straight between this process and the storage servers; the
 * name server only answers where.
 */
export class SdfsClient {
  private readonly agent: Agent;
  /** Every block read (FileReader, and the streams over it); JSON calls and uploads go through the agent. */
  private readonly channel: BlockChannel;
  /** Small blocks written (see BlockSender). */
  private readonly links: BlockLinks;
  /** How written blocks travel: small ones through `links`, the rest through the agent. */
  private readonly transport: BlockTransport;
  private readonly api: ApiCaller;

  private readonly onReplicaFailure: ReplicaFailure;
  private readonly pool: UploadPool;
  private readonly lookups: BlockLookups;

  constructor(readonly url: string, opts: ClientOptions = {}) {
    this.agent = newAgent(opts.ca);
    this.channel = new BlockChannel({ ca: opts.ca });
    this.links = new BlockLinks({ ca: opts.ca });
    this.transport = { dispatcher: this.agent, links: this.links };
    this.api = apiCaller(url, this.agent, opts.key === undefined ? {} : { authorization: `Bearer ${opts.key}` });
    this.pool = new UploadPool(this.api);
    this.lookups = new BlockLookups(this.api);
    // A replica that fails its checksum is reported, so that the name server replaces it.
    this.onReplicaFailure = (block, replica, err) => {
      if (err.code === 'ECHECKSUM') {
        this.api('POST', `/blocks/${block.id}/bad`, { storage: replica.id, reason: err.message }).catch(() => {});
      }
      opts.onReplicaFailure?.(block, replica, err);
    };
  }

  stat(path: string): Promise<FileStat> {
    return this.api('GET', '/fs/stat', undefined, { path });
  }

  /** Whether anything exists at `path`. */
  async exists(path: string): Promise<boolean> {
    try {
      await this.stat(path);
      return true;
    } catch (err) {
      if (err instanceof SdfsError && err.code === 'ENOENT') return false;
      throw err;
    }
  }

  async readdir(path: string): Promise<FileStat[]> {
    return (await this.api<ListResponse>('GET', '/fs/list', undefined, { path })).entries;
  }

  mkdir(path: string, opts: { recursive?: boolean } = {}): Promise<FileStat> {
    return this.api('POST', '/fs/mkdir', { path, parents: opts.recursive ?? false });
  }

  /** Creates an empty file; fails with EEXIST if the name is taken. */
  create(path: string): Promise<FileStat> {
    return this.api('POST', '/fs/create', { path });
  }

  /** Moves or renames; into `to` if `to` is a directory. */
  rename(from: string, to: string, opts: { overwrite?: boolean } = {}): Promise<FileStat> {
    return this.api('POST', '/fs/move', { from, to, overwrite: opts.overwrite ?? false });
  }

  /** Copies a file or a directory tree (no data moves: blocks are shared); into `to` if it is a directory. */
  copy(from: string, to: string, opts: { overwrite?: boolean } = {}): Promise<FileStat> {
    return this.api('POST', '/fs/copy', { from, to, overwrite: opts.overwrite ?? false });
  }

  async rm(path: string, opts: { recursive?: boolean } = {}): Promise<void> {
    await this.api('POST', '/fs/delete', { path, recursive: opts.recursive ?? false });
  }

  /** A file's blocks and where each replica lives (asked for together with other readers' at the same moment). */
  async blocks(path: string): Promise<BlocksResponse> {
    // Checked here, so that a bad path fails alone and not the batch it would have gone in.
    return this.lookups.locate(resolvePath(path));
  }

  cluster(): Promise<ClusterResponse> {
    return this.api('GET', '/cluster');
  }

  /** Wipes the whole namespace and every storage server. */
  init(): Promise<ClusterResponse> {
    return this.api('POST', '/cluster/init', {});
  }

  /** Live and dead storage servers, space, file counts, and under-replicated and missing blocks. */
  status(): Promise<StatusResponse> {
    return this.api('GET', '/cluster/status');
  }

  /** Each file's health under `path`. */
  fsck(path = '/'): Promise<FsckResponse> {
    return this.api('GET', '/fsck', undefined, { path });
  }

  /** Drains a storage server (by id, id prefix or address) so that it can be stopped without loss; `cancel` undoes it. */
  decommission(storage: string, opts: { cancel?: boolean } = {}): Promise<StorageInfo> {
    return this.api('POST', '/storages/decommission', { storage, cancel: opts.cancel ?? false });
  }

  /** Forgets a dead storage server for good (see `sdfs forget`). */
  forget(storage: string, opts: { force?: boolean } = {}): Promise<ForgetResponse> {
    return this.api('POST', '/storages/forget', { storage, force: opts.force ?? false });
  }

  createWriteStream(path: string, opts: WriteOptions = {}): FileWriteStream {
    return new FileWriteStream(this.api, this.transport, resolvePath(path), opts);
  }

  /** Streams a file's bytes; the block list is fetched first, so a missing file fails here. */
  async createReadStream(path: string, opts: ReadOptions = {}): Promise<Readable> {
    const located = await this.blocks(path);
    return createFileReadStream(located, this.channel, opts, this.onReplicaFailure, () => this.blocks(located.stat.path));
  }

  /**
   * Opens a file for reading into memory of the caller's (`read`) or of the reader's, reused
   * (`views`): the cheapest way to read, as no buffer is made per piece. The block list is fetched
   * here, so a missing file fails here; a file replaced later is still read as it was.
   */
  async open(path: string): Promise<FileReader> {
    const located = await this.blocks(path);
    return new FileReader(located, this.channel, this.onReplicaFailure, () => this.blocks(located.stat.path));
  }

  /** Writes all of `source` to `path`. */
  async writeFile(path: string, source: Readable | Iterable<Uint8Array> | AsyncIterable<Uint8Array> | Uint8Array | string,
    opts: WriteOptions & { onProgress?: Progress } = {}): Promise<FileStat> {
    if ((typeof source === 'string' || source instanceof Uint8Array) && !opts.onProgress) {
      const bytes = typeof source === 'string' ? Buffer.from(source) : Buffer.from(source.buffer, source.byteOffset, source.byteLength);
      if (bytes.length > 0 && bytes.length <= POOLED_FILE_MAX && opts.replication === undefined && opts.blockSize === undefined) {
        try {
          return await this.writeBytes(path, bytes, opts, true);
        } catch (err) {
          if (!(err instanceof SdfsError) || err.code !== 'ENOENT' || opts.signal?.aborted) throw err;
          // The pooled upload is gone (the name server restarted) or the path's parent is: either way
          // the rest of the pool is suspect, and a write with its own upload says which.
          await this.pool.discard();
        }
      }
      return this.writeBytes(path, bytes, opts, false);
    }
    const out = this.createWriteStream(path, opts);
    const input = typeof source === 'string' || source instanceof Uint8Array ? Readable.from([Buffer.from(source)]) : source;
    await copy(input, out, opts);
    return out.stat!;
  }

  /** One piece, written and ended as it is: a pipeline would cost a small file more CPU than its bytes do. */
  private async writeBytes(path: string, bytes: Buffer, opts: WriteOptions, pooled: boolean): Promise<FileStat> {
    const out = new FileWriteStream(this.api, this.transport, resolvePath(path), opts, pooled ? () => this.pool.take() : undefined);
    out.end(bytes);
    await finished(out);
    return out.stat!;
  }

  /** Uploads a local file. */
  async put(localPath: string, path: string, opts: WriteOptions & { onProgress?: Progress } = {}): Promise<FileStat> {
    const st = await fs.stat(localPath);
    if (!st.isFile()) throw new SdfsError('EINVAL', `not a regular file: ${localPath}`);
    return this.writeFile(path, createLocalReadStream(localPath, { highWaterMark: 1024 * 1024 }), opts);
  }

  /**
   * Downloads a file to a local path. The bytes go to a temporary file beside it that is renamed
   * into place only when complete, so a failed download leaves no partial file.
   */
  async get(path: string, localPath: string, opts: ReadOptions & { onProgress?: Progress } = {}): Promise<FileStat> {
    const reader = await this.open(path);
    const tmp = `${localPath}.sdfs-partial-${process.pid}`;
    const out = await fs.open(tmp, 'w');
    try {
      let bytes = 0;
      for await (const view of reader.views({ start: opts.start, end: opts.end, signal: opts.signal })) {
        await writeAll(out, view);
        bytes += view.length;
        opts.onProgress?.(bytes);
      }
      await out.close();
      await fs.rename(tmp, localPath);
    } catch (err) {
      await out.close().catch(() => {});
      await fs.rm(tmp, { force: true });
      throw err;
    }
    return reader.stat;
  }

  async close(): Promise<void> {
    await this.pool.close();
    this.channel.close();
    this.links.close();
    await this.agent.close();
  }
}

/** Writes all of `data` to a local file (a write may take less than all). */
async function writeAll(out: fs.FileHandle, data: Uint8Array): Promise<void> {
  for (let done = 0; done < data.length;) done += (await out.write(data, done, data.length - done)).bytesWritten;
}

function progressStage(onProgress: Progress): Transform {
  let bytes = 0;
  return new Transform({
    highWaterMark: 1024 * 1024,
    transform(chunk: Buffer, _enc, cb) {
      bytes += chunk.length;
      onProgress(bytes);
      cb(null, chunk);
    },
  });
}

/** Connects to the name server at `url` (e.g. `http://127.0.0.1:6235`). No request is made until the first call. */
export function connect(url: string, opts: ClientOptions = {}): SdfsClient {
  let parsed: URL;
  try {
    parsed = new URL(url.includes('://') ? url : `http://${url}`);
  } catch {
    throw new SdfsError('EINVAL', `invalid name server URL: ${url}`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new SdfsError('EINVAL', `unsupported URL scheme: ${parsed.protocol}`);
  if (opts.key !== undefined && !/^[\x21-\x7e]{1,256}$/.test(opts.key)) throw new SdfsError('EINVAL', 'an access key is 1 to 256 printable characters without spaces');
  return new SdfsClient(parsed.origin, opts);
}

/** Pipes `source` into `sink`, through a progress stage only for a caller that watches the progress (a stage costs every chunk a hop). */
async function copy(source: Readable | Iterable<Uint8Array> | AsyncIterable<Uint8Array>, sink: Writable,
  opts: { onProgress?: Progress; signal?: AbortSignal }): Promise<void> {
  if (opts.onProgress) await pipeline(source, progressStage(opts.onProgress), sink, { signal: opts.signal });
  else await pipeline(source, sink, { signal: opts.signal });
}
