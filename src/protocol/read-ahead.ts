/**
 * The results of operations kept `depth` at a time in flight, yielded in the order they were
 * started. `start` begins the next one (undefined: there are no more); it is called only when the
 * consumer is done with what it was last given, so an operation may reuse the memory of one
 * yielded `depth` steps before. Stopping early (break, throw) waits for the operations still out and
 * hands what they gave to `leftover`.
 */
export async function* readAhead<T>(depth: number, start: () => Promise<T> | undefined, leftover?: (value: T) => void): AsyncGenerator<T> {
  const inFlight: Promise<T>[] = [];
  try {
    for (;;) {
      while (inFlight.length < depth) {
        const op = start();
        if (!op) break;
        // Awaited in order below; one that fails while an earlier one is awaited is not unhandled.
        op.catch(() => undefined);
        inFlight.push(op);
      }
      const next = inFlight.shift();
      if (!next) return;
      yield await next;
    }
  } finally {
    for (const r of await Promise.allSettled(inFlight)) if (r.status === 'fulfilled') leftover?.(r.value);
  }
}
