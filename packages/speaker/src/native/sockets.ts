// Small typed sockets over the native addon: a datagram socket that reads when
// libuv says the fd is readable, and its AF_PACKET and AF_NETLINK flavours.
import { loadNative, RecvMeta, type PorticoNative } from './index.ts';

/** One received datagram. `data` is a view into a reused buffer: copy it to keep it past the handler. */
export interface Datagram {
  data: Buffer;
  /** The datagram was longer than the receive buffer and was cut. */
  truncated: boolean;
  /** AF_PACKET: receiving ifindex. AF_NETLINK: sender port id (0 = kernel). */
  ifindexOrPortId: number;
  /** AF_PACKET: PACKET_HOST/BROADCAST/MULTICAST/OTHERHOST. AF_NETLINK: groups mask. */
  pkttypeOrGroups: number;
  /** AF_PACKET: EtherType (host order). */
  protocol: number;
  /** AF_PACKET: 802.1Q TCI the kernel removed from the frame, or -1 when it had none. */
  vlanTci: number;
}

export interface DatagramSocketCounters {
  received: number;
  truncated: number;
  sent: number;
  /** Sends refused because the socket buffer was full. */
  sendBlocked: number;
  errors: number;
}

/** At most this many datagrams are read per readiness event; the poll is level-triggered, so the rest wait one loop turn instead of starving timers. */
const MAX_READS_PER_EVENT = 256;

export class DatagramSocket {
  readonly fd: number;
  readonly counters: DatagramSocketCounters = { received: 0, truncated: 0, sent: 0, sendBlocked: 0, errors: 0 };
  protected readonly native: PorticoNative;
  private readonly buf: Buffer;
  private readonly meta = new Int32Array(6);
  private closed = false;
  private errorHandler: (err: Error) => void = () => {};

  constructor(native: PorticoNative, fd: number, bufferSize = 65536) {
    this.native = native;
    this.fd = fd;
    this.buf = Buffer.alloc(bufferSize);
  }

  /** Starts reading: `handler` gets every datagram, in order. */
  onDatagram(handler: (d: Datagram) => void): this {
    this.native.pollStart(this.fd, (err) => {
      if (err) {
        this.counters.errors++;
        this.errorHandler(err);
        return;
      }
      this.drain(handler);
    });
    return this;
  }

  /** Receives read errors (e.g. ENOBUFS on a netlink overrun, ENETDOWN); reading goes on. */
  onError(handler: (err: Error) => void): this {
    this.errorHandler = handler;
    return this;
  }

  /** Reads what is queued now, without waiting; returns how many datagrams were handled. */
  drain(handler: (d: Datagram) => void, max = MAX_READS_PER_EVENT): number {
    let n = 0;
    while (n < max && !this.closed) {
      let len: number;
      try {
        len = this.native.recv(this.fd, this.buf, this.meta);
      } catch (err) {
        this.counters.errors++;
        this.errorHandler(err as Error);
        return n;
      }
      if (len < 0) return n;
      n++;
      this.counters.received++;
      const truncated = len > this.buf.length;
      if (truncated) this.counters.truncated++;
      const m = this.meta;
      handler({
        data: this.buf.subarray(0, Math.min(len, this.buf.length)),
        truncated,
        ifindexOrPortId: m[RecvMeta.ifindexOrPortId]!,
        pkttypeOrGroups: m[RecvMeta.pkttypeOrGroups]!,
        protocol: m[RecvMeta.protocol]!,
        vlanTci: m[RecvMeta.vlanTci]!,
      });
    }
    return n;
  }

  /** Sends one datagram; false when the socket buffer is full (the datagram is dropped). */
  send(data: Uint8Array): boolean {
    const n = this.native.send(this.fd, data);
    if (n < 0) {
      this.counters.sendBlocked++;
      return false;
    }
    this.counters.sent++;
    return true;
  }

  /** Whether a pending read keeps the process alive. */
  ref(keepAlive: boolean): this {
    this.native.pollRef(this.fd, keepAlive);
    return this;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.native.close(this.fd);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

export class PacketSocket extends DatagramSocket {
  readonly ifname: string;
  readonly ifindex: number;
  readonly mac: Buffer;

  constructor(native: PorticoNative, fd: number, ifname: string, ifindex: number, mac: Buffer) {
    super(native, fd, 9216 + 64);
    this.ifname = ifname;
    this.ifindex = ifindex;
    this.mac = mac;
  }

  /** Receive frames sent to a multicast MAC (e.g. a solicited-node group). */
  addMembership(mac: Uint8Array): void {
    this.native.packetMembership(this.fd, this.ifindex, mac, true);
  }

  dropMembership(mac: Uint8Array): void {
    this.native.packetMembership(this.fd, this.ifindex, mac, false);
  }
}

export interface PacketSocketOptions {
  /** EtherType to receive (default ETH_P_ALL). */
  protocol?: number;
  /** Do not receive frames this host sends (default true). */
  ignoreOutgoing?: boolean;
  /** A classic BPF program (l2/filter.ts). */
  filter?: Uint8Array | null;
}

/** An AF_PACKET socket on interface `ifname` of the current network namespace. */
export function openPacketSocket(ifname: string, opts: PacketSocketOptions = {}): PacketSocket {
  const native = loadNative();
  const info = native.interfaceInfo(ifname);
  const fd = native.packetOpen(info.index, opts.protocol ?? native.constants.ETH_P_ALL, opts.ignoreOutgoing ?? true, opts.filter ?? null);
  return new PacketSocket(native, fd, ifname, info.index, info.mac);
}

export class NetlinkSocket extends DatagramSocket {
  readonly protocol: number;
  /** The port id the kernel assigned (nl_pid). */
  readonly portId: number;

  constructor(native: PorticoNative, fd: number, protocol: number, bufferSize: number) {
    super(native, fd, bufferSize);
    this.protocol = protocol;
    this.portId = native.netlinkPortId(fd) >>> 0;
  }

  /** NETLINK_ADD_MEMBERSHIP: join a multicast group by number (works for groups above 32). */
  addMembership(group: number): void {
    const c = this.native.constants;
    this.native.setIntOption(this.fd, c.SOL_NETLINK, c.NETLINK_ADD_MEMBERSHIP, group);
  }

  dropMembership(group: number): void {
    const c = this.native.constants;
    this.native.setIntOption(this.fd, c.SOL_NETLINK, c.NETLINK_DROP_MEMBERSHIP, group);
  }

  setOption(level: number, name: number, value: number): void {
    this.native.setIntOption(this.fd, level, name, value);
  }
}

/** An AF_NETLINK socket; `groups` is the legacy bind() bitmask. Dumps can be large: the receive buffer defaults to 64 KiB + a page. */
export function openNetlinkSocket(protocol: number, opts: { groups?: number; bufferSize?: number } = {}): NetlinkSocket {
  const native = loadNative();
  const fd = native.netlinkOpen(protocol, opts.groups ?? 0);
  return new NetlinkSocket(native, fd, protocol, opts.bufferSize ?? 65536 + 4096);
}
