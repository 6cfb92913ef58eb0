import { Type, type Static } from '@sinclair/typebox';

/**
 * The JSON messages of the name server's HTTP API (`/api/v1/...`), as JSON Schema (TypeBox), so that
 * the server validates every body where it enters and both sides share one set of types.
 * Bytes never travel in these messages: block data goes straight between clients and storage servers.
 */

export const API_PREFIX = '/api/v1';

// Bounds on every field that enters a process; the name server refuses anything larger.
const PathField = Type.String({ minLength: 1, maxLength: 4096 });
const IdField = Type.String({ pattern: '^[0-9a-f]{32}$' });
const Replication = Type.Integer({ minimum: 1, maximum: 16 });
export const MIN_BLOCK_SIZE = 1024;
export const MAX_BLOCK_SIZE = 1024 * 1024 * 1024;
const BlockSize = Type.Integer({ minimum: MIN_BLOCK_SIZE, maximum: MAX_BLOCK_SIZE });
/**
 * A block's digest algorithms and their digests' lengths in bytes (block-digest.ts): a digest is
 * `xxh3:<16 hex>`, or `sha256:<64 hex>` for a block written before 2026-11-28.
 */
export const DIGEST_BYTES = { xxh3: 8, sha256: 32 } as const;
export const DIGEST_PATTERN = `^(${Object.entries(DIGEST_BYTES).map(([name, bytes]) => `${name}:[0-9a-f]{${bytes * 2}}`).join('|')})$`;
const Digest = Type.String({ pattern: DIGEST_PATTERN });
/** A storage server's address: `host:port` (HTTP) or `https://host:port`; nothing that could add a path or a query to a URL. */
export const STORAGE_ADDR_PATTERN = '^(https://)?[A-Za-z0-9.\\-:[\\]]{1,300}$';

export const StorageRef = Type.Object({ id: IdField, addr: Type.String({ maxLength: 300 }) });
export type StorageRef = Static<typeof StorageRef>;

export const FileStat = Type.Object({
  path: Type.String(),
  name: Type.String(),
  type: Type.Union([Type.Literal('file'), Type.Literal('dir')]),
  size: Type.Integer(),
  ctime: Type.Number(),
  mtime: Type.Number(),
  replication: Type.Integer(),
  blockSize: Type.Integer(),
  blocks: Type.Integer(),
});
export type FileStat = Static<typeof FileStat>;

export const BlockLocation = Type.Object({
  id: IdField,
  index: Type.Integer(),
  offset: Type.Integer(),
  size: Type.Integer(),
  digest: Digest,
  replicas: Type.Array(Type.Object({ id: IdField, addr: Type.String(), alive: Type.Boolean() })),
  /** Lets the bearer read this block from its storage servers for a short while (absent in storage servers' own use). */
  token: Type.Optional(Type.String()),
});
export type BlockLocation = Static<typeof BlockLocation>;

export const PathQuery = Type.Object({ path: PathField });
export type PathQuery = Static<typeof PathQuery>;

/** What a new file may ask for, wherever it is written from (an upload, the content route). */
const NewFileFields = {
  path: PathField,
  overwrite: Type.Optional(Type.Boolean()),
  replication: Type.Optional(Replication),
  blockSize: Type.Optional(BlockSize),
};

export const ContentQuery = Type.Object({
  ...NewFileFields,
  /** Serve for display in a browser rather than as a download. */
  inline: Type.Optional(Type.Boolean()),
});
export type ContentQuery = Static<typeof ContentQuery>;

export const MkdirRequest = Type.Object({ path: PathField, parents: Type.Optional(Type.Boolean()) });
export type MkdirRequest = Static<typeof MkdirRequest>;

export const CreateRequest = Type.Object({ path: PathField });
export type CreateRequest = Static<typeof CreateRequest>;

export const MoveRequest = Type.Object({ from: PathField, to: PathField, overwrite: Type.Optional(Type.Boolean()) });
export type MoveRequest = Static<typeof MoveRequest>;

export const DeleteRequest = Type.Object({ path: PathField, recursive: Type.Optional(Type.Boolean()) });
export type DeleteRequest = Static<typeof DeleteRequest>;

export const ListResponse = Type.Object({ path: Type.String(), entries: Type.Array(FileStat) });
export type ListResponse = Static<typeof ListResponse>;

export const BlocksResponse = Type.Object({ stat: FileStat, blocks: Type.Array(BlockLocation) });
export type BlocksResponse = Static<typeof BlocksResponse>;

/** Several files' block lists in one call: what readers asked for at the same moment. */
export const BlocksBatchRequest = Type.Object({ paths: Type.Array(PathField, { minItems: 1, maxItems: 256 }) });
export type BlocksBatchRequest = Static<typeof BlocksBatchRequest>;

/** One answer per path, in the same order: its block list, or why there is none. */
export const BlocksBatchResponse = Type.Object({
  files: Type.Array(Type.Union([
    BlocksResponse,
    Type.Object({ path: Type.String(), error: Type.Object({ code: Type.String(), message: Type.String() }) }),
  ])),
});
export type BlocksBatchResponse = Static<typeof BlocksBatchResponse>;

export const OpenUploadRequest = Type.Object({
  ...NewFileFields,
  /** Place the first block too, saving a call (its targets come back as `first`). */
  allocate: Type.Optional(Type.Boolean()),
});
export type OpenUploadRequest = Static<typeof OpenUploadRequest>;



export const AllocateBlockRequest = Type.Object({
  index: Type.Integer({ minimum: 0 }),
  /** Storage servers the client could not reach for this block; the name server avoids them. */
  exclude: Type.Optional(Type.Array(IdField, { maxItems: 64 })),
});
export type AllocateBlockRequest = Static<typeof AllocateBlockRequest>;

export const AllocateBlockResponse = Type.Object({
  blockId: IdField,
  index: Type.Integer(),
  targets: Type.Array(StorageRef),
  /** Lets the bearer store this block on its targets for a short while. */
  token: Type.String(),
});
export type AllocateBlockResponse = Static<typeof AllocateBlockResponse>;

export const OpenUploadResponse = Type.Object({
  uploadId: IdField,
  path: Type.String(),
  replication: Type.Integer(),
  blockSize: Type.Integer(),
  first: Type.Optional(AllocateBlockResponse),
});
export type OpenUploadResponse = Static<typeof OpenUploadResponse>;

/** The largest file a pooled upload takes (see PoolUploadsRequest). */
const MAX_POOLED_SIZE = 64 * 1024 * 1024;

/**
 * Opens uploads ahead, with no path yet, each with its first block placed: a client writing many
 * small files takes one per file and names the file at commit, so a file costs one call to the name
 * server instead of two.
 */
export const PoolUploadsRequest = Type.Object({
  count: Type.Integer({ minimum: 1, maximum: 64 }),
  /** The largest file each upload will take: space on the targets is counted for this, not for a block. */
  maxSize: Type.Integer({ minimum: 1, maximum: MAX_POOLED_SIZE }),
  replication: Type.Optional(Replication),
  blockSize: Type.Optional(BlockSize),
});
export type PoolUploadsRequest = Static<typeof PoolUploadsRequest>;

export const PoolUploadsResponse = Type.Object({
  replication: Type.Integer(),
  blockSize: Type.Integer(),
  /** No block of these uploads may be larger (the smaller of the asked `maxSize` and the block size). */
  maxBlock: Type.Integer(),
  /** Fewer than asked when the storage servers have no room for more, or the cap on uploads in progress is near. */
  uploads: Type.Array(Type.Object({ uploadId: IdField, first: AllocateBlockResponse })),
});
export type PoolUploadsResponse = Static<typeof PoolUploadsResponse>;

export const CompleteBlockRequest = Type.Object({
  blockId: IdField,
  index: Type.Integer({ minimum: 0 }),
  size: Type.Integer({ minimum: 1, maximum: MAX_BLOCK_SIZE }),
  digest: Digest,
  replicas: Type.Array(IdField, { minItems: 1, maxItems: 16 }),
});
export type CompleteBlockRequest = Static<typeof CompleteBlockRequest>;

export const CommitRequest = Type.Object({
  /** The last block's report, recorded in the same transaction as the commit. */
  last: Type.Optional(CompleteBlockRequest),
  /** A pooled upload's file: its path, given here (and only for a pooled upload). */
  path: Type.Optional(PathField),
  overwrite: Type.Optional(Type.Boolean()),
});
export type CommitRequest = Static<typeof CommitRequest>;

export const StorageInfo = Type.Object({
  id: IdField,
  addr: Type.String(),
  alive: Type.Boolean(),
  capacity: Type.Integer(),
  free: Type.Integer(),
  used: Type.Integer(),
  blocks: Type.Integer(),
  lastHeartbeat: Type.Number(),
  /** `draining`: being decommissioned; it gets no new blocks and its replicas are copied elsewhere. */
  state: Type.Union([Type.Literal('normal'), Type.Literal('draining')]),
});
export type StorageInfo = Static<typeof StorageInfo>;

export const BlockReport = Type.Object({
  id: IdField,
  /** Every block the storage server holds. */
  blocks: Type.Array(IdField, { maxItems: 10_000_000 }),
});
export type BlockReport = Static<typeof BlockReport>;

export const BadReplicaReport = Type.Object({ storage: IdField, reason: Type.Optional(Type.String({ maxLength: 500 })) });
export type BadReplicaReport = Static<typeof BadReplicaReport>;

export const DecommissionRequest = Type.Object({
  /** A storage server's id, a unique prefix of it, or its address. */
  storage: Type.String({ minLength: 1, maxLength: 300 }),
  cancel: Type.Optional(Type.Boolean()),
});
export type DecommissionRequest = Static<typeof DecommissionRequest>;

/** Forgets a dead storage server for good: its disk is gone, its replicas are not coming back. */
export const ForgetRequest = Type.Object({
  /** A storage server's id, a unique prefix of it, or its address. */
  storage: Type.String({ minLength: 1, maxLength: 300 }),
  /** Also if some blocks had their only known replica there (their files have lost data). */
  force: Type.Optional(Type.Boolean()),
});
export type ForgetRequest = Static<typeof ForgetRequest>;

export const ForgetResponse = Type.Object({
  id: IdField,
  addr: Type.String(),
  /** Replicas it was known to hold, now forgotten (the others are re-made from the remaining copies). */
  replicas: Type.Integer(),
  /** Of those, blocks that had no other replica. */
  onlyCopies: Type.Integer(),
});
export type ForgetResponse = Static<typeof ForgetResponse>;

/** Replication health of the blocks of files, as counted by the name server. */
export const BlockHealth = Type.Object({
  blocks: Type.Integer(),
  /** Blocks with fewer replicas on usable servers (alive, not draining) than their files ask for. */
  underReplicated: Type.Integer(),
  /** Blocks that no live server holds: their data is unreachable until a server comes back. */
  missing: Type.Integer(),
  overReplicated: Type.Integer(),
});
export type BlockHealth = Static<typeof BlockHealth>;

export const StatusResponse = Type.Object({
  storages: Type.Array(Type.Intersect([StorageInfo, Type.Object({ drained: Type.Boolean() })])),
  files: Type.Integer(),
  dirs: Type.Integer(),
  capacity: Type.Integer(),
  free: Type.Integer(),
  used: Type.Integer(),
  health: BlockHealth,
  replicationInFlight: Type.Integer(),
  /** Files being written (not yet committed). */
  uploadsInProgress: Type.Integer(),
});
export type StatusResponse = Static<typeof StatusResponse>;

export const FsckFile = Type.Object({
  path: Type.String(),
  size: Type.Integer(),
  replication: Type.Integer(),
  blocks: Type.Integer(),
  underReplicated: Type.Integer(),
  missing: Type.Integer(),
  status: Type.Union([Type.Literal('healthy'), Type.Literal('under-replicated'), Type.Literal('missing-blocks')]),
});
export type FsckFile = Static<typeof FsckFile>;

export const FsckResponse = Type.Object({ path: Type.String(), files: Type.Array(FsckFile), healthy: Type.Boolean() });
export type FsckResponse = Static<typeof FsckResponse>;

export const FetchBlockRequest = Type.Object({
  /** A storage server that holds the block: `host:port` or `https://host:port` (as in the pipeline header). */
  source: Type.String({ pattern: STORAGE_ADDR_PATTERN }),
  size: Type.Integer({ minimum: 1 }),
  digest: Digest,
});
export type FetchBlockRequest = Static<typeof FetchBlockRequest>;

export const ClusterResponse = Type.Object({
  storages: Type.Array(StorageInfo),
  capacity: Type.Integer(),
  free: Type.Integer(),
  replication: Type.Integer(),
  blockSize: Type.Integer(),
});
export type ClusterResponse = Static<typeof ClusterResponse>;

// Storage server -> name server.
/** A storage server that heard an announcement asks its sender to prove it holds the cluster secret. */
export const ProofQuery = Type.Object({ nonce: Type.String({ pattern: '^[A-Za-z0-9_-]{43}$' }) });
export type ProofQuery = Static<typeof ProofQuery>;
export const ProofResponse = Type.Object({ proof: Type.String() });
export type ProofResponse = Static<typeof ProofResponse>;

export const StorageReport = Type.Object({
  id: IdField,
  /** The address clients and other storage servers use; the name server fills in the host if empty. */
  host: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9.\\-:]{0,255}$' })),
  port: Type.Integer({ minimum: 1, maximum: 65535 }),
  capacity: Type.Integer({ minimum: 0 }),
  free: Type.Integer({ minimum: 0 }),
  used: Type.Integer({ minimum: 0 }),
  blocks: Type.Integer({ minimum: 0 }),
  /** It serves HTTPS. */
  tls: Type.Optional(Type.Boolean()),
  /**
   * The file system its data dir is on, as its host numbers them (the device id): storage servers of
   * one host that report the same one share its space, and the cluster's totals count it once.
   */
  fsId: Type.Optional(Type.String({ pattern: '^[0-9a-z]{1,32}$' })),
});
export type StorageReport = Static<typeof StorageReport>;

export const HeartbeatResponse = Type.Object({
  heartbeatMs: Type.Integer(),
  /** How often the storage server sends its full block list. */
  blockReportMs: Type.Integer(),
});
export type HeartbeatResponse = Static<typeof HeartbeatResponse>;

// Storage server's own replies.
export const PutBlockResponse = Type.Object({
  id: IdField,
  size: Type.Integer(),
  digest: Digest,
  /** CRC-32 of each CHUNK_SIZE chunk, for the sender to compare with its own. */
  crcs: Type.Array(Type.Integer({ minimum: 0, maximum: 0xffffffff })),
  /** Storage server ids that hold the block on disk (fsynced), in pipeline order. */
  stored: Type.Array(IdField),
  /** Why a downstream storage server in the pipeline did not store it, if one did not. */
  failed: Type.Optional(Type.Array(Type.Object({ id: IdField, message: Type.String() }))),
});
export type PutBlockResponse = Static<typeof PutBlockResponse>;

/** Headers of the block protocol between clients and storage servers (and between storage servers). */
export const BLOCK_HEADERS = {
  /** The rest of the write pipeline: `id@host:port,id@host:port`. */
  pipeline: 'x-sdfs-pipeline',
  /** On a block read: the chunk size of the checksums, the index of the first chunk sent, and its CRC-32s. */
  chunkSize: 'x-sdfs-chunk-size',
  firstChunk: 'x-sdfs-first-chunk',
  crcs: 'x-sdfs-crcs',
  blockSize: 'x-sdfs-block-size',
  digest: 'x-sdfs-digest',
  /** On a block write between storage servers: a digest algorithm; the body ends with the head's digest in it (see TrailerSplitter). */
  trailer: 'x-sdfs-trailer',
} as const;
