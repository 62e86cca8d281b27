// One BGP session over TCP: the I/O shell around the pure state machine
// (fsm.ts). It owns the sockets, the timers (on an injected clock) and the
// Adj-RIB-Out, and takes the whole desired set of advertisements through
// set(ads), sending only the difference in packed UPDATEs.
import { EventEmitter } from 'node:events';
import { createConnection, isIPv6, type Socket } from 'node:net';
import { CodecError } from '../codec/errors.ts';
import { asPathForTwoOctetPeer, type AsPathSegment, type PathAttribute } from './attributes.ts';
import type { Capability } from './capabilities.ts';
import { systemClock, Timers, type Clock } from './clock.ts';
import { MessageFramer } from './framer.ts';
import { initialState, step, type Action, type FsmEvent, type FsmState, type Negotiated, type PeerConfig, type Reason, type State, type TimerName } from './fsm.ts';
import { AFI_IPV4, AFI_IPV6, SAFI_UNICAST, canonicalPrefix, prefixAfi } from './ip.ts';
import { decodeMessage, encodeMessage, endOfRib, FOUR_OCTET, type BgpMessage, type MessageContext } from './message.ts';
import { packAnnouncements, packWithdrawals } from './update-builder.ts';

/** One prefix to announce and the attributes policy gave it. */
export interface Advertisement {
  prefix: string;
  /** Sent to iBGP peers only (RFC 4271 §5.1.5). */
  localPref?: number;
  med?: number;
  communities?: string[];
  largeCommunities?: string[];
}

/**
 * Opens the TCP connection. The default is plain node:net; TCP MD5 (RFC 2385)
 * plugs in here: the native addon returns a socket with TCP_MD5SIG set.
 */
export type SocketFactory = (o: { host: string; port: number; localAddress?: string; password?: string; ttl?: number }) => Socket;

export interface SessionOptions extends Omit<PeerConfig, 'capabilities'> {
  peerAddress: string;
  peerPort?: number;
  sourceAddress?: string;
  password?: string;
  /**
   * IP TTL (IPv6 hop limit) of the session's packets from the SYN on; unset:
   * the system default. Single-hop eBGP uses 1, so the session only forms with
   * a directly connected peer (what routers do without ebgp-multihop).
   */
  ttl?: number;
  /** Next hops to announce; default: our address on the session, for its family. */
  nextHop?: { ipv4?: string; ipv6?: string };
  /** Families to offer; default IPv4 and IPv6 unicast. */
  families?: { afi: number; safi: number }[];
  /**
   * Graceful restart as a restarting speaker (RFC 4724): `restarting` sets the
   * R bit in the first OPEN (the speaker was announcing before it restarted),
   * so the peer keeps our routes until End-of-RIB.
   */
  gracefulRestart?: { restartTime: number; restarting: boolean };
  clock?: Clock;
  socketFactory?: SocketFactory;
}

export interface SessionStats {
  updatesSent: number;
  prefixesAnnounced: number;
  updatesReceived: number;
  malformedUpdates: number;
}

const defaultFactory: SocketFactory = (o) => {
  if (o.password) throw new Error('TCP MD5 needs the native socket factory (packages/speaker/src/native)');
  if (o.ttl !== undefined) throw new Error('a session TTL needs the native socket factory (packages/speaker/src/native)');
  return createConnection({ host: o.host, port: o.port, localAddress: o.localAddress });
};

/** The family of a prefix the session already canonicalised (set() did): IPv6 text has a colon. */
const afiOf = (canonical: string): number => (canonical.includes(':') ? AFI_IPV6 : AFI_IPV4);

function attributeKey(ad: Advertisement): string {
  return JSON.stringify([ad.localPref, ad.med, ad.communities ?? [], ad.largeCommunities ?? []]);
}

/**
 * Events: 'state' (state, reason, detail of a failure), 'established' (Negotiated), 'down' (reason, detail),
 * 'update-error' (CodecError), 'notification' (NotificationMessage the peer sent, in
 * any state), 'notification-sent' (one we sent), 'update' (a received, validated
 * UPDATE), 'sent' ({updates, prefixes}: one round of UPDATEs written),
 * 'connect-error' (Error of an outgoing connection: ECONNREFUSED, EADDRNOTAVAIL, ...);
 * 'error' is never emitted.
 */
export class BgpSession extends EventEmitter {
  readonly #opts: SessionOptions;
  readonly #cfg: PeerConfig;
  readonly #clock: Clock;
  readonly #timers: Timers<TimerName>;
  readonly #sockets = new Map<number, { socket: Socket; framer: MessageFramer }>();
  #fsm: FsmState = initialState();
  #nextId = 1;
  #desired = new Map<string, Advertisement>();
  /** What the peer has from us: prefix -> attribute key (Adj-RIB-Out). */
  #sent = new Map<string, string>();
  #session: Negotiated | undefined;
  #flushTimer: unknown;
  #restarting: boolean;
  readonly stats: SessionStats = { updatesSent: 0, prefixesAnnounced: 0, updatesReceived: 0, malformedUpdates: 0 };

  constructor(opts: SessionOptions) {
    super();
    this.#opts = opts;
    this.#clock = opts.clock ?? systemClock;
    this.#restarting = opts.gracefulRestart?.restarting ?? false;
    this.#cfg = { ...opts, capabilities: [] };
    this.#refreshCapabilities();
    this.#timers = new Timers(this.#clock, (timer) => this.#fire({ type: 'timer', timer }));
  }

  get state(): State {
    return this.#fsm.state;
  }

  /** Prefixes the peer currently has from us. */
  get announced(): string[] {
    return [...this.#sent.keys()];
  }

  start(): void {
    this.#fire({ type: 'start' });
  }

  /** Administrative stop: Cease with `message`, routes withdrawn by the peer. */
  stop(message?: string): void {
    this.#fire({ type: 'stop', message });
  }

  /** The BFD session for this peer went Down: reset now with Cease / BFD Down; the usual idle hold restarts it. */
  bfdDown(detail: string): void {
    this.#fire({ type: 'bfd-down', detail });
  }

  /**
   * Drops the connection without a NOTIFICATION, as a crash or a restart
   * would; a peer that agreed graceful restart keeps our routes (RFC 4724 §4.2).
   */
  abandon(): void {
    for (const t of ['connect-retry', 'hold', 'keepalive', 'idle-hold'] as const) this.#timers.stop(t);
    for (const { socket } of this.#sockets.values()) socket.destroy();
    this.#sockets.clear();
    this.#fsm = initialState();
  }

  /** A connection the node's listener accepted from this peer. */
  accept(socket: Socket): void {
    const id = this.#nextId++;
    this.#attach(id, socket);
    this.#fire({ type: 'tcp-connected', conn: { id, direction: 'incoming' } });
  }

  /** The whole desired set; the session works out announcements and withdrawals. */
  set(ads: readonly Advertisement[]): void {
    this.#desired = new Map(ads.map((a) => [canonicalPrefix(a.prefix), { ...a, prefix: canonicalPrefix(a.prefix) }]));
    this.#scheduleFlush();
  }

  #refreshCapabilities(): void {
    const families = this.#opts.families ?? [{ afi: AFI_IPV4, safi: SAFI_UNICAST }, { afi: AFI_IPV6, safi: SAFI_UNICAST }];
    const caps: Capability[] = [...families.map((f): Capability => ({ type: 'multiprotocol', afi: f.afi, safi: f.safi })), { type: 'route-refresh' }];
    const gr = this.#opts.gracefulRestart;
    if (gr) {
      caps.push({
        type: 'graceful-restart', restarting: this.#restarting, notification: false, restartTime: gr.restartTime,
        // F bit: the node keeps forwarding (the dataplane is not the speaker) while the speaker restarts.
        families: families.map((f) => ({ afi: f.afi, safi: f.safi, forwarding: true })),
      });
    }
    this.#cfg.capabilities = caps;
  }

  #ctx(): MessageContext {
    return this.#session ? { fourOctetAs: this.#session.fourOctetAs } : FOUR_OCTET;
  }

  #attach(id: number, socket: Socket): void {
    const framer = new MessageFramer();
    this.#sockets.set(id, { socket, framer });
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      let frames: Buffer[];
      try {
        frames = framer.push(chunk);
      } catch (err) {
        if (err instanceof CodecError) this.#fire({ type: 'decode-error', conn: id, error: err });
        return;
      }
      for (const frame of frames) {
        if (!this.#sockets.has(id)) return;
        let message: BgpMessage;
        try {
          message = decodeMessage(frame, this.#ctx());
        } catch (err) {
          if (!(err instanceof CodecError)) throw err;
          this.#fire({ type: 'decode-error', conn: id, error: err });
          continue;
        }
        if (message.type === 'notification') this.emit('notification', message);
        this.#fire({ type: 'message', conn: id, message });
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (this.#sockets.delete(id)) this.#fire({ type: 'tcp-failed', conn: id });
    });
  }

  #fire(ev: FsmEvent): void {
    const before = this.#fsm.state;
    const r = step(this.#fsm, ev, this.#cfg);
    this.#fsm = r.state;
    for (const a of r.actions) this.#apply(a, r.reason);
    if (r.state.state !== before || r.reason !== 'stale-event') this.emit('state', r.state.state, r.reason, r.detail);
  }

  #apply(a: Action, reason: Reason): void {
    switch (a.type) {
      case 'connect': {
        const id = this.#nextId++;
        this.#fsm.conn = { id, direction: 'outgoing' };
        let socket: Socket;
        try {
          socket = (this.#opts.socketFactory ?? defaultFactory)({
            host: this.#opts.peerAddress, port: this.#opts.peerPort ?? 179, localAddress: this.#opts.sourceAddress, password: this.#opts.password, ttl: this.#opts.ttl,
          });
        } catch (err) {
          // E.g. no native addon for TCP MD5, or an address not on this node: a failed connection, retried with backoff.
          this.emit('connect-error', err);
          this.#clock.setTimeout(() => this.#fire({ type: 'tcp-failed', conn: id }), 0);
          break;
        }
        let connected = false;
        socket.once('connect', () => { connected = true; });
        socket.on('error', (err) => { if (!connected) this.emit('connect-error', err); });
        this.#attach(id, socket);
        socket.once('connect', () => this.#fire({ type: 'tcp-connected', conn: { id, direction: 'outgoing' } }));
        break;
      }
      case 'send': {
        const s = this.#sockets.get(a.conn);
        s?.socket.write(encodeMessage(a.message, this.#ctx()));
        if (s && a.message.type === 'notification') this.emit('notification-sent', a.message);
        break;
      }
      case 'close': {
        const s = this.#sockets.get(a.conn);
        this.#sockets.delete(a.conn);
        // end() lets a NOTIFICATION written just before reach the peer.
        s?.socket.end(() => s.socket.destroy());
        break;
      }
      case 'start-timer': this.#timers.start(a.timer, a.seconds); break;
      case 'stop-timer': this.#timers.stop(a.timer); break;
      case 'established':
        this.#session = a.session;
        this.#sent.clear();
        this.emit('established', a.session);
        this.#flush(true);
        // Later OPENs are not restarts any more (RFC 4724 §4.1).
        this.#restarting = false;
        this.#refreshCapabilities();
        break;
      case 'down':
        this.#session = undefined;
        this.#sent.clear();
        this.stats.prefixesAnnounced = 0;
        this.emit('down', a.reason, a.detail);
        break;
      case 'update':
        this.stats.updatesReceived++;
        this.emit('update', a.message);
        break;
      case 'route-refresh':
        // RFC 2918: send everything of that family again.
        for (const [p] of this.#sent) if (prefixAfi(p) === a.afi) this.#sent.delete(p);
        this.#flush(false);
        break;
      case 'update-error':
        this.stats.malformedUpdates++;
        this.emit('update-error', a.error, reason);
        break;
    }
  }

  #scheduleFlush(): void {
    if (this.#flushTimer !== undefined || !this.#session) return;
    // Coalesce the set() calls of one tick into one round of UPDATEs.
    this.#flushTimer = this.#clock.setTimeout(() => {
      this.#flushTimer = undefined;
      this.#flush(false);
    }, 0);
  }

  #localAddress(): string | undefined {
    const id = this.#session?.conn;
    const s = id === undefined ? undefined : this.#sockets.get(id);
    return s?.socket.localAddress?.replace(/^::ffff:/, '');
  }

  #attributes(ad: Advertisement, session: Negotiated): PathAttribute[] | undefined {
    const local = this.#localAddress();
    const segments: AsPathSegment[] = session.ibgp ? [] : [{ type: 'sequence', asns: [this.#opts.localAsn] }];
    const attrs: PathAttribute[] = [{ type: 'origin', origin: 'igp' }];
    if (session.fourOctetAs) attrs.push({ type: 'as-path', segments });
    else {
      const p = asPathForTwoOctetPeer(segments);
      attrs.push({ type: 'as-path', segments: p.asPath });
      if (p.as4Path) attrs.push({ type: 'as4-path', segments: p.as4Path });
    }
    if (ad.med !== undefined) attrs.push({ type: 'med', med: ad.med });
    if (session.ibgp) attrs.push({ type: 'local-pref', localPref: ad.localPref ?? 100 });
    if (ad.communities?.length) attrs.push({ type: 'communities', communities: ad.communities });
    if (ad.largeCommunities?.length) attrs.push({ type: 'large-communities', communities: ad.largeCommunities });
    const v4 = this.#opts.nextHop?.ipv4 ?? (local && !isIPv6(local) ? local : undefined);
    const v6 = this.#opts.nextHop?.ipv6 ?? (local && isIPv6(local) ? local : undefined);
    const afi = afiOf(ad.prefix);
    if (afi === AFI_IPV4) {
      if (!v4) return undefined;
      attrs.push({ type: 'next-hop', nextHop: v4 });
    } else {
      if (!v6) return undefined;
      attrs.push({ type: 'mp-reach', afi: AFI_IPV6, safi: SAFI_UNICAST, nextHops: [v6], nlri: [] });
    }
    return attrs;
  }

  /** Sends the difference between the desired set and the Adj-RIB-Out; End-of-RIB after the first full send. */
  #flush(initial: boolean): void {
    const session = this.#session;
    const conn = session && this.#sockets.get(session.conn);
    if (!session || !conn || this.#fsm.state !== 'Established') return;
    const ctx = this.#ctx();
    const allowed = (p: string): boolean => session.families.some((f) => f.afi === afiOf(p) && f.safi === SAFI_UNICAST);
    const out: Buffer[] = [];
    const withdraw = [...this.#sent.keys()].filter((p) => !this.#desired.has(p));
    for (const m of packWithdrawals(withdraw)) out.push(encodeMessage(m, ctx));
    for (const p of withdraw) this.#sent.delete(p);
    const groups = new Map<string, { attrs: PathAttribute[]; prefixes: string[] }>();
    for (const ad of this.#desired.values()) {
      const key = attributeKey(ad);
      if (!allowed(ad.prefix) || this.#sent.get(ad.prefix) === key) continue;
      const attrs = this.#attributes(ad, session);
      if (!attrs) continue;
      const gkey = `${key}|${afiOf(ad.prefix)}`;
      const g = groups.get(gkey) ?? { attrs, prefixes: [] };
      g.prefixes.push(ad.prefix);
      groups.set(gkey, g);
      this.#sent.set(ad.prefix, key);
    }
    for (const g of groups.values()) for (const m of packAnnouncements(g.attrs, g.prefixes, ctx)) out.push(encodeMessage(m, ctx));
    if (initial) for (const f of session.families) out.push(encodeMessage(endOfRib(f.afi, f.safi), ctx));
    if (out.length === 0) return;
    this.stats.updatesSent += out.length;
    this.stats.prefixesAnnounced = this.#sent.size;
    conn.socket.write(Buffer.concat(out));
    this.emit('sent', { updates: out.length, prefixes: this.#sent.size });
  }
}
