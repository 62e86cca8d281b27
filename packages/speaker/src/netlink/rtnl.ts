// rtnetlink for Portico's own interface: create and delete the dummy link
// portico0 and put VIPs on it (IPv4 /32, IPv6 /128 without duplicate-address
// detection), and read links and addresses back (linux/rtnetlink.h, if_link.h,
// if_addr.h). Requests mirror what iproute2 sends for the same command.
import { CodecError } from '../codec/errors.ts';
import { attr, read, type NlAttr } from './attr.ts';
import { AF_INET, AF_INET6, AF_UNSPEC, IFA, IFA_F, IFF, IFLA, IFLA_INFO, NLM_F, RT_SCOPE, RTM } from './constants.ts';
import { bytesToIp, ipFamily, ipToBytes, type IpFamily } from './ip.ts';
import type { AddrMessage, LinkMessage } from './message.ts';

/** The interface Portico owns (DESIGN.md decision 11). */
export const PORTICO_LINK = 'portico0';

export interface Link {
  index: number;
  name: string;
  /** IFLA_INFO_KIND ("dummy", "veth", ...), absent for links without one (lo, physical NICs). */
  kind?: string;
  mtu?: number;
  /** ifi_flags (IFF_*). */
  flags: number;
  up: boolean;
  mac?: string;
}

export interface Address {
  family: IpFamily;
  index: number;
  address: string;
  prefixLength: number;
  /** IFA_F_* (from IFA_FLAGS when present: it holds all 32 bits). */
  flags: number;
  scope: number;
  label?: string;
}

interface Req { seq: number; pid?: number }

function header(type: number, flags: number, r: Req): LinkMessage['header'] {
  return { type, flags, seq: r.seq, pid: r.pid ?? 0 };
}

function linkMessage(type: number, flags: number, r: Req, index: number, attrs: NlAttr[]): LinkMessage {
  return { kind: 'link', header: header(type, flags, r), family: AF_UNSPEC, pad: 0, devType: 0, index, flags: 0, change: 0, attrs };
}

/** RTM_NEWLINK creating a link of `kind` (e.g. `ip link add portico0 type dummy`); fails with EEXIST if the name is taken. */
export function newLinkRequest(name: string, kind: string, r: Req): LinkMessage {
  return linkMessage(RTM.NEWLINK, NLM_F.REQUEST | NLM_F.ACK | NLM_F.EXCL | NLM_F.CREATE, r, 0, [
    attr.str(IFLA.IFNAME, name),
    // IFLA_INFO_KIND is an NLA_STRING: iproute2 sends it without a NUL, and so do we.
    attr.nest(IFLA.LINKINFO, [attr.bytes(IFLA_INFO.KIND, Buffer.from(kind, 'utf8'))], false),
  ]);
}

/** RTM_NEWLINK setting a link up or down (ifi_change says which flag bit changes). */
export function setLinkUpRequest(index: number, up: boolean, r: Req): LinkMessage {
  const m = linkMessage(RTM.NEWLINK, NLM_F.REQUEST | NLM_F.ACK, r, index, []);
  m.flags = up ? IFF.UP : 0;
  m.change = IFF.UP;
  return m;
}

/** RTM_DELLINK by index (`ip link del` resolves the name first) or by name. */
export function delLinkRequest(link: { index: number } | { name: string }, r: Req): LinkMessage {
  return 'index' in link
    ? linkMessage(RTM.DELLINK, NLM_F.REQUEST | NLM_F.ACK, r, link.index, [])
    : linkMessage(RTM.DELLINK, NLM_F.REQUEST | NLM_F.ACK, r, 0, [attr.str(IFLA.IFNAME, link.name)]);
}

/** linux/rtnetlink.h: IFLA_EXT_MASK bits. */
const RTEXT_FILTER_VF = 0x1;
const RTEXT_FILTER_SKIP_STATS = 0x8;
/** linux/socket.h: iproute2 dumps links with ifi_family AF_PACKET (link-layer view). */
const AF_PACKET = 17;

/** RTM_GETLINK for one link by name; the answer is one RTM_NEWLINK or ENODEV. */
export function getLinkRequest(name: string, r: Req): LinkMessage {
  return linkMessage(RTM.GETLINK, NLM_F.REQUEST, r, 0, [attr.u32(IFLA.EXT_MASK, RTEXT_FILTER_VF | RTEXT_FILTER_SKIP_STATS), attr.str(IFLA.IFNAME, name)]);
}

/** RTM_GETLINK dump of every link (as `ip link show` asks). */
export function dumpLinksRequest(r: Req): LinkMessage {
  const m = linkMessage(RTM.GETLINK, NLM_F.REQUEST | NLM_F.DUMP, r, 0, [attr.u32(IFLA.EXT_MASK, RTEXT_FILTER_VF)]);
  m.family = AF_PACKET;
  return m;
}

function macText(b: Buffer | undefined): string | undefined {
  return b ? Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':') : undefined;
}

/** An RTM_NEWLINK answer as a Link. */
export function parseLink(m: LinkMessage): Link {
  const name = read.str(m.attrs, IFLA.IFNAME, 'IFLA_IFNAME');
  if (name === undefined) throw new CodecError('PORTICO_CODEC_INVALID', `link ${m.index} without IFLA_IFNAME`, 0);
  const link: Link = { index: m.index, name, flags: m.flags, up: (m.flags & IFF.UP) !== 0 };
  const info = read.nested(m.attrs, IFLA.LINKINFO, 'IFLA_LINKINFO');
  const kind = info && read.str(info, IFLA_INFO.KIND, 'IFLA_INFO_KIND');
  if (kind !== undefined) link.kind = kind;
  const mtu = read.u32(m.attrs, IFLA.MTU, 'IFLA_MTU');
  if (mtu !== undefined) link.mtu = mtu;
  const mac = macText(read.bytes(m.attrs, IFLA.ADDRESS, 'IFLA_ADDRESS'));
  if (mac !== undefined) link.mac = mac;
  return link;
}

function familyNumber(f: IpFamily): number {
  return f === 'inet' ? AF_INET : AF_INET6;
}

/**
 * RTM_NEWADDR / RTM_DELADDR for a VIP on a link: IFA_LOCAL and IFA_ADDRESS
 * both set (as iproute2 does), a host prefix by default, and for IPv6 on add
 * IFA_F_NODAD so the address is usable at once (no duplicate detection).
 */
export function addrRequest(op: 'add' | 'del', a: { index: number; address: string; prefixLength?: number; nodad?: boolean }, r: Req): AddrMessage {
  const family = ipFamily(a.address);
  const bytes = ipToBytes(a.address);
  const flags = op === 'add' && (a.nodad ?? family === 'inet6') ? IFA_F.NODAD : 0;
  return {
    kind: 'addr',
    header: header(op === 'add' ? RTM.NEWADDR : RTM.DELADDR, op === 'add' ? NLM_F.REQUEST | NLM_F.ACK | NLM_F.EXCL | NLM_F.CREATE : NLM_F.REQUEST | NLM_F.ACK, r),
    family: familyNumber(family),
    prefixLength: a.prefixLength ?? (family === 'inet' ? 32 : 128),
    flags,
    scope: RT_SCOPE.UNIVERSE,
    index: a.index,
    attrs: [attr.bytes(IFA.LOCAL, bytes), attr.bytes(IFA.ADDRESS, bytes)],
  };
}

/** RTM_GETADDR dump, optionally of one family and one link (the kernel filters by index with strict checking; Portico filters again). */
export function dumpAddrsRequest(r: Req, filter: { family?: IpFamily; index?: number } = {}): AddrMessage {
  return {
    kind: 'addr',
    header: header(RTM.GETADDR, NLM_F.REQUEST | NLM_F.DUMP, r),
    family: filter.family ? familyNumber(filter.family) : AF_UNSPEC,
    prefixLength: 0,
    flags: 0,
    scope: 0,
    index: filter.index ?? 0,
    attrs: [],
  };
}

/** An RTM_NEWADDR answer as an Address: IPv4 uses IFA_LOCAL (IFA_ADDRESS is the peer on point-to-point links). */
export function parseAddr(m: AddrMessage): Address {
  let family: IpFamily;
  if (m.family === AF_INET) family = 'inet';
  else if (m.family === AF_INET6) family = 'inet6';
  else throw new CodecError('PORTICO_CODEC_UNSUPPORTED', `address family ${m.family}`, 0);
  const raw = (family === 'inet' ? read.bytes(m.attrs, IFA.LOCAL, 'IFA_LOCAL') : undefined) ?? read.bytes(m.attrs, IFA.ADDRESS, 'IFA_ADDRESS');
  if (!raw || raw.length !== (family === 'inet' ? 4 : 16)) throw new CodecError('PORTICO_CODEC_INVALID', `address message without a ${family} address`, 0);
  const out: Address = {
    family,
    index: m.index,
    address: bytesToIp(raw),
    prefixLength: m.prefixLength,
    flags: read.u32(m.attrs, IFA.FLAGS, 'IFA_FLAGS') ?? m.flags,
    scope: m.scope,
  };
  const label = read.str(m.attrs, IFA.LABEL, 'IFA_LABEL');
  if (label !== undefined) out.label = label;
  return out;
}
