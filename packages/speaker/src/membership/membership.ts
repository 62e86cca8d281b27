// Runtime membership: sends this speaker's authenticated heartbeat to every
// other node every interval over UDP, verifies what arrives, and keeps the set
// of live speakers with a reason per node. Liveness depends on heartbeats
// alone, so an API-server outage changes nothing here. Sockets and timers are
// injected: tests drive it with a fake clock and transport.
import { remember, sealHeartbeat, verifyHeartbeat, type RejectReason, type ReplayState } from './heartbeat.ts';

/** Default UDP port of the heartbeats. */
export const HEARTBEAT_PORT = 7946;

/** Timers and clocks the membership uses; `now` is monotonic, `wallNow` the epoch clock put in heartbeats. */
export interface MembershipClock {
  now(): number;
  wallNow(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  /** Runs fn once the datagrams already queued have been read (setImmediate: after the poll phase). */
  afterIO(fn: () => void): void;
}

export const realMembershipClock: MembershipClock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
  afterIO: (fn) => { setImmediate(fn); },
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** Datagrams to and from the other speakers (UDP sockets in production, a fake bus in tests). */
export interface HeartbeatTransport {
  send(datagram: Uint8Array, address: string): void;
  onMessage(handler: (datagram: Buffer, from: string) => void): void;
  close(): Promise<void>;
}

export type NodeLiveness =
  /** This speaker. */
  | 'self'
  /** A heartbeat arrived within deadAfterMs. */
  | 'alive'
  /**
   * Just learnt of (from the World) and not heard yet: counted live for one
   * dead-after period, because its heartbeats were dropped as unknown until
   * now. Otherwise a starting speaker would claim every IP before hearing anyone.
   */
  | 'joining'
  /** It announced a planned restart; its IPs stay put until holdMs passes or it is heard again. */
  | 'restarting'
  /** Heard before, silent for deadAfterMs or longer. */
  | 'silent'
  /** Never heard since this speaker started. */
  | 'never-heard'
  /** It announced a graceful shutdown. */
  | 'left'
  /** The Node has no address to send heartbeats to. */
  | 'no-address';

const LIVE: ReadonlySet<NodeLiveness> = new Set(['self', 'alive', 'joining', 'restarting']);

export type DropReason = RejectReason | 'no-key';

export interface MembershipCounters {
  sent: number;
  sendErrors: number;
  accepted: number;
  dropped: Record<DropReason, number>;
  /** Heartbeats never received, from gaps in a peer's sequence numbers. */
  lost: number;
  /** Heartbeats this speaker sent more than one interval late (its own thread waited for a CPU). */
  lateSent: number;
  /** Accepted heartbeats that arrived more than one interval after their timestamp (the sender's clock: meaningful between nodes with synchronised clocks). */
  lateReceived: number;
  /** Accepted heartbeats their sender sent late (consecutive sequence numbers far apart on its clock): that peer gets a longer grace for a while. */
  starvedPeer: number;
  /** Times this speaker's own heartbeat thread ran late (its tick overdue): that time is not counted as the peers' silence. */
  selfStalls: number;
}

/** Why a peer was just judged dead: what the rule saw (for the log, to tell a crash from a starved machine). */
export interface SilentVerdict {
  node: string;
  /** Monotonic time since its last accepted heartbeat. */
  sinceHeardMs: number;
  /** Of that, time this speaker's own thread was stalled (not counted). */
  selfStalledMs: number;
  /** The silence it was allowed (dead-after, or its grace as a starved sender). */
  allowedMs: number;
  /** Its worst recent send gap on its own clock (0: never seen late). */
  worstLateMs: number;
}

export interface MembershipOptions {
  self: string;
  transport: HeartbeatTransport;
  /** Accepted keys, the one to sign with first; empty: the speaker neither sends nor accepts. */
  keys: () => readonly Uint8Array[];
  clock?: MembershipClock;
  intervalMs?: number;
  /** A peer not heard for this long is dead (default 4 intervals). */
  deadAfterMs?: number;
  /** How long a peer that announced a restart stays live without heartbeats. */
  restartHoldMs?: number;
  /**
   * The longest silence a peer that was recently starved is given (default 4
   * dead-after periods; deadAfterMs turns the rule off). See starvedDeadAfter.
   */
  maxDeadAfterMs?: number;
  /** How long a peer's late send counts towards its grace (default 60 s). */
  lateMemoryMs?: number;
  /** Largest accepted difference between the sender's and our wall clock. */
  maxSkewMs?: number;
  /** Called when the live set or any node's reason changes (not for every heartbeat). */
  onChange?: (live: ReadonlySet<string>) => void;
  onDrop?: (reason: DropReason, detail: string, from: string) => void;
  /** Called when a peer that was alive is judged silent, with what the rule saw. */
  onSilent?: (v: SilentVerdict) => void;
}

interface PeerState {
  addresses: readonly string[];
  /** When setPeers first named it (monotonic). */
  addedAt: number;
  /** Monotonic time of the last accepted heartbeat; undefined = never. */
  heardAt: number | undefined;
  incarnation: number;
  sequence: number;
  left: boolean;
  holdUntil: number | undefined;
  /** The sender's own clock in its last heartbeat. */
  timestamp: number;
  /** Sends this peer made late (its heartbeat thread waited for a CPU), newest last. */
  late: LateSend[];
}

/** A heartbeat its sender sent late: the gap between two consecutive sends on the sender's own clock. */
export interface LateSend {
  /** Receiver's monotonic time of arrival. */
  at: number;
  /** Sender's clock between this heartbeat and the one before (sequence numbers consecutive), ms. */
  gapMs: number;
}

export interface StarvedRule {
  intervalMs: number;
  deadAfterMs: number;
  maxDeadAfterMs: number;
  lateMemoryMs: number;
}

/**
 * How long `late`'s peer may stay silent before it is dead, at `now`. A peer
 * crashes once but starves again and again: a busy machine delays its
 * heartbeat thread in bursts. Its heartbeats' own timestamps and sequence
 * numbers tell the two apart from packet loss: consecutive sequence numbers
 * sent far apart on the sender's clock mean the sender itself waited (a
 * network that drops heartbeats shows gaps in the sequence instead, and the
 * receiver's own stalls do not show at all). So a peer seen sending late in
 * the last lateMemoryMs gets its worst such gap plus an interval, up to
 * maxDeadAfterMs; a peer that never sent late keeps deadAfterMs, and its
 * crash is detected as fast as before. Pure.
 */
export function starvedDeadAfter(late: readonly LateSend[], now: number, r: StarvedRule): number {
  let worst = 0;
  for (const l of late) if (now - l.at < r.lateMemoryMs && l.gapMs > worst) worst = l.gapMs;
  return worst === 0 ? r.deadAfterMs : Math.max(r.deadAfterMs, Math.min(r.maxDeadAfterMs, worst + r.intervalMs));
}

/** A stretch this speaker's own heartbeat thread did not run when due: [at - ms, at] on the monotonic clock. */
export interface Stall {
  at: number;
  ms: number;
}

/**
 * How long a peer heard at `heardAt` has been silent at `now`, counting only
 * the time this speaker was running on time. When the machine is starved (or
 * the VM not scheduled) the peers' threads usually wait too: a speaker that
 * wakes from a 1 s stall has not yet had a chance to hear them, and their
 * overdue heartbeats leave only once they run. The stretches this speaker's
 * own tick came late are not counted as silence (an ongoing one, a tick
 * overdue at `now`, included); a crash is still found after deadAfterMs of
 * this speaker's own running time. Pure.
 */
export function silenceMs(heardAt: number, now: number, stalls: readonly Stall[]): number {
  return now - heardAt - stalledWithin(heardAt, now, stalls);
}

/** The time of `stalls` inside [from, to]. Pure. */
export function stalledWithin(from: number, to: number, stalls: readonly Stall[]): number {
  let credit = 0;
  for (const s of stalls) {
    const start = Math.max(s.at - s.ms, from);
    const end = Math.min(s.at, to);
    if (end > start) credit += end - start;
  }
  return credit;
}

export class Membership {
  readonly counters: MembershipCounters;
  startedAt: number;
  private readonly o: Required<Omit<MembershipOptions, 'onChange' | 'onDrop' | 'onSilent'>> & MembershipOptions;
  private readonly peers = new Map<string, PeerState>();
  private replay: ReplayState = new Map();
  private readonly incarnation: number;
  private sequence = 0;
  private timer: unknown;
  private lastLive = new Set<string>();
  private lastReasons = new Map<string, NodeLiveness>();
  private stopped = false;

  constructor(opts: MembershipOptions) {
    const intervalMs = opts.intervalMs ?? 100;
    const deadAfterMs = opts.deadAfterMs ?? intervalMs * 4;
    this.o = { clock: realMembershipClock, intervalMs, deadAfterMs, restartHoldMs: 15_000, maxSkewMs: 30_000, maxDeadAfterMs: deadAfterMs * 4, lateMemoryMs: 60_000, ...opts };
    this.counters = { sent: 0, sendErrors: 0, accepted: 0, lost: 0, lateSent: 0, lateReceived: 0, starvedPeer: 0, selfStalls: 0, dropped: { malformed: 0, 'bad-mac': 0, replay: 0, stale: 0, 'unknown-node': 0, self: 0, 'no-key': 0 } };
    this.startedAt = this.o.clock.now();
    // The wall clock at start identifies this run, so a restarted speaker's sequence may begin again at 1.
    this.incarnation = this.o.clock.wallNow();
    this.lastLive = new Set([this.o.self]);
    this.o.transport.onMessage((d, from) => this.receive(d, from));
  }

  /** Begins the heartbeat loop; settled() counts from here. */
  start(): void {
    this.startedAt = this.o.clock.now();
    this.tick();
  }

  /**
   * The nodes to exchange heartbeats with and their addresses (from the
   * World's Nodes). A node that disappears from the World is forgotten; one
   * that appears starts as never-heard.
   */
  setPeers(nodes: ReadonlyMap<string, readonly string[]>): void {
    for (const name of [...this.peers.keys()]) if (!nodes.has(name)) this.peers.delete(name);
    for (const [name, addresses] of nodes) {
      if (name === this.o.self) continue;
      const p = this.peers.get(name);
      if (p) p.addresses = addresses;
      else this.peers.set(name, { addresses, addedAt: this.o.clock.now(), heardAt: undefined, incarnation: 0, sequence: 0, left: false, holdUntil: undefined, timestamp: 0, late: [] });
    }
    // A World can arrive right after this thread stalled: judge once the queued heartbeats are read.
    this.evaluateAfterIO();
  }

  /**
   * True once every peer has had a full dead-after period to be heard: before
   * that, an empty live set means "not yet", not "everyone is dead", and the
   * announcer must not claim IPs on it.
   */
  settled(): boolean {
    return this.o.clock.now() - this.startedAt >= this.o.deadAfterMs;
  }

  /**
   * Each node's reason as last judged (after the queued heartbeats were
   * read): what onChange reported. reasons() judges again now.
   */
  verdict(): ReadonlyMap<string, NodeLiveness> {
    return this.lastReasons;
  }

  /** Each known node (this one included) with its liveness reason, sorted by name. */
  reasons(): Map<string, NodeLiveness> {
    const now = this.o.clock.now();
    const out = new Map<string, NodeLiveness>([[this.o.self, 'self']]);
    for (const [name, p] of this.peers) out.set(name, this.reasonOf(p, now));
    return new Map([...out].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  live(): ReadonlySet<string> {
    return this.lastLive;
  }

  /**
   * Stops sending. `mode` tells the peers why: 'leave' (they take the IPs at
   * once), 'restart' (they hold the IPs for restartHoldMs), 'silent' (nothing
   * is sent, as in a crash; for tests).
   */
  async stop(mode: 'leave' | 'restart' | 'silent' = 'leave'): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.o.clock.clearTimeout(this.timer);
    // A few copies: one lost datagram must not turn a planned restart into a failover.
    if (mode !== 'silent') for (let i = 0; i < 3; i++) this.broadcast({ leaving: mode === 'leave', restarting: mode === 'restart' });
    await this.o.transport.close();
  }

  private nextTickAt: number | undefined;
  /** This thread's own late ticks, newest last (see silenceMs). */
  private stalls: Stall[] = [];

  /** The own stalls, with the ongoing one (a tick overdue at `now`) as if it ended now. */
  private stallsAt(now: number): readonly Stall[] {
    const overdue = this.nextTickAt === undefined ? 0 : now - this.nextTickAt;
    return overdue > this.stallThresholdMs() ? [...this.stalls, { at: now, ms: overdue }] : this.stalls;
  }

  /** Timer jitter below this is not a stall (a tenth of an interval). */
  private stallThresholdMs(): number {
    return this.o.intervalMs / 10;
  }

  private tick(): void {
    if (this.stopped) return;
    const now = this.o.clock.now();
    const overdue = this.nextTickAt === undefined ? 0 : now - this.nextTickAt;
    if (overdue > this.o.intervalMs) this.counters.lateSent++;
    if (overdue > this.stallThresholdMs()) {
      this.counters.selfStalls++;
      // Only stalls since the oldest heartbeat that still matters are needed: the longest grace back.
      const keepFrom = now - this.o.maxDeadAfterMs - overdue;
      this.stalls = [...this.stalls.filter((s) => s.at >= keepFrom), { at: now, ms: overdue }].slice(-64);
    }
    this.nextTickAt = now + this.o.intervalMs;
    this.broadcast({ leaving: false, restarting: false });
    // Timers run before I/O in Node's loop: after this process stalled (GC, a
    // long World update, a starved CPU) the peers' heartbeats are still
    // queued in the socket. Judge silence only once they have been read, or
    // our own stall would be taken for the peers' death.
    this.evaluateAfterIO();
    this.timer = this.o.clock.setTimeout(() => this.tick(), this.o.intervalMs);
  }

  private evaluationPending = false;

  /** One evaluation after the queued datagrams are read, however many asked for it. */
  private evaluateAfterIO(): void {
    if (this.evaluationPending) return;
    this.evaluationPending = true;
    this.o.clock.afterIO(() => {
      this.evaluationPending = false;
      if (!this.stopped) this.evaluate();
    });
  }

  private broadcast(flags: { leaving: boolean; restarting: boolean }): void {
    const key = this.o.keys()[0];
    if (!key) return;
    this.sequence++;
    const datagram = sealHeartbeat({ node: this.o.self, incarnation: this.incarnation, sequence: this.sequence, timestamp: this.o.clock.wallNow(), ...flags }, key);
    for (const p of this.peers.values()) {
      const address = p.addresses[0];
      if (address === undefined) continue;
      try {
        this.o.transport.send(datagram, address);
        this.counters.sent++;
      } catch {
        this.counters.sendErrors++;
      }
    }
  }

  private drop(reason: DropReason, detail: string, from: string): void {
    this.counters.dropped[reason]++;
    this.o.onDrop?.(reason, detail, from);
  }

  private receive(datagram: Buffer, from: string): void {
    if (this.stopped) return;
    const keys = this.o.keys();
    if (keys.length === 0) { this.drop('no-key', 'no heartbeat key loaded', from); return; }
    const v = verifyHeartbeat(datagram, { keys, now: this.o.clock.wallNow(), maxSkewMs: this.o.maxSkewMs, state: this.replay, self: this.o.self, knownNodes: new Set(this.peers.keys()) });
    if (!v.ok) { this.drop(v.reason, v.detail, from); return; }
    const h = v.heartbeat;
    this.replay = remember(this.replay, h);
    const p = this.peers.get(h.node)!;
    if (p.incarnation === h.incarnation && h.sequence > p.sequence + 1 && p.heardAt !== undefined) this.counters.lost += h.sequence - p.sequence - 1;
    const now = this.o.clock.now();
    if (p.incarnation === h.incarnation && h.sequence === p.sequence + 1) {
      // Consecutive sends far apart on the sender's own clock: the sender waited, not the network.
      const gapMs = h.timestamp - p.timestamp;
      if (gapMs > this.o.intervalMs * 1.5) {
        this.counters.starvedPeer++;
        p.late = [...p.late.filter((l) => now - l.at < this.o.lateMemoryMs), { at: now, gapMs }].slice(-32);
      }
    } else if (p.incarnation !== h.incarnation) {
      p.late = [];
    }
    p.incarnation = h.incarnation;
    p.sequence = h.sequence;
    p.timestamp = h.timestamp;
    this.counters.accepted++;
    if (this.o.clock.wallNow() - h.timestamp > this.o.intervalMs) this.counters.lateReceived++;
    if (h.leaving) {
      p.left = true;
      p.heardAt = undefined;
      p.holdUntil = undefined;
    } else if (h.restarting) {
      p.left = false;
      p.holdUntil = now + this.o.restartHoldMs;
      p.heardAt = undefined;
    } else {
      p.left = false;
      p.holdUntil = undefined;
      p.heardAt = now;
    }
    this.evaluateAfterIO();
  }

  private reasonOf(p: PeerState, now: number, stalls = this.stallsAt(now)): NodeLiveness {
    if (p.heardAt !== undefined && silenceMs(p.heardAt, now, stalls) < starvedDeadAfter(p.late, now, this.o)) return 'alive';
    if (p.holdUntil !== undefined && now < p.holdUntil) return 'restarting';
    if (p.left) return 'left';
    if (p.addresses.length === 0) return 'no-address';
    if (p.heardAt === undefined && p.holdUntil === undefined && now - p.addedAt < this.o.deadAfterMs) return 'joining';
    return p.heardAt === undefined && p.holdUntil === undefined ? 'never-heard' : 'silent';
  }

  /** Recomputes the live set and tells the listener when it or any reason changed. */
  private evaluate(): void {
    const reasons = this.reasons();
    if (this.o.onSilent) this.explainSilent(reasons);
    const live = new Set([...reasons].filter(([, r]) => LIVE.has(r)).map(([n]) => n));
    const changed = reasons.size !== this.lastReasons.size || [...reasons].some(([n, r]) => this.lastReasons.get(n) !== r);
    this.lastReasons = reasons;
    if (!changed) return;
    const liveChanged = live.size !== this.lastLive.size || [...live].some((n) => !this.lastLive.has(n));
    this.lastLive = live;
    if (liveChanged || changed) this.o.onChange?.(live);
  }

  /** Tells onSilent why each peer that was alive at the last judgement is silent now. */
  private explainSilent(reasons: ReadonlyMap<string, NodeLiveness>): void {
    const now = this.o.clock.now();
    const stalls = this.stallsAt(now);
    for (const [node, r] of reasons) {
      const p = this.peers.get(node);
      if (r !== 'silent' || this.lastReasons.get(node) !== 'alive' || !p || p.heardAt === undefined) continue;
      const worstLateMs = p.late.filter((l) => now - l.at < this.o.lateMemoryMs).reduce((w, l) => Math.max(w, l.gapMs), 0);
      this.o.onSilent!({ node, sinceHeardMs: Math.round(now - p.heardAt), selfStalledMs: Math.round(stalledWithin(p.heardAt, now, stalls)), allowedMs: starvedDeadAfter(p.late, now, this.o), worstLateMs });
    }
  }
}
