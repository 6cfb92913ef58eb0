/**
 * The data ports named to classic clients. A client listens on the port on its own host, so two
 * transfers to one host at once need two ports, while clients on different hosts may share one. A
 * port is picked at random among the free ones, so that a port the client has just closed (and may
 * still hold in TIME_WAIT) is seldom named again at once.
 */
export class DataPorts {
  private readonly inUse = new Map<string, Set<number>>();

  constructor(private readonly min: number, private readonly max: number) {}

  /** A free port for a transfer to `host`, or undefined if every port of the range is in use there. */
  acquire(host: string): number | undefined {
    const used = this.inUse.get(host) ?? new Set<number>();
    const span = this.max - this.min + 1;
    if (used.size >= span) return undefined;
    const start = Math.floor(Math.random() * span);
    for (let i = 0; i < span; i++) {
      const port = this.min + ((start + i) % span);
      if (!used.has(port)) {
        used.add(port);
        this.inUse.set(host, used);
        return port;
      }
    }
    return undefined;
  }

  release(host: string, port: number): void {
    const used = this.inUse.get(host);
    if (!used) return;
    used.delete(port);
    if (used.size === 0) this.inUse.delete(host);
  }
}
