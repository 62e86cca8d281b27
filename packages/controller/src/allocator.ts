// The allocator: a pure data structure that maps Services to IPs from pools.
// No I/O, no clock. Allocation and release are O(log n) in the number of used
// addresses (free intervals in a treap per pool and family); the first free
// address is handed out, so results are predictable.
import {
  anySelectorMatches, formatIP, parseIP, type Family, type IP, type Pool, type PorticoErrorCode,
} from '@portico/shared';
import { FamilySpace } from './pool-space.ts';
import { IntervalSet } from './interval-set.ts';

export type FamilyPolicy = 'SingleStack' | 'PreferDualStack' | 'RequireDualStack';

/** What the allocator needs to know about a Service (built from the object at the edge). */
export interface ServiceRequest {
  /** namespace/name */
  readonly key: string;
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly namespaceLabels: Readonly<Record<string, string>>;
  /** spec.ipFamilies in order (the first is the primary family). */
  readonly families: readonly Family[];
  readonly policy: FamilyPolicy;
  /** spec.loadBalancerIP or the portico.dev/loadBalancerIPs annotation. */
  readonly requestedIPs: readonly IP[];
  /** The portico.dev/address-pool annotation. */
  readonly pool: string | undefined;
  /** The portico.dev/allow-shared-ip annotation. */
  readonly sharingKey: string | undefined;
  /** '' with externalTrafficPolicy Cluster; the pod selector with Local (sharing needs the same pods). */
  readonly backendKey: string;
  /** `TCP/80`-style entries; two Services sharing an IP must not have one in common. */
  readonly ports: readonly string[];
}

export type FailureCode = Extract<PorticoErrorCode,
  'PORTICO_POOL_EXHAUSTED' | 'PORTICO_POOL_NOT_FOUND' | 'PORTICO_NO_MATCHING_POOL' | 'PORTICO_IP_NOT_IN_POOL' | 'PORTICO_IP_IN_USE' | 'PORTICO_IP_FAMILY_UNAVAILABLE' | 'PORTICO_INVALID_ADDRESS'>;

export type AllocationResult =
  | {
    readonly ok: true; readonly pool: string; readonly ips: readonly IP[]; readonly changed: boolean;
    /** The sharing key (or backends) of an IP this Service holds alone changed: a pending Service may share it now. */
    readonly sharingChanged?: boolean;
  }
  | { readonly ok: false; readonly code: FailureCode; readonly message: string };

export interface FamilyUsage { readonly assigned: bigint; readonly available: bigint; readonly total: bigint }
export interface PoolUsage { readonly pool: string; readonly IPv4: FamilyUsage; readonly IPv6: FamilyUsage }

interface IPEntry {
  readonly ip: IP;
  pool: string;
  index: bigint;
  /** The sharing rule of the IP: its users' key and backends (updated when its only user changes them). */
  sharingKey: string | undefined;
  backendKey: string;
  /** service key -> its ports on this IP */
  readonly users: Map<string, readonly string[]>;
}

interface PoolState {
  readonly pool: Pool;
  readonly spaces: Record<Family, FamilySpace>;
  readonly free: Record<Family, IntervalSet>;
}

interface Held { readonly pool: string; readonly ips: readonly IP[]; readonly request: ServiceRequest }

/** An accepted spec.externalIP, reserved so that no LoadBalancer Service is given it. */
interface ExternalEntry {
  readonly ip: IP;
  readonly owner: string;
  /** The pool holding it ('' when none does any more) and its index there (-1 when it has none, e.g. a buggy address). */
  pool: string;
  index: bigint;
}

const ipKey = (ip: IP): string => `${ip.family}/${ip.value}`;

/**
 * Families a Service gets: the required ones and the ones it would like, in
 * ipFamilies order. PreferDualStack with two families requires neither: it
 * takes both when one pool has both, else whichever of the two it can (at
 * least one), so a one-family pool serves it.
 */
export function familyPlan(req: Pick<ServiceRequest, 'families' | 'policy'>): { required: Family[]; optional: Family[] } {
  const fams = req.families.length > 0 ? [...req.families] : ['IPv4' as Family];
  const primary = fams[0]!;
  const secondary = fams[1];
  switch (req.policy) {
    case 'SingleStack': return { required: [primary], optional: [] };
    case 'PreferDualStack': return secondary ? { required: [], optional: [primary, secondary] } : { required: [primary], optional: [] };
    case 'RequireDualStack': return { required: secondary ? [primary, secondary] : [primary], optional: [] };
  }
}

/** Why a request can never be met whatever the pools hold; undefined when it can. */
export function requestProblem(req: Pick<ServiceRequest, 'families' | 'policy' | 'requestedIPs'>): { code: FailureCode; message: string } | undefined {
  if (req.policy !== 'RequireDualStack' || req.families.length < 2 || req.requestedIPs.length === 0) return undefined;
  const named = new Set(req.requestedIPs.map((ip) => ip.family));
  const missing = req.families.filter((f) => !named.has(f));
  if (missing.length === 0) return undefined;
  return {
    code: 'PORTICO_IP_FAMILY_UNAVAILABLE',
    message: `ipFamilyPolicy RequireDualStack needs one requested IP of each family (${req.families.join(' and ')}), but the request names no ${missing.join(' or ')} address: name one of each in portico.dev/loadBalancerIPs, or drop the request to have both chosen from a pool`,
  };
}

/** True when the pool's namespace and Service restrictions admit the Service. */
export function poolAdmits(pool: Pool, req: Pick<ServiceRequest, 'namespace' | 'labels' | 'namespaceLabels'>): boolean {
  const nsRestricted = pool.namespaces.length > 0 || pool.namespaceSelectors.length > 0;
  if (nsRestricted && !pool.namespaces.includes(req.namespace) && !anySelectorMatches(pool.namespaceSelectors, req.namespaceLabels)) return false;
  if (pool.serviceSelectors.length > 0 && !anySelectorMatches(pool.serviceSelectors, req.labels)) return false;
  return true;
}

const isRestricted = (p: Pool): boolean => p.namespaces.length > 0 || p.namespaceSelectors.length > 0 || p.serviceSelectors.length > 0;

/** Pool order for automatic choice: restricted pools first, then by priority (unset last), then name. */
function poolOrder(a: Pool, b: Pool): number {
  const ra = isRestricted(a) ? 0 : 1;
  const rb = isRestricted(b) ? 0 : 1;
  if (ra !== rb) return ra - rb;
  const pa = a.priority ?? Number.MAX_SAFE_INTEGER;
  const pb = b.priority ?? Number.MAX_SAFE_INTEGER;
  if (pa !== pb) return pa - pb;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

export class Allocator {
  private pools = new Map<string, PoolState>();
  private ordered: Pool[] = [];
  private readonly ips = new Map<string, IPEntry>();
  private readonly held = new Map<string, Held>();
  /** sharing key -> keys of IPs whose users share with that key, so finding a shareable IP never scans every IP. */
  private readonly shared = new Map<string, Set<string>>();
  /** ip key -> accepted externalIP; service key -> its accepted externalIPs. */
  private readonly externals = new Map<string, ExternalEntry>();
  private readonly externalsBy = new Map<string, readonly IP[]>();

  constructor(pools: readonly Pool[] = []) {
    this.setPools(pools);
  }

  /**
   * IPs in use that the given pools would no longer hold (or hold only as an
   * unusable buggy address). A configuration with stranded IPs is refused.
   */
  stranded(pools: readonly Pool[]): { ip: string; services: string[] }[] {
    const spaces = pools.map((p) => ({ v4: new FamilySpace('IPv4', p.ranges, p.avoidBuggyIPs), v6: new FamilySpace('IPv6', p.ranges, p.avoidBuggyIPs) }));
    const out: { ip: string; services: string[] }[] = [];
    for (const e of this.ips.values()) {
      const ok = spaces.some((s) => (e.ip.family === 'IPv4' ? s.v4 : s.v6).indexOf(e.ip.value) !== undefined);
      if (!ok) out.push({ ip: formatIP(e.ip), services: [...e.users.keys()].sort() });
    }
    return out.sort((a, b) => (a.ip < b.ip ? -1 : 1));
  }

  /**
   * Replaces the pools. Every IP in use moves to the new pool that holds it;
   * an IP no pool holds any more stays recorded (call `stranded` first to refuse such a change).
   */
  setPools(pools: readonly Pool[]): void {
    const next = new Map<string, PoolState>();
    for (const pool of pools) {
      const spaces = { IPv4: new FamilySpace('IPv4', pool.ranges, pool.avoidBuggyIPs), IPv6: new FamilySpace('IPv6', pool.ranges, pool.avoidBuggyIPs) };
      next.set(pool.name, { pool, spaces, free: { IPv4: new IntervalSet(spaces.IPv4.total), IPv6: new IntervalSet(spaces.IPv6.total) } });
    }
    this.pools = next;
    this.ordered = [...pools].sort(poolOrder);
    for (const e of this.ips.values()) {
      const found = this.locate(e.ip);
      if (found) {
        e.pool = found.state.pool.name;
        e.index = found.index;
        found.state.free[e.ip.family].take(found.index);
      } else {
        e.index = -1n;
      }
    }
    for (const [key, h] of this.held) {
      const first = h.ips[0] && this.ips.get(ipKey(h.ips[0]));
      if (first && first.index >= 0n && first.pool !== h.pool) this.held.set(key, { ...h, pool: first.pool });
    }
    // Reservations follow their address; one no pool holds any more is dropped when its Service is next reconciled.
    for (const x of this.externals.values()) {
      const place = this.place(x.ip);
      x.pool = place.pool;
      x.index = place.index;
      if (place.index >= 0n) this.pools.get(place.pool)!.free[x.ip.family].take(place.index);
    }
  }

  /** The pools in force, in automatic-choice order. */
  poolList(): readonly Pool[] {
    return this.ordered;
  }

  /** Who holds an address: LoadBalancer users first (an address is never both). */
  holderOf(ip: IP): { kind: 'load-balancer' | 'external-ip'; services: string[] } | undefined {
    const e = this.ips.get(ipKey(ip));
    if (e) return { kind: 'load-balancer', services: [...e.users.keys()].sort() };
    const x = this.externals.get(ipKey(ip));
    return x ? { kind: 'external-ip', services: [x.owner] } : undefined;
  }

  /** The externalIPs reserved for a Service. */
  externalIPs(key: string): readonly IP[] {
    return this.externalsBy.get(key) ?? [];
  }

  /**
   * Replaces the externalIPs reserved for a Service (decided by
   * judgeExternalIPs). An address held by a LoadBalancer allocation or by
   * another Service is never taken. Returns the addresses reserved and whether
   * any earlier reservation was given up (another Service may want it).
   */
  setExternalIPs(key: string, ips: readonly IP[]): { reserved: IP[]; freed: boolean } {
    const want = new Set(ips.map(ipKey));
    let freed = false;
    for (const ip of this.externalsBy.get(key) ?? []) {
      if (want.has(ipKey(ip))) continue;
      this.unreserve(ip);
      freed = true;
    }
    const reserved: IP[] = [];
    for (const ip of ips) {
      const k = ipKey(ip);
      const x = this.externals.get(k);
      if (x) { if (x.owner === key && !reserved.some((r) => ipKey(r) === k)) reserved.push(ip); continue; }
      if (this.ips.has(k)) continue;
      const place = this.place(ip);
      if (place.index >= 0n) this.pools.get(place.pool)!.free[ip.family].take(place.index);
      this.externals.set(k, { ip, owner: key, pool: place.pool, index: place.index });
      reserved.push(ip);
    }
    if (reserved.length > 0) this.externalsBy.set(key, reserved); else this.externalsBy.delete(key);
    return { reserved, freed };
  }

  /** Frees every externalIP reserved for a Service; true when there were some. */
  releaseExternalIPs(key: string): boolean {
    return this.setExternalIPs(key, []).freed;
  }

  private unreserve(ip: IP): void {
    const k = ipKey(ip);
    const x = this.externals.get(k);
    if (!x) return;
    this.externals.delete(k);
    if (x.index >= 0n) this.pools.get(x.pool)?.free[ip.family].give(x.index);
  }

  /** The pool whose ranges hold an address and its index there (-1 when unusable for allocation). */
  private place(ip: IP): { pool: string; index: bigint } {
    for (const state of this.pools.values()) {
      if (!state.spaces[ip.family].contains(ip.value)) continue;
      return { pool: state.pool.name, index: state.spaces[ip.family].indexOf(ip.value) ?? -1n };
    }
    return { pool: '', index: -1n };
  }

  /** The IPs and pool a Service holds now. */
  get(key: string): { pool: string; ips: readonly IP[] } | undefined {
    const h = this.held.get(key);
    return h ? { pool: h.pool, ips: h.ips } : undefined;
  }

  /** Services holding an IP (more than one when shared). */
  usersOf(ip: IP): string[] {
    return [...(this.ips.get(ipKey(ip))?.users.keys() ?? [])].sort();
  }

  /**
   * Records IPs a Service already has (from its status) without choosing new
   * ones: the start-up rebuild. Fails, taking nothing, when the IPs are not
   * valid for the Service any more or another Service holds them incompatibly.
   */
  assign(req: ServiceRequest, ips: readonly IP[]): AllocationResult {
    this.release(req.key);
    if (ips.length === 0) return { ok: false, code: 'PORTICO_INVALID_ADDRESS', message: 'no IPs to assign' };
    const first = this.locate(ips[0]!);
    if (!first) return { ok: false, code: 'PORTICO_IP_NOT_IN_POOL', message: `${formatIP(ips[0]!)} is not in any pool` };
    return this.tryPool(first.state, req, ips, true);
  }

  /**
   * Gives the Service IPs satisfying its request, keeping the ones it holds
   * when they still do. Idempotent: calling it again changes nothing.
   */
  allocate(req: ServiceRequest): AllocationResult {
    const bad = requestProblem(req);
    if (bad) {
      this.release(req.key);
      return { ok: false, ...bad };
    }
    const kept = this.keep(req);
    if (kept) return kept;
    // When nothing fits the new request the Service loses its old IPs too, or
    // it would keep announcing something it no longer asks for.
    this.release(req.key);
    return this.choose(req);
  }

  /** Frees everything a Service holds; an IP shared with others stays with them. */
  release(key: string): boolean {
    const h = this.held.get(key);
    if (!h) return false;
    this.held.delete(key);
    for (const ip of h.ips) this.unuse(ip, key);
    return true;
  }

  /** Assigned and available counts of one pool, per family. */
  usage(name: string): PoolUsage | undefined {
    const s = this.pools.get(name);
    if (!s) return undefined;
    const fam = (f: Family): FamilyUsage => ({ total: s.spaces[f].total, available: s.free[f].free, assigned: s.spaces[f].total - s.free[f].free });
    return { pool: name, IPv4: fam('IPv4'), IPv6: fam('IPv6') };
  }

  poolNames(): string[] {
    return [...this.pools.keys()].sort();
  }

  pool(name: string): Pool | undefined {
    return this.pools.get(name)?.pool;
  }

  /** Keys of Services holding IPs. */
  services(): string[] {
    return [...this.held.keys()];
  }

  /** The pool state and index holding an address, if any pool does. */
  private locate(ip: IP): { state: PoolState; index: bigint } | undefined {
    for (const state of this.pools.values()) {
      const index = state.spaces[ip.family].indexOf(ip.value);
      if (index !== undefined) return { state, index };
    }
    return undefined;
  }

  /** The held IPs when they still satisfy the request; undefined when the Service needs new ones. */
  private keep(req: ServiceRequest): AllocationResult | undefined {
    const h = this.held.get(req.key);
    if (!h) return undefined;
    const state = this.pools.get(h.pool);
    if (!state) return undefined;
    if (h.ips.some((ip) => (this.ips.get(ipKey(ip))?.index ?? -1n) < 0n)) return undefined;
    if (req.pool !== undefined && req.pool !== h.pool) return undefined;
    if (!poolAdmits(state.pool, req)) return undefined;
    if (req.requestedIPs.length > 0) {
      const want = new Set(req.requestedIPs.map(ipKey));
      if (want.size !== h.ips.length || h.ips.some((ip) => !want.has(ipKey(ip)))) return undefined;
    } else {
      const plan = familyPlan(req);
      const have = h.ips.map((ip) => ip.family);
      if (plan.required.some((f) => !have.includes(f))) return undefined;
      if (have.some((f) => !plan.required.includes(f) && !plan.optional.includes(f))) return undefined;
      // A dual-stack preference that could not be met before may be met now.
      if (plan.optional.some((f) => !have.includes(f) && state.free[f].free > 0n)) return undefined;
    }
    for (const ip of h.ips) {
      const e = this.ips.get(ipKey(ip))!;
      if (e.users.size > 1 && !compatible(e, req, req.key)) return undefined;
    }
    // Ports may have changed without a clash: record them. An IP held alone
    // takes the Service's current sharing key and backends: a key added,
    // changed or removed after the IP was taken counts from now on.
    let sharingChanged = false;
    for (const ip of h.ips) {
      const e = this.ips.get(ipKey(ip))!;
      e.users.set(req.key, req.ports);
      if (e.users.size === 1 && (e.sharingKey !== req.sharingKey || e.backendKey !== req.backendKey)) {
        this.unindex(e);
        e.sharingKey = req.sharingKey;
        e.backendKey = req.backendKey;
        this.index(e);
        sharingChanged = true;
      }
    }
    this.held.set(req.key, { ...h, request: req });
    return { ok: true, pool: h.pool, ips: h.ips, changed: false, ...(sharingChanged ? { sharingChanged } : {}) };
  }

  private index(e: IPEntry): void {
    if (e.sharingKey === undefined) return;
    let set = this.shared.get(e.sharingKey);
    if (!set) this.shared.set(e.sharingKey, (set = new Set()));
    set.add(ipKey(e.ip));
  }

  private unindex(e: IPEntry): void {
    if (e.sharingKey === undefined) return;
    const set = this.shared.get(e.sharingKey);
    set?.delete(ipKey(e.ip));
    if (set?.size === 0) this.shared.delete(e.sharingKey);
  }

  private choose(req: ServiceRequest): AllocationResult {
    if (req.requestedIPs.length > 0) {
      const first = this.locate(req.requestedIPs[0]!);
      if (!first) {
        const inPool = [...this.pools.values()].find((s) => s.spaces[req.requestedIPs[0]!.family].contains(req.requestedIPs[0]!.value));
        const why = inPool ? `is not usable in pool "${inPool.pool.name}" (avoidBuggyIPs)` : 'is not in any pool';
        return { ok: false, code: 'PORTICO_IP_NOT_IN_POOL', message: `requested IP ${formatIP(req.requestedIPs[0]!)} ${why}` };
      }
      if (req.pool !== undefined && req.pool !== first.state.pool.name) {
        return { ok: false, code: 'PORTICO_IP_NOT_IN_POOL', message: `requested IP ${formatIP(req.requestedIPs[0]!)} is in pool "${first.state.pool.name}", not in the requested pool "${req.pool}"` };
      }
      if (!poolAdmits(first.state.pool, req)) {
        return { ok: false, code: 'PORTICO_NO_MATCHING_POOL', message: `pool "${first.state.pool.name}" does not admit Services of namespace ${req.namespace} with these labels` };
      }
      return this.tryPool(first.state, req, req.requestedIPs, false);
    }
    if (req.pool !== undefined) {
      const state = this.pools.get(req.pool);
      if (!state) return { ok: false, code: 'PORTICO_POOL_NOT_FOUND', message: `pool "${req.pool}" does not exist` };
      if (!poolAdmits(state.pool, req)) return { ok: false, code: 'PORTICO_NO_MATCHING_POOL', message: `pool "${req.pool}" does not admit Services of namespace ${req.namespace} with these labels` };
      return this.tryPool(state, req, undefined, false);
    }
    let firstFailure: AllocationResult | undefined;
    let candidates = 0;
    const eligible = this.ordered.filter((p) => p.autoAssign && poolAdmits(p, req));
    // PreferDualStack: a pool that can give both families wins over one that
    // gives one, before the usual order (restricted, priority, name).
    const plan = familyPlan(req);
    if (plan.required.length === 0 && plan.optional.length > 1) {
      const both = { required: plan.optional, optional: [] };
      for (const pool of eligible) {
        const r = this.tryPool(this.pools.get(pool.name)!, req, undefined, false, both);
        if (r.ok) return r;
      }
    }
    for (const pool of eligible) {
      candidates += 1;
      const r = this.tryPool(this.pools.get(pool.name)!, req, undefined, false);
      if (r.ok) return r;
      firstFailure ??= r;
    }
    if (candidates === 0) return { ok: false, code: 'PORTICO_NO_MATCHING_POOL', message: `no pool with autoAssign admits Services of namespace ${req.namespace}` };
    if (candidates === 1) return firstFailure!;
    return { ok: false, code: 'PORTICO_POOL_EXHAUSTED', message: `none of the ${candidates} pools that admit this Service has free addresses of the families it needs` };
  }

  /**
   * Takes IPs for every family the Service needs from one pool, all or nothing.
   * `wanted` are exact IPs (requested, or from status at rebuild).
   */
  private tryPool(state: PoolState, req: ServiceRequest, wanted: readonly IP[] | undefined, rebuild: boolean, plan = familyPlan(req)): AllocationResult {
    const name = state.pool.name;
    const taken: IP[] = [];
    const fail = (code: FailureCode, message: string): AllocationResult => {
      for (const ip of taken) this.unuse(ip, req.key);
      return { ok: false, code, message };
    };
    if (wanted) {
      const families = new Set<Family>();
      for (const ip of wanted) {
        if (families.has(ip.family)) return fail('PORTICO_INVALID_ADDRESS', `two ${ip.family} addresses requested`);
        families.add(ip.family);
        if (!rebuild && !req.families.includes(ip.family) && req.families.length > 0) {
          return fail('PORTICO_IP_FAMILY_UNAVAILABLE', `requested IP ${formatIP(ip)} is ${ip.family} but the Service's ipFamilies are ${req.families.join(',')}`);
        }
        const index = state.spaces[ip.family].indexOf(ip.value);
        if (index === undefined) return fail('PORTICO_IP_NOT_IN_POOL', `IP ${formatIP(ip)} is not usable in pool "${name}"`);
        const r = this.use(state, ip, index, req);
        if (r) return fail('PORTICO_IP_IN_USE', r);
        taken.push(ip);
      }
    } else {
      const families = [...plan.required, ...plan.optional].sort((a, b) => req.families.indexOf(a) - req.families.indexOf(b));
      for (const family of families) {
        const required = plan.required.includes(family);
        const ip = this.shareable(state, family, req) ?? this.firstFree(state, family);
        if (!ip) {
          if (!required) continue;
          if (state.spaces[family].total === 0n) return fail('PORTICO_IP_FAMILY_UNAVAILABLE', `pool "${name}" has no ${family} addresses`);
          return fail('PORTICO_POOL_EXHAUSTED', `pool "${name}" has no free ${family} address`);
        }
        const r = this.use(state, ip, state.spaces[family].indexOf(ip.value)!, req);
        if (r) return fail('PORTICO_IP_IN_USE', r);
        taken.push(ip);
      }
      if (taken.length === 0) {
        // Only optional families (PreferDualStack) and none of them available here.
        if (families.every((f) => state.spaces[f].total === 0n)) return fail('PORTICO_IP_FAMILY_UNAVAILABLE', `pool "${name}" has no ${families.join(' or ')} addresses`);
        return fail('PORTICO_POOL_EXHAUSTED', `pool "${name}" has no free ${families.join(' or ')} address`);
      }
    }
    this.held.set(req.key, { pool: name, ips: taken, request: req });
    return { ok: true, pool: name, ips: taken, changed: true };
  }

  /** The lowest IP of this pool and family that a Service with the same sharing key could share. */
  private shareable(state: PoolState, family: Family, req: ServiceRequest): IP | undefined {
    if (req.sharingKey === undefined) return undefined;
    let best: IPEntry | undefined;
    for (const k of this.shared.get(req.sharingKey) ?? []) {
      const e = this.ips.get(k)!;
      if (e.pool !== state.pool.name || e.ip.family !== family || e.sharingKey !== req.sharingKey) continue;
      if (!compatible(e, req, req.key)) continue;
      if (!best || e.ip.value < best.ip.value) best = e;
    }
    return best?.ip;
  }

  private firstFree(state: PoolState, family: Family): IP | undefined {
    const i = state.free[family].first();
    return i === undefined ? undefined : { family, value: state.spaces[family].valueAt(i) };
  }

  /** Adds the Service as a user of the IP; returns why not when it cannot. */
  private use(state: PoolState, ip: IP, index: bigint, req: ServiceRequest): string | undefined {
    const k = ipKey(ip);
    const x = this.externals.get(k);
    if (x) return `IP ${formatIP(ip)} is an accepted externalIP of ${x.owner}`;
    const e = this.ips.get(k);
    if (e) {
      if (e.users.has(req.key)) return undefined;
      if (!compatible(e, req, req.key)) {
        const others = [...e.users.keys()].sort().join(', ');
        return `IP ${formatIP(ip)} is used by ${others}${why(e, req)}`;
      }
      e.users.set(req.key, req.ports);
      return undefined;
    }
    state.free[ip.family].take(index);
    const entry: IPEntry = { ip, pool: state.pool.name, index, sharingKey: req.sharingKey, backendKey: req.backendKey, users: new Map([[req.key, req.ports]]) };
    this.ips.set(k, entry);
    this.index(entry);
    return undefined;
  }

  private unuse(ip: IP, key: string): void {
    const e = this.ips.get(ipKey(ip));
    if (!e) return;
    e.users.delete(key);
    if (e.users.size === 0) {
      this.ips.delete(ipKey(ip));
      if (e.index >= 0n) this.pools.get(e.pool)?.free[ip.family].give(e.index);
      this.unindex(e);
    }
  }
}

/** Sharing rule: same key, same backends, and no port in common with the other users. */
function compatible(e: IPEntry, req: ServiceRequest, self: string): boolean {
  if (e.sharingKey === undefined || req.sharingKey !== e.sharingKey) return false;
  if (e.backendKey !== req.backendKey) return false;
  const mine = new Set(req.ports);
  for (const [user, ports] of e.users) {
    if (user === self) continue;
    if (ports.some((p) => mine.has(p))) return false;
  }
  return true;
}

function why(e: IPEntry, req: ServiceRequest): string {
  if (e.sharingKey === undefined || req.sharingKey === undefined) return ' and sharing needs the same portico.dev/allow-shared-ip key on both';
  if (e.sharingKey !== req.sharingKey) return ` with a different sharing key ("${e.sharingKey}")`;
  if (e.backendKey !== req.backendKey) return ' and sharing with externalTrafficPolicy Local needs both Services to select the same pods';
  const mine = new Set(req.ports);
  const clash = [...e.users.values()].flat().filter((p) => mine.has(p));
  return ` on the same ports (${[...new Set(clash)].join(', ')})`;
}

/** Parses a comma-separated list of IPs (the portico.dev/loadBalancerIPs annotation). */
export function parseIPList(text: string): IP[] {
  return text.split(',').map((s) => s.trim()).filter((s) => s !== '').map(parseIP);
}
