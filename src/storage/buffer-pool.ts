/** A buffer of a pool, and how to give it back; `release` may be called more than once. */
export interface Lent {
  data: Buffer;
  release: () => void;
}

/**
 * Buffers of one size, lent and given back. A storage server reads blocks into buffers of this pool
 * instead of a new one per read: a steady flow of new 1 MiB buffers counts as external memory to V8,
 * which has answered it with a mark-compact every 50-100 ms for whole seconds (`--trace-gc` during
 * cold 1 GiB reads: the storage server's user CPU per MiB went from 0.2 to 1.2-1.9 ms). A buffer
 * never given back is simply garbage; one given back is reused, so it must be given back only once
 * nothing will read it again (a socket's write callback, an answer's `finish`).
 */
export class BufferPool {
  private readonly free: Buffer[] = [];

  constructor(readonly size: number, private readonly keep: number) {}

  /** `length` bytes (at most `size`) of a buffer of the pool. */
  lend(length: number): Lent {
    if (length > this.size) throw new RangeError(`a buffer of ${length} bytes from a pool of ${this.size}-byte buffers`);
    const whole = this.free.pop() ?? Buffer.allocUnsafeSlow(this.size);
    let given = false;
    return {
      data: whole.subarray(0, length),
      release: () => {
        if (given) return;
        given = true;
        if (this.free.length < this.keep) this.free.push(whole);
      },
    };
  }
}
