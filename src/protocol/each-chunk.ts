import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/**
 * Hands each chunk of a byte stream to `fn` as it arrived, the next one only once `fn` is done, and
 * resolves at the stream's end (or rejects with its error, or fn's, the stream then destroyed).
 *
 * Why not `for await`: async iteration of a byte stream reads all that is buffered at each step as
 * one new buffer, so a consumer slower than its source (a disk write, a forward) copies every byte
 * once more. Here the chunks go through 'data' events, and the stream is paused while `fn` works.
 */
export async function eachChunk(source: Readable, fn: (chunk: Buffer) => Promise<unknown> | void, signal?: AbortSignal): Promise<void> {
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      let pending: Promise<unknown> | void;
      try {
        pending = fn(chunk);
      } catch (err) {
        return done(err as Error);
      }
      if (pending) pending.then(() => done(), done);
      else done();
    },
  });
  await pipeline(source, sink, signal ? { signal } : {});
}
