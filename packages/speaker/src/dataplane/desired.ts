// The dataplane's desired state, a pure function of the World: for every IP a
// Service announces and every port it exposes, one virtual service
// VIP:port/proto with the endpoints that should receive its traffic. The IPVS
// and nftables dataplanes program the same state.
import { isIPv4 } from 'node:net';
import type { EndpointState, ServicePort, ServiceState, World } from '../world/types.ts';

export const SCHEDULERS = ['rr', 'wrr', 'lc', 'wlc', 'sh', 'mh', 'sed', 'nq'] as const;
export type Scheduler = (typeof SCHEDULERS)[number];
export const FORWARDS = ['masq', 'dr', 'tunnel'] as const;
export type Forward = (typeof FORWARDS)[number];
export type Protocol = 'tcp' | 'udp' | 'sctp';
export type Family = 'inet' | 'inet6';

export const SCHEDULER_ANNOTATION = 'portico.dev/ipvs-scheduler';
export const FORWARD_ANNOTATION = 'portico.dev/ipvs-forward';
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

export interface DesiredState {
  /** By key. */
  services: ReadonlyMap<string, VirtualService>;
  /** Every VIP with at least one virtual service (Portico owns these addresses). */
  vips: ReadonlySet<string>;
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
export function serviceDesired(svc: ServiceState, self: string): { services: VirtualService[]; warnings: DesiredWarning[] } {
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
        const real: RealServer = { address: ep.ip, port, weight: ENDPOINT_WEIGHT, remote: ep.node !== self };
        reals.set(`${real.address}/${real.port}`, real);
      }
      out.push({
        key: serviceKey(protocol, address, sp.port), family, protocol, address, port: sp.port, scheduler, forward,
        persistenceSeconds: svc.sessionAffinity.clientIP ? svc.sessionAffinity.timeoutSeconds : undefined,
        masquerade: !local && forward === 'masq', service: svc.key, reals: [...reals.values()].sort(compareReal),
      });
    }
  }
  for (const name of unresolved) warn('unresolved-target-port', `target port ${name} is not named on some endpoints; they get no traffic on it`);
  for (const port of portIgnored) warn('forward-port-ignored', `${forward} forwarding keeps the destination port ${port}; the Service's targetPort is not used`);
  return { services: out, warnings };
}

const memo = new WeakMap<ServiceState, { self: string; result: ReturnType<typeof serviceDesired> }>();

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
  const keys = [...world.services.keys()].sort();
  for (const k of keys) {
    const svc = world.services.get(k)!;
    let m = memo.get(svc);
    if (!m || m.self !== world.self) {
      m = { self: world.self, result: serviceDesired(svc, world.self) };
      memo.set(svc, m);
    }
    warnings.push(...m.result.warnings);
    for (const vs of m.result.services) {
      const taken = services.get(vs.key);
      if (taken) {
        warnings.push({ service: svc.key, reason: 'port-conflict', message: `${vs.protocol.toUpperCase()} ${vs.address}:${vs.port} is already served for ${taken.service}; not programmed for this Service` });
        continue;
      }
      services.set(vs.key, vs);
      vips.add(vs.address);
    }
  }
  return { services, vips, warnings };
}
