import type { Writable } from 'node:stream';

/**
 * Resolves once a full stream may be written again, or is closed (a reader that went away): the
 * caller checks `destroyed` after it. Resolves at once if the stream is not waiting for 'drain'.
 */
export function drained(w: Pick<Writable, 'destroyed' | 'writableNeedDrain' | 'on' | 'off'>): Promise<void> {
  return new Promise((resolve) => {
    if (w.destroyed || !w.writableNeedDrain) return resolve();
    const done = (): void => {
      w.off('drain', done);
      w.off('close', done);
      resolve();
    };
    w.on('drain', done);
    w.on('close', done);
  });
}
