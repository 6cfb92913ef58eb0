import { finished, type Readable } from 'node:stream';

/**
 * Hands each chunk of a byte stream to `fn` as it arrived, the next one only once `fn` is done, and
 * resolves at the stream's end (or rejects with its error, or fn's, the stream then destroyed).
 *
 * Why not `for await`: async iteration of a byte stream reads all that is buffered at each step as
 * one new buffer, so a consumer slower than its source (a disk write, a forward) copies every byte
 * once more. Here the chunks go through 'data' events, and the stream is paused while `fn` works.
 * Nor `stream.pipeline` into a Writable: it makes an AbortController per call and aborts it at the
 * end, and the DOMException of that abort cost a storage server 2-4% of its CPU under small writes.
 */
export function eachChunk(source: Readable, fn: (chunk: Buffer) => Promise<unknown> | void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let working = false;
    let ended = false;
    let settled = false;
    const settle = (err?: unknown): void => {
      if (settled) return;
      settled = true;
      source.off('data', onData);
      stopWatching();
      if (err === undefined) return resolve();
      source.destroy();
      reject(err);
    };
    const onData = (chunk: Buffer): void => {
      let pending: Promise<unknown> | void;
      try {
        pending = fn(chunk);
      } catch (err) {
        return settle(err);
      }
      if (!pending) return;
      working = true;
      source.pause();
      pending.then(() => {
        working = false;
        // The stream may have ended while the last chunk was being handled.
        if (ended) settle();
        else if (!settled) source.resume();
      }, settle);
    };
    const stopWatching = finished(source, { writable: false }, (err) => {
      if (err) return settle(err);
      ended = true;
      if (!working) settle();
    });
    source.on('data', onData);
  });
}
