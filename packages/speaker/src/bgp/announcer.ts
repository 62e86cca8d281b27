// The speaker's BGP announcer: turns each World into the policy plan
// (policy.ts), keeps one session per planned peer (created, replaced when its
// settings change, stopped when the peer leaves), hands each session its whole
// set of advertisements, and reports what users must see: metrics, Events with
// the NOTIFICATION in words, and the graceful-restart memory across restarts.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { API_VERSION, LEGACY_CONFIGMAP, NAMESPACE, formatIP, nullLogger, tryParseIP, type EventTarget, type Logger, type Registry, type SharedMetrics } from '@portico/shared';
import type { Announcer, StopReason, World } from '../world/types.ts';
import { Damper, DEFAULT_DAMPING, type DampingConfig } from '../bfd/damping.ts';
import type { BfdConfig } from '../bfd/fsm.ts';
import { BfdManager, type BfdPeerSpec } from '../bfd/manager.ts';
import { createBfdMetrics, STATE_CODE, type BfdMetrics } from '../bfd/metrics.ts';
import { diagName } from '../bfd/packet.ts';
import type { BfdSnapshot, StateChange } from '../bfd/session.ts';
import { DEFAULT_MINIMUM_TTL, UdpEndpoint, type BfdNetwork, type BfdPath } from '../bfd/transport.ts';
import { systemClock, type Clock } from './clock.ts';
import type { Negotiated, Reason, State } from './fsm.ts';
import { AFI_IPV4, AFI_IPV6, SAFI_UNICAST } from './ip.ts';
import type { NotificationMessage, UpdateMessage } from './message.ts';
import { announcedPrefixes, createBgpMetrics, type BgpMetrics } from './metrics.ts';
import { md5SocketFactory } from './md5.ts';
import { bgpDetail, describeNotification, notificationCodeName, notificationSubcodeName, ERR_HOLD_TIMER, ERR_OPEN } from './notification.ts';
import { localAsnOf, peerAsnRule, planBgp, unsupportedPeer, type BgpPlan, type PeerPlan, type PeerSettings } from './policy.ts';
import { BgpSession, type SessionOptions, type SocketFactory } from './session.ts';
import { kubernetesSecretSource, lookupPassword, PASSWORD_KEY, type PasswordLookup, type SecretSource } from './secrets.ts';
import { StatusReconciler, desiredStatuses, kubernetesStatusStore } from './status.ts';

/** Where Events go (StatusWriter.event has this shape). */
export interface EventSink {
  event(target: EventTarget, type: 'Normal' | 'Warning', reason: string, message: string): unknown;
}

/** The session surface the announcer uses; tests may pass another implementation. */
export type SessionFactory = (opts: SessionOptions) => BgpSession;

export interface BgpAnnouncerOptions {
  log?: Logger;
  /** Metrics are registered here (one announcer per registry). */
  registry?: Registry;
  metrics?: BgpMetrics;
  events?: EventSink;
  /** Secrets of Portico's namespace, watched: passwordSecret is read here. Started when the first peer needs it. */
  secrets?: SecretSource;
  /** How long an update waits for the Secret watch's first list before it reports the Secret unread, ms. */
  secretSyncWaitMs?: number;
  /** Directory for the graceful-restart memory; none: every start is a fresh start. */
  stateDir?: string;
  /** Namespace of BGPPeer objects, for Events. */
  namespace?: string;
  socketFactory?: SocketFactory;
  sessionFactory?: SessionFactory;
  clock?: Clock;
  /** Graceful restart time offered to peers (RFC 4724 §3), seconds. */
  restartTime?: number;
  /** Default connect retry time when the BGPPeer sets no connectTime, seconds. */
  connectTime?: number;
  /** Consecutive connection timeouts with TCP MD5 on before the password is blamed in an Event. */
  md5FailureThreshold?: number;
  /** Writes the ServiceBGPStatus objects of this node; none: no status objects. */
  statuses?: StatusReconciler;
  /**
   * Accept peers' connections here (port 179 in the speaker; 0: any free port),
   * on every address, IPv4 and IPv6. A connection from a configured peer's
   * address goes to that peer's session, whose FSM resolves a collision with
   * its own attempt (RFC 4271 §6.8); any other is closed. None: outgoing only.
   */
  listen?: { port: number; host?: string };
  /**
   * The network BFD sessions run on; default: UDP ports 3784/4784 through the
   * native addon, opened when the first peer with a bfdProfile appears.
   */
  bfdNetwork?: () => BfdNetwork;
  /** Flap damping of BFD-driven BGP resets. */
  damping?: DampingConfig;
}

/** What a peer's session looks like now, for status and tests. */
export interface PeerStatus {
  peer: string;
  state: State;
  announced: string[];
  /** The last reason the session went down or failed to come up. */
  lastError: string | undefined;
  /** The BFD session protecting this peer, when its BGPPeer names a bfdProfile. */
  bfd?: BfdSnapshot & { damped: boolean };
  /** What is wrong with the peer's passwordSecret now (the session runs on the last good password). */
  passwordSecret?: string;
}

interface Entry {
  name: string;
  key: string;
  peer: PeerSettings;
  session: BgpSession;
  gracefulRestart: boolean;
  connectFailures: number;
  lastError: string | undefined;
  warnedPassword: boolean;
  /** The OPEN error just sent, reported with its cause when the FSM reaches Idle. */
  openRefusal?: string | undefined;
}

const GR_FILE = 'bgp-graceful-restart.json';

/** RFC 4271 §8.2.1: BGP listens on TCP port 179. */
export const BGP_PORT = 179;

export { PASSWORD_KEY };

/** The Event reason and message for a passwordSecret that gives no password (the field is named in every message). */
export function passwordProblem(r: Exclude<PasswordLookup, { ok: true }>, ref: { name: string; namespace: string }, watched: string): { reason: string; message: string } {
  const where = `${ref.namespace}/${ref.name}`;
  switch (r.reason) {
    case 'other-namespace':
      return { reason: 'BGPPasswordSecretUnreadable', message: `passwordSecret.namespace is ${ref.namespace}: the speaker reads Secrets in ${watched} only` };
    case 'not-synced':
      return { reason: 'BGPPasswordSecretUnreadable', message: `passwordSecret ${where} not read yet: the speaker's watch on the Secrets of ${watched} has not listed them (RBAC?)` };
    case 'no-secret':
      return { reason: 'BGPPasswordSecretMissing', message: `Secret ${where} does not exist (named in passwordSecret)` };
    case 'no-password-key':
      return { reason: 'BGPPasswordSecretMissing', message: `Secret ${where} (passwordSecret) has no "${PASSWORD_KEY}" key` };
    case 'empty-password':
      return { reason: 'BGPPasswordSecretMissing', message: `Secret ${where} (passwordSecret) has an empty "${PASSWORD_KEY}" key` };
  }
}

const notificationReason = (n: NotificationMessage): string =>
  n.code === ERR_HOLD_TIMER ? notificationCodeName(n.code) : `${notificationCodeName(n.code)} / ${notificationSubcodeName(n.code, n.subcode)}`;

export class BgpAnnouncer implements Announcer {
  readonly name = 'bgp';
  readonly #o: Required<Pick<BgpAnnouncerOptions, 'restartTime' | 'connectTime' | 'md5FailureThreshold' | 'secretSyncWaitMs' | 'namespace'>> & BgpAnnouncerOptions;
  readonly #log: Logger;
  readonly #metrics: BgpMetrics;
  readonly #sessions = new Map<string, Entry>();
  /** Peers (by identity) this node was announcing to when it last ran: they get the R bit. */
  readonly #restarting: Set<string>;
  /** Per peer: the last password its passwordSecret gave, kept while the Secret is bad. */
  readonly #goodPasswords = new Map<string, { secret: string; password: string }>();
  /** Per peer: the passwordSecret problem last reported, so each is reported once. */
  readonly #secretProblems = new Map<string, string>();
  #watchingSecrets = false;
  #plan: BgpPlan | undefined;
  #world: World | undefined;
  #queue: Promise<void> = Promise.resolve();
  #stopped = false;
  /** Peers refused for a setting the speaker cannot run, and the Warning they got. */
  #unsupported = new Map<string, string>();
  #server: Server | undefined;
  #listening: Promise<void> | undefined;
  #bfd: BfdManager | undefined;
  #bfdMetrics: BfdMetrics | undefined;
  /** Per peer: its damping state and, while held down, the timer that lets the BGP session start again. */
  readonly #damping = new Map<string, { damper: Damper; hold: unknown }>();

  constructor(opts: BgpAnnouncerOptions = {}) {
    this.#o = { restartTime: 120, connectTime: 5, md5FailureThreshold: 3, secretSyncWaitMs: 5_000, namespace: NAMESPACE, ...opts };
    this.#log = (opts.log ?? nullLogger).child({ component: 'bgp' });
    if (opts.metrics) this.#metrics = opts.metrics;
    else if (opts.registry) this.#metrics = createBgpMetrics(opts.registry);
    else throw new TypeError('BgpAnnouncer needs a registry or metrics');
    this.#restarting = new Set(this.#readGrState());
  }

  /** The last plan (reasons for every Service IP and peer). */
  get plan(): BgpPlan | undefined {
    return this.#plan;
  }

  /** The port the listener is bound to, once it is. */
  get listeningPort(): number | undefined {
    const a = this.#server?.address();
    return a && typeof a === 'object' ? a.port : undefined;
  }

  status(): PeerStatus[] {
    return [...this.#sessions.values()].map((e) => {
      const st: PeerStatus = { peer: e.name, state: e.session.state, announced: e.session.announced.sort(), lastError: e.lastError };
      const bfd = this.#bfd?.snapshot(e.name);
      if (bfd) st.bfd = { ...bfd, damped: this.#damping.get(e.name)?.hold !== undefined };
      const secret = this.#secretProblems.get(e.name);
      if (secret !== undefined) st.passwordSecret = secret;
      return st;
    });
  }

  update(world: World): Promise<void> {
    const run = this.#queue.then(() => this.#apply(world));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Stops every session. On a restart a session with graceful restart is
   * dropped without a NOTIFICATION, so the peer keeps forwarding to this node
   * until the restarted speaker re-sends its routes (RFC 4724 §4.2); the
   * others, and every session when leaving (no speaker follows), end with
   * Cease / Administrative Shutdown and the peer withdraws at once. Leaving
   * also removes the graceful-restart memory from the state directory.
   */
  async stop(reason: StopReason = 'restart'): Promise<void> {
    await this.#queue;
    this.#stopped = true;
    const server = this.#server;
    this.#server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    const closing: Promise<void>[] = [];
    for (const e of this.#sessions.values()) {
      if (reason === 'restart' && e.gracefulRestart && e.session.state === 'Established') {
        e.session.abandon();
      } else {
        closing.push(this.#stopSession(e, 'Portico speaker stopping'));
      }
      this.#metrics.sessionUp.remove({ peer: e.name });
      this.#metrics.prefixesAnnounced.remove({ peer: e.name });
    }
    await Promise.all(closing);
    this.#sessions.clear();
    // AdminDown to every BFD peer: a deliberate stop, not a path failure (RFC 5882 §3.2).
    for (const d of this.#damping.values()) if (d.hold !== undefined) this.#clock().clearTimeout(d.hold);
    this.#damping.clear();
    this.#bfd?.set([]);
    this.#bfd?.close();
    this.#bfd = undefined;
    await this.#o.statuses?.stop();
    const gr = this.#grPath();
    if (reason === 'leave' && gr) rmSync(gr, { force: true });
    if (this.#watchingSecrets) await this.#o.secrets?.stop();
  }

  async #apply(world: World): Promise<void> {
    if (this.#stopped) return;
    if (this.#o.listen) await (this.#listening ??= this.#listen(this.#o.listen));
    const plan = planBgp(world);
    this.#plan = plan;
    this.#world = world;
    this.#o.statuses?.set(desiredStatuses(world.self, plan));
    const wanted = new Set(plan.peers.map((p) => p.peer.name));
    this.#reportUnsupported(world, plan);
    for (const e of [...this.#sessions.values()]) {
      if (!wanted.has(e.name)) {
        this.#log.info('bgp peer removed', { peer: e.name });
        await this.#retire(e, 'peer no longer configured for this node');
      }
    }
    for (const m of [this.#goodPasswords, this.#secretProblems]) for (const name of [...m.keys()]) if (!wanted.has(name)) m.delete(name);
    for (const p of plan.peers) {
      const password = await this.#password(p);
      if (password === null) continue; // Secret unreadable: keep what runs, start nothing.
      const opts = this.#sessionOptions(p, password);
      const key = sessionKey(opts);
      let e = this.#sessions.get(p.peer.name);
      if (e && e.key !== key) {
        this.#log.info('bgp peer settings changed', { peer: e.name });
        await this.#retire(e, 'peer settings changed');
        e = undefined;
      }
      if (!e) e = this.#open(p, opts, key);
      e.session.set(p.ads);
    }
    this.#applyBfd(world, plan);
    for (const p of plan.peers) {
      for (const s of p.skipped) this.#log.debug('prefix not sent to peer', { peer: p.peer.name, prefix: s.prefix, reason: s.reason });
    }
  }

  // ---- BFD ----------------------------------------------------------------

  #clock(): Clock {
    return this.#o.clock ?? systemClock;
  }

  /** One BFD session per planned peer whose BGPPeer names an existing bfdProfile (the config layer reports unknown names). */
  #applyBfd(world: World, plan: BgpPlan): void {
    const profiles = new Map((world.config?.bfdProfiles ?? []).map((p) => [p.name, p]));
    const specs: BfdPeerSpec[] = [];
    for (const p of plan.peers) {
      const profile = p.peer.bfdProfile === undefined ? undefined : profiles.get(p.peer.bfdProfile);
      if (!profile) continue;
      specs.push({ key: p.peer.name, path: bfdPath(p.peer, profile), config: bfdConfig(profile) });
    }
    for (const [name, d] of this.#damping) {
      if (specs.some((s) => s.key === name)) continue;
      if (d.hold !== undefined) this.#clock().clearTimeout(d.hold);
      this.#damping.delete(name);
    }
    if (specs.length === 0 && !this.#bfd) return;
    try {
      this.#bfdManager().set(specs);
    } catch (err) {
      this.#log.error('bfd sessions not started', { err });
      for (const s of specs) this.#warnPeer(s.key, 'BFDUnavailable', `BFD cannot run on this node: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  #bfdManager(): BfdManager {
    if (this.#bfd) return this.#bfd;
    const clock = this.#clock();
    const network = (this.#o.bfdNetwork ?? (() => new UdpEndpoint({ onError: (err, where) => this.#log.debug('bfd socket error', { where, err }) })))();
    const registry = this.#o.registry;
    this.#bfd = new BfdManager({
      network, clock,
      onStateChange: (key, change, snap) => this.#bfdChanged(key, change, snap),
      onDrop: (reason, r, detail) => {
        this.#bfdMetrics?.dropped.inc({ reason });
        this.#log.debug('bfd packet dropped', { reason, src: r.src, ttl: r.ttl, detail: detail ?? null });
      },
    });
    if (registry && !this.#bfdMetrics) {
      this.#bfdMetrics = createBfdMetrics(registry, () => (this.#bfd?.sessions() ?? []).map((s) => ({ peer: s.key, snapshot: s.snapshot, now: clock.now() })));
    }
    return this.#bfd;
  }

  #bfdChanged(key: string, change: StateChange, snap: BfdSnapshot): void {
    const e = this.#sessions.get(key);
    const m = this.#bfdMetrics;
    m?.state.set({ peer: key }, STATE_CODE[change.to]);
    if (change.from === 'Up') m?.flaps.inc({ peer: key });
    const fields = { peer: key, from: change.from, to: change.to, diag: diagName(change.diag), reason: change.reason };
    this.#log.info('bfd session state', fields);
    if (!e) return;
    const address = e.peer.peerAddress;
    let d = this.#damping.get(key);
    if (change.to === 'Up') {
      if (d?.hold === undefined) this.#event(e.peer, 'Normal', 'BFDSessionUp', `BFD session with ${address} up (detection time ${snap.detectionTimeMs} ms)`);
      return;
    }
    if (change.from !== 'Up') return;
    if (change.reason === 'remote-admin-down') {
      // RFC 5882 §3.2: AdminDown from the peer is a decision, not a failure of the path; BGP stays.
      this.#event(e.peer, 'Normal', 'BFDPeerAdminDown', `${address} took the BFD session administratively down; the BGP session is kept`);
      return;
    }
    // The path failed: reset BGP now instead of waiting for the hold timer.
    e.session.bfdDown(`BFD session Down: ${diagName(change.diag)}`);
    e.lastError = `BFD down: ${diagName(change.diag)}`;
    if (!d) this.#damping.set(key, (d = { damper: new Damper(this.#o.damping ?? DEFAULT_DAMPING), hold: undefined }));
    const clock = this.#clock();
    const now = clock.now();
    const wasHeld = d.hold !== undefined;
    if (!d.damper.flap(now)) {
      this.#event(e.peer, 'Warning', 'BFDSessionDown', `BFD session with ${address} down (${diagName(change.diag)}); BGP session reset`);
      return;
    }
    // Flapping: keep the BGP session down until the penalty decays.
    m?.damped.inc({ peer: key });
    e.session.stop('BFD flapping: held down by damping');
    if (wasHeld) clock.clearTimeout(d.hold);
    const wait = Math.max(0, d.damper.reuseAt(now) - now);
    const entry = d;
    d.hold = clock.setTimeout(() => {
      entry.hold = undefined;
      const cur = this.#sessions.get(key);
      if (cur !== e || this.#stopped) return;
      this.#log.info('bfd damping released', { peer: key });
      e.session.start();
    }, wait);
    if (!wasHeld) this.#warn(e.peer, 'BFDFlapDamped', `BFD session with ${address} flaps; BGP held down for ${Math.round(wait / 1000)} s`);
  }

  #warnPeer(key: string, reason: string, message: string): void {
    const e = this.#sessions.get(key);
    if (e) this.#warn(e.peer, reason, message);
  }

  /** Starts the listener; a failure (port taken, no permission) is logged and leaves the speaker outgoing-only. */
  #listen(o: { port: number; host?: string }): Promise<void> {
    return new Promise<void>((resolve) => {
      const server = createServer({ noDelay: true }, (socket) => this.#incoming(socket));
      server.once('error', (err) => {
        this.#log.error('bgp listener not started: peers must accept our connections', { port: o.port, err });
        resolve();
      });
      server.listen({ port: o.port, host: o.host ?? '::', ipv6Only: false }, () => {
        this.#server = server;
        server.on('error', (err) => this.#log.error('bgp listener error', { err }));
        this.#log.info('bgp listening', { port: this.listeningPort ?? o.port });
        resolve();
      });
    });
  }

  #incoming(socket: Socket): void {
    const remote = canonicalAddress(socket.remoteAddress ?? '');
    const e = this.#stopped ? undefined : [...this.#sessions.values()].find((x) => canonicalAddress(x.peer.peerAddress) === remote);
    if (!e) {
      this.#log.debug('bgp connection from an address that is no peer of this node closed', { remote });
      socket.destroy();
      return;
    }
    this.#log.debug('bgp connection accepted', { peer: e.name, remote });
    e.session.accept(socket);
  }

  #sessionOptions(p: PeerPlan, password: string | undefined): SessionOptions {
    const peer = p.peer;
    const identity = grIdentity(peer);
    const gr = peer.enableGracefulRestart;
    const opts: SessionOptions = {
      localAsn: localAsnOf(peer), peerAsn: peerAsnRule(peer), bgpId: p.routerId, holdTime: peer.holdTime,
      connectRetryTime: peer.connectTime ?? this.#o.connectTime, passive: false,
      peerAddress: peer.peerAddress, peerPort: peer.peerPort, nextHop: p.nextHop,
    };
    if (peer.keepaliveTime !== undefined) opts.keepaliveTime = peer.keepaliveTime;
    if (peer.sourceAddress !== undefined) opts.sourceAddress = peer.sourceAddress;
    if (password !== undefined && password !== '') opts.password = password;
    // Single-hop eBGP: TTL 1, so the session cannot form through a router (ebgpMultiHop lifts it).
    if (!p.ibgp && !peer.ebgpMultiHop) opts.ttl = 1;
    // Only the peer address's family, when the BGPPeer asks for one session per family.
    if (peer.families === 'session') opts.families = [{ afi: peer.peerAddress.includes(':') ? AFI_IPV6 : AFI_IPV4, safi: SAFI_UNICAST }];
    if (gr) opts.gracefulRestart = { restartTime: this.#o.restartTime, restarting: this.#restarting.has(identity) };
    if (this.#o.clock) opts.clock = this.#o.clock;
    opts.socketFactory = this.#o.socketFactory ?? md5SocketFactory;
    return opts;
  }

  /**
   * The peer's password: inline, from its Secret, undefined for none, null
   * when there is none to use. A Secret that turns bad (deleted, re-created
   * without `password`) is reported at once and the last good password stays
   * in use, so a running session is not cut by a mistake; a peer that never
   * had a good password is not started.
   */
  async #password(p: PeerPlan): Promise<string | undefined | null> {
    const peer = p.peer;
    if (peer.password !== undefined) return peer.password;
    const ref = peer.passwordSecret;
    if (!ref) return undefined;
    const where = `${ref.namespace}/${ref.name}`;
    const src = this.#o.secrets;
    if (!src) {
      this.#secretProblem(peer, 'BGPPasswordSecretUnreadable', `the speaker has no Secret source, so passwordSecret ${where} cannot be read`);
      return null;
    }
    await this.#watchSecrets(src);
    const r = lookupPassword(src, ref);
    if (r.ok) {
      this.#goodPasswords.set(peer.name, { secret: where, password: r.password });
      if (this.#secretProblems.delete(peer.name)) this.#log.info('bgp password secret usable again', { peer: peer.name, secret: where });
      return r.password;
    }
    const last = this.#goodPasswords.get(peer.name);
    const kept = last?.secret === where ? last.password : undefined;
    const { reason, message } = passwordProblem(r, ref, src.namespace);
    this.#secretProblem(peer, reason, `${message}; ${kept === undefined ? 'the session is not started' : 'the last good password stays in use'}`);
    return kept ?? null;
  }

  /** Reports a passwordSecret problem once (until it changes or is mended). */
  #secretProblem(peer: PeerSettings, reason: string, message: string): void {
    if (this.#secretProblems.get(peer.name) === message) return;
    this.#secretProblems.set(peer.name, message);
    this.#warn(peer, reason, message);
  }

  /** Starts the watch on first use and waits (bounded) for its first list; every later change re-applies the last World. */
  async #watchSecrets(src: SecretSource): Promise<void> {
    if (!this.#watchingSecrets) {
      this.#watchingSecrets = true;
      src.onChange((name) => this.#secretChanged(src, name));
    }
    const started = src.start();
    if (src.synced) return;
    let timer: NodeJS.Timeout | undefined;
    const wait = new Promise<void>((resolve) => { timer = setTimeout(resolve, this.#o.secretSyncWaitMs); timer.unref(); });
    await Promise.race([started, wait]);
    clearTimeout(timer);
  }

  #secretChanged(src: SecretSource, name: string): void {
    const world = this.#world;
    if (!world || this.#stopped) return;
    const used = this.#plan?.peers.some((p) => p.peer.password === undefined && p.peer.passwordSecret?.name === name && p.peer.passwordSecret.namespace === src.namespace);
    if (!used) return;
    this.#log.debug('bgp password secret changed', { secret: `${src.namespace}/${name}` });
    this.update(world).catch((err: unknown) => this.#log.error('bgp update after a Secret change failed', { err }));
  }

  #open(p: PeerPlan, opts: SessionOptions, key: string): Entry {
    const name = p.peer.name;
    const session = (this.#o.sessionFactory ?? ((o: SessionOptions) => new BgpSession(o)))(opts);
    const e: Entry = { name, key, peer: p.peer, session, gracefulRestart: opts.gracefulRestart !== undefined, connectFailures: 0, lastError: undefined, warnedPassword: false };
    const m = this.#metrics;
    const log = this.#log.child({ peer: name, peerAddress: p.peer.peerAddress });
    m.sessionUp.set({ peer: name }, 0);
    m.prefixesAnnounced.set({ peer: name }, 0);
    let previous: State = 'Idle';
    session.on('state', (state: State, reason: Reason, detail: string | undefined) => {
      const from = previous;
      previous = state;
      if (this.#sessions.get(name) !== e) return;
      log.debug('bgp session state', { state, reason });
      // A connection attempt that timed out (Connect -> Connect) or failed (Connect -> Active).
      if (from === 'Connect' && (reason === 'connect-retry' || reason === 'tcp-failed')) {
        this.#connectFailed(e, reason === 'connect-retry' ? 'connection attempt timed out' : 'connection failed');
      }
      // The OPEN error was sent just before; now its cause is known (a dynamicASN rule, a hold time...).
      if (reason === 'open-rejected') {
        const text = e.openRefusal ?? 'no NOTIFICATION sent';
        e.openRefusal = undefined;
        e.lastError = `refused the peer's OPEN: ${text}: ${detail ?? ''}`;
        this.#warn(e.peer, 'BGPOpenRejected', `refused the OPEN of ${e.peer.peerAddress}: ${text}: ${detail ?? ''}`);
      }
      if (reason === 'hold-timer-expired') {
        e.lastError = 'hold timer expired';
        this.#warn(e.peer, 'BGPHoldTimerExpired', `nothing heard from ${e.peer.peerAddress} within the hold time (${e.peer.holdTime} s); session reset`);
      }
    });
    session.on('connect-error', (err: Error & { code?: string }) => {
      if (this.#sessions.get(name) !== e) return;
      log.debug('bgp connect error', { err });
      if (err.code === 'ECONNREFUSED') {
        e.lastError = 'connection refused';
        this.#warn(e.peer, 'BGPPeerRefused', `${e.peer.peerAddress}:${e.peer.peerPort} refused the TCP connection (nothing listening, or BGP not configured for this node)`);
      } else if (err.code === 'EADDRNOTAVAIL' || err.code === 'EINVAL') {
        e.lastError = `cannot bind ${e.peer.sourceAddress ?? 'source address'}: ${err.code}`;
        this.#warn(e.peer, 'BGPSourceAddressUnavailable', `cannot connect from ${e.peer.sourceAddress ?? 'this node'}: ${err.message}`);
      }
    });
    session.on('established', (asn: Negotiated) => {
      if (this.#sessions.get(name) !== e) return;
      log.info('bgp session established', {});
      e.connectFailures = 0;
      e.warnedPassword = false;
      e.lastError = undefined;
      m.sessionUp.set({ peer: name }, 1);
      // The R bit is for the first session after a restart only (RFC 4724 §4.1).
      this.#restarting.delete(grIdentity(e.peer));
      if (e.gracefulRestart) this.#markAnnouncing(e.peer, true);
      this.#event(e.peer, 'Normal', 'BGPSessionEstablished', `BGP session with ${e.peer.peerAddress} (AS ${asn.peerAsn}${e.peer.dynamicASN ? `, learnt: dynamicASN ${e.peer.dynamicASN}` : ''}) established`);
    });
    session.on('down', (reason: Reason, detail: string) => {
      if (this.#sessions.get(name) !== e) return;
      log.info('bgp session down', { reason, detail });
      e.lastError = detail;
      m.sessionUp.set({ peer: name }, 0);
      m.prefixesAnnounced.set({ peer: name }, 0);
      m.sessionDrops.inc({ peer: name, reason });
    });
    session.on('notification', (n: NotificationMessage) => {
      if (this.#sessions.get(name) !== e) return;
      const text = describeNotification(n);
      e.lastError = `peer sent NOTIFICATION: ${text}`;
      m.notificationsReceived.inc({ peer: name, reason: notificationReason(n) });
      log.info('bgp notification received', { notification: text });
      this.#warn(e.peer, 'BGPPeerRefused', `${e.peer.peerAddress} sent NOTIFICATION ${text}`);
    });
    session.on('notification-sent', (n: NotificationMessage) => {
      if (this.#sessions.get(name) !== e) return;
      m.notificationsSent.inc({ peer: name, reason: notificationReason(n) });
      const text = describeNotification(n);
      log.info('bgp notification sent', { notification: text });
      // The Warning waits for the state change to Idle, which says why.
      if (n.code === ERR_OPEN) e.openRefusal = text;
    });
    session.on('update', (u: UpdateMessage) => {
      if (this.#sessions.get(name) !== e) return;
      m.updatesReceived.inc({ peer: name });
      m.prefixesReceived.inc({ peer: name }, announcedPrefixes(u));
    });
    session.on('update-error', (err: unknown) => {
      if (this.#sessions.get(name) !== e) return;
      // RFC 7606: the session stays up, but a peer sending malformed attributes must not go unseen.
      const d = bgpDetail(err);
      const treatment = d?.treatment ?? 'unknown';
      m.malformedUpdates.inc({ peer: name, treatment });
      log.info('bgp malformed update tolerated', { treatment, code: d?.code, subcode: d?.subcode, error: err instanceof Error ? err.message : String(err) });
    });
    session.on('sent', (s: { updates: number; prefixes: number }) => {
      if (this.#sessions.get(name) !== e) return;
      m.updatesSent.inc({ peer: name }, s.updates);
      m.prefixesAnnounced.set({ peer: name }, s.prefixes);
    });
    this.#sessions.set(name, e);
    log.info('bgp session starting', { routerId: opts.bgpId, localAsn: opts.localAsn, peerAsn: opts.peerAsn, md5: opts.password !== undefined, gracefulRestart: opts.gracefulRestart ?? null });
    session.start();
    return e;
  }

  #connectFailed(e: Entry, why: string): void {
    e.connectFailures++;
    e.lastError = why;
    this.#metrics.connectFailures.inc({ peer: e.name });
    if (e.session.state !== 'Established' && e.key.includes('"md5":true') && e.connectFailures >= this.#o.md5FailureThreshold && !e.warnedPassword) {
      e.warnedPassword = true;
      e.lastError = 'no TCP handshake with TCP MD5 on';
      this.#warn(e.peer, 'BGPAuthenticationFailed',
        `no TCP handshake with ${e.peer.peerAddress}:${e.peer.peerPort} after ${e.connectFailures} attempts with TCP MD5 on: the peer silently drops segments whose MD5 signature does not match, which is what a wrong or missing password looks like`);
    }
  }

  /** Stops a session for good: Cease, routes withdrawn by the peer, no restart memory. */
  async #retire(e: Entry, why: string): Promise<void> {
    this.#sessions.delete(e.name);
    this.#metrics.sessionUp.remove({ peer: e.name });
    this.#metrics.prefixesAnnounced.remove({ peer: e.name });
    await this.#stopSession(e, why);
  }

  async #stopSession(e: Entry, why: string): Promise<void> {
    if (e.gracefulRestart) this.#markAnnouncing(e.peer, false);
    const wasUp = e.session.state !== 'Idle';
    e.session.stop(why);
    // Let the Cease reach the peer before the caller moves on (bounded).
    if (wasUp) await new Promise((r) => setTimeout(r, 50));
  }

  /** A BGPPeer this speaker cannot run (vrf, interface) gets one Warning per problem, not silence. */
  #reportUnsupported(world: World, plan: BgpPlan): void {
    const now = new Map<string, string>();
    for (const s of plan.skippedPeers) {
      const peer = world.config?.peers.find((p) => p.name === s.peer);
      const message = peer && unsupportedPeer(s.reason, peer);
      if (!peer || message === undefined) continue;
      now.set(peer.name, message);
      if (this.#unsupported.get(peer.name) !== message) this.#warn(peer, 'BGPPeerUnsupported', message);
    }
    this.#unsupported = now;
  }

  #warn(peer: PeerSettings, reason: string, message: string): void {
    this.#log.info('bgp peer problem', { peer: peer.name, reason, message });
    this.#event(peer, 'Warning', reason, message);
  }

  #event(peer: PeerSettings, type: 'Normal' | 'Warning', reason: string, message: string): void {
    const sink = this.#o.events;
    if (!sink) return;
    const target: EventTarget = peer.source === 'configmap'
      ? { apiVersion: 'v1', kind: 'ConfigMap', namespace: LEGACY_CONFIGMAP.namespace, name: LEGACY_CONFIGMAP.name }
      : { apiVersion: API_VERSION, kind: 'BGPPeer', namespace: this.#o.namespace, name: peer.name };
    try {
      const r = sink.event(target, type, reason, `${message} [peer ${peer.name}]`);
      if (r instanceof Promise) r.catch((err: unknown) => this.#log.error('bgp event failed', { reason, err }));
    } catch (err) {
      this.#log.error('bgp event failed', { reason, err });
    }
  }

  // ---- graceful-restart memory ---------------------------------------------

  #grPath(): string | undefined {
    return this.#o.stateDir ? path.join(this.#o.stateDir, GR_FILE) : undefined;
  }

  #readGrState(): string[] {
    const file = this.#grPath();
    if (!file) return [];
    try {
      const doc = JSON.parse(readFileSync(file, 'utf8')) as { announcing?: unknown };
      return Array.isArray(doc.announcing) ? doc.announcing.filter((x): x is string => typeof x === 'string') : [];
    } catch {
      return [];
    }
  }

  /** Records (atomically) that this node announces to a peer with graceful restart, so the next start sets the R bit. */
  #markAnnouncing(peer: PeerSettings, on: boolean): void {
    const file = this.#grPath();
    if (!file) return;
    const set = new Set(this.#readGrState());
    const id = grIdentity(peer);
    if (on === set.has(id)) return;
    if (on) set.add(id);
    else set.delete(id);
    try {
      mkdirSync(path.dirname(file), { recursive: true });
      const tmp = `${file}.${process.pid}.tmp`;
      writeFileSync(tmp, `${JSON.stringify({ announcing: [...set].sort() })}\n`);
      renameSync(tmp, file);
    } catch (err) {
      this.#log.error('bgp graceful-restart state not saved', { file, err });
    }
  }
}

/** One spelling per address (IPv4-mapped IPv6 as IPv4), to match a connection's source with a peer. */
function canonicalAddress(text: string): string {
  const plain = text.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
  const ip = tryParseIP(plain);
  return ip ? formatIP(ip) : plain;
}

/** A peer as graceful restart remembers it: same name, address and ASNs. */
function grIdentity(peer: PeerSettings): string {
  return `${peer.name}|${peer.peerAddress}|${peer.peerPort}|${localAsnOf(peer)}|${peerAsnRule(peer)}`;
}

/** MetalLB's BFDProfile defaults: 300 ms each way, multiplier 3, active, multihop TTL floor 254. */
export function bfdConfig(p: { receiveInterval?: number | undefined; transmitInterval?: number | undefined; detectMultiplier?: number | undefined; passiveMode?: boolean | undefined }): BfdConfig {
  return {
    desiredMinTxUs: (p.transmitInterval ?? 300) * 1000, requiredMinRxUs: (p.receiveInterval ?? 300) * 1000,
    detectMult: p.detectMultiplier ?? 3, passive: p.passiveMode ?? false,
  };
}

/** Single hop unless the BGPPeer is multihop eBGP (RFC 5883); minimumTtl is the multihop floor. */
export function bfdPath(peer: PeerSettings, p: { minimumTtl?: number | undefined }): BfdPath {
  const path: BfdPath = { peer: peer.peerAddress, multihop: peer.ebgpMultiHop, minimumTtl: p.minimumTtl ?? DEFAULT_MINIMUM_TTL };
  if (peer.sourceAddress !== undefined) path.local = peer.sourceAddress;
  return path;
}

/** Everything that, when it changes, needs a new session (the password only as a hash). */
function sessionKey(o: SessionOptions): string {
  return JSON.stringify({
    localAsn: o.localAsn, peerAsn: o.peerAsn, bgpId: o.bgpId, holdTime: o.holdTime, keepaliveTime: o.keepaliveTime ?? null,
    connectRetryTime: o.connectRetryTime, peerAddress: o.peerAddress, peerPort: o.peerPort ?? 179, sourceAddress: o.sourceAddress ?? null, ttl: o.ttl ?? null,
    nextHop: o.nextHop ?? null, families: o.families ?? null, gr: o.gracefulRestart ? o.gracefulRestart.restartTime : null,
    md5: o.password !== undefined, password: o.password === undefined ? null : createHash('sha256').update(o.password).digest('hex'),
  });
}

/** The factory the speaker's wiring registers: everything from the speaker's context. */
export function createBgpAnnouncer(ctx: {
  self: string; namespace: string; kc: k8s.KubeConfig; log: Logger; registry: Registry; writer: EventSink; stateDir: string; sharedMetrics?: SharedMetrics;
}): BgpAnnouncer {
  const secrets = kubernetesSecretSource(ctx.kc, ctx.namespace, { log: ctx.log, ...(ctx.sharedMetrics ? { metrics: ctx.sharedMetrics } : {}) });
  return new BgpAnnouncer({
    log: ctx.log, registry: ctx.registry, events: ctx.writer, secrets, stateDir: ctx.stateDir, namespace: ctx.namespace,
    statuses: new StatusReconciler({ node: ctx.self, store: kubernetesStatusStore(ctx.kc, ctx.namespace), log: ctx.log }),
    listen: { port: BGP_PORT },
  });
}
