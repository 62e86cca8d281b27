// The IPVS dataplane: VIPs on portico0, one IPVS virtual service per
// VIP:port/protocol, real servers from the desired state, and the masquerade
// rule for Cluster policy in nftables table `portico`. A full resync (read
// the kernel) runs at start and periodically; between them a World change
// diffs only the Services that changed against the last known kernel state.
// Problems (a missing module, a refused operation, a VIP another interface
// holds) are logged and counted, and the rest is still programmed.
import { readFileSync, writeFileSync } from 'node:fs';
import type { Logger } from '@portico/shared';
import { NetlinkError } from '../netlink/socket.ts';
import type { LivenessFeed } from '../membership/liveness.ts';
import type { StopReason, World } from '../world/types.ts';
import { DesiredBuilder, type DesiredState, type VirtualService } from './desired.ts';
import { applyOps, diff, type KernelService, type Op } from './diff.ts';
import { IpvsKernel, VipLink, type OpFailure } from './ipvs-kernel.ts';
import type { IpvsService } from '../netlink/ipvs.ts';
import { quietLogger } from './log.ts';
import type { DataplaneMetrics } from './metrics.ts';
import { Pruner } from './prune.ts';
import { renderDelete, renderIpvsMasquerade, runNft, type NftRunner } from './nft.ts';
import { WarningReporter, type EventSink } from './warnings.ts';

export interface IpvsDataplaneOptions {
  log?: Logger;
  metrics?: DataplaneMetrics;
  events?: EventSink;
  /** Longest a removed real server keeps its connections (default 60 s). */
  drainTimeoutMs?: number;
  /** Full resync period (default 60 s). */
  resyncMs?: number;
  /** How often draining real servers are looked at (default 1 s). */
  drainCheckMs?: number;
  /** Longest inactive connections (handshakes, closing TCP, UDP flows) hold a draining real server (default 5 s, at most drainTimeoutMs). */
  inactiveHoldMs?: number;
  nft?: NftRunner;
  /** Set the sysctls the dataplane relies on (default true). */
  sysctls?: boolean;
  /** Remove Portico's services, portico0 and the nftables table on every stop (default false: only stop('leave') does; a restarting speaker keeps traffic flowing). */
  cleanupOnStop?: boolean;
  now?: () => number;
  /** Membership's verdicts: the endpoints of nodes it saw die are drained at once (prune.ts). */
  liveness?: LivenessFeed;
}

/**
 * Kernel settings: vs.conntrack lets the masquerade rule see IPVS connections;
 * expire_quiescent_template stops persistence templates from sending clients
 * to a weight-0 (draining) real server; arp_ignore/arp_announce keep the
 * kernel from answering ARP for VIPs on portico0 (the layer-2 announcer
 * answers for the owner only).
 */
export const SYSCTLS: ReadonlyArray<[string, string]> = [
  ['net/ipv4/vs/conntrack', '1'],
  ['net/ipv4/vs/expire_quiescent_template', '1'],
  ['net/ipv4/conf/all/arp_ignore', '1'],
  ['net/ipv4/conf/all/arp_announce', '2'],
];

export const PROBLEMS = ['missing-module', 'permission', 'vip-on-other-interface', 'operation-refused', 'nft', 'sysctl', 'link'] as const;
export type Problem = (typeof PROBLEMS)[number];

export function problemOf(err: unknown): Problem {
  if (err instanceof NetlinkError) {
    if (err.errnoName === 'EPERM' || err.errnoName === 'EACCES') return 'permission';
    if (err.errnoName === 'ENOENT' || err.errnoName === 'EOPNOTSUPP') return 'missing-module';
  }
  return 'operation-refused';
}

/** What the dataplane needs of the kernel's IPVS (IpvsKernel; tests hand in a model of it). */
export interface IpvsKernelApi {
  managed(owned: ReadonlySet<string>): Promise<Map<string, KernelService>>;
  withDests(services: readonly IpvsService[]): Promise<Map<string, KernelService>>;
  apply(ops: readonly Op[]): Promise<OpFailure[]>;
  close(): void;
}

/** Milliseconds spent in each step of the last sync (profiling; the benchmark reports them). */
export interface SyncTimings {
  kind: 'full' | 'incremental' | 'drain';
  /** Desired state from the World (DesiredBuilder.update), in update(). */
  desired: number;
  /** Reading the kernel: the full dump, or (drain checks) the real servers of the services with draining ones. */
  read: number;
  diff: number;
  /** Netlink requests of the operations, up to their last ACK. */
  apply: number;
  /** VIPs on portico0 and the masquerade table. */
  vips: number;
  nft: number;
  total: number;
  ops: number;
}

export class IpvsDataplane {
  readonly name = 'dataplane-ipvs';
  readonly kernel: IpvsKernelApi;
  link: VipLink | undefined;
  readonly #o: Required<Omit<IpvsDataplaneOptions, 'metrics' | 'events' | 'liveness'>> & Pick<IpvsDataplaneOptions, 'metrics'>;
  readonly #pruner: Pruner;
  /** The dead nodes changed since the last sync: every virtual service is diffed against the kernel state. */
  #pruneDirty = false;
  readonly #warnings: WarningReporter;
  #desired: DesiredState | undefined;
  #world: World | undefined;
  /** The kernel's state of Portico's services as of the last sync (full: read; incremental: read + ops applied). */
  #kernel = new Map<string, KernelService>();
  readonly #builder = new DesiredBuilder();
  /** Virtual services changed since the last sync, and those whose operations failed in it. */
  #pending = new Set<string>();
  #retry = new Set<string>();
  #masqueradeDirty = true;
  #realCount = 0;
  #draining = new Map<string, number>();
  #vips = new Set<string>();
  /** The desired VIP set portico0 was last brought in line with, and whether some VIP could not be added or removed then. */
  #vipsSeen: ReadonlySet<string> | undefined;
  #vipsFailed = false;
  #nftText = '';
  #needFull = true;
  #lastFull = 0;
  #chain: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #timerForDrain = false;
  #stopped = false;
  /** Problems of the last sync, and those found at start (they last). */
  readonly #problems = new Set<Problem>();
  /** Counts since start: syncs, kernel operations applied, operations refused. */
  readonly stats = { syncs: 0, fullSyncs: 0, ops: 0, failed: 0 };
  readonly #sticky = new Set<Problem>();

  #desiredMs = 0;
  /** Step times of the last sync. */
  lastSync: SyncTimings | undefined;

  private constructor(kernel: IpvsKernelApi, link: VipLink | undefined, opts: IpvsDataplaneOptions) {
    this.kernel = kernel;
    this.link = link;
    const drainTimeoutMs = opts.drainTimeoutMs ?? 60_000;
    this.#o = {
      log: opts.log ?? quietLogger, drainTimeoutMs, resyncMs: opts.resyncMs ?? 60_000, drainCheckMs: opts.drainCheckMs ?? 1000,
      inactiveHoldMs: Math.min(opts.inactiveHoldMs ?? 5000, drainTimeoutMs),
      nft: opts.nft ?? runNft, sysctls: opts.sysctls ?? true, cleanupOnStop: opts.cleanupOnStop ?? false, now: opts.now ?? Date.now, metrics: opts.metrics,
    };
    this.#warnings = new WarningReporter(this.#o.log, opts.events);
    this.#pruner = new Pruner({
      feed: opts.liveness, dataplane: 'ipvs', log: this.#o.log, metrics: opts.metrics,
      onChange: () => {
        this.#pruneDirty = true;
        if (this.#desired && !this.#stopped) this.#enqueue('incremental').catch((err: unknown) => this.#o.log.error('dataplane sync failed', { dataplane: 'ipvs', err }));
      },
    });
  }

  /** Opens IPVS (fails when the kernel has no ip_vs) and portico0 (a failure there is reported, IPVS still works for VIPs that are local otherwise). */
  static async open(opts: IpvsDataplaneOptions = {}): Promise<IpvsDataplane> {
    const kernel = await IpvsKernel.open();
    const link = new VipLink();
    const dp = new IpvsDataplane(kernel, link, opts);
    try {
      await link.ensure();
    } catch (err) {
      dp.#problem(problemOf(err) === 'operation-refused' ? 'link' : problemOf(err), 'cannot create the dummy link portico0; VIPs are not added to this node', err);
      link.close();
      dp.link = undefined;
    }
    if (dp.#o.sysctls) dp.#setSysctls();
    dp.#schedule();
    return dp;
  }

  /** A dataplane over a kernel the caller opened (or models, in unit tests); no portico0 when link is undefined. */
  static over(kernel: IpvsKernelApi, link: VipLink | undefined, opts: IpvsDataplaneOptions = {}): IpvsDataplane {
    const dp = new IpvsDataplane(kernel, link, opts);
    if (dp.#o.sysctls) dp.#setSysctls();
    dp.#schedule();
    return dp;
  }

  #metric(): DataplaneMetrics | undefined {
    return this.#o.metrics;
  }

  #problem(p: Problem, msg: string, err?: unknown, fields: Record<string, unknown> = {}): void {
    this.#o.log.error(msg, { dataplane: 'ipvs', problem: p, ...fields, ...(err ? { err } : {}) });
    this.#metric()?.syncErrors.inc({ dataplane: 'ipvs', reason: p });
    (this.#desired ? this.#problems : this.#sticky).add(p);
    this.#metric()?.problem.set({ dataplane: 'ipvs', problem: p }, 1);
  }

  #setSysctls(): void {
    for (const [key, value] of SYSCTLS) {
      const path = `/proc/sys/${key}`;
      try {
        if (readFileSync(path, 'utf8').trim() === value) continue;
        writeFileSync(path, value);
        this.#o.log.info('sysctl set', { key: key.replaceAll('/', '.'), value });
      } catch (err) {
        this.#problem('sysctl', 'cannot set a sysctl the IPVS dataplane relies on', err, { key: key.replaceAll('/', '.'), value });
      }
    }
  }

  update(world: World): Promise<void> {
    this.#world = world;
    const t0 = performance.now();
    const { state, changed } = this.#builder.update(world);
    this.#desiredMs = performance.now() - t0;
    this.#desired = state;
    for (const k of changed) this.#pending.add(k);
    if (this.#builder.masqueradeChanged) this.#masqueradeDirty = true;
    return this.#enqueue(this.#needFull || this.#o.now() - this.#lastFull >= this.#o.resyncMs ? 'full' : 'incremental');
  }

  /** Runs a full resync now (tests, and the periodic timer). */
  resync(): Promise<void> {
    return this.#enqueue('full');
  }

  #enqueue(kind: 'full' | 'incremental' | 'drain'): Promise<void> {
    const p = this.#chain.then(() => this.#sync(kind));
    this.#chain = p.catch(() => {});
    return p;
  }

  /**
   * Arms the timer: the drain check while real servers drain, else the full
   * resync. A drain check already armed is kept, so syncs that follow each
   * other faster than drainCheckMs do not put it off for ever.
   */
  #schedule(): void {
    if (this.#stopped) return;
    const drain = this.#draining.size > 0;
    if (drain && this.#timerForDrain) return;
    clearTimeout(this.#timer);
    this.#timerForDrain = drain;
    this.#timer = setTimeout(() => {
      this.#timerForDrain = false;
      this.#timer = undefined;
      const kind = this.#o.now() - this.#lastFull >= this.#o.resyncMs ? 'full' : 'drain';
      this.#enqueue(kind).catch((err: unknown) => this.#o.log.error('dataplane sync failed', { dataplane: 'ipvs', err })).finally(() => this.#schedule());
    }, drain ? this.#o.drainCheckMs : this.#o.resyncMs);
    this.#timer.unref();
  }

  async #sync(kind: 'full' | 'incremental' | 'drain'): Promise<void> {
    if (!this.#desired || this.#stopped) return;
    const desired = this.#pruner.apply(this.#desired);
    const everything = this.#pruneDirty;
    this.#pruneDirty = false;
    const t0 = performance.now();
    const now = this.#o.now();
    const tm: SyncTimings = { kind, desired: this.#desiredMs, read: 0, diff: 0, apply: 0, vips: 0, nft: 0, total: 0, ops: 0 };
    this.#desiredMs = 0;
    this.#problems.clear();
    let keys: Set<string> | undefined;
    const pending = this.#pending;
    this.#pending = new Set();
    let t = performance.now();
    if (kind === 'full') {
      const owned = new Set(desired.vips);
      if (this.link) for (const a of await this.link.addresses()) if (a.index === this.link.index) owned.add(a.address);
      for (const k of this.#kernel.values()) owned.add(k.address);
      this.#kernel = stamped(await this.kernel.managed(owned), this.#o.now());
      this.#lastFull = now;
      this.#needFull = false;
    } else if (everything) {
      // Pruning changed: any service may have lost or regained real servers (keys undefined: diff all, against the cached kernel state).
      if (kind === 'drain') await this.#refresh(new Set([...this.#draining.keys()].map(serviceOfReal)));
    } else {
      keys = pending;
      for (const k of this.#retry) keys.add(k);
      if (kind === 'drain') {
        // Draining real servers: read their connection counts again.
        const drainingServices = new Set([...this.#draining.keys()].map(serviceOfReal));
        await this.#refresh(drainingServices);
        for (const k of drainingServices) keys.add(k);
      }
    }
    tm.read += performance.now() - t;

    // New VIPs go on portico0 first, so traffic for a new service is accepted locally from its first packet.
    t = performance.now();
    await this.#addVips(desired, kind === 'full');
    tm.vips += performance.now() - t;
    t = performance.now();
    const opts = { drainTimeoutMs: this.#o.drainTimeoutMs, inactiveHoldMs: this.#o.inactiveHoldMs };
    const r = diff(desired.services, this.#kernel, this.#draining, now, opts, keys);
    tm.diff += performance.now() - t;
    t = performance.now();
    const failed = r.ops.length ? await this.kernel.apply(r.ops) : [];
    tm.apply = performance.now() - t;
    tm.ops = r.ops.length;
    const failedOps = new Set(failed.map((f) => f.op));
    const ok = failed.length ? r.ops.filter((o) => !failedOps.has(o)) : r.ops;
    if (kind === 'full') {
      this.#realCount = 0;
      for (const s of this.#kernel.values()) this.#realCount += s.reals.length;
    }
    for (const o of ok) {
      if (o.op === 'add-real') this.#realCount++;
      else if (o.op === 'delete-real') this.#realCount--;
      else if (o.op === 'delete-service') this.#realCount -= this.#kernel.get(o.service.key)?.reals.length ?? 0;
    }
    applyOps(this.#kernel, ok);
    this.#draining = r.draining;
    for (const f of failed) this.#problem(problemOf(f.err), 'IPVS refused an operation', f.err, { op: f.op.op, service: f.op.service.key });
    if (failed.length) this.#needFull = true;
    for (const o of ok) this.#metric()?.operations.inc({ dataplane: 'ipvs', op: o.op });
    this.stats.syncs++;
    if (kind === 'full') this.stats.fullSyncs++;
    this.stats.ops += ok.length;
    this.stats.failed += failed.length;
    t = performance.now();
    await this.#removeVips(desired, kind === 'full');
    tm.vips += performance.now() - t;
    t = performance.now();
    await this.#writeNft(desired, kind === 'full');
    tm.nft = performance.now() - t;

    this.#retry = new Set(failed.map((f) => f.op.service.key));
    if (this.#world) this.#warnings.report(this.#world, desired.warnings);
    const m = this.#metric();
    if (m) {
      m.virtualServices.set({ dataplane: 'ipvs' }, this.#kernel.size);
      m.realServers.set({ dataplane: 'ipvs' }, this.#realCount);
      m.draining.set({ dataplane: 'ipvs' }, this.#draining.size);
      m.syncSeconds.observe({ dataplane: 'ipvs', kind }, (performance.now() - t0) / 1000);
      for (const p of PROBLEMS) m.problem.set({ dataplane: 'ipvs', problem: p }, this.#problems.has(p) || this.#sticky.has(p) ? 1 : 0);
    }
    if (r.ops.length || kind === 'full') {
      this.#o.log.debug('dataplane synced', { dataplane: 'ipvs', kind, ops: r.ops.length, failed: failed.length, services: this.#kernel.size, draining: this.#draining.size, ms: Math.round(performance.now() - t0) });
    }
    tm.total = performance.now() - t0;
    this.lastSync = tm;
    if (this.#draining.size) this.#schedule();
  }

  /** Reads the real servers (and their connection counts) of these services from the kernel into the cache. */
  async #refresh(keys: ReadonlySet<string>): Promise<void> {
    const ids: IpvsService[] = [];
    for (const k of keys) {
      const s = this.#kernel.get(k);
      if (s) ids.push({ family: s.family, protocol: s.protocol, address: s.address, port: s.port });
    }
    if (!ids.length) return;
    const got = stamped(await this.kernel.withDests(ids), this.#o.now());
    for (const k of keys) {
      const old = this.#kernel.get(k);
      if (!old) continue;
      const f = got.get(k);
      if (f) this.#kernel.set(k, { ...old, reals: f.reals });
      else this.#kernel.delete(k);
    }
  }

  async #addVips(desired: DesiredState, full: boolean): Promise<void> {
    const link = this.link;
    if (!link) return;
    // The builder hands out the same set while its members stay the same: nothing to add or remove then.
    if (desired.vips === this.#vipsSeen && !full && !this.#vipsFailed) return;
    const missing = [...desired.vips].filter((v) => !this.#vips.has(v));
    if (!missing.length && !full) return;
    const all = await link.addresses();
    const mine = new Set(all.filter((a) => a.index === link.index).map((a) => a.address));
    this.#vips = mine;
    for (const vip of desired.vips) {
      if (mine.has(vip)) continue;
      const other = all.find((a) => a.address === vip && a.index !== link.index);
      if (other) {
        this.#problem('vip-on-other-interface', 'a VIP is already on another interface; not adding it to portico0', undefined, { vip, ifindex: other.index });
        continue;
      }
      try {
        await link.add(vip);
        this.#vips.add(vip);
        this.#o.log.info('vip added', { vip, link: link.name });
      } catch (err) {
        this.#problem(problemOf(err), 'cannot add a VIP to portico0', err, { vip });
      }
    }
  }

  async #removeVips(desired: DesiredState, full: boolean): Promise<void> {
    const link = this.link;
    if (!link) return;
    if (desired.vips === this.#vipsSeen && !full && !this.#vipsFailed) return;
    let failed = false;
    for (const vip of [...this.#vips]) {
      if (desired.vips.has(vip) || vip.startsWith('fe80:')) continue;
      try {
        await link.remove(vip);
        this.#vips.delete(vip);
        this.#o.log.info('vip removed', { vip, link: link.name });
      } catch (err) {
        failed = true;
        this.#problem(problemOf(err), 'cannot remove a VIP from portico0', err, { vip });
      }
    }
    for (const vip of desired.vips) if (!this.#vips.has(vip)) failed = true;
    this.#vipsSeen = desired.vips;
    this.#vipsFailed = failed;
  }

  async #writeNft(desired: DesiredState, full: boolean): Promise<void> {
    if (!this.#masqueradeDirty && !full) return;
    const text = renderIpvsMasquerade(desired);
    this.#masqueradeDirty = false;
    if (text === this.#nftText) return;
    try {
      await this.#o.nft(text);
      this.#nftText = text;
    } catch (err) {
      this.#masqueradeDirty = true;
      this.#problem('nft', 'cannot write the masquerade rules (nftables table portico)', err);
    }
  }

  /** Kernel state of Portico's services as the dataplane last saw it. */
  snapshot(): ReadonlyMap<string, KernelService> {
    return this.#kernel;
  }

  get draining(): ReadonlyMap<string, number> {
    return this.#draining;
  }

  async stop(reason: StopReason = 'restart'): Promise<void> {
    // Stopped first, so a sync in flight does not schedule another; then wait for it.
    this.#stopped = true;
    this.#pruner.stop();
    clearTimeout(this.#timer);
    await this.#chain;
    if (this.#o.cleanupOnStop || reason === 'leave') {
      const ops = [...this.#kernel.values()].map((s): Op => ({ op: 'delete-service', service: { ...s, scheduler: s.scheduler as VirtualService['scheduler'] } }));
      await this.kernel.apply(ops);
      // Deleting the link takes its VIPs with it.
      if (this.link) await this.link.delete().catch((err: unknown) => this.#o.log.error('cannot delete portico0', { dataplane: 'ipvs', err }));
      await this.#o.nft(renderDelete()).catch(() => undefined);
    }
    this.kernel.close();
    this.link?.close();
  }
}

function serviceOfReal(realKey: string): string {
  return realKey.slice(0, realKey.indexOf('>'));
}

/** Marks every real server's connection counts as read at `at`. */
function stamped(services: Map<string, KernelService>, at: number): Map<string, KernelService> {
  for (const s of services.values()) for (const r of s.reals) r.countsAt = at;
  return services;
}
