// Frames Portico sends on its own initiative when it takes an IP: gratuitous
// ARP in both forms and the unsolicited Neighbor Advertisement. Pure builders.
import { arp, ARP_REPLY, ARP_REQUEST } from './arp.ts';
import { ALL_NODES, BROADCAST_MAC, ipv6MulticastMac, ZERO_MAC } from './address.ts';
import { ethernet, ETHERTYPE_ARP, ETHERTYPE_IPV6 } from './ethernet.ts';
import { icmpv6Checksum } from './icmpv6.ts';
import { ipv6, NEXT_HEADER_ICMPV6 } from './ipv6.ts';
import { ndp, type NeighborAdvertisement } from './ndp.ts';

/** RFC 4861 §7.1.2: a receiver drops any NA whose hop limit is not 255. */
export const NDP_HOP_LIMIT = 255;

/**
 * Gratuitous ARP, request form (RFC 5227 §3 "ARP Announcement"): broadcast,
 * sender and target IP both the announced IP, target MAC zero.
 */
export function gratuitousArpRequest(mac: string, ip: string): Buffer {
  return ethernet.encode({
    destination: BROADCAST_MAC,
    source: mac,
    tags: [],
    etherType: ETHERTYPE_ARP,
    payload: arp.encode({ kind: 'ethernet-ipv4', operation: ARP_REQUEST, senderMac: mac, senderIp: ip, targetMac: ZERO_MAC, targetIp: ip }),
  });
}

/**
 * Gratuitous ARP, reply form (RFC 5944 §4.6): broadcast, sender and target
 * both the announcing MAC and IP. Some hosts and switches only learn from
 * replies, some only from requests, so Portico sends both.
 */
export function gratuitousArpReply(mac: string, ip: string): Buffer {
  return ethernet.encode({
    destination: BROADCAST_MAC,
    source: mac,
    tags: [],
    etherType: ETHERTYPE_ARP,
    payload: arp.encode({ kind: 'ethernet-ipv4', operation: ARP_REPLY, senderMac: mac, senderIp: ip, targetMac: mac, targetIp: ip }),
  });
}

/** An NA in an IPv6 packet in an Ethernet frame, checksum filled in, hop limit 255. */
export function neighborAdvertisementFrame(opts: {
  mac: string;
  target: string;
  destinationIp: string;
  destinationMac: string;
  solicited: boolean;
  override: boolean;
}): Buffer {
  const na: NeighborAdvertisement = {
    type: 'neighbor-advertisement',
    code: 0,
    checksum: 0,
    router: false,
    solicited: opts.solicited,
    override: opts.override,
    reserved: 0,
    target: opts.target,
    options: [{ kind: 'target-link-layer-address', mac: opts.mac }],
  };
  const body = ndp.encode(na);
  body.writeUInt16BE(icmpv6Checksum(opts.target, opts.destinationIp, body), 2);
  return ethernet.encode({
    destination: opts.destinationMac,
    source: opts.mac,
    tags: [],
    etherType: ETHERTYPE_IPV6,
    payload: ipv6.encode({
      trafficClass: 0,
      flowLabel: 0,
      nextHeader: NEXT_HEADER_ICMPV6,
      hopLimit: NDP_HOP_LIMIT,
      source: opts.target,
      destination: opts.destinationIp,
      payload: body,
    }),
  });
}

/**
 * Unsolicited Neighbor Advertisement (RFC 4861 §7.2.6): to all-nodes, S clear,
 * O set so neighbours replace a cached MAC at once.
 */
export function unsolicitedNeighborAdvertisement(mac: string, ip: string): Buffer {
  return neighborAdvertisementFrame({ mac, target: ip, destinationIp: ALL_NODES, destinationMac: ipv6MulticastMac(ALL_NODES), solicited: false, override: true });
}
