// The ARP/NDP responder on one interface: reads ARP requests and Neighbor
// Solicitations from an AF_PACKET socket, runs the pure decide() on each, sends
// the answer, and counts every outcome by reason. Which IPs it owns is set
// declaratively by the speaker's ownership loop (setOwned).
import { openPacketSocket } from '../native/index.ts';
import { canonicalIP, formatMac, ipv6MulticastMac, isIPv4, parseMac, solicitedNodeMulticast } from './address.ts';
import { gratuitousArpReply, gratuitousArpRequest, unsolicitedNeighborAdvertisement } from './announce.ts';
import { decide, REASONS, type Decision, type Reason } from './decide.ts';
import { arpRequestAndNeighborSolicitationProgram, assemble } from './filter.ts';

/** What the responder needs from the link: the native AF_PACKET socket in production, a fake in tests. */
export interface FrameTransport {
  readonly ifname: string;
  readonly mac: string;
  /** Sends one whole Ethernet frame; false when it could not be queued. */
  send(frame: Uint8Array): boolean;
  /** `vlanTci` is the tag the kernel removed, -1 when untagged. */
  onFrame(handler: (frame: Buffer, vlanTci: number) => void): void;
  joinMulticast(mac: string): void;
  leaveMulticast(mac: string): void;
  close(): void;
}

export interface ResponderCounters {
  /** Frames read from the socket (ARP and NS after the socket filter). */
  received: number;
  /** Answers sent. */
  replies: number;
  /** Answers or announcements the socket refused (buffer full, link down). */
  sendFailures: number;
  /** Gratuitous ARP and unsolicited NA frames sent. */
  gratuitousSent: number;
  byReason: Record<Reason, number>;
}

export interface ResponderOptions {
  /** Called for every decision (after the answer was sent), for logs and tests. */
  onDecision?: (d: Decision) => void;
  /** Called when a send throws (e.g. ENETDOWN); the responder goes on. */
  onError?: (err: Error) => void;
}

export class Responder {
  readonly counters: ResponderCounters;
  private readonly transport: FrameTransport;
  private readonly opts: ResponderOptions;
  private ownedSet = new Set<string>();
  /** Solicited-node group MAC -> how many owned IPv6 addresses need it. */
  private readonly groups = new Map<string, number>();
  private closed = false;

  constructor(transport: FrameTransport, opts: ResponderOptions = {}) {
    this.transport = transport;
    this.opts = opts;
    this.counters = { received: 0, replies: 0, sendFailures: 0, gratuitousSent: 0, byReason: Object.fromEntries(REASONS.map((r) => [r, 0])) as Record<Reason, number> };
    transport.onFrame((frame, vlanTci) => this.handle(frame, vlanTci));
  }

  get ifname(): string {
    return this.transport.ifname;
  }

  get mac(): string {
    return this.transport.mac;
  }

  /** The IPs answered for, canonical text. */
  owned(): string[] {
    return [...this.ownedSet];
  }

  /**
   * Answer for exactly these IPs from now on: an IP left out stops being
   * answered at once. Joins and leaves the IPv6 solicited-node groups needed.
   * Returns what changed, so the caller can announce the added IPs.
   */
  setOwned(ips: Iterable<string>): { added: string[]; removed: string[] } {
    const next = new Set([...ips].map(canonicalIP));
    const added = [...next].filter((ip) => !this.ownedSet.has(ip));
    const removed = [...this.ownedSet].filter((ip) => !next.has(ip));
    for (const ip of added) {
      if (isIPv4(ip)) continue;
      const group = ipv6MulticastMac(solicitedNodeMulticast(ip));
      const n = this.groups.get(group) ?? 0;
      if (n === 0) this.transport.joinMulticast(group);
      this.groups.set(group, n + 1);
    }
    // Swap before leaving groups: a leave that throws must not keep answering for a removed IP.
    this.ownedSet = next;
    for (const ip of removed) {
      if (isIPv4(ip)) continue;
      const group = ipv6MulticastMac(solicitedNodeMulticast(ip));
      const n = (this.groups.get(group) ?? 1) - 1;
      if (n <= 0) {
        this.groups.delete(group);
        this.transport.leaveMulticast(group);
      } else {
        this.groups.set(group, n);
      }
    }
    return { added, removed };
  }

  /**
   * One round of announcements for an owned IP: gratuitous ARP request and
   * reply, or an unsolicited NA. Repeats (spaced beyond the receivers' ARP
   * locktime) are the caller's to schedule. Returns the frames sent.
   */
  announce(ip: string): number {
    const canonical = canonicalIP(ip);
    if (!this.ownedSet.has(canonical)) return 0;
    const frames = isIPv4(canonical)
      ? [gratuitousArpRequest(this.mac, canonical), gratuitousArpReply(this.mac, canonical)]
      : [unsolicitedNeighborAdvertisement(this.mac, canonical)];
    let sent = 0;
    for (const f of frames) {
      if (this.send(f)) sent++;
    }
    this.counters.gratuitousSent += sent;
    return sent;
  }

  /** Handles one received frame (public so tests can feed frames without a socket). */
  handle(frame: Buffer, vlanTci = -1): Decision {
    this.counters.received++;
    const d = decide(frame, { mac: this.mac, owned: this.ownedSet, vlanTci });
    this.counters.byReason[d.reason]++;
    if (d.action === 'reply' && !this.closed) {
      if (this.send(d.frame)) this.counters.replies++;
    }
    this.opts.onDecision?.(d);
    return d;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.transport.close();
  }

  private send(frame: Uint8Array): boolean {
    try {
      if (this.transport.send(frame)) return true;
    } catch (err) {
      this.opts.onError?.(err as Error);
    }
    this.counters.sendFailures++;
    return false;
  }
}

/**
 * A responder on interface `ifname` of the current network namespace, over the
 * native AF_PACKET socket: our own frames are not received back, and a socket
 * filter passes only ARP requests and Neighbor Solicitations. Needs CAP_NET_RAW; throws
 * NativeUnavailableError off Linux or without the built addon.
 */
export function openResponder(ifname: string, opts: ResponderOptions = {}): Responder {
  const sock = openPacketSocket(ifname, { filter: assemble(arpRequestAndNeighborSolicitationProgram()), ignoreOutgoing: true });
  const transport: FrameTransport = {
    ifname,
    mac: formatMac(sock.mac),
    send: (frame) => sock.send(frame),
    onFrame: (handler) => {
      sock.onDatagram((d) => handler(d.data, d.vlanTci));
      if (opts.onError) sock.onError(opts.onError);
    },
    joinMulticast: (mac) => sock.addMembership(parseMac(mac)),
    leaveMulticast: (mac) => sock.dropMembership(parseMac(mac)),
    close: () => sock.close(),
  };
  return new Responder(transport, opts);
}
