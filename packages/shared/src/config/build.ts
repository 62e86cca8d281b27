// Builds one Config from the CRD objects and the legacy ConfigMap, and runs the
// cross-object checks (overlapping pools, unknown references, conflicts between
// the two sources). Problems are reported, never resolved by guessing.
import type { PorticoKind } from '../api/types.ts';
import { formatRange, rangesOverlap, type IPRange } from '../ip/ipmath.ts';
import { anySelectorMatches } from '../k8s/selector.ts';
import { isCommunityValue } from './fields.ts';
import { bfdProfileFromCRD, bgpAdvFromCRD, communitiesFromCRD, l2AdvFromCRD, peerFromCRD, poolFromCRD } from './crd.ts';
import { parseLegacyConfig } from './legacy.ts';
import type { BGPAdv, Config, ConfigProblem, Pool } from './model.ts';

export interface ConfigInput {
  pools?: readonly unknown[];
  l2Advertisements?: readonly unknown[];
  bgpAdvertisements?: readonly unknown[];
  peers?: readonly unknown[];
  communities?: readonly unknown[];
  bfdProfiles?: readonly unknown[];
  /** The `config` key of the legacy ConfigMap, when it exists. */
  legacy?: string | undefined;
}

export interface BuildResult {
  /** Every object that parsed, merged; only safe to use when `problems` is empty. */
  readonly config: Config;
  readonly problems: readonly ConfigProblem[];
}

const byName = <T extends { name: string }>(a: T, b: T): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

function parseAll<T>(list: readonly unknown[] | undefined, parse: (raw: unknown, p: ConfigProblem[]) => T | undefined, problems: ConfigProblem[]): T[] {
  const out: T[] = [];
  for (const raw of list ?? []) {
    const v = parse(raw, problems);
    if (v !== undefined) out.push(v);
  }
  return out;
}

export function buildConfig(input: ConfigInput): BuildResult {
  const problems: ConfigProblem[] = [];
  const legacy = input.legacy !== undefined ? parseLegacyConfig(input.legacy, problems) : undefined;

  const pools = mergeByName('IPAddressPool', parseAll(input.pools, poolFromCRD, problems), legacy?.pools ?? [], problems);
  const l2 = mergeByName('L2Advertisement', parseAll(input.l2Advertisements, l2AdvFromCRD, problems), legacy?.l2Advertisements ?? [], problems);
  const bgp = mergeByName('BGPAdvertisement', parseAll(input.bgpAdvertisements, bgpAdvFromCRD, problems), legacy?.bgpAdvertisements ?? [], problems);
  const peers = mergeByName('BGPPeer', parseAll(input.peers, peerFromCRD, problems), legacy?.peers ?? [], problems);
  const bfd = mergeByName('BFDProfile', parseAll(input.bfdProfiles, bfdProfileFromCRD, problems), legacy?.bfdProfiles ?? [], problems);

  // Community names: one definition each, whichever source it comes from.
  const communities: Record<string, string> = {};
  const owner: Record<string, string> = {};
  const addCommunity = (name: string, value: string, from: string, kind: PorticoKind | 'ConfigMap', objName: string): void => {
    if (Object.hasOwn(communities, name) && communities[name] !== value) {
      problems.push({ kind, name: objName, field: 'communities', code: 'Conflict', message: `community "${name}" is ${value} here and ${communities[name]} in ${owner[name]}` });
      return;
    }
    communities[name] = value;
    owner[name] = from;
  };
  for (const raw of input.communities ?? []) {
    const parsed = communitiesFromCRD(raw, problems);
    const rawName = (raw as { metadata?: { name?: unknown } }).metadata?.name;
    const objName = typeof rawName === 'string' ? rawName : '';
    for (const [n, v] of Object.entries(parsed ?? {})) addCommunity(n, v, `Community ${objName}`, 'Community', objName);
  }
  for (const [n, v] of Object.entries(legacy?.communities ?? {})) {
    if (!isCommunityValue(v)) problems.push({ kind: 'ConfigMap', name: 'portico-system/config', field: `bgp-communities.${n}`, code: 'Invalid', message: `bgp-communities.${n}: "${v}" is not a community` });
    else addCommunity(n, v, 'the ConfigMap', 'ConfigMap', 'portico-system/config');
  }

  checkOverlaps(pools, problems);

  const poolNames = new Set(pools.map((p) => p.name));
  const peerNames = new Set(peers.map((p) => p.name));
  const bfdNames = new Set(bfd.map((p) => p.name));
  const refKind = (src: 'crd' | 'configmap', kind: PorticoKind): PorticoKind | 'ConfigMap' => (src === 'configmap' ? 'ConfigMap' : kind);

  for (const adv of l2) {
    adv.pools.forEach((p, i) => {
      if (!poolNames.has(p)) problems.push({ kind: refKind(adv.source, 'L2Advertisement'), name: adv.name, field: `spec.ipAddressPools[${i}]`, code: 'UnknownReference', message: `IPAddressPool "${p}" does not exist` });
    });
  }
  const resolvedBGP: BGPAdv[] = bgp.map((adv) => {
    adv.pools.forEach((p, i) => {
      if (!poolNames.has(p)) problems.push({ kind: refKind(adv.source, 'BGPAdvertisement'), name: adv.name, field: `spec.ipAddressPools[${i}]`, code: 'UnknownReference', message: `IPAddressPool "${p}" does not exist` });
    });
    adv.peers.forEach((p, i) => {
      if (!peerNames.has(p)) problems.push({ kind: refKind(adv.source, 'BGPAdvertisement'), name: adv.name, field: `spec.peers[${i}]`, code: 'UnknownReference', message: `BGPPeer "${p}" does not exist` });
    });
    const values = adv.communities.map((c, i) => {
      if (Object.hasOwn(communities, c)) return communities[c]!;
      if (isCommunityValue(c)) return c;
      problems.push({ kind: refKind(adv.source, 'BGPAdvertisement'), name: adv.name, field: `spec.communities[${i}]`, code: 'UnknownReference', message: `"${c}" is neither a community value nor the name of one` });
      return c;
    });
    checkAggregation(adv, pools, problems);
    return { ...adv, communities: values };
  });
  for (const peer of peers) {
    if (peer.bfdProfile !== undefined && !bfdNames.has(peer.bfdProfile)) {
      problems.push({ kind: refKind(peer.source, 'BGPPeer'), name: peer.name, field: 'spec.bfdProfile', code: 'UnknownReference', message: `BFDProfile "${peer.bfdProfile}" does not exist` });
    }
  }

  return {
    config: { pools, l2Advertisements: l2, bgpAdvertisements: resolvedBGP, peers, communities, bfdProfiles: bfd },
    problems,
  };
}

/** Objects of one kind from both sources; the same name in both is a conflict and both are dropped. */
function mergeByName<T extends { name: string; source: 'crd' | 'configmap' }>(kind: PorticoKind, crd: T[], legacy: T[], problems: ConfigProblem[]): T[] {
  const seen = new Map<string, T>();
  const conflicted = new Set<string>();
  for (const obj of [...crd, ...legacy]) {
    const prev = seen.get(obj.name);
    if (prev) {
      const msg = prev.source !== obj.source
        ? `${kind} "${obj.name}" is defined both as an object and in the ConfigMap portico-system/config`
        : `${kind} "${obj.name}" is defined twice`;
      if (!conflicted.has(obj.name)) {
        problems.push({ kind, name: obj.name, field: 'metadata.name', code: 'Conflict', message: msg });
        if (prev.source !== obj.source) problems.push({ kind: 'ConfigMap', name: 'portico-system/config', field: 'metadata.name', code: 'Conflict', message: msg });
      }
      conflicted.add(obj.name);
      continue;
    }
    seen.set(obj.name, obj);
  }
  return [...seen.values()].filter((o) => !conflicted.has(o.name)).sort(byName);
}

/** Sweeps every range of every pool once in address order: O(r log r), never enumerates addresses. */
function checkOverlaps(pools: readonly Pool[], problems: ConfigProblem[]): void {
  const all: { pool: Pool; range: IPRange }[] = [];
  for (const pool of pools) for (const range of pool.ranges) all.push({ pool, range });
  all.sort((a, b) => (a.range.family !== b.range.family ? (a.range.family < b.range.family ? -1 : 1) : a.range.start < b.range.start ? -1 : a.range.start > b.range.start ? 1 : 0));
  const reported = new Set<string>();
  let widest: { pool: Pool; range: IPRange } | undefined;
  for (const cur of all) {
    if (widest && rangesOverlap(widest.range, cur.range)) {
      const key = `${widest.pool.name}\0${cur.pool.name}`;
      if (!reported.has(key)) {
        reported.add(key);
        const where = `${formatRange(cur.range)} overlaps ${formatRange(widest.range)}`;
        const kindOf = (p: Pool): PorticoKind | 'ConfigMap' => (p.source === 'configmap' ? 'ConfigMap' : 'IPAddressPool');
        if (widest.pool === cur.pool) {
          problems.push({ kind: kindOf(cur.pool), name: cur.pool.name, field: 'spec.addresses', code: 'Overlap', message: `${where} in the same pool` });
        } else {
          problems.push({ kind: kindOf(cur.pool), name: cur.pool.name, field: 'spec.addresses', code: 'Overlap', message: `${where} of pool "${widest.pool.name}"` });
          problems.push({ kind: kindOf(widest.pool), name: widest.pool.name, field: 'spec.addresses', code: 'Overlap', message: `${formatRange(widest.range)} overlaps ${formatRange(cur.range)} of pool "${cur.pool.name}"` });
        }
      }
    }
    if (!widest || widest.range.family !== cur.range.family || cur.range.end > widest.range.end) widest = cur;
  }
}

/**
 * Whether an advertisement covers a pool: the pools it names or selects by
 * label; with neither, every pool (as the speakers decide it).
 */
export function advertisementCovers(adv: Pick<BGPAdv, 'pools' | 'poolSelectors'>, pool: Pick<Pool, 'name' | 'labels'>): boolean {
  if (adv.pools.length === 0 && adv.poolSelectors.length === 0) return true;
  return adv.pools.includes(pool.name) || anySelectorMatches(adv.poolSelectors, pool.labels);
}

/**
 * An aggregate wider than a pool's range would announce addresses outside the
 * pool. Checked for every pool the advertisement covers: named, selected by
 * label, or all of them when it names and selects none.
 */
function checkAggregation(adv: BGPAdv, pools: readonly Pool[], problems: ConfigProblem[]): void {
  for (const pool of pools) {
    if (!advertisementCovers(adv, pool)) continue;
    for (const range of pool.ranges) {
      const len = range.family === 'IPv4' ? adv.aggregationLength : adv.aggregationLengthV6;
      const bits = range.family === 'IPv4' ? 32 : 128;
      const block = 1n << BigInt(bits - len);
      // The aggregate of every address must stay inside the range: the range
      // starts and ends on a block boundary (a CIDR no longer than the
      // aggregate, or a range made only of whole blocks).
      if (range.start % block !== 0n || (range.end + 1n) % block !== 0n) {
        const field = range.family === 'IPv4' ? 'spec.aggregationLength' : 'spec.aggregationLengthV6';
        problems.push({ kind: adv.source === 'configmap' ? 'ConfigMap' : 'BGPAdvertisement', name: adv.name, field, code: 'Invalid', message: `${field}: /${len} is wider than ${formatRange(range)} of pool "${pool.name}"` });
      }
    }
  }
}
