// BGP policy for one node, as a pure function of the World: which peers this
// node keeps a session with, and what each of them is told (prefix, next hop,
// local-pref, communities). Every decision carries an enumerated reason, so
// logs, status and tests say why a route is or is not announced.
import {
  anySelectorMatches, formatIP, parseIP, rangeContains, tryParseIP,
  type BGPAdv, type Config, type Family, type Peer, type Pool,
} from '@portico/shared';
import assert from 'node:assert';
import { isIP } from 'node:net';
import type { NodeState, ServiceState, World } from '../world/types.ts';
import type { Advertisement } from './session.ts';

/** A BGPPeer as policy reads it (the shared model carries every field policy needs). */
export type PeerSettings = Peer;

/** A BGPAdvertisement as policy reads it. */
export type AdvSettings = BGPAdv;

/** Why this node has a session with a peer. */
export type PeerReason =
  /** The peer has no nodeSelectors: every node peers with it. */
  | 'all-nodes'
  /** One of the peer's nodeSelectors matches this node's labels. */
  | 'node-selected';

/** Why this node has no session with a configured peer. */
export type PeerSkipReason =
  /** No nodeSelector of the peer matches this node. */
  | 'node-not-selected'
  /** The peer has nodeSelectors and this node's Node object is unknown, so its labels are too. */
  | 'node-unknown'
  /** The peer names a VRF; Portico's speaker runs in the default VRF only. */
  | 'vrf-unsupported'
  /** The peer names an interface (BGP unnumbered); Portico's speaker needs a peerAddress. */
  | 'interface-unsupported';

/** Whether this node may attract traffic at all (Kubernetes' rules for load balancers). */
export type NodeReason = 'eligible' | 'node-unknown' | 'node-not-ready' | 'node-network-unavailable' | 'node-excluded';

/** Why an IP is announced from this node. */
export type AnnounceReason =
  /** externalTrafficPolicy Cluster: the node is eligible and the Service has a ready endpoint somewhere. */
  | 'cluster-ready-endpoints'
  /** externalTrafficPolicy Local: the node is eligible and has a ready endpoint of its own. */
  | 'local-ready-endpoints';

/** Why an IP is not announced from this node. */
export type WithholdReason =
  | 'no-config'
  /** The IP is not a valid address. */
  | 'invalid-ip'
  /** The Service's pool is not (or no longer) in the configuration. */
  | 'no-pool'
  /** No BGPAdvertisement selects the pool. */
  | 'no-advertisement'
  /** BGPAdvertisements select the pool, but none of their serviceSelectors match the Service. */
  | 'service-not-selected'
  /** The advertisements that select the Service all have nodeSelectors that miss this node. */
  | 'node-not-selected'
  | Exclude<NodeReason, 'eligible'>
  /** externalTrafficPolicy Cluster and no ready endpoint of the IP's family anywhere. */
  | 'no-ready-endpoints'
  /** externalTrafficPolicy Local and no ready endpoint of the IP's family on this node. */
  | 'no-local-endpoints'
  /** Announced by policy, but no session of this node is allowed to carry it (BGPAdvertisement peers). */
  | 'no-peers';

export type IPDecision =
  | { ip: string; announce: true; reason: AnnounceReason; pool: string; advertisements: string[]; peers: string[] }
  | { ip: string; announce: false; reason: WithholdReason; pool?: string; advertisements?: string[] };

export interface ServiceDecision {
  service: string;
  ips: IPDecision[];
}

/** Why a prefix that policy announces does not go to one peer. */
export type PrefixSkipReason =
  /** The node has no address of the prefix's family to give as next hop on this session. */
  | 'no-next-hop'
  /** The BGPPeer carries its own address family only (dualStackAddressFamily false, disableMP true). */
  | 'family-not-on-session';

/** One session this node should have, and everything it should announce on it. */
export interface PeerPlan {
  peer: PeerSettings;
  reason: PeerReason;
  ibgp: boolean;
  /** BGP Identifier: the peer's routerID, else the node's IPv4 address, else one derived from the node's name. */
  routerId: string;
  /**
   * Next hop per family. Absent for the session's own family without a
   * sourceAddress: the session uses its local TCP address, which is what the
   * peer reaches the node on.
   */
  nextHop: { ipv4?: string; ipv6?: string };
  /** Sorted by prefix. */
  ads: Advertisement[];
  skipped: { prefix: string; reason: PrefixSkipReason }[];
}

export interface BgpPlan {
  node: NodeReason;
  /** Sorted by peer name. */
  peers: PeerPlan[];
  skippedPeers: { peer: string; reason: PeerSkipReason }[];
  /** Sorted by Service key. */
  services: ServiceDecision[];
}

const familyOf = (ip: string): Family => (ip.includes(':') ? 'IPv6' : 'IPv4');

/** Kubernetes' eligibility of a node for load-balancer traffic. */
export function nodeEligibility(node: NodeState | undefined): NodeReason {
  if (!node) return 'node-unknown';
  if (!node.ready) return 'node-not-ready';
  if (node.networkUnavailable) return 'node-network-unavailable';
  if (node.excluded) return 'node-excluded';
  return 'eligible';
}

/** The AS the session speaks as: the BGPPeer's localASN, else its myASN. */
export function localAsnOf(peer: PeerSettings): number {
  return peer.localASN ?? peer.myASN;
}

/** The peer's AS, or the dynamicASN rule its OPEN is checked against (the config guarantees one of them). */
export function peerAsnRule(peer: PeerSettings): number | 'internal' | 'external' {
  if (peer.peerASN !== undefined) return peer.peerASN;
  assert(peer.dynamicASN !== undefined, `BGPPeer ${peer.name} has neither peerASN nor dynamicASN`);
  return peer.dynamicASN;
}

/** iBGP when the peer's AS is (or, with dynamicASN internal, must be) the session's own. */
export function isIbgp(peer: PeerSettings): boolean {
  const rule = peerAsnRule(peer);
  return rule === 'internal' || rule === localAsnOf(peer);
}

/** Why `peer` cannot be run by this speaker at all, for the Warning on the BGPPeer; undefined when it can. */
export function unsupportedPeer(reason: PeerSkipReason, peer: PeerSettings): string | undefined {
  switch (reason) {
    case 'vrf-unsupported':
      return `vrf "${peer.vrf ?? ''}" is not supported: Portico's speaker peers from the default VRF only; remove spec.vrf`;
    case 'interface-unsupported':
      return `interface "${peer.interface ?? ''}" (BGP unnumbered) is not supported: set spec.peerAddress to the router's address instead`;
    case 'node-not-selected':
    case 'node-unknown':
      return undefined;
  }
}

/** Whether this node peers with `peer`, and why. */
export function peerSelection(peer: PeerSettings, node: NodeState | undefined): { ok: true; reason: PeerReason } | { ok: false; reason: PeerSkipReason } {
  if (peer.vrf !== undefined && peer.vrf !== '') return { ok: false, reason: 'vrf-unsupported' };
  if (peer.interface !== undefined) return { ok: false, reason: 'interface-unsupported' };
  if (peer.nodeSelectors.length === 0) return { ok: true, reason: 'all-nodes' };
  if (!node) return { ok: false, reason: 'node-unknown' };
  return anySelectorMatches(peer.nodeSelectors, node.labels) ? { ok: true, reason: 'node-selected' } : { ok: false, reason: 'node-not-selected' };
}

const IPV4_PLAIN = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** The covering prefix of `ip` at `length` bits (aggregationLength), canonical. */
export function aggregatePrefix(ip: string, length: number): string {
  // The common case (a host route of a plain dotted quad) skips the BigInt round trip: 10,000 Services are announced in one go.
  if (length === 32 && IPV4_PLAIN.test(ip)) return `${ip}/32`;
  const a = parseIP(ip);
  const bits = a.family === 'IPv4' ? 32 : 128;
  const host = (1n << BigInt(bits - length)) - 1n;
  return `${formatIP(a.family, a.value & ~host)}/${length}`;
}

/** A stable IPv4 identifier for a node without IPv4 (FNV-1a of its name, never 0.0.0.0). */
function derivedRouterId(name: string): string {
  let h = 0x811c9dc5;
  for (const c of Buffer.from(name)) h = Math.imul(h ^ c, 0x01000193) >>> 0;
  if (h === 0) h = 1;
  return [h >>> 24, (h >>> 16) & 0xff, (h >>> 8) & 0xff, h & 0xff].join('.');
}

function nodeAddress(node: NodeState | undefined, family: Family): string | undefined {
  return node?.addresses.find((a) => tryParseIP(a)?.family === family);
}

function poolOf(config: Config, svc: ServiceState, ip: string): Pool | undefined {
  if (svc.pool !== undefined) return config.pools.find((p) => p.name === svc.pool);
  const addr = tryParseIP(ip);
  return addr && config.pools.find((p) => p.ranges.some((r) => rangeContains(r, addr)));
}

function selectsPool(adv: AdvSettings, pool: Pool): boolean {
  // MetalLB's rule: an advertisement that names no pool and selects none applies to every pool.
  if (adv.pools.length === 0 && adv.poolSelectors.length === 0) return true;
  return adv.pools.includes(pool.name) || anySelectorMatches(adv.poolSelectors, pool.labels);
}

function endpointsDecide(svc: ServiceState, family: Family, self: string): { ok: true; reason: AnnounceReason } | { ok: false; reason: 'no-ready-endpoints' | 'no-local-endpoints' } {
  const ready = svc.endpoints.filter((e) => e.ready && e.family === family);
  if (svc.externalTrafficPolicy === 'Local') {
    return ready.some((e) => e.node === self) ? { ok: true, reason: 'local-ready-endpoints' } : { ok: false, reason: 'no-local-endpoints' };
  }
  return ready.length > 0 ? { ok: true, reason: 'cluster-ready-endpoints' } : { ok: false, reason: 'no-ready-endpoints' };
}

const splitCache = new WeakMap<readonly string[], { communities: string[]; large: string[] }>();

/** Standard and large communities of an advertisement, sorted and unique (shared, read-only: computed once per Config). */
function splitCommunities(values: readonly string[]): { communities: string[]; large: string[] } {
  const hit = splitCache.get(values);
  if (hit) return hit;
  const out = splitCommunitiesOnce(values);
  splitCache.set(values, out);
  return out;
}

function splitCommunitiesOnce(values: readonly string[]): { communities: string[]; large: string[] } {
  const communities: string[] = [];
  const large: string[] = [];
  for (const v of values) {
    if (v.startsWith('large:')) large.push(v.slice('large:'.length));
    else communities.push(v);
  }
  return { communities: union(undefined, communities), large: union(undefined, large) };
}

const union = (a: readonly string[] | undefined, b: readonly string[]): string[] => [...new Set([...(a ?? []), ...b])].sort();

/**
 * Everything the BGP speaker of `world.self` should do. Where two
 * advertisements give one prefix to one peer, their communities are merged
 * and the highest localPref wins.
 */
export function planBgp(world: World): BgpPlan {
  const self = world.nodes.get(world.self);
  const node = nodeEligibility(self);
  const config = world.config;
  const services = [...world.services.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  if (!config) {
    return { node, peers: [], skippedPeers: [], services: services.map((s) => ({ service: s.key, ips: s.ips.map((ip) => ({ ip, announce: false, reason: 'no-config' })) })) };
  }

  const peers: PeerPlan[] = [];
  const skippedPeers: BgpPlan['skippedPeers'] = [];
  const byName = new Map<string, { plan: PeerPlan; ads: Map<string, Advertisement> }>();
  for (const p of [...config.peers].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const peer: PeerSettings = p;
    const sel = peerSelection(peer, self);
    if (!sel.ok) {
      skippedPeers.push({ peer: peer.name, reason: sel.reason });
      continue;
    }
    const peerFamily = familyOf(peer.peerAddress);
    const nextHop: PeerPlan['nextHop'] = {};
    for (const family of ['IPv4', 'IPv6'] as const) {
      const key = family === 'IPv4' ? 'ipv4' : 'ipv6';
      if (peer.sourceAddress !== undefined && familyOf(peer.sourceAddress) === family) nextHop[key] = peer.sourceAddress;
      else if (family !== peerFamily) {
        const a = nodeAddress(self, family);
        if (a !== undefined) nextHop[key] = a;
      }
    }
    const plan: PeerPlan = {
      peer, reason: sel.reason, ibgp: isIbgp(peer),
      routerId: peer.routerID ?? nodeAddress(self, 'IPv4') ?? derivedRouterId(world.self),
      nextHop, ads: [], skipped: [],
    };
    peers.push(plan);
    byName.set(peer.name, { plan, ads: new Map() });
  }

  const decisions: ServiceDecision[] = [];
  for (const svc of services) {
    const ips: IPDecision[] = [];
    for (const ip of svc.ips) ips.push(decideIP(config, svc, ip, world.self, self, node, byName));
    decisions.push({ service: svc.key, ips });
  }

  for (const { plan, ads } of byName.values()) {
    plan.ads = [...ads.values()].sort((a, b) => (a.prefix < b.prefix ? -1 : a.prefix > b.prefix ? 1 : 0));
  }
  return { node, peers, skippedPeers, services: decisions };
}

function decideIP(
  config: Config, svc: ServiceState, ip: string, selfName: string, self: NodeState | undefined, node: NodeReason,
  sessions: Map<string, { plan: PeerPlan; ads: Map<string, Advertisement> }>,
): IPDecision {
  if (isIP(ip) === 0) return { ip, announce: false, reason: 'invalid-ip' };
  const family = familyOf(ip);
  const pool = poolOf(config, svc, ip);
  if (!pool) return { ip, announce: false, reason: 'no-pool' };
  const forPool = config.bgpAdvertisements.filter((a) => selectsPool(a, pool));
  if (forPool.length === 0) return { ip, announce: false, reason: 'no-advertisement', pool: pool.name };
  const forService = forPool.filter((a) => a.serviceSelectors.length === 0 || anySelectorMatches(a.serviceSelectors, svc.labels));
  if (forService.length === 0) return { ip, announce: false, reason: 'service-not-selected', pool: pool.name };
  const forNode = forService.filter((a) => a.nodeSelectors.length === 0 || (self !== undefined && anySelectorMatches(a.nodeSelectors, self.labels)));
  const advertisements = forNode.map((a) => a.name);
  if (forNode.length === 0) return { ip, announce: false, reason: 'node-not-selected', pool: pool.name };
  if (node !== 'eligible') return { ip, announce: false, reason: node, pool: pool.name, advertisements };
  const ep = endpointsDecide(svc, family, selfName);
  if (!ep.ok) return { ip, announce: false, reason: ep.reason, pool: pool.name, advertisements };

  const reached = new Set<string>();
  for (const adv of forNode) {
    const length = family === 'IPv4' ? adv.aggregationLength : adv.aggregationLengthV6;
    const prefix = aggregatePrefix(ip, length);
    const { communities, large } = splitCommunities(adv.communities);
    const fresh = (prev: readonly string[] | undefined, add: string[]): string[] => (prev === undefined ? add : union(prev, add));
    const targets = adv.peers.length === 0 ? [...sessions.values()] : adv.peers.flatMap((n) => sessions.get(n) ?? []);
    for (const t of targets) {
      if (t.plan.peer.families === 'session' && family !== familyOf(t.plan.peer.peerAddress)) {
        if (!t.plan.skipped.some((s) => s.prefix === prefix)) t.plan.skipped.push({ prefix, reason: 'family-not-on-session' });
        continue;
      }
      const hasNextHop = family === familyOf(t.plan.peer.peerAddress) || t.plan.nextHop[family === 'IPv4' ? 'ipv4' : 'ipv6'] !== undefined;
      if (!hasNextHop) {
        if (!t.plan.skipped.some((s) => s.prefix === prefix)) t.plan.skipped.push({ prefix, reason: 'no-next-hop' });
        continue;
      }
      reached.add(t.plan.peer.name);
      const prev = t.ads.get(prefix);
      const ad: Advertisement = { prefix };
      const localPref = t.plan.ibgp ? Math.max(prev?.localPref ?? -1, adv.localPref ?? -1) : -1;
      if (localPref >= 0) ad.localPref = localPref;
      const c = fresh(prev?.communities, communities);
      if (c.length) ad.communities = c;
      const l = fresh(prev?.largeCommunities, large);
      if (l.length) ad.largeCommunities = l;
      t.ads.set(prefix, ad);
    }
  }
  if (reached.size === 0) return { ip, announce: false, reason: 'no-peers', pool: pool.name, advertisements };
  return { ip, announce: true, reason: ep.reason, pool: pool.name, advertisements, peers: [...reached].sort() };
}
