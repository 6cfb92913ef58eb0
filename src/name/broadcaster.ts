import { createSocket, type Socket } from 'node:dgram';
import { isIPv4 } from 'node:net';
import { networkInterfaces } from 'node:os';
import { encodeAnnouncement, type AnnouncedScheme } from '../protocol/announcement.js';
import { signAnnouncement, type ClusterKeys } from '../protocol/auth.js';
import type { NameConfig } from './config.js';

export interface BroadcasterOptions {
  /** Cluster name announced; only storage servers of the same cluster join. */
  cluster: string;
  /** Port of the HTTP API announced. */
  httpPort: number;
  /** Scheme of the HTTP API announced. */
  scheme: AnnouncedScheme;
  /** Where the datagrams go: a broadcast address such as 255.255.255.255 or 10.0.0.255 (tests: 127.0.0.1). */
  address: string;
  /** UDP port the datagrams go to. */
  port: number;
  /** Interval between two announcements, ms. */
  intervalMs: number;
  /** The cluster's keys: each announcement carries its time and a signature (storage servers with the secret check it). */
  keys?: ClusterKeys;
  /**
   * Local IPv4 address to send from, so that receivers see it as the source and connect to it;
   * by default the system picks one per route.
   */
  bindAddress?: string;
}

const LIMITED_BROADCAST = '255.255.255.255';

/** The broadcast address of each IPv4 subnet this host is on (of `only`'s subnet, if given), loopback aside. */
export function subnetBroadcasts(only?: string): string[] {
  const out = new Set<string>();
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) {
      if (a.family !== 'IPv4' || a.internal || (only !== undefined && a.address !== only)) continue;
      const ip = a.address.split('.').map(Number);
      const mask = a.netmask.split('.').map(Number);
      out.add(ip.map((b, i) => (b | (~mask[i]! & 255)) >>> 0).join('.'));
    }
  }
  return [...out];
}

/**
 * Announces the name server on its LAN: one small UDP datagram at start and then at every interval
 * (see protocol/announcement.ts). Nothing happens until start(); stop() closes the socket. A send
 * that fails (no route, network down) is reported once per kind of failure and tried again at the
 * next interval.
 */
export class Broadcaster {
  private socket: Socket | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastError: string | undefined;
  private sent = 0;

  constructor(private readonly opts: BroadcasterOptions) {}

  /** Datagrams sent without error so far. */
  get sentCount(): number {
    return this.sent;
  }

  async start(): Promise<void> {
    if (this.socket) return;
    const keys = this.opts.keys;
    const sign = keys ? (fields: string, ts: number): string => signAnnouncement(keys, fields, ts) : undefined;
    const announcement = { cluster: this.opts.cluster, scheme: this.opts.scheme, port: this.opts.httpPort };
    encodeAnnouncement(announcement); // fails here, at start, if the announcement is invalid
    const socket = createSocket({ type: 'udp4' });
    const bindAddress = this.opts.bindAddress !== undefined && isIPv4(this.opts.bindAddress) ? this.opts.bindAddress : undefined;
    await new Promise<void>((ok, fail) => {
      socket.once('error', fail);
      socket.bind({ port: 0, address: bindAddress }, () => {
        socket.off('error', fail);
        ok();
      });
    }).catch((err: unknown) => {
      socket.close();
      throw err;
    });
    socket.on('error', (err) => this.failed(err));
    socket.setBroadcast(true);
    // The name server's HTTP listener keeps the process alive; this socket never does on its own.
    socket.unref();
    this.socket = socket;
    const sent = (err: Error | null): void => {
      if (this.socket !== socket) return; // stopped meanwhile
      if (err) return this.failed(err);
      this.sent++;
      if (this.lastError !== undefined) console.error(`name server: broadcasting to ${this.target()} again`);
      this.lastError = undefined;
    };
    const send = (): void => {
      // Made anew each time: a signed announcement carries its time.
      const datagram = encodeAnnouncement(announcement, sign);
      socket.send(datagram, this.opts.port, this.opts.address, (err) => {
        // With no default route (a container's internal network, say) the limited broadcast has no way
        // out; each subnet's own broadcast address does.
        const subnets = (err as NodeJS.ErrnoException | null)?.code === 'ENETUNREACH' && this.opts.address === LIMITED_BROADCAST
          ? subnetBroadcasts(bindAddress) : [];
        if (subnets.length === 0) return sent(err);
        for (const address of subnets) socket.send(datagram, this.opts.port, address, sent);
      });
    };
    send();
    this.timer = setInterval(send, this.opts.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    const socket = this.socket;
    this.socket = undefined;
    if (socket) await new Promise<void>((done) => socket.close(() => done()));
  }

  private target(): string {
    return `${this.opts.address}:${this.opts.port}`;
  }

  private failed(err: Error): void {
    if (err.message === this.lastError) return;
    this.lastError = err.message;
    console.error(`name server: cannot broadcast to ${this.target()}: ${err.message}`);
  }
}

/**
 * The name server's broadcasts as its config asks: none when turned off, or when it listens on a
 * loopback address only (no one on the LAN could reach the address announced). A socket that cannot
 * be opened is reported, and the name server serves on without broadcasts.
 */
export async function startBroadcasting(
  config: Pick<NameConfig, 'host' | 'cluster' | 'broadcast' | 'broadcastAddress' | 'discoveryPort' | 'broadcastIntervalMs' | 'tls'>,
  httpPort: number,
  keys: ClusterKeys,
): Promise<Broadcaster | undefined> {
  if (!config.broadcast) return undefined;
  if (isLoopback(config.host)) {
    console.error(`name server: not broadcasting: it listens on ${config.host}, which no other host can reach`);
    return undefined;
  }
  const b = new Broadcaster({
    cluster: config.cluster, httpPort, scheme: config.tls ? 'https' : 'http', address: config.broadcastAddress, port: config.discoveryPort, keys,
    intervalMs: config.broadcastIntervalMs, bindAddress: config.host === '0.0.0.0' ? undefined : config.host,
  });
  try {
    await b.start();
  } catch (err) {
    console.error(`name server: not broadcasting: ${(err as Error).message}`);
    return undefined;
  }
  console.log(JSON.stringify({
    event: 'broadcasting', cluster: config.cluster, to: `${config.broadcastAddress}:${config.discoveryPort}`, intervalMs: config.broadcastIntervalMs,
  }));
  return b;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIPv4(host) && host.startsWith('127.'));
}
