// The layer-2 announcer: on every World and every change of the live set it
// re-runs the election (plan.ts), tells each interface's Responder exactly
// which IPs to answer for, announces newly taken IPs with gratuitous ARP /
// unsolicited NA (repeated beyond the receivers' locktime), and reports what
// users see: logs, an Event and annotations on the Service, metrics. The
// status writes wait until an ownership has held for a moment and go out at a
// bounded rate, so a flapping membership does not become a write storm; the
// ARP/NDP side never waits.
import { accessSync, constants, writeFileSync } from 'node:fs';
import os from 'node:os';
import { SPEAKER_ANNOTATIONS, TokenBucket, type EventTarget, type Logger } from '@portico/shared';
import type { NodeLiveness } from '../membership/membership.ts';
import { runNft, type NftRunner } from '../dataplane/nft.ts';
import { loadNative } from '../native/index.ts';
import type { Announcer, StopReason, World } from '../world/types.ts';
import { canonicalIP } from './address.ts';
import { renderArpFilter, renderArpFilterDelete, type StrictArpMode } from './arp-filter.ts';
import type { L2Metrics } from './metrics.ts';
import { PlanCache, planLayer2, type Layer2Plan, type ServicePlan } from './plan.ts';
import { REASONS } from './decide.ts';
import type { Responder } from './responder.ts';

/** Annotations the owner writes on a Service it announces (no ServiceL2Status CRD is installed yet). */
export const ANNOUNCED_BY = SPEAKER_ANNOTATIONS.layer2Node;
export const ANNOUNCED_INTERFACES = SPEAKER_ANNOTATIONS.layer2Interfaces;

/** When a status write for one Service last went, and how long to wait before the next. */
interface Backoff { at: number; waitMs: number }

/** This node's unbroken ownership of one Service, as its status sees it. */
interface Claim {
  /** When the ownership (on these interfaces) began: the status waits statusSettleMs from here. */
  since: number;
  ifs: string;
  /** The nodeAssigned Event of this claim has not gone yet (and the Service does not already name this node). */
  eventOwed: boolean;
}

/** A status write owed now; `cost` counts API writes (a gain: the Event and the annotations). */
interface StatusWrite { kind: 'announce' | 'clear'; key: string; cost: number; dueAt: number }

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
  /** Whether /proc/sys/net can be written (false in an unprivileged container); injectable for tests. */
  sysctlWritable?: () => boolean;
  /**
   * Strict ARP: `sysctl` (arp_ignore/arp_announce), `nftables` (table arp
   * portico, arp-filter.ts) or `auto` (default): the sysctls, and the table
   * where they cannot be written (read-only /proc/sys in a container).
   */
  strictArp?: StrictArpMode;
  /** Runs `nft -f -` for the ARP filter; injectable for tests. */
  nft?: NftRunner;
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
  /**
   * For an IPv6 VIP, extra unsolicited NAs at these times after the first
   * (ms, ascending; quickRepeatMs is not used then). NDP has no locktime, so
   * a dense start costs nothing; an NA that did not take (a client whose
   * entry was mid-transition) otherwise waits for the next round, 1.1 s on.
   */
  ndpQuickRepeatsMs?: readonly number[];
  /** Re-announce every owned IP this often (switches whose tables age out); 0 = never. */
  refreshMs?: number;
  /** Least time between two status writes for one Service while its annotations disagree with this owner. */
  annotateEveryMs?: number;
  /** Longest wait between two status writes for one Service while the World keeps disagreeing (the wait doubles from annotateEveryMs). */
  maxAnnotateEveryMs?: number;
  /**
   * How long this node must have owned a Service without a break before it
   * writes the Service's annotations and sends nodeAssigned, and how long its
   * annotations must have been stale before it clears them. An ownership that
   * moves away and back within it writes nothing. ARP/NDP never waits for it.
   * 0 = at once.
   */
  statusSettleMs?: number;
  /** Status writes (annotations, clears, nodeAssigned Events) this speaker may send at once. */
  statusBurst?: number;
  /** Status writes per second once the burst is spent; 0 = no limit. */
  statusWritesPerSecond?: number;
  /** Monotonic clock (ms) of the status writes; default performance.now. */
  now?: () => number;
  /**
   * How the speaker tells its peers it stops when stop() is not told why:
   * 'restart' keeps its IPs in place for the hold time. stop('leave') (an
   * uninstall) always leaves.
   */
  stopMode?: 'leave' | 'restart';
}

export const STATUS_DEFAULTS = {
  // Longer than most of the silences a loaded node's peers were seen to
  // misjudge, short against how long a user waits for the annotation.
  statusSettleMs: 2000,
  // The API server refuses mutating requests beyond its in-flight limit (200
  // by default, shared by every client: the controller's Lease renewal
  // included). 50 at once leaves most of that room even when a few speakers
  // take over together; 20/s is far below what one API server absorbs, and
  // still writes the status of 1,000 Services that moved (an Event and a
  // patch each) in under two minutes.
  statusBurst: 50,
  statusWritesPerSecond: 20,
} as const;

/** How soon a failed write of the ARP filter is tried again (a reconcile may try sooner). */
const ARP_FILTER_RETRY_MS = 5000;

const realTimers: Timers = { setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout) };

function systemInterfaces(): Map<string, string[]> {
  return new Map(Object.entries(os.networkInterfaces()).map(([name, addrs]) => [name, (addrs ?? []).map((a) => canonicalIP(a.address.replace(/%.*$/, '')))]));
}

function kernelLinkUp(ifname: string): boolean {
  const n = loadNative();
  return (n.interfaceInfo(ifname).flags & n.constants.IFF_RUNNING) !== 0;
}

/** access(2) reports EROFS for a read-only /proc/sys without writing anything. */
function procSysWritable(): boolean {
  try { accessSync('/proc/sys/net/ipv4/conf/all/arp_ignore', constants.W_OK); return true; } catch { return false; }
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
  /** Brings syncStatus back when a settle, a backoff or a token is due (statusTimerAt). */
  private statusTimer: unknown;
  private statusTimerAt = Infinity;
  private metricsTimer: NodeJS.Timeout | undefined;
  private world: World | undefined;
  /** Services this node announces now: key -> interfaces. */
  private owning = new Map<string, string[]>();
  private lastPlan: Layer2Plan | undefined;
  /** The last plan's Services by key. */
  private lastByKey: ReadonlyMap<string, ServicePlan> = new Map();
  private readonly planCache = new PlanCache();
  private readonly synced = new Map<string, Record<string, number>>();
  /** Service key -> this node's claim, for every Service in `owning`. */
  private readonly claims = new Map<string, Claim>();
  /** Service key -> the last write of its annotations by this owner, and the wait before the next. */
  private readonly writes = new Map<string, Backoff>();
  /** Service key -> since when its annotations name this node but should not (clearStale). */
  private readonly staleSince = new Map<string, number>();
  /** Service key -> the last clearing of its stale annotations, and the wait before the next. */
  private readonly clears = new Map<string, Backoff>();
  private readonly bucket: TokenBucket;
  /** `kind key` of the writes the bucket held back in the last pass: each is counted once in statusWritesDeferred. */
  private deferred = new Set<string>();
  private stopped = false;
  /** Interfaces strict ARP was seen to (sysctls written or tried, or the filter chosen). */
  private readonly strictArpDone = new Set<string>();
  /** Whether strict ARP goes through the table arp portico (asked for, or the sysctls could not be written). */
  private arpFilter = false;
  /** The VIP list last written to the ARP filter (`undefined`: nothing written yet, or the write failed). */
  private arpFilterWritten: string | undefined;
  /** The write in flight, and whether a newer list waits for it. */
  private arpFilterBusy: Promise<void> | undefined;
  private arpFilterAgain = false;

  constructor(opts: L2AnnouncerOptions) {
    this.o = {
      interfaces: systemInterfaces, sysctl: writeSysctl, linkUp: kernelLinkUp, timers: realTimers, strictArp: 'auto', nft: runNft, sysctlWritable: procSysWritable,
      announceCount: 3, announceSpacingMs: 1100, quickRepeatMs: 300, ndpQuickRepeatsMs: [50, 150, 300, 500, 750], refreshMs: 0, stopMode: 'restart', annotateEveryMs: 5000, maxAnnotateEveryMs: 300_000,
      ...STATUS_DEFAULTS,
      now: () => performance.now(),
      ...opts,
    };
    this.bucket = new TokenBucket(this.o.statusBurst, this.o.statusWritesPerSecond, this.o.now);
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
  reconcile(cause: 'world' | 'membership' | 'settled'): void {
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
    // Strict ARP on every interface this node would announce on, owner or not:
    // a non-owner whose kernel has the VIP on a local interface must not answer.
    for (const s of plan.services) for (const ifname of s.interfaces) this.ensureStrictArp(ifname);
    if (this.arpFilter) this.syncArpFilter();
    for (const ifname of plan.owned.keys()) this.ensureResponder(ifname);
    for (const [ifname, r] of this.responders) {
      const { added, removed } = r.setOwned(plan.owned.get(ifname) ?? []);
      for (const ip of removed) this.cancelRepeats(ifname, ip);
      for (const ip of added) {
        this.announce(ifname, ip, this.o.announceCount);
        this.quickRepeat(ifname, ip, ip.includes(':') ? this.o.ndpQuickRepeatsMs : this.o.quickRepeatMs > 0 ? [this.o.quickRepeatMs] : []);
      }
      this.o.metrics.ownedIPs.set({ interface: ifname }, r.owned().length);
      if (added.length || removed.length) this.o.log.debug('owned IPs changed', { interface: ifname, added, removed, cause });
    }
    this.applyOwnership(plan.services, cause);
  }

  /**
   * Strict ARP, once per interface: the kernel must not answer for a VIP that
   * sits on a local interface (the IPVS dataplane's portico0) from an
   * interface where another node owns it. With the sysctls where /proc/sys is
   * writable, else (or when asked) with the table arp portico (arp-filter.ts).
   */
  private ensureStrictArp(ifname: string): void {
    if (this.strictArpDone.has(ifname)) return;
    this.strictArpDone.add(ifname);
    if (this.o.strictArp === 'auto' && !this.arpFilter && !this.o.sysctlWritable()) {
      this.arpFilter = true;
      this.o.log.info('strict ARP through nftables', { table: 'arp portico', why: '/proc/sys is read-only' });
    } else if (this.o.strictArp === 'nftables' && !this.arpFilter) {
      this.arpFilter = true;
      this.o.log.info('strict ARP through nftables', { table: 'arp portico', why: '--strict-arp=nftables' });
    }
    if (this.arpFilter) return;
    try {
      this.o.sysctl(`net.ipv4.conf.${ifname}.arp_ignore`, '1');
      this.o.sysctl(`net.ipv4.conf.${ifname}.arp_announce`, '2');
      this.o.log.info('strict ARP set', { interface: ifname, arp_ignore: 1, arp_announce: 2 });
    } catch (err) {
      if (this.o.strictArp === 'auto') {
        this.arpFilter = true;
        this.o.log.info('strict ARP through nftables', { table: 'arp portico', interface: ifname, why: 'the sysctls cannot be written', err });
      } else {
        this.o.log.error('strict ARP not set; the kernel may answer ARP for local VIPs', { interface: ifname, err });
      }
    }
  }

  private ensureResponder(ifname: string): void {
    if (this.responders.has(ifname) || this.broken.has(ifname)) return;
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
    const now = this.o.now();
    const next = new Map<string, string[]>();
    const byKey = new Map(services.map((s) => [s.key, s]));
    const answered = new Map([...this.responders].map(([i, r]) => [i, new Set(r.owned())]));
    for (const s of services) {
      const ifs = s.interfaces.filter((i) => s.ips.some((ip) => answered.get(i)?.has(canonicalIP(ip))));
      if (s.election.owner === this.o.self && ifs.length > 0) next.set(s.key, ifs);
    }
    for (const [key, ifs] of next) {
      const before = this.owning.get(key);
      if (before && before.join(',') === ifs.join(',')) continue;
      const s = byKey.get(key)!;
      this.o.metrics.ownershipChanges.inc({ change: 'gained' });
      this.o.log.info('ip announced', { service: key, ips: s.ips, node: this.o.self, protocol: 'layer2', interfaces: ifs, cause });
      // A new claim: its status waits for the settle, and its first write is not held by an earlier claim's backoff.
      this.claims.set(key, { since: now, ifs: ifs.join(','), eventOwed: true });
      this.writes.delete(key);
    }
    for (const key of this.owning.keys()) {
      if (next.has(key)) continue;
      const s = byKey.get(key);
      this.o.metrics.ownershipChanges.inc({ change: 'lost' });
      this.o.log.info('ip withdrawn', { service: key, ips: s?.ips ?? [], node: this.o.self, protocol: 'layer2', owner: s?.election.owner ?? null, reason: s?.election.reason ?? 'service-gone', cause });
      this.claims.delete(key);
      this.writes.delete(key);
    }
    this.owning = next;
    this.lastByKey = byKey;
    this.o.metrics.ownedServices.set(next.size);
    this.syncStatus();
  }

  /**
   * Level-based status, worked out again from the latest World and plan on
   * every pass (a reconcile, or the status timer in a quiet cluster):
   *
   * - while this node owns a Service whose annotations do not name it (a
   *   newly taken Service, or a stale write of a former owner), it writes
   *   them, with nodeAssigned on the first write of a claim unless the
   *   Service already named this node (a restarted speaker taking its IPs back);
   * - when this node is named but does not announce the Service and no other
   *   node is elected (no advertisement, no ready endpoint, no live eligible
   *   node), or it is elected but cannot announce (link down, no interface),
   *   it clears them. When another node is elected, that node overwrites them
   *   as it takes the IPs: clearing them too would only race with it.
   *
   * A write waits until its condition has held for statusSettleMs; once
   * written, it goes again only after annotateEveryMs, doubling up to
   * maxAnnotateEveryMs, while the World still disagrees (a watch that lags
   * behind a busy API server must not turn into writes every few seconds).
   * What is due goes oldest first while the token bucket allows; the rest
   * waits for the next pass, which recomputes it: nothing queues, the newest
   * state is written, and a Service that needs no write any more is dropped.
   */
  private syncStatus(): void {
    const world = this.world;
    if (this.stopped || !world) return;
    const now = this.o.now();
    const self = this.o.self;
    const due: StatusWrite[] = [];
    const pending = { settle: 0, backoff: 0, 'rate-limit': 0 };
    let wake = Infinity;
    const consider = (kind: StatusWrite['kind'], key: string, cost: number, since: number, b: Backoff | undefined): void => {
      const settled = since + this.o.statusSettleMs;
      const retry = b ? b.at + b.waitMs : -Infinity;
      // Waking 1 ms late: the timer's clock and `now` may round differently, and a hair early would find nothing due.
      if (settled > now) {
        pending.settle += cost;
        wake = Math.min(wake, settled + 1);
      } else if (retry > now) {
        pending.backoff += cost;
        wake = Math.min(wake, retry + 1);
      } else {
        due.push({ kind, key, cost, dueAt: Math.max(settled, retry) });
      }
    };
    for (const [key, c] of this.claims) {
      const svc = world.services.get(key);
      if (!svc) continue;
      if (svc.annotations[ANNOUNCED_BY] === self && svc.annotations[ANNOUNCED_INTERFACES] === c.ifs) {
        // Shown in the World: nothing owed, and a later disagreement (another writer) is answered without backoff.
        c.eventOwed = false;
        this.writes.delete(key);
        continue;
      }
      consider('announce', key, c.eventOwed ? 2 : 1, c.since, this.writes.get(key));
    }
    const stale = new Set<string>();
    for (const [key, svc] of world.services) {
      if (svc.annotations[ANNOUNCED_BY] !== self || this.claims.has(key)) continue;
      const owner = this.lastByKey.get(key)?.election.owner ?? null;
      if (owner !== null && owner !== self) continue;
      stale.add(key);
      let since = this.staleSince.get(key);
      if (since === undefined) this.staleSince.set(key, since = now);
      consider('clear', key, 1, since, this.clears.get(key));
    }
    for (const key of this.staleSince.keys()) if (!stale.has(key)) this.staleSince.delete(key);
    for (const key of this.clears.keys()) if (!stale.has(key)) this.clears.delete(key);

    due.sort((a, b) => a.dueAt - b.dueAt);
    const deferred = new Set<string>();
    let waitFor = 0;
    for (const w of due) {
      // Once one write waits, the younger ones wait behind it (none starves).
      if (deferred.size === 0 && this.bucket.take(w.cost)) {
        this.write(w, now);
        continue;
      }
      const id = `${w.kind} ${w.key}`;
      if (deferred.size === 0) waitFor = w.cost;
      deferred.add(id);
      pending['rate-limit'] += w.cost;
      if (!this.deferred.has(id)) this.o.metrics.statusWritesDeferred.inc(w.cost);
    }
    this.deferred = deferred;
    if (deferred.size > 0) wake = Math.min(wake, now + this.bucket.msUntil(waitFor));
    for (const [wait, n] of Object.entries(pending)) this.o.metrics.statusWritesPending.set({ wait }, n);
    this.wakeAt(wake, now);
  }

  private write(w: StatusWrite, now: number): void {
    const s = this.lastByKey.get(w.key);
    const svc = this.world?.services.get(w.key);
    const fail = (what: string) => (err: unknown): void => this.o.log.error(`${what} not written`, { service: w.key, err });
    if (w.kind === 'clear') {
      if (!svc) return;
      this.backOff(this.clears, w.key, now);
      this.o.log.info('layer-2 annotations cleared: this node no longer announces the Service', { service: w.key, owner: s?.election.owner ?? null, reason: s?.election.reason ?? 'not-advertised' });
      this.o.sink.annotate(svc.namespace, svc.name, { [ANNOUNCED_BY]: null, [ANNOUNCED_INTERFACES]: null }).catch((err: unknown) => this.o.log.error('annotations not cleared', { service: w.key, err }));
      return;
    }
    const c = this.claims.get(w.key);
    if (!s || !c) return;
    this.backOff(this.writes, w.key, now);
    if (c.eventOwed) {
      c.eventOwed = false;
      const target: EventTarget = { apiVersion: 'v1', kind: 'Service', namespace: s.namespace, name: s.name, ...(s.uid ? { uid: s.uid } : {}) };
      this.o.sink.event(target, 'Normal', 'nodeAssigned', `announcing from node "${this.o.self}" with protocol "layer2" on ${c.ifs.split(',').join(', ')}`).catch(fail('event'));
    }
    this.o.sink.annotate(s.namespace, s.name, { [ANNOUNCED_BY]: this.o.self, [ANNOUNCED_INTERFACES]: c.ifs }).catch(fail('annotations'));
  }

  /** Records a write: the next for this Service waits annotateEveryMs, then twice as long each time, up to maxAnnotateEveryMs. */
  private backOff(backoffs: Map<string, Backoff>, key: string, now: number): void {
    const b = backoffs.get(key);
    backoffs.set(key, { at: now, waitMs: b ? Math.min(b.waitMs * 2, this.o.maxAnnotateEveryMs) : this.o.annotateEveryMs });
  }

  /** Makes sure syncStatus runs again by `at` (an earlier timer stays: its pass sets the next one). */
  private wakeAt(at: number, now: number): void {
    if (at === Infinity || at >= this.statusTimerAt) return;
    this.o.timers.clearTimeout(this.statusTimer);
    this.statusTimerAt = at;
    this.statusTimer = this.o.timers.setTimeout(() => {
      this.statusTimer = undefined;
      this.statusTimerAt = Infinity;
      this.syncStatus();
    }, Math.max(0, Math.ceil(at - now)));
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

  /** Extra single announcements at `atMs` after the first (one timer at a time, each setting the next). */
  private quickRepeat(ifname: string, ip: string, atMs: readonly number[], sinceMs = 0): void {
    const key = `quick ${ifname} ${ip}`;
    this.o.timers.clearTimeout(this.repeats.get(key));
    this.repeats.delete(key);
    const [next, ...rest] = atMs;
    if (next === undefined) return;
    this.repeats.set(key, this.o.timers.setTimeout(() => {
      this.repeats.delete(key);
      if (this.stopped) return;
      this.responders.get(ifname)?.announce(ip);
      this.quickRepeat(ifname, ip, rest, next);
    }, Math.max(0, next - sinceMs)));
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

  async stop(reason: StopReason = 'restart'): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const mode = reason === 'leave' ? 'leave' : this.o.stopMode;
    for (const h of this.repeats.values()) this.o.timers.clearTimeout(h);
    this.repeats.clear();
    this.o.timers.clearTimeout(this.refreshTimer);
    this.o.timers.clearTimeout(this.settleTimer);
    this.o.timers.clearTimeout(this.statusTimer);
    this.statusTimer = undefined;
    clearInterval(this.metricsTimer);
    this.syncMetrics();
    for (const r of this.responders.values()) {
      r.setOwned([]);
      r.close();
    }
    this.responders.clear();
    await this.arpFilterBusy;
    // A restart keeps the table: the VIPs stay in place for the hold time, and
    // other nodes' kernels must still keep quiet. Leaving removes it.
    if (mode === 'leave' && this.mayHoldArpFilter()) {
      await this.o.nft(renderArpFilterDelete()).catch((err: unknown) => this.o.log.error('cannot remove the ARP filter', { table: 'arp portico', err }));
    }
    await this.membership.stop(mode);
  }

  /**
   * Whether the table arp portico may be on this node: written by this
   * process, or by an earlier speaker under the same settings (one that had
   * layer-2 VIPs before a restart, when this one never had any).
   */
  private mayHoldArpFilter(): boolean {
    if (this.arpFilter || this.arpFilterWritten !== undefined) return true;
    return this.o.strictArp === 'nftables' || (this.o.strictArp === 'auto' && !this.o.sysctlWritable());
  }

  /** The IPv4 VIPs of every layer-2 Service in the last plan (whoever owns them): the kernel answers for none of them. */
  arpFilterVips(): string[] {
    const ips = new Set<string>();
    for (const s of this.lastPlan?.services ?? []) for (const ip of s.ips) if (!ip.includes(':')) ips.add(canonicalIP(ip));
    return [...ips].sort();
  }

  /** Writes the ARP filter when its VIP list changed; one write at a time, the newest list last. A failed write is retried with the next reconcile. */
  private syncArpFilter(): void {
    if (this.arpFilterBusy) { this.arpFilterAgain = true; return; }
    const vips = this.arpFilterVips();
    const key = vips.join(',');
    if (key === this.arpFilterWritten) return;
    this.arpFilterBusy = this.o.nft(renderArpFilter(vips)).then(
      () => {
        if (this.arpFilterWritten === undefined) this.o.log.info('ARP filter written', { table: 'arp portico', vips: vips.length });
        this.arpFilterWritten = key;
      },
      (err: unknown) => {
        this.arpFilterWritten = undefined;
        this.o.log.error('cannot write the ARP filter; the kernel may answer ARP for local VIPs', { table: 'arp portico', vips: vips.length, retryInMs: ARP_FILTER_RETRY_MS, err });
        this.o.timers.setTimeout(() => { if (!this.stopped) this.syncArpFilter(); }, ARP_FILTER_RETRY_MS);
      },
    ).finally(() => {
      this.arpFilterBusy = undefined;
      if (this.arpFilterAgain && !this.stopped) { this.arpFilterAgain = false; this.syncArpFilter(); }
    });
  }
}
