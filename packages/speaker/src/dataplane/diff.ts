// The least IPVS operations that turn what the kernel reports into the desired
// state, over the virtual services Portico manages only. Real servers that
// leave are drained: weight 0 (no new connections) at once, then deleted once
// connection counts read after that show none left, or when the drain time
// runs out, as kube-proxy's graceful termination does. Pure: the caller passes
// the clock and keeps the result.
import type { Family, Forward, Protocol, Scheduler, VirtualService } from './desired.ts';

/** A real server as the kernel reports it. */
export interface KernelReal {
  address: string;
  port: number;
  weight: number;
  forward: Forward | 'local' | 'bypass';
  activeConns: number;
  inactiveConns: number;
  /** When the connection counts were read from the kernel (undefined: never, e.g. added since the last read). */
  countsAt?: number | undefined;
}

/** A virtual service as the kernel reports it. */
export interface KernelService {
  key: string;
  family: Family;
  protocol: Protocol;
  address: string;
  port: number;
  scheduler: string;
  /** Persistence timeout in seconds, undefined when not persistent. */
  persistenceSeconds: number | undefined;
  reals: KernelReal[];
}

/** What the service-level attributes should be (the part of a VirtualService IPVS keeps on the service). */
export type ServiceSpec = Pick<VirtualService, 'key' | 'family' | 'protocol' | 'address' | 'port' | 'scheduler' | 'persistenceSeconds'>;
export interface RealSpec { address: string; port: number; weight: number; forward: Forward }

export type Op =
  | { op: 'add-service'; service: ServiceSpec }
  | { op: 'update-service'; service: ServiceSpec; why: 'scheduler' | 'persistence' }
  | { op: 'delete-service'; service: ServiceSpec }
  | { op: 'add-real'; service: ServiceSpec; real: RealSpec }
  | { op: 'update-real'; service: ServiceSpec; real: RealSpec; why: 'weight' | 'forward' | 'drain' | 'undrain' }
  | { op: 'delete-real'; service: ServiceSpec; real: RealSpec; why: 'drained' | 'drain-timeout' };

export interface DiffOptions {
  /** Longest a removed real server keeps its connections before it is deleted. */
  drainTimeoutMs: number;
  /**
   * Longest inactive connections hold a draining real server, counted from
   * the start of its drain (default: as long as active ones). IPVS counts as
   * inactive a TCP handshake not yet finished, closing TCP connections
   * (FIN_WAIT, TIME_WAIT) and UDP flows: a short hold lets a handshake that
   * was under way when the real server left become active (then it holds the
   * drain as any active connection) without keeping every real server that
   * served recent traffic at weight 0 for the whole drain bound.
   */
  inactiveHoldMs?: number;
}

export interface DiffResult {
  ops: Op[];
  /** Real servers draining, by realKey, with the time their drain began (keep it for the next diff). */
  draining: Map<string, number>;
  /** The earliest time a drain needs another look (undefined when nothing drains). */
  nextDrainCheck: number | undefined;
}

export function realKey(serviceKey: string, address: string, port: number): string {
  return `${serviceKey}>${address}/${port}`;
}

function spec(s: VirtualService | KernelService): ServiceSpec {
  return { key: s.key, family: s.family, protocol: s.protocol, address: s.address, port: s.port, scheduler: s.scheduler as Scheduler, persistenceSeconds: s.persistenceSeconds };
}

/**
 * The operations for the services in `keys` (default: every desired or
 * kernel service). `kernel` must hold Portico's services only: the caller
 * filters the kernel's dump to the VIPs Portico owns, so foreign services
 * never reach this function.
 */
export function diff(
  desired: ReadonlyMap<string, VirtualService>,
  kernel: ReadonlyMap<string, KernelService>,
  draining: ReadonlyMap<string, number>,
  now: number,
  opts: DiffOptions,
  keys?: Iterable<string>,
): DiffResult {
  const ops: Op[] = [];
  const nextDraining = new Map(draining);
  const all = keys ? new Set(keys) : new Set([...desired.keys(), ...kernel.keys()]);
  for (const key of [...all].sort()) {
    const want = desired.get(key);
    const have = kernel.get(key);
    if (!want) {
      if (have) {
        // The VIP or the port is gone: no one can reach the real servers through it any more, so there is nothing to drain.
        ops.push({ op: 'delete-service', service: spec(have) });
        for (const r of have.reals) nextDraining.delete(realKey(key, r.address, r.port));
      }
      continue;
    }
    const svc = spec(want);
    if (!have) {
      ops.push({ op: 'add-service', service: svc });
      for (const r of want.reals) ops.push({ op: 'add-real', service: svc, real: { address: r.address, port: r.port, weight: r.weight, forward: want.forward } });
      continue;
    }
    if (have.scheduler !== want.scheduler) ops.push({ op: 'update-service', service: svc, why: 'scheduler' });
    else if (have.persistenceSeconds !== want.persistenceSeconds) ops.push({ op: 'update-service', service: svc, why: 'persistence' });
    const haveReals = new Map(have.reals.map((r) => [`${r.address}/${r.port}`, r]));
    for (const r of want.reals) {
      const k = `${r.address}/${r.port}`;
      const h = haveReals.get(k);
      haveReals.delete(k);
      const real: RealSpec = { address: r.address, port: r.port, weight: r.weight, forward: want.forward };
      const rk = realKey(key, r.address, r.port);
      const wasDraining = nextDraining.delete(rk);
      if (!h) ops.push({ op: 'add-real', service: svc, real });
      else if (h.forward !== want.forward) ops.push({ op: 'update-real', service: svc, real, why: 'forward' });
      else if (h.weight !== r.weight) ops.push({ op: 'update-real', service: svc, real, why: wasDraining || h.weight === 0 ? 'undrain' : 'weight' });
    }
    // What is left in the kernel is no longer wanted: weight 0 first, delete later. Counts
    // read before the weight went to 0 miss the connections opened after the read, and
    // deleting a real server cuts those; counts read after it only ever go down.
    for (const h of haveReals.values()) {
      const rk = realKey(key, h.address, h.port);
      const real: RealSpec = { address: h.address, port: h.port, weight: 0, forward: h.forward === 'dr' || h.forward === 'tunnel' ? h.forward : 'masq' };
      const since = nextDraining.get(rk);
      if (since === undefined) {
        nextDraining.set(rk, now);
        if (h.weight !== 0) ops.push({ op: 'update-real', service: svc, real, why: 'drain' });
        continue;
      }
      const elapsed = now - since;
      const fresh = h.countsAt !== undefined && h.countsAt > since;
      const held = h.activeConns > 0 || (h.inactiveConns > 0 && elapsed < (opts.inactiveHoldMs ?? Infinity));
      if (fresh && !held) {
        ops.push({ op: 'delete-real', service: svc, real, why: 'drained' });
        nextDraining.delete(rk);
      } else if (elapsed >= opts.drainTimeoutMs) {
        ops.push({ op: 'delete-real', service: svc, real, why: 'drain-timeout' });
        nextDraining.delete(rk);
      } else if (h.weight !== 0) {
        ops.push({ op: 'update-real', service: svc, real, why: 'drain' });
      }
    }
  }
  return { ops, draining: nextDraining, nextDrainCheck: drainDeadline(nextDraining, opts.drainTimeoutMs) };
}

/** When the first of these drains (real server key -> drain start) reaches its bound, or undefined when none drains. */
export function drainDeadline(draining: ReadonlyMap<string, number>, drainTimeoutMs: number): number | undefined {
  let first: number | undefined;
  for (const since of draining.values()) if (first === undefined || since + drainTimeoutMs < first) first = since + drainTimeoutMs;
  return first;
}

/** Applies operations to a kernel model, as the kernel would (the dataplane's cache between full resyncs). */
export function applyOps(kernel: Map<string, KernelService>, ops: readonly Op[]): void {
  for (const o of ops) {
    switch (o.op) {
      case 'add-service':
      case 'update-service': {
        const prev = kernel.get(o.service.key);
        kernel.set(o.service.key, { ...o.service, reals: prev?.reals ?? [] });
        break;
      }
      case 'delete-service':
        kernel.delete(o.service.key);
        break;
      case 'add-real':
      case 'update-real': {
        const s = kernel.get(o.service.key);
        if (!s) break;
        const i = s.reals.findIndex((r) => r.address === o.real.address && r.port === o.real.port);
        const prev = i >= 0 ? s.reals[i] : undefined;
        const next: KernelReal = { address: o.real.address, port: o.real.port, weight: o.real.weight, forward: o.real.forward, activeConns: prev?.activeConns ?? 0, inactiveConns: prev?.inactiveConns ?? 0, countsAt: prev?.countsAt };
        if (i >= 0) s.reals[i] = next;
        else s.reals.push(next);
        break;
      }
      case 'delete-real': {
        const s = kernel.get(o.service.key);
        if (s) s.reals = s.reals.filter((r) => !(r.address === o.real.address && r.port === o.real.port));
        break;
      }
      default:
        break;
    }
  }
}
