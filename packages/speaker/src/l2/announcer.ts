// The layer-2 announcer: on every World and every change of the live set it
// re-runs the election (plan.ts), tells each interface's Responder exactly
// which IPs to answer for, announces newly taken IPs with gratuitous ARP /
// unsolicited NA (repeated beyond the receivers' locktime), and reports what
// users see: logs, an Event and annotations on the Service, metrics.
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import type { EventTarget, Logger } from '@portico/shared';
import type { NodeLiveness } from '../membership/membership.ts';
import { loadNative } from '../native/index.ts';
import type { Announcer, World } from '../world/types.ts';
import { canonicalIP } from './address.ts';
import type { L2Metrics } from './metrics.ts';
import { PlanCache, planLayer2, type Layer2Plan, type ServicePlan } from './plan.ts';
import { REASONS } from './decide.ts';
import type { Responder } from './responder.ts';

/** Annotations the owner writes on a Service it announces (no ServiceL2Status CRD is installed yet). */
export const ANNOUNCED_BY = 'portico.dev/layer2-node';
export const ANNOUNCED_INTERFACES = 'portico.dev/layer2-interfaces';

/** When a status write for one Service last went, and how long to wait before the next. */
interface Backoff { at: number; waitMs: number }

/** What the announcer needs from membership (membership.ts in production, a fake in tests). */
export interface MembershipView {
  /** Starts heartbeating (idempotent): called with the first World, once this speaker is fully up. */
  start(): void;
  setPeers(nodes: ReadonlyMap<string, readonly string[]>): void;
  live(): ReadonlySet<string>;
  reasons(): ReadonlyMap<string, NodeLiveness>;
  /** False until peers had time to be heard: nothing is claimed before. */
  settled(): boolean;
  /** False without a heartbeat key: peers cannot be trusted, so nothing is claimed. */
  ready(): boolean;
  stop(mode: 'leave' | 'restart' | 'silent'): Promise<void>;
}

export interface ServiceSink {
  event(target: EventTarget, type: 'Normal' | 'Warning', reason: string, message: string): Promise<unknown>;
  annotate(namespace: string, name: string, annotations: Record<string, string | null>): Promise<void>;
}

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(h: unknown): void;
}

export interface L2AnnouncerOptions {
  self: string;
  log: Logger;
  metrics: L2Metrics;
  /** Built with the announcer's liveness callback, which re-runs the election at once. */
  membership: (onChange: () => void) => MembershipView;
  openResponder: (ifname: string) => Responder;
  sink: ServiceSink;
  /** Interfaces and their addresses; default os.networkInterfaces(). */
  interfaces?: () => ReadonlyMap<string, readonly string[]>;
  /** Whether an interface has carrier: a node cut off its segment claims nothing there. Default: IFF_RUNNING from the kernel. */
  linkUp?: (ifname: string) => boolean;
  /** Writes a sysctl under /proc/sys (strict ARP); injectable for tests. */
  sysctl?: (key: string, value: string) => void;
  timers?: Timers;
  /** Gratuitous announcements per taken IP (the first at once). */
  announceCount?: number;
  /** Spacing of the repeats: beyond the receivers' ARP locktime (1 s by default on Linux). */
  announceSpacingMs?: number;
  /**
   * One extra round this soon after the first (0 = none): a lost first frame
   * (or an NA that met a neighbour entry mid-transition) would otherwise cost
   * a whole spacing. Harmless when the first was taken: ARP ignores it
   * within locktime, NDP sees the same address.
   */
  quickRepeatMs?: number;
  /** Re-announce every owned IP this often (switches whose tables age out); 0 = never. */
  refreshMs?: number;
  /** Least time between two status writes for one Service while its annotations disagree with this owner. */
  annotateEveryMs?: number;
  /** Longest wait between two status writes for one Service while the World keeps disagreeing (the wait doubles from annotateEveryMs). */
  maxAnnotateEveryMs?: number;
  /** Monotonic clock (ms) of the status writes; default performance.now. */
  now?: () => number;
  /** How the speaker tells its peers it stops: 'restart' keeps its IPs in place for the hold time. */
  stopMode?: 'leave' | 'restart';
}

const realTimers: Timers = { setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout) };

function systemInterfaces(): Map<string, string[]> {
  return new Map(Object.entries(os.networkInterfaces()).map(([name, addrs]) => [name, (addrs ?? []).map((a) => canonicalIP(a.address.replace(/%.*$/, '')))]));
}

function kernelLinkUp(ifname: string): boolean {
  const n = loadNative();
  return (n.interfaceInfo(ifname).flags & n.constants.IFF_RUNNING) !== 0;
}

function writeSysctl(key: string, value: string): void {
  writeFileSync(`/proc/sys/${key.replaceAll('.', '/')}`, value);
}

export class L2Announcer implements Announcer {
  readonly name = 'layer2';
  private readonly o: Required<Omit<L2AnnouncerOptions, 'membership'>>;
  private readonly membership: MembershipView;
  private readonly responders = new Map<string, Responder>();
  /** Interfaces that failed to open since the last World, so a liveness change does not retry (and log) them again. */
  private readonly broken = new Set<string>();
  private readonly linkDown = new Set<string>();
  /** `ifname ip` -> pending repeat timer. */
  private readonly repeats = new Map<string, unknown>();
  private refreshTimer: unknown;
  private settleTimer: unknown;
  private staleTimer: unknown;
  private metricsTimer: NodeJS.Timeout | undefined;
  private world: World | undefined;
  /** Services this node announces now: key -> interfaces. */
  private owning = new Map<string, string[]>();
  private lastPlan: Layer2Plan | undefined;
  private readonly planCache = new PlanCache();
  private readonly synced = new Map<string, Record<string, number>>();
  /** Service key -> the last write of its annotations by this owner, and the wait before the next (mayWrite). */
  private readonly writes = new Map<string, Backoff>();
  /** Service key -> the last clearing of its stale annotations, and the wait before the next. */
  private readonly clears = new Map<string, Backoff>();
  private stopped = false;

  constructor(opts: L2AnnouncerOptions) {
    this.o = {
      interfaces: systemInterfaces, sysctl: writeSysctl, linkUp: kernelLinkUp, timers: realTimers,
      announceCount: 3, announceSpacingMs: 1100, quickRepeatMs: 300, refreshMs: 0, stopMode: 'restart', annotateEveryMs: 5000, maxAnnotateEveryMs: 300_000,
      now: () => performance.now(),
      ...opts,
    };
    this.membership = opts.membership(() => this.reconcile('membership'));
    if (this.o.refreshMs > 0) this.scheduleRefresh();
    this.metricsTimer = setInterval(() => this.syncMetrics(), 1000);
    this.metricsTimer.unref();
  }

  /** The last plan (every Service with its election and reasons), for tests and debugging. */
  get plan(): Layer2Plan | undefined {
    return this.lastPlan;
  }

  /** IPs answered for on each interface now. */
  owned(): Map<string, string[]> {
    return new Map([...this.responders].map(([i, r]) => [i, r.owned().sort()]));
  }

  responder(ifname: string): Responder | undefined {
    return this.responders.get(ifname);
  }

  update(world: World): void {
    if (this.stopped) return;
    this.world = world;
    // An interface that could not be opened is tried again with each new World (it may have appeared since).
    this.broken.clear();
    this.membership.setPeers(new Map([...world.nodes.values()].map((n) => [n.name, n.addresses])));
    // Heartbeats begin only now: a speaker still starting (syncing caches,
    // probing kernel modules) could stall and be taken for dead right after
    // it said it was alive; until then its peers hold it as restarting or
    // never heard of it.
    this.membership.start();
    this.reconcile('world');
  }

  /** Computes the owned IPs from the latest World and live set and applies the difference. Synchronous: a liveness change is acted on in the same turn. */
  reconcile(cause: 'world' | 'membership' | 'settled' | 'stale-annotations'): void {
    if (this.stopped || !this.world) return;
    const live = this.membership.live();
    this.o.metrics.liveNodes.set(live.size);
    if (!this.membership.settled() || !this.membership.ready()) {
      // Claiming before peers could be heard would make every starting speaker an owner.
      this.settleTimer ??= this.o.timers.setTimeout(() => { this.settleTimer = undefined; this.reconcile('settled'); }, 100);
      return;
    }
    const plan = planLayer2({ world: this.world, live, interfaces: this.o.interfaces(), cache: this.planCache });
    this.lastPlan = plan;
    for (const ifname of [...plan.owned.keys()]) {
      let up = false;
      try { up = this.o.linkUp(ifname); } catch { /* gone: treated as down */ }
      if (up) { this.linkDown.delete(ifname); continue; }
      plan.owned.delete(ifname);
      if (!this.linkDown.has(ifname)) this.o.log.info('link down: claiming nothing on it', { interface: ifname });
      this.linkDown.add(ifname);
    }
    for (const ifname of plan.owned.keys()) this.ensureResponder(ifname);
    for (const [ifname, r] of this.responders) {
      const { added, removed } = r.setOwned(plan.owned.get(ifname) ?? []);
      for (const ip of removed) this.cancelRepeats(ifname, ip);
      for (const ip of added) {
        this.announce(ifname, ip, this.o.announceCount);
        if (this.o.quickRepeatMs > 0) this.quickRepeat(ifname, ip);
      }
      this.o.metrics.ownedIPs.set({ interface: ifname }, r.owned().length);
      if (added.length || removed.length) this.o.log.debug('owned IPs changed', { interface: ifname, added, removed, cause });
    }
    this.applyOwnership(plan.services, cause);
  }

  private ensureResponder(ifname: string): void {
    if (this.responders.has(ifname) || this.broken.has(ifname)) return;
    try {
      // Strict ARP: the kernel must not answer for a VIP that sits on a local
      // interface (the dataplane's portico0) from an interface that is not the owner.
      this.o.sysctl(`net.ipv4.conf.${ifname}.arp_ignore`, '1');
      this.o.sysctl(`net.ipv4.conf.${ifname}.arp_announce`, '2');
      this.o.log.info('strict ARP set', { interface: ifname, arp_ignore: 1, arp_announce: 2 });
    } catch (err) {
      this.o.log.error('strict ARP not set; the kernel may answer ARP for local VIPs', { interface: ifname, err });
    }
    try {
      const r = this.o.openResponder(ifname);
      this.responders.set(ifname, r);
      this.o.log.info('answering ARP/NDP', { interface: ifname, mac: r.mac });
    } catch (err) {
      this.broken.add(ifname);
      this.o.log.error('cannot open the ARP/NDP responder', { interface: ifname, err });
    }
  }

  private applyOwnership(services: readonly ServicePlan[], cause: string): void {
    const next = new Map<string, string[]>();
    const byKey = new Map(services.map((s) => [s.key, s]));
    const answered = new Map([...this.responders].map(([i, r]) => [i, new Set(r.owned())]));
    for (const s of services) {
      const ifs = s.interfaces.filter((i) => s.ips.some((ip) => answered.get(i)?.has(canonicalIP(ip))));
      if (s.election.owner === this.o.self && ifs.length > 0) next.set(s.key, ifs);
    }
    for (const [key, ifs] of next) {
      const s = byKey.get(key)!;
      const before = this.owning.get(key);
      if (!before || before.join(',') !== ifs.join(',')) {
        this.o.metrics.ownershipChanges.inc({ change: 'gained' });
        this.o.log.info('ip announced', { service: key, ips: s.ips, node: this.o.self, protocol: 'layer2', interfaces: ifs, cause });
        this.report(s, ifs, true);
      } else {
        this.report(s, ifs, false);
      }
    }
    for (const key of this.owning.keys()) {
      if (next.has(key)) continue;
      const s = byKey.get(key);
      this.o.metrics.ownershipChanges.inc({ change: 'lost' });
      this.o.log.info('ip withdrawn', { service: key, ips: s?.ips ?? [], node: this.o.self, protocol: 'layer2', owner: s?.election.owner ?? null, reason: s?.election.reason ?? 'service-gone', cause });
    }
    for (const key of this.writes.keys()) if (!next.has(key)) this.writes.delete(key);
    this.owning = next;
    this.o.metrics.ownedServices.set(next.size);
    this.clearStale(byKey, next);
  }

  /**
   * Whether a status write for Service `key` (in `backoffs`: writes or clears) may go now: the first at once, then again
   * while the World still disagrees after annotateEveryMs, doubling up to
   * maxAnnotateEveryMs. A World that lags (a watch cut by a busy API server)
   * must not turn into writes for every Service every few seconds.
   */
  private mayWrite(backoffs: Map<string, Backoff>, key: string, now: number, first: boolean): boolean {
    const b = backoffs.get(key);
    if (first || !b) {
      backoffs.set(key, { at: now, waitMs: this.o.annotateEveryMs });
      return true;
    }
    if (now - b.at < b.waitMs) return false;
    backoffs.set(key, { at: now, waitMs: Math.min(b.waitMs * 2, this.o.maxAnnotateEveryMs) });
    return true;
  }

  /**
   * The annotations name the node that last announced the Service. When this
   * node is named but does not announce the Service and no other node is
   * elected (no advertisement, no ready endpoint, no live eligible node), or
   * it is elected but cannot announce (link down, no interface), it clears
   * them. When another node is elected, that node overwrites them as it takes
   * the IPs: clearing them too would only race with it.
   */
  private clearStale(byKey: ReadonlyMap<string, ServicePlan>, announced: ReadonlyMap<string, string[]>): void {
    if (!this.world) return;
    const now = this.o.now();
    const pending = new Set<string>();
    for (const [key, svc] of this.world.services) {
      if (svc.annotations[ANNOUNCED_BY] !== this.o.self || announced.has(key)) continue;
      const plan = byKey.get(key);
      const owner = plan?.election.owner ?? null;
      if (owner !== null && owner !== this.o.self) continue;
      pending.add(key);
      if (!this.mayWrite(this.clears, key, now, false)) continue;
      this.o.log.info('layer-2 annotations cleared: this node no longer announces the Service', { service: key, owner, reason: plan?.election.reason ?? 'not-advertised' });
      this.o.sink.annotate(svc.namespace, svc.name, { [ANNOUNCED_BY]: null, [ANNOUNCED_INTERFACES]: null })
        .catch((err: unknown) => this.o.log.error('annotations not cleared', { service: key, err }));
    }
    for (const key of this.clears.keys()) if (!pending.has(key)) this.clears.delete(key);
    // A quiet cluster brings no new World: look again when a wait ends.
    let due = Infinity;
    for (const key of pending) { const b = this.clears.get(key); if (b) due = Math.min(due, b.at + b.waitMs); }
    if (due !== Infinity && this.staleTimer === undefined) {
      this.staleTimer = this.o.timers.setTimeout(() => { this.staleTimer = undefined; this.reconcile('stale-annotations'); }, Math.max(0, due - now) + 1);
    }
  }

  /**
   * Level-based status: while this node owns a Service whose annotations do
   * not name it (a newly taken Service, or a stale write of a former owner),
   * it writes them (mayWrite: again after annotateEveryMs, backing off). The
   * nodeAssigned Event goes with a gain only, and not when the Service
   * already names this node (a restarted speaker taking its IPs back).
   */
  private report(s: ServicePlan, ifs: string[], gained: boolean): void {
    const svc = this.world?.services.get(s.key);
    const names = svc?.annotations[ANNOUNCED_BY] === this.o.self && svc.annotations[ANNOUNCED_INTERFACES] === ifs.join(',');
    if (names) {
      this.writes.delete(s.key);
      return;
    }
    if (!this.mayWrite(this.writes, s.key, this.o.now(), gained)) return;
    const fail = (what: string) => (err: unknown): void => this.o.log.error(`${what} not written`, { service: s.key, err });
    if (gained) {
      const target: EventTarget = { apiVersion: 'v1', kind: 'Service', namespace: s.namespace, name: s.name, ...(s.uid ? { uid: s.uid } : {}) };
      this.o.sink.event(target, 'Normal', 'nodeAssigned', `announcing from node "${this.o.self}" with protocol "layer2" on ${ifs.join(', ')}`).catch(fail('event'));
    }
    this.o.sink.annotate(s.namespace, s.name, { [ANNOUNCED_BY]: this.o.self, [ANNOUNCED_INTERFACES]: ifs.join(',') }).catch(fail('annotations'));
  }

  /** Sends one round now and schedules the repeats, spaced beyond the ARP locktime. */
  private announce(ifname: string, ip: string, rounds: number): void {
    const r = this.responders.get(ifname);
    if (!r || rounds <= 0 || this.stopped) return;
    r.announce(ip);
    const key = `${ifname} ${ip}`;
    this.o.timers.clearTimeout(this.repeats.get(key));
    this.repeats.delete(key);
    if (rounds > 1) {
      this.repeats.set(key, this.o.timers.setTimeout(() => { this.repeats.delete(key); this.announce(ifname, ip, rounds - 1); }, this.o.announceSpacingMs));
    }
  }

  private quickRepeat(ifname: string, ip: string): void {
    const key = `quick ${ifname} ${ip}`;
    this.o.timers.clearTimeout(this.repeats.get(key));
    this.repeats.set(key, this.o.timers.setTimeout(() => {
      this.repeats.delete(key);
      if (!this.stopped) this.responders.get(ifname)?.announce(ip);
    }, this.o.quickRepeatMs));
  }

  private cancelRepeats(ifname: string, ip: string): void {
    for (const key of [`${ifname} ${ip}`, `quick ${ifname} ${ip}`]) {
      this.o.timers.clearTimeout(this.repeats.get(key));
      this.repeats.delete(key);
    }
  }

  private scheduleRefresh(): void {
    this.refreshTimer = this.o.timers.setTimeout(() => {
      for (const r of this.responders.values()) for (const ip of r.owned()) r.announce(ip);
      if (!this.stopped) this.scheduleRefresh();
    }, this.o.refreshMs);
  }

  /** Pushes the responders' counters into the metrics as deltas (the hot path touches plain numbers only). */
  syncMetrics(): void {
    const m = this.o.metrics;
    for (const [ifname, r] of this.responders) {
      const c = r.counters;
      const now: Record<string, number> = { received: c.received, replies: c.replies, gratuitous: c.gratuitousSent, failures: c.sendFailures, ...Object.fromEntries(REASONS.map((x) => [`r:${x}`, c.byReason[x]])) };
      const last = this.synced.get(ifname) ?? {};
      const d = (k: string): number => (now[k] ?? 0) - (last[k] ?? 0);
      const labels = { interface: ifname };
      if (d('received')) m.requestsReceived.inc(labels, d('received'));
      if (d('replies')) m.repliesSent.inc(labels, d('replies'));
      if (d('gratuitous')) m.gratuitousSent.inc(labels, d('gratuitous'));
      if (d('failures')) m.sendFailures.inc(labels, d('failures'));
      for (const x of REASONS) if (d(`r:${x}`)) m.framesByReason.inc({ interface: ifname, reason: x }, d(`r:${x}`));
      this.synced.set(ifname, now);
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const h of this.repeats.values()) this.o.timers.clearTimeout(h);
    this.repeats.clear();
    this.o.timers.clearTimeout(this.refreshTimer);
    this.o.timers.clearTimeout(this.settleTimer);
    this.o.timers.clearTimeout(this.staleTimer);
    clearInterval(this.metricsTimer);
    this.syncMetrics();
    for (const r of this.responders.values()) {
      r.setOwned([]);
      r.close();
    }
    this.responders.clear();
    await this.membership.stop(this.o.stopMode);
  }
}
