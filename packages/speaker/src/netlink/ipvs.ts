// The IPVS generic netlink family (linux/ip_vs.h): virtual services and their
// destinations (real servers) as Portico's types, to and from attributes.
// Requests put attributes in the order ipvsadm does (the kernel reads them by
// type; matching ipvsadm lets the tests compare bytes with a real capture).
import { CodecError } from '../codec/errors.ts';
import { attr, read, type AttrSchema, type NlAttr } from './attr.ts';
import {
  AF_INET, AF_INET6, GENL_ID_CTRL, IP_VS_CONN_F, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, IPVS_CMD, IPVS_CMD_ATTR, IPVS_DEST_ATTR,
  IPVS_GENL_VERSION, IPVS_INFO_ATTR, IPVS_STATS_ATTR, IPVS_SVC_ATTR, NETLINK_GENERIC, NLM_F,
} from './constants.ts';
import { CTRL_SCHEMA } from './genl.ts';
import { bytesToIp, ipToBytes, type IpFamily } from './ip.ts';
import { netlinkCodec, type GenlMessage } from './message.ts';

export type IpvsProtocol = 'tcp' | 'udp' | 'sctp';
/** masq = NAT, dr = direct routing ("gatewaying" in ipvsadm), tunnel = IP-in-IP/GUE/GRE. */
export type IpvsForward = 'masq' | 'local' | 'tunnel' | 'dr' | 'bypass';

export interface IpvsStats {
  conns: number;
  inPackets: number;
  outPackets: number;
  inBytes: number;
  outBytes: number;
  cps: number;
  inPps: number;
  outPps: number;
  inBps: number;
  outBps: number;
}

/**
 * A virtual service: either protocol + address + port, or a firewall mark.
 * Optional fields are absent on the wire when undefined.
 */
export interface IpvsService {
  family: IpFamily;
  protocol?: IpvsProtocol;
  address?: string;
  port?: number;
  fwmark?: number;
  scheduler?: string;
  /** Persistence engine (e.g. "sip"). */
  persistenceEngine?: string;
  /** IP_VS_SVC_F_* bits and the mask of bits this request sets. */
  flags?: { flags: number; mask: number };
  /** Persistence timeout in seconds (with IP_VS_SVC_F_PERSISTENT). */
  timeout?: number;
  /** Persistence granularity as a prefix length (the kernel keeps a mask for IPv4, a length for IPv6). */
  netmask?: number;
  /** Counters, in the kernel's answers only (64-bit ones when the kernel sends them). */
  stats?: IpvsStats;
}

export interface IpvsDest {
  address: string;
  port: number;
  /** IPVS_DEST_ATTR_ADDR_FAMILY: a destination may differ from its service's family (tunnel). */
  family?: IpFamily;
  forward?: IpvsForward;
  weight?: number;
  upperThreshold?: number;
  lowerThreshold?: number;
  tunnelType?: number;
  tunnelPort?: number;
  tunnelFlags?: number;
  activeConns?: number;
  inactiveConns?: number;
  persistConns?: number;
  stats?: IpvsStats;
}

const STATS_SCHEMA: AttrSchema = { [IPVS_SVC_ATTR.STATS]: {}, [IPVS_SVC_ATTR.STATS64]: {} };

/** Nested attributes per command: GET_INFO answers with flat info attributes, the rest with service/dest/daemon nests. */
export function ipvsSchema(cmd: number): AttrSchema {
  if (cmd === IPVS_CMD.SET_INFO || cmd === IPVS_CMD.GET_INFO || cmd === IPVS_CMD.SET_CONFIG || cmd === IPVS_CMD.GET_CONFIG) return {};
  return { [IPVS_CMD_ATTR.SERVICE]: STATS_SCHEMA, [IPVS_CMD_ATTR.DEST]: STATS_SCHEMA, [IPVS_CMD_ATTR.DAEMON]: {} };
}

/** A codec for NETLINK_GENERIC datagrams that knows nlctrl and the IPVS family (whose id the kernel assigns at run time). */
export function ipvsCodec(ipvsFamilyId: number): ReturnType<typeof netlinkCodec> {
  return netlinkCodec({ protocol: NETLINK_GENERIC, families: { [GENL_ID_CTRL]: CTRL_SCHEMA, [ipvsFamilyId]: ipvsSchema } });
}

const PROTOCOLS: Record<IpvsProtocol, number> = { tcp: IPPROTO_TCP, udp: IPPROTO_UDP, sctp: IPPROTO_SCTP };
const FORWARDS: Record<IpvsForward, number> = { masq: IP_VS_CONN_F.MASQ, local: IP_VS_CONN_F.LOCALNODE, tunnel: IP_VS_CONN_F.TUNNEL, dr: IP_VS_CONN_F.DROUTE, bypass: IP_VS_CONN_F.BYPASS };

function invalid(message: string): CodecError {
  return new CodecError('PORTICO_CODEC_INVALID', message, 0);
}

function familyNumber(f: IpFamily): number {
  return f === 'inet' ? AF_INET : AF_INET6;
}

function familyName(n: number | undefined, what: string): IpFamily {
  if (n === AF_INET) return 'inet';
  if (n === AF_INET6) return 'inet6';
  throw new CodecError('PORTICO_CODEC_UNSUPPORTED', `${what}: address family ${n} is neither AF_INET nor AF_INET6`, 0);
}

/** union nf_inet_addr: 16 bytes, an IPv4 address in the first 4. */
function addrBytes(address: string, family: IpFamily): Buffer {
  const b = ipToBytes(address);
  if ((b.length === 4) !== (family === 'inet')) throw invalid(`address ${address} is not of family ${family}`);
  return Buffer.concat([b, Buffer.alloc(16 - b.length)]);
}

function addrText(b: Buffer, family: IpFamily, what: string): string {
  if (b.length < (family === 'inet' ? 4 : 16)) throw invalid(`${what}: ${b.length} bytes is too short for ${family}`);
  return bytesToIp(b.subarray(0, family === 'inet' ? 4 : 16));
}

function maskToPrefix(mask: number): number {
  const inv = ~mask >>> 0;
  if ((inv & (inv + 1)) !== 0) throw invalid(`netmask 0x${mask.toString(16)} is not contiguous`);
  return Math.clz32(inv);
}

function parseStats(attrs: NlAttr[] | undefined, wide: boolean): IpvsStats | undefined {
  if (!attrs) return undefined;
  const n = (type: number, name: string): number => {
    const a = attrs.find((x) => x.type === type);
    if (!a || 'attrs' in a) return 0;
    if (a.data.length === 8) return Number(a.data.readBigUInt64LE(0));
    if (a.data.length === 4 && !wide) return a.data.readUInt32LE(0);
    throw invalid(`stats ${name}: unexpected size ${a.data.length}`);
  };
  return {
    conns: n(IPVS_STATS_ATTR.CONNS, 'conns'), inPackets: n(IPVS_STATS_ATTR.INPKTS, 'inpkts'), outPackets: n(IPVS_STATS_ATTR.OUTPKTS, 'outpkts'),
    inBytes: n(IPVS_STATS_ATTR.INBYTES, 'inbytes'), outBytes: n(IPVS_STATS_ATTR.OUTBYTES, 'outbytes'), cps: n(IPVS_STATS_ATTR.CPS, 'cps'),
    inPps: n(IPVS_STATS_ATTR.INPPS, 'inpps'), outPps: n(IPVS_STATS_ATTR.OUTPPS, 'outpps'), inBps: n(IPVS_STATS_ATTR.INBPS, 'inbps'), outBps: n(IPVS_STATS_ATTR.OUTBPS, 'outbps'),
  };
}

function protocolName(n: number): IpvsProtocol {
  for (const [name, num] of Object.entries(PROTOCOLS)) if (num === n) return name as IpvsProtocol;
  throw new CodecError('PORTICO_CODEC_UNSUPPORTED', `IPVS protocol ${n} is not TCP, UDP or SCTP`, 0);
}

/** Service attributes (inside IPVS_CMD_ATTR_SERVICE) to an IpvsService. */
export function parseService(a: NlAttr[]): IpvsService {
  const family = familyName(read.u16(a, IPVS_SVC_ATTR.AF, 'IPVS_SVC_ATTR_AF'), 'service');
  const svc: IpvsService = { family };
  const proto = read.u16(a, IPVS_SVC_ATTR.PROTOCOL, 'IPVS_SVC_ATTR_PROTOCOL');
  if (proto !== undefined) svc.protocol = protocolName(proto);
  const addr = read.bytes(a, IPVS_SVC_ATTR.ADDR, 'IPVS_SVC_ATTR_ADDR');
  if (addr) svc.address = addrText(addr, family, 'IPVS_SVC_ATTR_ADDR');
  const port = read.be16(a, IPVS_SVC_ATTR.PORT, 'IPVS_SVC_ATTR_PORT');
  if (port !== undefined) svc.port = port;
  const fwmark = read.u32(a, IPVS_SVC_ATTR.FWMARK, 'IPVS_SVC_ATTR_FWMARK');
  if (fwmark !== undefined) svc.fwmark = fwmark;
  const sched = read.str(a, IPVS_SVC_ATTR.SCHED_NAME, 'IPVS_SVC_ATTR_SCHED_NAME');
  if (sched !== undefined) svc.scheduler = sched;
  const pe = read.str(a, IPVS_SVC_ATTR.PE_NAME, 'IPVS_SVC_ATTR_PE_NAME');
  if (pe !== undefined) svc.persistenceEngine = pe;
  const flags = read.bytes(a, IPVS_SVC_ATTR.FLAGS, 'IPVS_SVC_ATTR_FLAGS');
  if (flags) {
    if (flags.length !== 8) throw invalid(`IPVS_SVC_ATTR_FLAGS: expected 8 bytes (struct ip_vs_flags), got ${flags.length}`);
    svc.flags = { flags: flags.readUInt32LE(0), mask: flags.readUInt32LE(4) };
  }
  const timeout = read.u32(a, IPVS_SVC_ATTR.TIMEOUT, 'IPVS_SVC_ATTR_TIMEOUT');
  if (timeout !== undefined) svc.timeout = timeout;
  const netmask = read.bytes(a, IPVS_SVC_ATTR.NETMASK, 'IPVS_SVC_ATTR_NETMASK');
  if (netmask) {
    if (netmask.length !== 4) throw invalid(`IPVS_SVC_ATTR_NETMASK: expected 4 bytes, got ${netmask.length}`);
    if (family === 'inet') svc.netmask = maskToPrefix(netmask.readUInt32BE(0));
    else {
      const len = netmask.readUInt32LE(0);
      if (len > 128) throw invalid(`IPVS_SVC_ATTR_NETMASK: IPv6 prefix length ${len}`);
      svc.netmask = len;
    }
  }
  const stats = parseStats(read.nested(a, IPVS_SVC_ATTR.STATS64, 'IPVS_SVC_ATTR_STATS64'), true) ?? parseStats(read.nested(a, IPVS_SVC_ATTR.STATS, 'IPVS_SVC_ATTR_STATS'), false);
  if (stats) svc.stats = stats;
  return svc;
}

/** An IpvsService to attributes, in ipvsadm's order. Counters are never sent. */
export function serviceAttrs(svc: IpvsService): NlAttr[] {
  const out: NlAttr[] = [attr.u16(IPVS_SVC_ATTR.AF, familyNumber(svc.family))];
  if (svc.protocol !== undefined) out.push(attr.u16(IPVS_SVC_ATTR.PROTOCOL, PROTOCOLS[svc.protocol]));
  if (svc.address !== undefined) out.push(attr.bytes(IPVS_SVC_ATTR.ADDR, addrBytes(svc.address, svc.family)));
  if (svc.port !== undefined) out.push(attr.be16(IPVS_SVC_ATTR.PORT, svc.port));
  if (svc.fwmark !== undefined) out.push(attr.u32(IPVS_SVC_ATTR.FWMARK, svc.fwmark));
  if (svc.scheduler !== undefined) out.push(attr.str(IPVS_SVC_ATTR.SCHED_NAME, svc.scheduler));
  if (svc.persistenceEngine !== undefined) out.push(attr.str(IPVS_SVC_ATTR.PE_NAME, svc.persistenceEngine));
  if (svc.flags !== undefined) {
    const d = Buffer.alloc(8);
    d.writeUInt32LE(svc.flags.flags >>> 0, 0);
    d.writeUInt32LE(svc.flags.mask >>> 0, 4);
    out.push(attr.bytes(IPVS_SVC_ATTR.FLAGS, d));
  }
  if (svc.timeout !== undefined) out.push(attr.u32(IPVS_SVC_ATTR.TIMEOUT, svc.timeout));
  if (svc.netmask !== undefined) {
    const d = Buffer.alloc(4);
    if (svc.family === 'inet') {
      if (svc.netmask < 0 || svc.netmask > 32) throw invalid(`IPv4 netmask /${svc.netmask}`);
      d.writeUInt32BE(svc.netmask === 0 ? 0 : (~0 << (32 - svc.netmask)) >>> 0);
    } else {
      if (svc.netmask < 0 || svc.netmask > 128) throw invalid(`IPv6 netmask /${svc.netmask}`);
      d.writeUInt32LE(svc.netmask);
    }
    out.push(attr.bytes(IPVS_SVC_ATTR.NETMASK, d));
  }
  return out;
}

/** Destination attributes (inside IPVS_CMD_ATTR_DEST) to an IpvsDest; the service's family applies when the dest has none. */
export function parseDest(a: NlAttr[], serviceFamily?: IpFamily): IpvsDest {
  const af = read.u16(a, IPVS_DEST_ATTR.ADDR_FAMILY, 'IPVS_DEST_ATTR_ADDR_FAMILY');
  const family = af !== undefined ? familyName(af, 'destination') : serviceFamily;
  if (!family) throw invalid('destination without IPVS_DEST_ATTR_ADDR_FAMILY and no service family to fall back on');
  const addr = read.bytes(a, IPVS_DEST_ATTR.ADDR, 'IPVS_DEST_ATTR_ADDR');
  const port = read.be16(a, IPVS_DEST_ATTR.PORT, 'IPVS_DEST_ATTR_PORT');
  if (!addr || port === undefined) throw invalid('destination without address or port');
  const d: IpvsDest = { address: addrText(addr, family, 'IPVS_DEST_ATTR_ADDR'), port };
  if (af !== undefined) d.family = family;
  const fwd = read.u32(a, IPVS_DEST_ATTR.FWD_METHOD, 'IPVS_DEST_ATTR_FWD_METHOD');
  if (fwd !== undefined) {
    const name = (Object.keys(FORWARDS) as IpvsForward[]).find((k) => FORWARDS[k] === (fwd & 7));
    if (!name) throw new CodecError('PORTICO_CODEC_UNSUPPORTED', `forwarding method ${fwd}`, 0);
    d.forward = name;
  }
  const u32 = (type: number, key: 'weight' | 'upperThreshold' | 'lowerThreshold' | 'activeConns' | 'inactiveConns' | 'persistConns', what: string): void => {
    const v = read.u32(a, type, what);
    if (v !== undefined) d[key] = key === 'weight' ? v | 0 : v;
  };
  u32(IPVS_DEST_ATTR.WEIGHT, 'weight', 'IPVS_DEST_ATTR_WEIGHT');
  const tunType = read.u8(a, IPVS_DEST_ATTR.TUN_TYPE, 'IPVS_DEST_ATTR_TUN_TYPE');
  if (tunType !== undefined) d.tunnelType = tunType;
  const tunPort = read.be16(a, IPVS_DEST_ATTR.TUN_PORT, 'IPVS_DEST_ATTR_TUN_PORT');
  if (tunPort !== undefined) d.tunnelPort = tunPort;
  const tunFlags = read.u16(a, IPVS_DEST_ATTR.TUN_FLAGS, 'IPVS_DEST_ATTR_TUN_FLAGS');
  if (tunFlags !== undefined) d.tunnelFlags = tunFlags;
  u32(IPVS_DEST_ATTR.U_THRESH, 'upperThreshold', 'IPVS_DEST_ATTR_U_THRESH');
  u32(IPVS_DEST_ATTR.L_THRESH, 'lowerThreshold', 'IPVS_DEST_ATTR_L_THRESH');
  u32(IPVS_DEST_ATTR.ACTIVE_CONNS, 'activeConns', 'IPVS_DEST_ATTR_ACTIVE_CONNS');
  u32(IPVS_DEST_ATTR.INACT_CONNS, 'inactiveConns', 'IPVS_DEST_ATTR_INACT_CONNS');
  u32(IPVS_DEST_ATTR.PERSIST_CONNS, 'persistConns', 'IPVS_DEST_ATTR_PERSIST_CONNS');
  const stats = parseStats(read.nested(a, IPVS_DEST_ATTR.STATS64, 'IPVS_DEST_ATTR_STATS64'), true) ?? parseStats(read.nested(a, IPVS_DEST_ATTR.STATS, 'IPVS_DEST_ATTR_STATS'), false);
  if (stats) d.stats = stats;
  return d;
}

/** An IpvsDest to attributes, in ipvsadm's order (family first, thresholds last). Counters are never sent. */
export function destAttrs(d: IpvsDest, serviceFamily: IpFamily): NlAttr[] {
  const family = d.family ?? serviceFamily;
  const out: NlAttr[] = [];
  if (d.family !== undefined) out.push(attr.u16(IPVS_DEST_ATTR.ADDR_FAMILY, familyNumber(d.family)));
  out.push(attr.bytes(IPVS_DEST_ATTR.ADDR, addrBytes(d.address, family)));
  out.push(attr.be16(IPVS_DEST_ATTR.PORT, d.port));
  if (d.forward !== undefined) out.push(attr.u32(IPVS_DEST_ATTR.FWD_METHOD, FORWARDS[d.forward]));
  if (d.weight !== undefined) out.push(attr.u32(IPVS_DEST_ATTR.WEIGHT, d.weight));
  if (d.tunnelType !== undefined) out.push(attr.u8(IPVS_DEST_ATTR.TUN_TYPE, d.tunnelType));
  if (d.tunnelPort !== undefined) out.push(attr.be16(IPVS_DEST_ATTR.TUN_PORT, d.tunnelPort));
  if (d.tunnelFlags !== undefined) out.push(attr.u16(IPVS_DEST_ATTR.TUN_FLAGS, d.tunnelFlags));
  if (d.upperThreshold !== undefined) out.push(attr.u32(IPVS_DEST_ATTR.U_THRESH, d.upperThreshold));
  if (d.lowerThreshold !== undefined) out.push(attr.u32(IPVS_DEST_ATTR.L_THRESH, d.lowerThreshold));
  return out;
}

export interface IpvsRequestOptions {
  familyId: number;
  seq: number;
  pid?: number;
  /** Extra nlmsg_flags; REQUEST is always set, and ACK unless this is a dump. */
  dump?: boolean;
}

/**
 * One IPVS request: IPVS_CMD_{NEW,SET,DEL,GET}_{SERVICE,DEST}, FLUSH, GET_INFO.
 * Nested attributes carry NLA_F_NESTED, as libnl sets it.
 */
export function ipvsRequest(cmd: number, body: { service?: IpvsService; dest?: IpvsDest }, opts: IpvsRequestOptions): GenlMessage {
  const attrs: NlAttr[] = [];
  if (body.service) attrs.push(attr.nest(IPVS_CMD_ATTR.SERVICE, serviceAttrs(body.service)));
  if (body.dest) {
    if (!body.service) throw invalid('a destination request needs its service');
    attrs.push(attr.nest(IPVS_CMD_ATTR.DEST, destAttrs(body.dest, body.service.family)));
  }
  return {
    kind: 'genl',
    header: { type: opts.familyId, flags: NLM_F.REQUEST | (opts.dump ? NLM_F.DUMP | NLM_F.ACK : NLM_F.ACK), seq: opts.seq, pid: opts.pid ?? 0 },
    cmd,
    version: IPVS_GENL_VERSION,
    reserved: 0,
    attrs,
  };
}

/** What an IPVS message carries, as Portico's types. */
export function parseIpvsMessage(msg: GenlMessage, serviceFamily?: IpFamily): { service?: IpvsService; dest?: IpvsDest } {
  const out: { service?: IpvsService; dest?: IpvsDest } = {};
  const svc = read.nested(msg.attrs, IPVS_CMD_ATTR.SERVICE, 'IPVS_CMD_ATTR_SERVICE');
  if (svc) out.service = parseService(svc);
  const dest = read.nested(msg.attrs, IPVS_CMD_ATTR.DEST, 'IPVS_CMD_ATTR_DEST');
  if (dest) out.dest = parseDest(dest, out.service?.family ?? serviceFamily);
  return out;
}

/** IPVS_CMD_SET_INFO (the answer to GET_INFO): version as major.minor.patch and the connection table size. */
export function parseIpvsInfo(msg: GenlMessage): { version: string; connTableSize: number } {
  const v = read.u32(msg.attrs, IPVS_INFO_ATTR.VERSION, 'IPVS_INFO_ATTR_VERSION');
  const size = read.u32(msg.attrs, IPVS_INFO_ATTR.CONN_TAB_SIZE, 'IPVS_INFO_ATTR_CONN_TAB_SIZE');
  if (v === undefined || size === undefined) throw invalid('IPVS info without version or table size');
  return { version: `${(v >> 16) & 0xff}.${(v >> 8) & 0xff}.${v & 0xff}`, connTableSize: size };
}
