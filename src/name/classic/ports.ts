/**
 * The data ports named to classic clients. A client listens on the port on its own host, so two
 * transfers to one host at once need two ports, while clients on different hosts may share one.
 * The name server cannot see when a client has stopped listening (it closes its port only after the
 * final reply, which is sent after the port is released here), so a port is named again as late as
 * possible: one never used before, at random, else the one released longest ago. With 16 transfers
 * at once to one host and 100 ports, a port rests while about 84 others are named.
 */
const MAX_HOSTS_REMEMBERED = 1024;

export class DataPorts {
  private readonly inUse = new Map<string, Set<number>>();
  /** When each port was last released, per host. */
  private readonly released = new Map<string, Map<number, number>>();
  private clock = 0;

  constructor(private readonly min: number, private readonly max: number) {}

  /** A free port for a transfer to `host`, or undefined if every port of the range is in use there. */
  acquire(host: string): number | undefined {
    const used = this.inUse.get(host) ?? new Set<number>();
    const released = this.released.get(host);
    const span = this.max - this.min + 1;
    if (used.size >= span) return undefined;
    const start = Math.floor(Math.random() * span);
    let best: number | undefined;
    let bestAt = Infinity;
    for (let i = 0; i < span; i++) {
      const port = this.min + ((start + i) % span);
      if (used.has(port)) continue;
      const at = released?.get(port) ?? -1;
      if (at < bestAt) {
        best = port;
        bestAt = at;
        if (at === -1) break; // never used: as good as any
      }
    }
    used.add(best!);
    this.inUse.set(host, used);
    return best;
  }

  release(host: string, port: number): void {
    const used = this.inUse.get(host);
    if (!used?.delete(port)) return;
    if (used.size === 0) this.inUse.delete(host);
    let released = this.released.get(host);
    if (!released) {
      this.released.set(host, (released = new Map()));
      // Remembered for the most recent hosts only, so that many clients cannot grow this without end.
      if (this.released.size > MAX_HOSTS_REMEMBERED) this.released.delete(this.released.keys().next().value!);
    }
    released.set(port, ++this.clock);
  }
}
