// The responder's pure core: given one received frame, the IPs this node owns
// and the interface MAC, decide whether to answer and why, and build the
// answer. No sockets, no clock; every outcome carries an enumerated reason.
import { CodecError } from '../codec/errors.ts';
import { arp, ARP_REPLY, ARP_REQUEST } from './arp.ts';
import { ALL_NODES, formatMac, ipv6MulticastMac, isIPv6Multicast, solicitedNodeMulticast, UNSPECIFIED_V6 } from './address.ts';
import { neighborAdvertisementFrame, NDP_HOP_LIMIT } from './announce.ts';
import { ethernet, ETHERTYPE_ARP, ETHERTYPE_IPV6, type EthernetFrame } from './ethernet.ts';
import { checksumValid, ICMPV6_NEIGHBOR_SOLICITATION } from './icmpv6.ts';
import { ipv6, NEXT_HEADER_ICMPV6 } from './ipv6.ts';
import { linkLayerAddress, ndp } from './ndp.ts';

export type ReplyReason =
  /** An ARP request or a Neighbor Solicitation for an owned IP. */
  | 'reply'
  /** RFC 5227 ARP probe (sender IP 0.0.0.0) for an owned IP: defend it. */
  | 'reply-probe'
  /** Duplicate address detection (NS from ::) for an owned IP: defend it to all-nodes (RFC 4861 §7.2.4). */
  | 'reply-dad';

export type IgnoreReason =
  /** The asked-for IP is not one this node owns (now). */
  | 'not-owner'
  /** ARP whose sender IP equals its target IP: another node announcing; answering it would contest a takeover. */
  | 'gratuitous'
  /** ARP reply, NA or another message that asks nothing. */
  | 'not-a-request'
  /** Neither ARP nor ICMPv6 NDP (the socket filter normally keeps these out). */
  | 'not-arp-or-ndp'
  /** ARP for another hardware/protocol pair than Ethernet/IPv4. */
  | 'unsupported'
  /** A frame we sent ourselves. */
  | 'own-frame'
  /** A VLAN-tagged frame on an interface that answers untagged. */
  | 'tagged'
  /** A Neighbor Solicitation that fails RFC 4861 §7.1.1 validation (hop limit, code, checksum, target, DAD rules). */
  | 'invalid'
  /** Too short or inconsistent to decode. */
  | 'malformed';

export type Reason = ReplyReason | IgnoreReason;

export const REASONS: readonly Reason[] = [
  'reply', 'reply-probe', 'reply-dad',
  'not-owner', 'gratuitous', 'not-a-request', 'not-arp-or-ndp', 'unsupported', 'own-frame', 'tagged', 'invalid', 'malformed',
];

export type Protocol = 'arp' | 'ndp';

export type Decision =
  | { action: 'reply'; reason: ReplyReason; protocol: Protocol; ip: string; requester: string; frame: Buffer }
  | { action: 'ignore'; reason: IgnoreReason; protocol?: Protocol; ip?: string; detail?: string };

export interface DecideContext {
  /** The interface's MAC: the answer's source and the MAC we announce. */
  mac: string;
  /** Owned IPs, IPv6 in canonical (RFC 5952) text. */
  owned: ReadonlySet<string>;
  /** The 802.1Q TCI the kernel took off the frame (AF_PACKET auxdata), -1 or absent when untagged. */
  vlanTci?: number;
}

const ignore = (reason: IgnoreReason, extra: { protocol?: Protocol; ip?: string; detail?: string } = {}): Decision => ({ action: 'ignore', reason, ...extra });

/** Decides what to do with one received Ethernet frame. Never throws on bad input. */
export function decide(frame: Uint8Array, ctx: DecideContext): Decision {
  return decideArpFast(frame, ctx) ?? decideDecoded(frame, ctx);
}

let macCache: { text: string; bytes: Buffer } = { text: '', bytes: Buffer.alloc(6) };

/**
 * The common case without building objects: an untagged Ethernet/IPv4 ARP
 * frame, read at fixed offsets (RFC 826), the reply written in place. Returns
 * undefined for anything else, which decideDecoded() handles; both give the
 * same Decision for every frame (decide.test.ts checks it on mutated frames).
 *
 *   0 dst(6) 6 src(6) 12 0x0806 | 14 htype=1 16 ptype=0x0800 18 hlen=6 19 plen=4
 *   20 oper 22 sender MAC 28 sender IP 32 target MAC 38 target IP (42 bytes)
 */
function decideArpFast(f: Uint8Array, ctx: DecideContext): Decision | undefined {
  if (f.length < 42 || (ctx.vlanTci ?? -1) >= 0) return undefined;
  if (f[12] !== 0x08 || f[13] !== 0x06 || f[14] !== 0 || f[15] !== 1 || f[16] !== 0x08 || f[17] !== 0 || f[18] !== 6 || f[19] !== 4) return undefined;
  if (macCache.text !== ctx.mac) macCache = { text: ctx.mac, bytes: Buffer.from(ctx.mac.split(':').map((h) => parseInt(h, 16))) };
  const mac = macCache.bytes;
  if (f[6] === mac[0] && f[7] === mac[1] && f[8] === mac[2] && f[9] === mac[3] && f[10] === mac[4] && f[11] === mac[5]) return ignore('own-frame');
  const targetIp = `${f[38]}.${f[39]}.${f[40]}.${f[41]}`;
  if (f[28] === f[38] && f[29] === f[39] && f[30] === f[40] && f[31] === f[41]) return ignore('gratuitous', { protocol: 'arp', ip: targetIp });
  const op = (f[20]! << 8) | f[21]!;
  if (op !== ARP_REQUEST) return ignore('not-a-request', { protocol: 'arp', ip: targetIp, detail: `operation ${op}` });
  if (!ctx.owned.has(targetIp)) return ignore('not-owner', { protocol: 'arp', ip: targetIp });
  const reply = Buffer.alloc(42);
  reply.set(f.subarray(22, 28), 0); // to the asker
  mac.copy(reply, 6);
  reply[12] = 0x08; reply[13] = 0x06; reply[14] = 0; reply[15] = 1; reply[16] = 0x08; reply[17] = 0; reply[18] = 6; reply[19] = 4;
  reply[20] = 0; reply[21] = ARP_REPLY;
  mac.copy(reply, 22); // sender: us, with the asked IP
  reply.set(f.subarray(38, 42), 28);
  reply.set(f.subarray(22, 28), 32); // target: the asker
  reply.set(f.subarray(28, 32), 38);
  const probe = f[28] === 0 && f[29] === 0 && f[30] === 0 && f[31] === 0;
  return { action: 'reply', reason: probe ? 'reply-probe' : 'reply', protocol: 'arp', ip: targetIp, requester: formatMac(f, 22), frame: reply };
}

/** The same decision through the codecs: every frame decide() does not take the fast path for. */
export function decideDecoded(frame: Uint8Array, ctx: DecideContext): Decision {
  let eth: EthernetFrame;
  try {
    eth = ethernet.decode(frame);
  } catch (err) {
    return ignore('malformed', { detail: detailOf(err) });
  }
  if ((ctx.vlanTci ?? -1) >= 0 || eth.tags.length > 0) return ignore('tagged');
  if (eth.source === ctx.mac) return ignore('own-frame');
  switch (eth.etherType) {
    case ETHERTYPE_ARP:
      return decideArp(eth, ctx);
    case ETHERTYPE_IPV6:
      return decideNdp(eth, ctx);
    default:
      return ignore('not-arp-or-ndp', { detail: `EtherType 0x${eth.etherType.toString(16).padStart(4, '0')}` });
  }
}

/** RFC 826 "Packet Reception", for Ethernet/IPv4, with Portico's rules on gratuitous ARP and probes. */
function decideArp(eth: EthernetFrame, ctx: DecideContext): Decision {
  let p;
  try {
    p = arp.decode(eth.payload);
  } catch (err) {
    return ignore('malformed', { protocol: 'arp', detail: detailOf(err) });
  }
  if (p.kind !== 'ethernet-ipv4') return ignore('unsupported', { protocol: 'arp', detail: `hardware ${p.hardwareType} protocol 0x${p.protocolType.toString(16)}` });
  if (p.senderIp === p.targetIp) return ignore('gratuitous', { protocol: 'arp', ip: p.targetIp });
  if (p.operation !== ARP_REQUEST) return ignore('not-a-request', { protocol: 'arp', ip: p.targetIp, detail: `operation ${p.operation}` });
  if (!ctx.owned.has(p.targetIp)) return ignore('not-owner', { protocol: 'arp', ip: p.targetIp });
  const reply = ethernet.encode({
    destination: p.senderMac,
    source: ctx.mac,
    tags: [],
    etherType: ETHERTYPE_ARP,
    payload: arp.encode({ kind: 'ethernet-ipv4', operation: ARP_REPLY, senderMac: ctx.mac, senderIp: p.targetIp, targetMac: p.senderMac, targetIp: p.senderIp }),
  });
  return { action: 'reply', reason: p.senderIp === '0.0.0.0' ? 'reply-probe' : 'reply', protocol: 'arp', ip: p.targetIp, requester: p.senderMac, frame: reply };
}

/** RFC 4861 §7.1.1 (validation) and §7.2.4 (sending a solicited NA). */
function decideNdp(eth: EthernetFrame, ctx: DecideContext): Decision {
  let ip;
  try {
    ip = ipv6.decode(eth.payload);
  } catch (err) {
    return ignore('malformed', { detail: detailOf(err) });
  }
  if (ip.nextHeader !== NEXT_HEADER_ICMPV6) return ignore('not-arp-or-ndp', { detail: `IPv6 next header ${ip.nextHeader}` });
  const type = ip.payload[0];
  if (type !== ICMPV6_NEIGHBOR_SOLICITATION) {
    return type === undefined ? ignore('malformed', { protocol: 'ndp', detail: 'empty ICMPv6' }) : ignore('not-a-request', { protocol: 'ndp', detail: `ICMPv6 type ${type}` });
  }
  let ns;
  try {
    ns = ndp.decode(ip.payload);
  } catch (err) {
    if (err instanceof CodecError && err.code === 'PORTICO_CODEC_INVALID') return ignore('invalid', { protocol: 'ndp', detail: err.message });
    return ignore('malformed', { protocol: 'ndp', detail: detailOf(err) });
  }
  if (ns.type !== 'neighbor-solicitation') return ignore('not-a-request', { protocol: 'ndp' });
  const invalid = (detail: string): Decision => ignore('invalid', { protocol: 'ndp', ip: ns.target, detail });
  if (ip.hopLimit !== NDP_HOP_LIMIT) return invalid(`hop limit ${ip.hopLimit}`);
  if (ns.code !== 0) return invalid(`code ${ns.code}`);
  if (!checksumValid(ip.source, ip.destination, ip.payload)) return invalid('bad checksum');
  if (isIPv6Multicast(ns.target)) return invalid('multicast target');
  const sourceLinkLayer = linkLayerAddress(ns, 'source-link-layer-address');
  const dad = ip.source === UNSPECIFIED_V6;
  if (dad && ip.destination !== solicitedNodeMulticast(ns.target)) return invalid('DAD not sent to the solicited-node group');
  if (dad && sourceLinkLayer !== undefined) return invalid('DAD with a source link-layer address');
  if (!ctx.owned.has(ns.target)) return ignore('not-owner', { protocol: 'ndp', ip: ns.target });
  if (dad) {
    const frame = neighborAdvertisementFrame({ mac: ctx.mac, target: ns.target, destinationIp: ALL_NODES, destinationMac: ipv6MulticastMac(ALL_NODES), solicited: false, override: true });
    return { action: 'reply', reason: 'reply-dad', protocol: 'ndp', ip: ns.target, requester: eth.source, frame };
  }
  const requester = sourceLinkLayer ?? eth.source;
  const frame = neighborAdvertisementFrame({ mac: ctx.mac, target: ns.target, destinationIp: ip.source, destinationMac: requester, solicited: true, override: true });
  return { action: 'reply', reason: 'reply', protocol: 'ndp', ip: ns.target, requester, frame };
}

function detailOf(err: unknown): string {
  if (err instanceof CodecError) return err.message;
  throw err;
}
