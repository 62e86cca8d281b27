// Strict ARP without /proc/sys: an nftables table of the `arp` family that
// drops the ARP replies the kernel itself sends for layer-2 VIPs.
//
// Why: a VIP that sits on a local interface of a node (the IPVS dataplane's
// portico0, kube-proxy's kube-ipvs0) makes that node's kernel answer ARP
// requests for it on every interface (arp_ignore=0, the default), so clients
// could learn a node that does not own the VIP. The sysctls arp_ignore=1 and
// arp_announce=2 fix that where /proc/sys is writable; in an unprivileged
// container it is read-only (and the kubelet refuses net.* sysctls for
// host-network pods). The speaker's own replies go out through an AF_PACKET
// socket, which netfilter's arp output hook never sees: with this table only
// the elected owner answers. Requests the kernel sends with a VIP as sender
// (what arp_announce=2 avoids) are left alone: they come only from a node that
// sends traffic from the VIP, which in layer 2 is the owner.
//
// NDP needs no counterpart: the kernel answers a neighbour solicitation only
// for addresses on the interface it arrived on, never for a VIP that sits on
// another interface.
//
// The table is `arp portico` (Portico touches only tables named portico), and
// is written whole in one transaction, like the dataplane's `inet portico`.
import { isIPv4 } from 'node:net';

export const ARP_FILTER_TABLE = 'portico';

/** The table holding exactly these IPv4 VIPs (others are ignored), replacing any earlier one atomically. */
export function renderArpFilter(vips: readonly string[]): string {
  const v4 = [...new Set(vips.filter((ip) => isIPv4(ip)))].sort(compareIPv4);
  return [
    `table arp ${ARP_FILTER_TABLE}`,
    `delete table arp ${ARP_FILTER_TABLE}`,
    `table arp ${ARP_FILTER_TABLE} {`,
    '  set vips {',
    '    type ipv4_addr;',
    ...(v4.length ? [`    elements = { ${v4.join(', ')} }`] : []),
    '  }',
    // Replies the kernel sends for a VIP; the speaker's (AF_PACKET) are not seen here.
    '  chain output {',
    '    type filter hook output priority 0; policy accept;',
    '    arp operation reply arp saddr ip @vips counter drop',
    '  }',
    '}', '',
  ].join('\n');
}

/** Removes the table (nothing else): created first so the delete cannot fail on a missing table. */
export function renderArpFilterDelete(): string {
  return `table arp ${ARP_FILTER_TABLE}\ndelete table arp ${ARP_FILTER_TABLE}\n`;
}

function compareIPv4(a: string, b: string): number {
  const x = a.split('.').map(Number), y = b.split('.').map(Number);
  for (let i = 0; i < 4; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return 0;
}

export const STRICT_ARP_MODES = ['auto', 'sysctl', 'nftables'] as const;
/**
 * How the speaker keeps other nodes' kernels from answering ARP for a VIP:
 * `sysctl` writes arp_ignore/arp_announce, `nftables` keeps the table above,
 * `auto` writes the sysctls and falls back to the table where /proc/sys is
 * read-only (an unprivileged container).
 */
export type StrictArpMode = (typeof STRICT_ARP_MODES)[number];
