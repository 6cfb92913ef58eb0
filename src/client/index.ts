/** The sdfs client library: `connect(url)` and the types it speaks. */
export { connect, SdfsClient, type ClientOptions, type Progress } from './client.js';
export { FileWriteStream, type WriteOptions } from '../protocol/file-write-stream.js';
export type { ReadOptions, ReplicaFailure } from '../protocol/file-read-stream.js';
export type { FileReader, ViewOptions } from '../protocol/file-reader.js';
export { SdfsError, ERROR_TABLE, type ErrorCode } from '../protocol/errors.js';
export type {
  FileStat, BlocksResponse, BlockLocation, ClusterResponse, StorageInfo, StatusResponse, FsckResponse, FsckFile,
} from '../protocol/messages.js';
