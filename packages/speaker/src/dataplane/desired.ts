// The dataplane's desired state, a pure function of the World: for every IP a
// Service announces and every port it exposes, one virtual service
// VIP:port/proto with the endpoints that should receive its traffic. The IPVS
// and nftables dataplanes program the same state.
import { isIPv4 } from 'node:net';
import { changedSince, type EndpointState, type ServicePort, type ServiceState, type World } from '../world/types.ts';
import { SPEAKER_ANNOTATIONS } from '@portico/shared';

export const SCHEDULERS = ['rr', 'wrr', 'lc', 'wlc', 'sh', 'mh', 'sed', 'nq'] as const;
export type Scheduler = (typeof SCHEDULERS)[number];
export const FORWARDS = ['masq', 'dr', 'tunnel'] as const;
export type Forward = (typeof FORWARDS)[number];
export type Protocol = 'tcp' | 'udp' | 'sctp';
export type Family = 'inet' | 'inet6';

export const SCHEDULER_ANNOTATION = SPEAKER_ANNOTATIONS.ipvsScheduler;
export const FORWARD_ANNOTATION = SPEAKER_ANNOTATIONS.ipvsForward;
export const DEFAULT_SCHEDULER: Scheduler = 'rr';
export const DEFAULT_FORWARD: Forward = 'masq';
/** Every ready endpoint gets the same weight. */
export const ENDPOINT_WEIGHT = 1;

export interface RealServer {
  address: string;
  port: number;
  weight: number;
  /** The endpoint runs on another node: Cluster traffic to it is masqueraded. */
  remote: boolean;
  /** The endpoint's node (EndpointSlice nodeName), when known: pruning drops the endpoints of a node membership saw die (prune.ts). */
  node?: string;
}

export interface VirtualService {
  /** proto/address/port, e.g. "tcp/203.0.113.10/80" (see serviceKey). */
  key: string;
  family: Family;
  protocol: Protocol;
  address: string;
  port: number;
  scheduler: Scheduler;
  forward: Forward;
  /** sessionAffinity ClientIP: IPVS persistence (seconds), source-hash selection in nftables. */
  persistenceSeconds: number | undefined;
  /** Cluster policy with masq forwarding: traffic to remote endpoints leaves with this node's address. */
  masquerade: boolean;
  /** The Service (namespace/name) this comes from. */
  service: string;
  /** Sorted by address then port. */
  reals: readonly RealServer[];
}

export type WarningReason = 'unknown-scheduler' | 'unknown-forward' | 'port-conflict' | 'unresolved-target-port' | 'forward-port-ignored';

/** Something about a Service the user should hear about (an Event on the Service). */
export interface DesiredWarning {
  service: string;
  reason: WarningReason;
  message: string;
}

/** What masquerade needs: the VIPs with a Cluster-policy service, and the endpoints on this node (never masqueraded). */
export interface MasqueradeSets {
  cluster: ReadonlySet<string>;
  local: ReadonlySet<string>;
}

export interface DesiredState {
  /** By key. */
  services: ReadonlyMap<string, VirtualService>;
  /** Every VIP with at least one virtual service (Portico owns these addresses). */
  vips: ReadonlySet<string>;
  masquerade: MasqueradeSets;
  warnings: readonly DesiredWarning[];
}

const PROTOCOLS: Record<ServicePort['protocol'], Protocol> = { TCP: 'tcp', UDP: 'udp', SCTP: 'sctp' };

export function serviceKey(protocol: Protocol, address: string, port: number): string {
  return `${protocol}/${address}/${port}`;
}

function compareReal(a: RealServer, b: RealServer): number {
  return a.address < b.address ? -1 : a.address > b.address ? 1 : a.port - b.port;
}

/**
 * The endpoints that take traffic: the ready ones; when none is ready, the
 * serving ones that are terminating (as kube-proxy does, so a rolling update
 * of the last pods does not drop traffic early).
 */
export function usableEndpoints(endpoints: readonly EndpointState[]): EndpointState[] {
  const ready = endpoints.filter((e) => e.ready);
  return ready.length ? ready : endpoints.filter((e) => e.serving && e.terminating);
}

/** The endpoint's port for a Service port: the EndpointSlice's port of that name (named target ports resolve there), else a numeric targetPort. */
export function resolveTargetPort(sp: ServicePort, ep: EndpointState): number | undefined {
  const p = ep.ports[sp.name];
  if (p && p.protocol === sp.protocol) return p.port;
  return typeof sp.targetPort === 'number' ? sp.targetPort : undefined;
}

/** The virtual services of one Service and what to tell its owner. Pure; `self` is this node. */
export interface ServiceDesired {
  services: VirtualService[];
  warnings: DesiredWarning[];
  /** VIPs of this Service's Cluster-policy virtual services, and its endpoints on this node. */
  clusterVips: string[];
  localEndpoints: string[];
}

export function serviceDesired(svc: ServiceState, self: string): ServiceDesired {
  const warnings: DesiredWarning[] = [];
  const warn = (reason: WarningReason, message: string): void => { warnings.push({ service: svc.key, reason, message }); };

  let scheduler = DEFAULT_SCHEDULER;
  const askedScheduler = svc.annotations[SCHEDULER_ANNOTATION];
  if (askedScheduler !== undefined) {
    const s = askedScheduler.trim();
    if ((SCHEDULERS as readonly string[]).includes(s)) scheduler = s as Scheduler;
    else warn('unknown-scheduler', `${SCHEDULER_ANNOTATION}: ${JSON.stringify(askedScheduler)} is not one of ${SCHEDULERS.join(', ')}; using ${DEFAULT_SCHEDULER}`);
  }
  let forward = DEFAULT_FORWARD;
  const askedForward = svc.annotations[FORWARD_ANNOTATION];
  if (askedForward !== undefined) {
    const f = askedForward.trim();
    if ((FORWARDS as readonly string[]).includes(f)) forward = f as Forward;
    else warn('unknown-forward', `${FORWARD_ANNOTATION}: ${JSON.stringify(askedForward)} is not one of ${FORWARDS.join(', ')}; using ${DEFAULT_FORWARD}`);
  }

  const local = svc.externalTrafficPolicy === 'Local';
  const chosen = usableEndpoints(local ? svc.endpoints.filter((e) => e.node === self) : svc.endpoints);
  const out: VirtualService[] = [];
  const unresolved = new Set<string>();
  const portIgnored = new Set<number>();
  for (const address of svc.ips) {
    const family: Family = isIPv4(address) ? 'inet' : 'inet6';
    const epFamily = family === 'inet' ? 'IPv4' : 'IPv6';
    for (const sp of svc.ports) {
      const protocol = PROTOCOLS[sp.protocol];
      const reals = new Map<string, RealServer>();
      for (const ep of chosen) {
        if (ep.family !== epFamily) continue;
        let port = resolveTargetPort(sp, ep);
        if (port === undefined) { unresolved.add(`${sp.name || sp.port}`); continue; }
        // Direct routing and tunnelling keep the packet's destination port.
        if (forward !== 'masq' && port !== sp.port) { portIgnored.add(sp.port); port = sp.port; }
        const real: RealServer = { address: ep.ip, port, weight: ENDPOINT_WEIGHT, remote: ep.node !== self, ...(ep.node !== undefined ? { node: ep.node } : {}) };
        reals.set(`${real.address}/${real.port}`, real);
      }
      out.push({
        key: serviceKey(protocol, address, sp.port), family, protocol, address, port: sp.port, scheduler, forward,
        persistenceSeconds: svc.sessionAffinity.clientIP ? svc.sessionAffinity.timeoutSeconds : undefined,
        masquerade: !local && forward === 'masq', service: svc.key, reals: [...reals.values()].sort(compareReal),
      });
    }
  }
  const clusterVips = [...new Set(out.filter((v) => v.masquerade).map((v) => v.address))];
  const localEndpoints = [...new Set(out.flatMap((v) => v.reals.filter((r) => !r.remote).map((r) => r.address)))];
  for (const name of unresolved) warn('unresolved-target-port', `target port ${name} is not named on some endpoints; they get no traffic on it`);
  for (const port of portIgnored) warn('forward-port-ignored', `${forward} forwarding keeps the destination port ${port}; the Service's targetPort is not used`);
  return { services: out, warnings, clusterVips, localEndpoints };
}

const memo = new WeakMap<ServiceState, { self: string; result: ServiceDesired }>();

/**
 * The desired state of this node. Every node programs every Service (traffic
 * only arrives where the IP is announced, and a failover then finds the rules
 * in place). Per-Service results are memoised on the ServiceState object, which
 * the watcher replaces only when the Service or its endpoints change, so a
 * World with one changed Service costs one Service's work.
 */
export function desiredState(world: Pick<World, 'self' | 'services'>): DesiredState {
  const services = new Map<string, VirtualService>();
  const vips = new Set<string>();
  const warnings: DesiredWarning[] = [];
  const cluster = new Set<string>();
  const local = new Set<string>();
  // No sort: a change costs one pass over the Services; conflicts are settled by key, whatever the order.
  for (const svc of world.services.values()) {
    let m = memo.get(svc);
    if (!m || m.self !== world.self) {
      m = { self: world.self, result: serviceDesired(svc, world.self) };
      memo.set(svc, m);
    }
    const r = m.result;
    if (r.warnings.length) warnings.push(...r.warnings);
    for (const a of r.clusterVips) cluster.add(a);
    for (const a of r.localEndpoints) local.add(a);
    for (const vs of r.services) {
      const taken = services.get(vs.key);
      if (taken) {
        const [winner, loser] = taken.service < vs.service ? [taken, vs] : [vs, taken];
        warnings.push({ service: loser.service, reason: 'port-conflict', message: `${vs.protocol.toUpperCase()} ${vs.address}:${vs.port} is already served for ${winner.service}; not programmed for this Service` });
        if (winner === taken) continue;
      }
      services.set(vs.key, vs);
      vips.add(vs.address);
    }
  }
  return { services, vips, masquerade: { cluster, local }, warnings };
}

/**
 * desiredState kept up to date across Worlds: only Services whose
 * ServiceState object changed are recomputed, and the keys of the virtual
 * services that changed are handed back, so a sync after one endpoint change
 * does work in proportion to that change (plus one identity check per Service).
 * The state it returns is its own and changes with the next update.
 */
export class DesiredBuilder {
  readonly #services = new Map<string, VirtualService>();
  readonly #vips = new Map<string, number>();
  readonly #cluster = new Map<string, number>();
  readonly #local = new Map<string, number>();
  /** Claimants of each virtual service key, by Service key (more than one: a port conflict). */
  readonly #claims = new Map<string, Map<string, VirtualService>>();
  /** Virtual service keys claimed by more than one Service. */
  readonly #conflicts = new Set<string>();
  /** Warnings of the Services that have some, by Service key. */
  readonly #warnings = new Map<string, readonly DesiredWarning[]>();
  #prev = new Map<string, { svc: ServiceState; result: ServiceDesired }>();
  #self: string | undefined;
  /** The generation of the last World seen. */
  #generation: number | undefined;
  /** The VIP and masquerade sets handed out last (the same objects while their members stay the same). */
  #sets: Pick<DesiredState, 'vips' | 'masquerade'> | undefined;
  /** Set when the masquerade sets changed in the last update. */
  masqueradeChanged = false;

  update(world: Pick<World, 'self' | 'services' | 'generation' | 'changed'>): { state: DesiredState; changed: Set<string> } {
    const changed = new Set<string>();
    this.masqueradeChanged = false;
    const seen = this.#generation;
    this.#generation = world.generation;
    if (this.#self !== world.self) {
      for (const [k, p] of this.#prev) this.#remove(k, p.result, changed);
      this.#prev = new Map();
      this.#self = world.self;
    } else {
      // The World names the Services that changed since the one seen last: look at those only.
      const only = changedSince(world, seen);
      if (only) {
        for (const k of only) this.#replace(k, world.services.get(k), world.self, changed);
        return { state: this.#state(), changed };
      }
    }
    // One pass over the World, without copying #prev (with 10,000 Services a new map per
    // update and its garbage cost more than the change itself). A World lists its Services
    // in the same order as the last one, as a rule: walk #prev alongside and compare keys,
    // falling back to lookups from the first key out of step.
    const before = this.#prev.size;
    let known = 0;
    const changes: Array<[string, ServiceState]> = [];
    const prev = this.#prev.entries();
    let next = prev.next();
    let inStep = true;
    for (const [k, svc] of world.services) {
      let p: { svc: ServiceState; result: ServiceDesired } | undefined;
      if (inStep && !next.done && next.value[0] === k) {
        p = next.value[1];
        next = prev.next();
      } else {
        inStep = false;
        p = this.#prev.get(k);
      }
      if (p) {
        known++;
        if (p.svc === svc) continue;
      }
      changes.push([k, svc]);
    }
    for (const [k, svc] of changes) this.#replace(k, svc, world.self, changed);
    // Each earlier Service found again: none left. Otherwise look for those that did.
    if (known < before) {
      for (const [k, p] of this.#prev) {
        if (world.services.has(k)) continue;
        this.#remove(k, p.result, changed);
        this.#prev.delete(k);
      }
    }
    return { state: this.#state(), changed };
  }

  /** Service `k` is now `svc` (undefined: gone). */
  #replace(k: string, svc: ServiceState | undefined, self: string, changed: Set<string>): void {
    const p = this.#prev.get(k);
    if (p?.svc === svc) return;
    if (p) this.#remove(k, p.result, changed);
    if (!svc) {
      this.#prev.delete(k);
      return;
    }
    const result = serviceDesired(svc, self);
    this.#add(k, result, changed);
    this.#prev.set(k, { svc, result });
  }

  #state(): DesiredState {
    const warnings: DesiredWarning[] = [];
    for (const w of this.#warnings.values()) warnings.push(...w);
    for (const key of this.#conflicts) {
      const claims = this.#claims.get(key)!;
      const winner = this.#services.get(key)!;
      for (const vs of claims.values()) {
        if (vs === winner) continue;
        warnings.push({ service: vs.service, reason: 'port-conflict', message: `${vs.protocol.toUpperCase()} ${vs.address}:${vs.port} is already served for ${winner.service}; not programmed for this Service` });
      }
    }
    // The address sets are rebuilt only when one gained or lost a member (not on every endpoint change).
    this.#sets ??= { vips: new Set(this.#vips.keys()), masquerade: { cluster: new Set(this.#cluster.keys()), local: new Set(this.#local.keys()) } };
    return { services: this.#services, ...this.#sets, warnings };
  }

  #count(m: Map<string, number>, k: string, d: number): void {
    const n = (m.get(k) ?? 0) + d;
    if (n > 0) m.set(k, n);
    else m.delete(k);
    if (n === 0 || (n === 1 && d > 0)) this.#sets = undefined;
    if ((m === this.#cluster || m === this.#local) && (n === 0 || (n === 1 && d > 0))) this.masqueradeChanged = true;
  }

  #settle(key: string, changed: Set<string>): void {
    const claims = this.#claims.get(key);
    const before = this.#services.get(key);
    let winner: VirtualService | undefined;
    if (claims) for (const [svcKey, vs] of claims) if (!winner || svcKey < winner.service) winner = vs;
    if (winner === before) return;
    if (before) this.#count(this.#vips, before.address, -1);
    if (winner) { this.#services.set(key, winner); this.#count(this.#vips, winner.address, 1); } else this.#services.delete(key);
    changed.add(key);
  }

  #add(svcKey: string, r: ServiceDesired, changed: Set<string>): void {
    if (r.warnings.length) this.#warnings.set(svcKey, r.warnings);
    for (const a of r.clusterVips) this.#count(this.#cluster, a, 1);
    for (const a of r.localEndpoints) this.#count(this.#local, a, 1);
    for (const vs of r.services) {
      let c = this.#claims.get(vs.key);
      if (!c) { c = new Map(); this.#claims.set(vs.key, c); }
      c.set(svcKey, vs);
      if (c.size > 1) this.#conflicts.add(vs.key);
      this.#settle(vs.key, changed);
    }
  }

  #remove(svcKey: string, r: ServiceDesired, changed: Set<string>): void {
    this.#warnings.delete(svcKey);
    for (const a of r.clusterVips) this.#count(this.#cluster, a, -1);
    for (const a of r.localEndpoints) this.#count(this.#local, a, -1);
    for (const vs of r.services) {
      const c = this.#claims.get(vs.key);
      if (!c) continue;
      c.delete(svcKey);
      if (c.size < 2) this.#conflicts.delete(vs.key);
      if (!c.size) this.#claims.delete(vs.key);
      this.#settle(vs.key, changed);
    }
  }
}
