import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { SdfsError } from '../protocol/errors.js';
import { announcedFields, decodeReceived, MAX_ANNOUNCEMENT_BYTES } from '../protocol/announcement.js';
import { verifyAnnouncement, type ClusterKeys } from '../protocol/auth.js';

export interface DiscoveryOptions {
  /** Only name servers announcing this cluster are joined. */
  cluster: string;
  /** UDP port to listen on for announcements; 0 picks a free one (tests). */
  port: number;
  /** Local address to listen on; broadcasts arrive only on the wildcard address (the default, 0.0.0.0). */
  host?: string;
  /** Called once, with the first name server of the cluster heard; never after stop(). */
  onFound(found: DiscoveredNameServer): void;
  /** The cluster's keys: only announcements signed with the cluster secret, and recent, are followed. */
  keys?: ClusterKeys;
  /**
   * Checks a name server heard in a signed announcement before it is joined (confirmNameServer: it
   * must prove it holds the cluster secret); rejects if it cannot. The announcement's signature does
   * not cover its source address, so a copy sent again from another machine passes it.
   */
  confirm?: (url: string) => Promise<void>;
}

export interface DiscoveredNameServer {
  /** Base URL of the name server's API: the datagram's source address and the port it announced. */
  url: string;
  cluster: string;
  /** Source address of the datagram. */
  from: string;
}

/** At most this many other clusters are named in the log, so that a noisy LAN cannot fill it. */
const MAX_CLUSTERS_LOGGED = 8;
/** Name servers checked at once; announcements from further addresses wait for their next one. */
const MAX_CHECKS = 4;
/** An address that failed its check is not asked again for this long. */
const REFUSED_MS = 30_000;
/** Addresses remembered as refused, at most (then the oldest are forgotten). */
const MAX_REFUSED = 256;

/**
 * Listens for name server announcements (protocol/announcement.ts) and reports the first one of its
 * cluster (that passes `confirm`, when given), then closes its socket. Every datagram is validated;
 * junk and other clusters are ignored. The socket shares its port (SO_REUSEADDR), so that several
 * storage servers on one host all hear the broadcasts. Nothing happens until start(); stop() closes
 * the socket.
 */
export class Discovery {
  private socket: Socket | undefined;
  private done = false;
  private ignoredCount = 0;
  private readonly junkLogged = new Set<string>();
  private readonly clustersLogged = new Set<string>();
  /** Name servers being checked (by URL). */
  private readonly checking = new Set<string>();
  /** Name servers that failed their check, with the time until which they are not asked again. */
  private readonly refused = new Map<string, number>();

  constructor(private readonly opts: DiscoveryOptions) {}

  /** Datagrams ignored so far: junk and announcements of other clusters. */
  get ignored(): number {
    return this.ignoredCount;
  }

  /** The UDP port listened on (useful when started with port 0). */
  get port(): number {
    if (!this.socket) throw new SdfsError('EINVAL', 'discovery is not listening');
    return this.socket.address().port;
  }

  /** Binds the UDP port; fails if it cannot. */
  async start(): Promise<void> {
    if (this.socket || this.done) return;
    const socket = createSocket({ type: 'udp4', reuseAddr: true });
    await new Promise<void>((ok, fail) => {
      socket.once('error', fail);
      socket.bind({ port: this.opts.port, address: this.opts.host ?? '0.0.0.0' }, () => {
        socket.off('error', fail);
        ok();
      });
    }).catch((err: unknown) => {
      socket.close();
      throw new SdfsError('EUNAVAILABLE', `cannot listen for name servers on UDP port ${this.opts.port}: ${(err as Error).message}`, { cause: err });
    });
    socket.on('error', (err) => console.error(`storage server: discovery: ${err.message}`));
    socket.on('message', (msg, rinfo) => this.receive(msg, rinfo));
    // The storage server's HTTP listener keeps the process alive; this socket never does on its own.
    socket.unref();
    this.socket = socket;
  }

  async stop(): Promise<void> {
    this.done = true;
    const socket = this.socket;
    this.socket = undefined;
    if (socket) await new Promise<void>((closed) => socket.close(() => closed()));
  }

  private receive(msg: Buffer, rinfo: RemoteInfo): void {
    if (this.done) return;
    if (msg.length > MAX_ANNOUNCEMENT_BYTES) return this.ignore(`datagram too large (${msg.length} bytes)`, rinfo);
    let cluster: string;
    let url: string;
    let signed: boolean;
    try {
      const a = decodeReceived(msg);
      cluster = a.cluster;
      signed = this.opts.keys === undefined || verifyAnnouncement(this.opts.keys, announcedFields(a), a.ts, a.sig);
      const host = rinfo.family === 'IPv6' ? `[${rinfo.address}]` : rinfo.address;
      url = `${a.scheme}://${host}:${a.port}`;
    } catch (err) {
      return this.ignore((err as Error).message, rinfo);
    }
    if (cluster !== this.opts.cluster) {
      this.ignoredCount++;
      if (this.clustersLogged.size < MAX_CLUSTERS_LOGGED && !this.clustersLogged.has(cluster)) {
        this.clustersLogged.add(cluster);
        console.error(`storage server: ignoring name server of cluster ${JSON.stringify(cluster)} at ${rinfo.address} (this one is in ${JSON.stringify(this.opts.cluster)})`);
      }
      return;
    }
    // Someone else announcing itself for this cluster, or an old announcement sent again.
    if (!signed) return this.ignore('announcement not signed with this cluster\'s secret, or too old', rinfo);
    const found = { url, cluster, from: rinfo.address };
    if (!this.opts.confirm) return this.join(found);
    if (this.checking.has(url) || this.checking.size >= MAX_CHECKS || (this.refused.get(url) ?? 0) > Date.now()) return;
    this.checking.add(url);
    this.opts.confirm(url).then(() => this.join(found), (err: unknown) => {
      if (this.done) return;
      if (!this.refused.has(url)) {
        console.error(`storage server: not joining ${url}, heard announcing cluster ${JSON.stringify(cluster)}: ${(err as Error).message}`);
      }
      this.refused.delete(url);
      if (this.refused.size >= MAX_REFUSED) this.refused.delete(this.refused.keys().next().value!);
      this.refused.set(url, Date.now() + REFUSED_MS);
    }).finally(() => this.checking.delete(url));
  }

  /** Reports the name server found, once, and stops listening. */
  private join(found: DiscoveredNameServer): void {
    if (this.done) return;
    this.done = true;
    void this.stop();
    this.opts.onFound(found);
  }

  /** Junk is counted, and each kind is logged once (the reasons are a small fixed set). */
  private ignore(reason: string, rinfo: RemoteInfo): void {
    this.ignoredCount++;
    const kind = reason.replace(/\(.*\)/, '').trim();
    if (this.junkLogged.has(kind)) return;
    this.junkLogged.add(kind);
    console.error(`storage server: ignoring a datagram from ${rinfo.address}:${rinfo.port}: ${reason}`);
  }
}
