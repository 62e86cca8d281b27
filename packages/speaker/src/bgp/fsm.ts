// The BGP finite state machine of RFC 4271 §8, as pure functions: one handler
// per state takes the current state, an event and the peer's configuration and
// returns the next state, an enumerated reason and the actions to carry out
// (send, connect, close, start/stop a timer). No I/O, no clock: session.ts
// does those, and tests drive it with a fake clock.
import type { CodecError } from '../codec/errors.ts';
import { AS_TRANS } from './attributes.ts';
import { encodeCapabilityInto, capabilityLength, type Capability } from './capabilities.ts';
import { AFI_IPV4, SAFI_UNICAST } from './ip.ts';
import { buildOpen, capabilitiesOf, openAsn, type BgpMessage, type NotificationMessage, type OpenMessage } from './message.ts';
import {
  CEASE_ADMIN_SHUTDOWN, CEASE_BFD_DOWN, CEASE_COLLISION, CEASE_CONNECTION_REJECTED, ERR_CEASE, ERR_FSM, ERR_HOLD_TIMER, ERR_OPEN,
  FSM_UNEXPECTED_IN_ESTABLISHED, FSM_UNEXPECTED_IN_OPENCONFIRM, FSM_UNEXPECTED_IN_OPENSENT, FSM_UNSPECIFIED,
  OPEN_BAD_BGP_ID, OPEN_BAD_PEER_AS, OPEN_UNACCEPTABLE_HOLD_TIME, OPEN_UNSUPPORTED_CAPABILITY, OPEN_UNSUPPORTED_PARAMETER,
  bgpDetail, describeNotification, shutdownCommunication,
} from './notification.ts';

/** RFC 4271 §8.2.2 states. */
export type State = 'Idle' | 'Connect' | 'Active' | 'OpenSent' | 'OpenConfirm' | 'Established';

/**
 * Timers (RFC 4271 §10): ConnectRetryTimer, HoldTimer, KeepaliveTimer, and the
 * IdleHoldTimer of §8.1.1 (DampPeerOscillations) that delays the automatic
 * restart after an error, growing with each failure.
 */
export type TimerName = 'connect-retry' | 'hold' | 'keepalive' | 'idle-hold';

/** A TCP connection as the FSM knows it: an id from the shell and who opened it. */
export interface Connection {
  id: number;
  direction: 'outgoing' | 'incoming';
}

/** RFC 4271 §8.1 events, grouped. `conn` names the connection an event happened on. */
export type FsmEvent =
  /** ManualStart / AutomaticStart (events 1, 3, 4, 5): passive peers only listen. */
  | { type: 'start' }
  /** ManualStop (event 2); `message` goes in the Cease as a shutdown communication (RFC 9003). */
  | { type: 'stop'; message?: string }
  /** ConnectRetryTimer_Expires, HoldTimer_Expires, KeepaliveTimer_Expires (9-11), IdleHoldTimer (13). */
  | { type: 'timer'; timer: TimerName }
  /** Tcp_CR_Acked / TcpConnectionConfirmed (16, 17): an outgoing connect succeeded or a peer connected. */
  | { type: 'tcp-connected'; conn: Connection }
  /** TcpConnectionFails (18). */
  | { type: 'tcp-failed'; conn: number }
  /** A whole, decoded message (events 19, 25-27). */
  | { type: 'message'; conn: number; message: BgpMessage }
  /** A message that did not decode (events 21, 22, 28): the error carries the NOTIFICATION and RFC 7606 treatment. */
  | { type: 'decode-error'; conn: number; error: CodecError }
  /** The BFD session protecting this peer went Down (RFC 5882 §4.3): reset at once. */
  | { type: 'bfd-down'; detail: string };

/** The events the per-state handlers see; step() answers bfd-down the same way in every state. */
type StateEvent = Exclude<FsmEvent, { type: 'bfd-down' }>;

/** What the shell must do, in order. */
export type Action =
  | { type: 'connect' }
  | { type: 'send'; conn: number; message: BgpMessage }
  | { type: 'close'; conn: number }
  | { type: 'start-timer'; timer: TimerName; seconds: number }
  | { type: 'stop-timer'; timer: TimerName }
  /** The session is up with these negotiated parameters: send the routes, then End-of-RIB. */
  | { type: 'established'; session: Negotiated }
  /** The session left Established. */
  | { type: 'down'; reason: Reason; detail: string }
  /** An UPDATE (parsed, to be validated and ignored: Portico only announces). */
  | { type: 'update'; conn: number; message: Extract<BgpMessage, { type: 'update' }> }
  /** The peer asked for our routes again (RFC 2918). */
  | { type: 'route-refresh'; afi: number; safi: number }
  /** A malformed UPDATE handled without a reset (RFC 7606): worth a log line and a counter. */
  | { type: 'update-error'; error: CodecError };

/** Why a step happened: stable strings that logs, metrics and tests match on. */
export type Reason =
  | 'started' | 'started-passive' | 'automatic-restart' | 'stopped' | 'connect-retry' | 'listening'
  | 'tcp-connected' | 'tcp-failed' | 'connection-refused' | 'open-accepted' | 'open-rejected'
  | 'keepalive-received' | 'keepalive-sent' | 'hold-timer-expired' | 'notification-received' | 'decode-error'
  | 'unexpected-message' | 'unexpected-event' | 'collision-kept-existing' | 'collision-took-new' | 'collision-pending'
  | 'update-received' | 'route-refresh-received' | 'update-error-tolerated' | 'stale-event' | 'ignored' | 'bfd-down';

/** Everything about the peer the FSM needs (from BGPPeer). Times in seconds. */
export interface PeerConfig {
  localAsn: number;
  /**
   * The AS the peer must send in its OPEN, or a rule for one learnt from it
   * (BGPPeer dynamicASN): `internal` must equal localAsn, `external` differ.
   */
  peerAsn: number | 'internal' | 'external';
  /** Our BGP Identifier (router ID). */
  bgpId: string;
  /** Proposed hold time: 0 (no keepalives) or at least 3 (RFC 4271 §4.2). */
  holdTime: number;
  /** Keepalive interval; defaults to a third of the negotiated hold time. */
  keepaliveTime?: number;
  /** Base ConnectRetryTime; doubles per consecutive failure up to maxConnectRetryTime. */
  connectRetryTime: number;
  maxConnectRetryTime?: number;
  /** Only accept connections, never connect (RFC 4271 §8.1.1 PassiveTcpEstablishment). */
  passive: boolean;
  /** Capabilities in our OPEN; four-octet-as is added by buildOpen. */
  capabilities: Capability[];
}

/** What two OPENs agreed (RFC 4271 §4.2, RFC 5492, RFC 6793). */
export interface Negotiated {
  conn: number;
  peerAsn: number;
  peerId: string;
  holdTime: number;
  keepaliveTime: number;
  fourOctetAs: boolean;
  families: { afi: number; safi: number }[];
  routeRefresh: boolean;
  peerGracefulRestart?: Extract<Capability, { type: 'graceful-restart' }>;
  ibgp: boolean;
}

interface Peering extends Connection {
  /** The peer's OPEN once received on this connection. */
  open?: OpenMessage;
}

export interface FsmState {
  state: State;
  /** The connection the FSM is running on. */
  conn?: Peering;
  /** A second connection from the same peer while the first is in OpenSent/OpenConfirm (RFC 4271 §6.8). */
  other?: Peering;
  /** ConnectRetryCounter (§8): consecutive failures, drives the backoff. */
  connectRetryCounter: number;
  /** Timers the FSM started and has not stopped; an event from any other timer is stale. */
  timers: TimerName[];
  negotiated?: Negotiated;
}

export interface Step {
  state: FsmState;
  reason: Reason;
  actions: Action[];
  /** For a failure: what went wrong, in words (also when no session was up to go 'down'). */
  detail?: string;
}

/** RFC 4271 §8.2.2: a large hold timer for OpenSent, suggested 4 minutes. */
export const OPEN_SENT_HOLD_TIME = 240;
const DEFAULT_MAX_CONNECT_RETRY = 120;

export function initialState(): FsmState {
  return { state: 'Idle', connectRetryCounter: 0, timers: [] };
}

// ---- small builders ----

function notification(code: number, subcode: number, data: Buffer = Buffer.alloc(0)): NotificationMessage {
  return { type: 'notification', code, subcode, data };
}

/** Seconds to wait before the next attempt after `failures` consecutive failures. */
export function backoff(cfg: PeerConfig, failures: number): number {
  const max = cfg.maxConnectRetryTime ?? DEFAULT_MAX_CONNECT_RETRY;
  return Math.min(max, cfg.connectRetryTime * 2 ** Math.max(0, Math.min(failures, 16)));
}

class Builder {
  readonly s: FsmState;
  readonly actions: Action[] = [];
  constructor(s: FsmState) {
    this.s = { ...s, timers: [...s.timers] };
  }
  start(timer: TimerName, seconds: number): this {
    this.actions.push({ type: 'start-timer', timer, seconds });
    if (!this.s.timers.includes(timer)) this.s.timers.push(timer);
    return this;
  }
  stop(timer: TimerName): this {
    if (this.s.timers.includes(timer)) {
      this.actions.push({ type: 'stop-timer', timer });
      this.s.timers = this.s.timers.filter((t) => t !== timer);
    }
    return this;
  }
  send(conn: number, message: BgpMessage): this {
    this.actions.push({ type: 'send', conn, message });
    return this;
  }
  close(conn: number | undefined): this {
    if (conn !== undefined) this.actions.push({ type: 'close', conn });
    return this;
  }
  to(state: State, reason: Reason): Step {
    this.s.state = state;
    return { state: this.s, reason, actions: this.actions };
  }
}

function openFor(cfg: PeerConfig): OpenMessage {
  return buildOpen({ asn: cfg.localAsn, holdTime: cfg.holdTime, bgpId: cfg.bgpId, capabilities: cfg.capabilities });
}

/**
 * Leaves for Idle after a failure: optional NOTIFICATION, close every
 * connection, stop every timer, count the failure and schedule the automatic
 * restart with backoff (DampPeerOscillations, §8.1.1).
 */
function fail(s: FsmState, cfg: PeerConfig, reason: Reason, detail: string, notify?: NotificationMessage): Step {
  const b = new Builder(s);
  if (notify && s.conn) b.send(s.conn.id, notify);
  b.close(s.conn?.id).close(s.other?.id);
  for (const t of s.timers) b.stop(t);
  if (s.state === 'Established') b.actions.push({ type: 'down', reason, detail });
  b.s.connectRetryCounter = s.connectRetryCounter + 1;
  b.s.conn = undefined;
  b.s.other = undefined;
  b.s.negotiated = undefined;
  b.start('idle-hold', backoff(cfg, b.s.connectRetryCounter - 1));
  return { ...b.to('Idle', reason), detail };
}

/** ManualStop from any state: Cease / Administrative Shutdown (RFC 4486, RFC 9003), no restart. */
function stop(s: FsmState, message: string | undefined): Step {
  const b = new Builder(s);
  const cease = notification(ERR_CEASE, CEASE_ADMIN_SHUTDOWN, message ? shutdownCommunication(message) : undefined);
  if (s.conn && (s.state === 'OpenSent' || s.state === 'OpenConfirm' || s.state === 'Established')) b.send(s.conn.id, cease);
  if (s.other) b.send(s.other.id, cease);
  b.close(s.conn?.id).close(s.other?.id);
  for (const t of s.timers) b.stop(t);
  if (s.state === 'Established') b.actions.push({ type: 'down', reason: 'stopped', detail: message ?? 'stopped' });
  b.s.connectRetryCounter = 0;
  b.s.conn = undefined;
  b.s.other = undefined;
  b.s.negotiated = undefined;
  return b.to('Idle', 'stopped');
}

/** A timer event for a timer that is not running (it was stopped while its callback was queued). */
function stale(s: FsmState, ev: StateEvent): Step | undefined {
  if (ev.type === 'timer' && !s.timers.includes(ev.timer)) return { state: s, reason: 'stale-event', actions: [] };
  return undefined;
}

/** Refuses a connection the FSM cannot use (RFC 4486 Cease / Connection Rejected). */
function refuse(s: FsmState, conn: Connection): Step {
  return {
    state: s, reason: 'connection-refused',
    actions: [{ type: 'send', conn: conn.id, message: notification(ERR_CEASE, CEASE_CONNECTION_REJECTED) }, { type: 'close', conn: conn.id }],
  };
}

// ---- OPEN checks (RFC 4271 §6.2, RFC 5492, RFC 6286, RFC 6793) ----

function capabilityBytes(caps: Capability[]): Buffer {
  const buf = Buffer.alloc(caps.reduce((n, c) => n + capabilityLength(c), 0));
  let off = 0;
  for (const c of caps) off += encodeCapabilityInto(c, buf, off);
  return buf;
}

function familiesOf(caps: readonly Capability[]): { afi: number; safi: number }[] {
  const mp = caps.filter((c) => c.type === 'multiprotocol');
  // RFC 4760 §8: a speaker that sends no multiprotocol capability speaks IPv4 unicast only.
  return mp.length ? mp.map((c) => ({ afi: c.afi, safi: c.safi })) : [{ afi: AFI_IPV4, safi: SAFI_UNICAST }];
}

/** Why the AS in the peer's OPEN is not acceptable, or undefined when it is. */
export function peerAsWrong(asn: number, cfg: Pick<PeerConfig, 'localAsn' | 'peerAsn'>): string | undefined {
  switch (cfg.peerAsn) {
    case 'internal':
      return asn === cfg.localAsn ? undefined : `peer says AS ${asn}; dynamicASN internal wants our own AS ${cfg.localAsn}`;
    case 'external':
      return asn !== cfg.localAsn ? undefined : `peer says AS ${asn}, our own; dynamicASN external wants another AS`;
    default:
      return asn === cfg.peerAsn ? undefined : `peer says AS ${asn}, configured ${cfg.peerAsn}`;
  }
}

/**
 * Decides what to do with a peer's OPEN: the negotiated session, or the
 * NOTIFICATION that refuses it.
 */
export function checkOpen(open: OpenMessage, cfg: PeerConfig, conn: number): { ok: true; session: Negotiated } | { ok: false; notification: NotificationMessage; why: string } {
  const no = (subcode: number, why: string, data?: Buffer) => ({ ok: false as const, notification: notification(ERR_OPEN, subcode, data), why });
  const raw = open.parameters.find((p) => p.type === 'raw');
  if (raw?.type === 'raw') return no(OPEN_UNSUPPORTED_PARAMETER, `optional parameter ${raw.code} is not supported`);
  const caps = capabilitiesOf(open);
  const four = caps.find((c) => c.type === 'four-octet-as');
  const asn = openAsn(open);
  const wrongAs = peerAsWrong(asn, cfg);
  if (wrongAs !== undefined) {
    // RFC 4271 §6.2: Bad Peer AS; the data is the 2-octet My AS field as received.
    const data = Buffer.alloc(2);
    data.writeUInt16BE(open.myAsn);
    return no(OPEN_BAD_PEER_AS, wrongAs, data);
  }
  // RFC 6793 §4.2.1: My AS must be AS_TRANS or agree with the capability.
  if (four && open.myAsn !== AS_TRANS && open.myAsn !== asn) return no(OPEN_BAD_PEER_AS, `My AS ${open.myAsn} disagrees with 4-octet AS ${asn}`);
  if (open.holdTime === 1 || open.holdTime === 2) return no(OPEN_UNACCEPTABLE_HOLD_TIME, `hold time ${open.holdTime}`);
  const ibgp = asn === cfg.localAsn;
  // RFC 6286 §2.2: any non-zero identifier; within one AS it must differ from ours.
  if (open.bgpId === '0.0.0.0' || (ibgp && open.bgpId === cfg.bgpId)) return no(OPEN_BAD_BGP_ID, `BGP identifier ${open.bgpId}`);
  const ours = familiesOf(cfg.capabilities);
  const theirs = familiesOf(caps);
  const families = ours.filter((f) => theirs.some((t) => t.afi === f.afi && t.safi === f.safi));
  if (families.length === 0) {
    // RFC 5492 §5: name the capabilities we needed.
    const wanted = cfg.capabilities.filter((c) => c.type === 'multiprotocol');
    return no(OPEN_UNSUPPORTED_CAPABILITY, 'no address family in common', capabilityBytes(wanted.length ? wanted : [{ type: 'multiprotocol', afi: AFI_IPV4, safi: SAFI_UNICAST }]));
  }
  const holdTime = Math.min(cfg.holdTime, open.holdTime);
  const keepaliveTime = holdTime === 0 ? 0 : Math.max(1, Math.floor(Math.min(cfg.keepaliveTime ?? holdTime / 3, holdTime / 3)));
  const gr = caps.find((c) => c.type === 'graceful-restart');
  const session: Negotiated = {
    conn, peerAsn: asn, peerId: open.bgpId, holdTime, keepaliveTime, families, ibgp,
    // Portico always offers 4-octet AS (buildOpen adds it), so the peer's capability decides.
    fourOctetAs: four !== undefined,
    routeRefresh: caps.some((c) => c.type === 'route-refresh'),
  };
  if (gr?.type === 'graceful-restart') session.peerGracefulRestart = gr;
  return { ok: true, session };
}

function ipv4Number(id: string): number {
  return id.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}

/**
 * Connection collision (RFC 4271 §6.8): of two connections with one peer,
 * keep the one opened by the side with the higher BGP Identifier.
 */
export function collisionWinner(localId: string, remoteId: string, a: Connection, b: Connection): Connection {
  const localWins = ipv4Number(localId) > ipv4Number(remoteId);
  const want = localWins ? 'outgoing' : 'incoming';
  if (a.direction === want) return a;
  if (b.direction === want) return b;
  return a;
}

// ---- one handler per state ----

/** Idle (§8.2.2): waits for a start; refuses connections. */
export function idle(s: FsmState, ev: StateEvent, cfg: PeerConfig): Step {
  const st = stale(s, ev);
  if (st) return st;
  switch (ev.type) {
    case 'start':
    case 'timer': {
      if (ev.type === 'timer' && ev.timer !== 'idle-hold') return { state: s, reason: 'ignored', actions: [] };
      const b = new Builder(s).stop('idle-hold');
      const reason: Reason = ev.type === 'timer' ? 'automatic-restart' : cfg.passive ? 'started-passive' : 'started';
      if (ev.type === 'start') b.s.connectRetryCounter = 0;
      b.start('connect-retry', backoff(cfg, b.s.connectRetryCounter));
      if (cfg.passive) return b.to('Active', reason);
      b.actions.push({ type: 'connect' });
      return b.to('Connect', reason);
    }
    case 'tcp-connected':
      return refuse(s, ev.conn);
    case 'stop':
      return stop(s, ev.message);
    case 'tcp-failed':
    case 'message':
    case 'decode-error':
      return { state: s, reason: 'ignored', actions: [] };
  }
}

/** Accepts a connection in Connect or Active: send OPEN, start the long hold timer, go to OpenSent. */
function accept(s: FsmState): Step {
  return new Builder(s).stop('connect-retry').start('hold', OPEN_SENT_HOLD_TIME).to('OpenSent', 'tcp-connected');
}

function acceptWith(s: FsmState, cfg: PeerConfig, conn: Connection): Step {
  const step = accept(s);
  // An outgoing attempt still pending is dropped when the peer's connection wins the race.
  if (s.conn && s.conn.id !== conn.id) step.actions.unshift({ type: 'close', conn: s.conn.id });
  step.state.conn = { ...conn };
  step.actions.push({ type: 'send', conn: conn.id, message: openFor(cfg) });
  return step;
}

/** Connect (§8.2.2): an outgoing connection is being attempted. */
export function connect(s: FsmState, ev: StateEvent, cfg: PeerConfig): Step {
  const st = stale(s, ev);
  if (st) return st;
  switch (ev.type) {
    case 'start': return { state: s, reason: 'ignored', actions: [] };
    case 'stop': return stop(s, ev.message);
    case 'timer':
      if (ev.timer === 'connect-retry') {
        const b = new Builder(s).close(s.conn?.id);
        b.s.conn = undefined;
        b.start('connect-retry', backoff(cfg, s.connectRetryCounter));
        b.actions.push({ type: 'connect' });
        return b.to('Connect', 'connect-retry');
      }
      return fail(s, cfg, 'unexpected-event', `timer ${ev.timer} in Connect`);
    case 'tcp-connected':
      return acceptWith(s, cfg, ev.conn);
    case 'tcp-failed': {
      // §8.2.2 Connect, event 18: keep listening, retry when the timer fires.
      const b = new Builder(s);
      b.s.conn = undefined;
      b.s.connectRetryCounter = s.connectRetryCounter + 1;
      b.start('connect-retry', backoff(cfg, b.s.connectRetryCounter));
      return b.to('Active', 'tcp-failed');
    }
    case 'message':
    case 'decode-error':
      return fail(s, cfg, 'unexpected-message', 'message before a connection was up');
  }
}

/** Active (§8.2.2): listening for the peer; a passive peer stays here until it connects. */
export function active(s: FsmState, ev: StateEvent, cfg: PeerConfig): Step {
  const st = stale(s, ev);
  if (st) return st;
  switch (ev.type) {
    case 'start': return { state: s, reason: 'ignored', actions: [] };
    case 'stop': return stop(s, ev.message);
    case 'timer':
      if (ev.timer === 'connect-retry') {
        const b = new Builder(s).start('connect-retry', backoff(cfg, s.connectRetryCounter));
        if (cfg.passive) return b.to('Active', 'listening');
        b.actions.push({ type: 'connect' });
        return b.to('Connect', 'connect-retry');
      }
      return fail(s, cfg, 'unexpected-event', `timer ${ev.timer} in Active`);
    case 'tcp-connected':
      return acceptWith(s, cfg, ev.conn);
    case 'tcp-failed':
      return fail(s, cfg, 'tcp-failed', 'connection failed in Active');
    case 'message':
    case 'decode-error':
      return fail(s, cfg, 'unexpected-message', 'message before a connection was up');
  }
}

/** A NOTIFICATION from the peer ends the session (§6.4); the reason names it for the operator. */
function notified(s: FsmState, cfg: PeerConfig, n: NotificationMessage): Step {
  const step = fail(s, cfg, 'notification-received', describeNotification(n));
  return step;
}

/** The NOTIFICATION a decode error asks for, then Idle. */
function decodeFailed(s: FsmState, cfg: PeerConfig, error: CodecError): Step {
  const d = bgpDetail(error);
  return fail(s, cfg, 'decode-error', error.message, d ? notification(d.code, d.subcode, d.data) : notification(ERR_FSM, FSM_UNSPECIFIED));
}

function unexpected(s: FsmState, cfg: PeerConfig, subcode: number, what: string): Step {
  return fail(s, cfg, 'unexpected-message', `${what} in ${s.state}`, notification(ERR_FSM, subcode));
}

/** OPEN received on the main connection in OpenSent: check it, send KEEPALIVE, go to OpenConfirm. */
function openReceived(s: FsmState, cfg: PeerConfig, open: OpenMessage): Step {
  const verdict = checkOpen(open, cfg, s.conn!.id);
  if (!verdict.ok) return fail(s, cfg, 'open-rejected', verdict.why, verdict.notification);
  const b = new Builder(s);
  b.s.conn = { ...s.conn!, open };
  b.s.negotiated = verdict.session;
  b.send(s.conn!.id, { type: 'keepalive' });
  if (verdict.session.holdTime > 0) {
    b.start('keepalive', verdict.session.keepaliveTime).start('hold', verdict.session.holdTime);
  } else {
    b.stop('hold');
  }
  return b.to('OpenConfirm', 'open-accepted');
}

/**
 * Events on the second connection of a collision (§6.8). When its OPEN comes,
 * the peer's identifier is known and one of the two connections is closed
 * with Cease / Connection Collision Resolution.
 */
function onOther(s: FsmState, ev: StateEvent, cfg: PeerConfig): Step {
  const other = s.other!;
  const dropOther = (reason: Reason, notify?: NotificationMessage): Step => {
    const b = new Builder(s);
    if (notify) b.send(other.id, notify);
    b.close(other.id);
    b.s.other = undefined;
    return b.to(s.state, reason);
  };
  if (ev.type === 'tcp-failed') return dropOther('tcp-failed');
  if (ev.type === 'decode-error') {
    const d = bgpDetail(ev.error);
    return dropOther('decode-error', d ? notification(d.code, d.subcode, d.data) : undefined);
  }
  if (ev.type !== 'message') return { state: s, reason: 'ignored', actions: [] };
  if (ev.message.type !== 'open') return dropOther('unexpected-message', notification(ERR_FSM, FSM_UNEXPECTED_IN_OPENSENT));
  const winner = collisionWinner(cfg.bgpId, ev.message.bgpId, s.conn!, other);
  const cease = notification(ERR_CEASE, CEASE_COLLISION);
  if (winner.id === s.conn!.id) return dropOther('collision-kept-existing', cease);
  // The new connection wins: close the old one and carry on as if the OPEN came on the new one.
  const b = new Builder(s).send(s.conn!.id, cease).close(s.conn!.id);
  const swapped: FsmState = { ...b.s, conn: { ...other }, other: undefined, negotiated: undefined };
  const next = openReceived({ ...swapped, state: 'OpenSent' }, cfg, ev.message);
  return { state: next.state, reason: next.reason === 'open-accepted' ? 'collision-took-new' : next.reason, actions: [...b.actions, ...next.actions] };
}

/** A connection arriving while one is in OpenSent or OpenConfirm: keep both until the OPEN decides (§6.8). */
function secondConnection(s: FsmState, cfg: PeerConfig, conn: Connection): Step {
  if (s.other) return refuse(s, conn);
  const b = new Builder(s).send(conn.id, openFor(cfg));
  b.s.other = { ...conn };
  return b.to(s.state, 'collision-pending');
}

function isOther(s: FsmState, ev: StateEvent): boolean {
  return s.other !== undefined && 'conn' in ev && (typeof ev.conn === 'number' ? ev.conn : ev.conn.id) === s.other.id;
}

function isForeign(s: FsmState, ev: StateEvent): boolean {
  if (!('conn' in ev) || ev.type === 'tcp-connected') return false;
  return ev.conn !== s.conn?.id && ev.conn !== s.other?.id;
}

/** OpenSent (§8.2.2): our OPEN is out, waiting for the peer's. */
export function openSent(s: FsmState, ev: StateEvent, cfg: PeerConfig): Step {
  const st = stale(s, ev);
  if (st) return st;
  if (isForeign(s, ev)) return { state: s, reason: 'stale-event', actions: [] };
  if (isOther(s, ev)) return onOther(s, ev, cfg);
  switch (ev.type) {
    case 'start': return { state: s, reason: 'ignored', actions: [] };
    case 'stop': return stop(s, ev.message);
    case 'timer':
      if (ev.timer === 'hold') return fail(s, cfg, 'hold-timer-expired', 'no OPEN from the peer', notification(ERR_HOLD_TIMER, 0));
      return fail(s, cfg, 'unexpected-event', `timer ${ev.timer} in OpenSent`, notification(ERR_FSM, FSM_UNSPECIFIED));
    case 'tcp-connected':
      return secondConnection(s, cfg, ev.conn);
    case 'tcp-failed': {
      // §8.2.2 OpenSent, event 18: back to Active and listen.
      const b = new Builder(s).close(s.conn?.id).close(s.other?.id).stop('hold');
      b.s.conn = undefined;
      b.s.other = undefined;
      b.s.connectRetryCounter = s.connectRetryCounter + 1;
      b.start('connect-retry', backoff(cfg, b.s.connectRetryCounter));
      return b.to('Active', 'tcp-failed');
    }
    case 'decode-error':
      return decodeFailed(s, cfg, ev.error);
    case 'message':
      switch (ev.message.type) {
        case 'open': return openReceived(s, cfg, ev.message);
        case 'notification': return notified(s, cfg, ev.message);
        case 'keepalive':
        case 'update':
        case 'route-refresh':
          return unexpected(s, cfg, FSM_UNEXPECTED_IN_OPENSENT, ev.message.type);
      }
  }
}

/** OpenConfirm (§8.2.2): OPENs exchanged, waiting for the peer's KEEPALIVE. */
export function openConfirm(s: FsmState, ev: StateEvent, cfg: PeerConfig): Step {
  const st = stale(s, ev);
  if (st) return st;
  if (isForeign(s, ev)) return { state: s, reason: 'stale-event', actions: [] };
  if (isOther(s, ev)) return onOther(s, ev, cfg);
  switch (ev.type) {
    case 'start': return { state: s, reason: 'ignored', actions: [] };
    case 'stop': return stop(s, ev.message);
    case 'timer':
      if (ev.timer === 'hold') return fail(s, cfg, 'hold-timer-expired', 'no KEEPALIVE from the peer', notification(ERR_HOLD_TIMER, 0));
      if (ev.timer === 'keepalive') return new Builder(s).send(s.conn!.id, { type: 'keepalive' }).start('keepalive', s.negotiated!.keepaliveTime).to('OpenConfirm', 'keepalive-sent');
      return fail(s, cfg, 'unexpected-event', `timer ${ev.timer} in OpenConfirm`, notification(ERR_FSM, FSM_UNSPECIFIED));
    case 'tcp-connected':
      return secondConnection(s, cfg, ev.conn);
    case 'tcp-failed':
      return fail(s, cfg, 'tcp-failed', 'connection lost in OpenConfirm');
    case 'decode-error':
      return decodeFailed(s, cfg, ev.error);
    case 'message':
      switch (ev.message.type) {
        case 'keepalive': {
          const b = new Builder(s);
          if (s.negotiated!.holdTime > 0) b.start('hold', s.negotiated!.holdTime);
          if (s.other) b.send(s.other.id, notification(ERR_CEASE, CEASE_COLLISION)).close(s.other.id);
          b.s.other = undefined;
          b.s.connectRetryCounter = 0;
          b.actions.push({ type: 'established', session: s.negotiated! });
          return b.to('Established', 'keepalive-received');
        }
        case 'notification': return notified(s, cfg, ev.message);
        case 'open':
        case 'update':
        case 'route-refresh':
          return unexpected(s, cfg, FSM_UNEXPECTED_IN_OPENCONFIRM, ev.message.type);
      }
  }
}

/** Established (§8.2.2): routes flow; every message from the peer restarts the hold timer. */
export function established(s: FsmState, ev: StateEvent, cfg: PeerConfig): Step {
  const st = stale(s, ev);
  if (st) return st;
  if (isForeign(s, ev)) return { state: s, reason: 'stale-event', actions: [] };
  const n = s.negotiated!;
  const alive = (): Builder => {
    const b = new Builder(s);
    if (n.holdTime > 0) b.start('hold', n.holdTime);
    return b;
  };
  switch (ev.type) {
    case 'start': return { state: s, reason: 'ignored', actions: [] };
    case 'stop': return stop(s, ev.message);
    case 'timer':
      if (ev.timer === 'hold') return fail(s, cfg, 'hold-timer-expired', `nothing from the peer for ${n.holdTime} s`, notification(ERR_HOLD_TIMER, 0));
      if (ev.timer === 'keepalive') return new Builder(s).send(s.conn!.id, { type: 'keepalive' }).start('keepalive', n.keepaliveTime).to('Established', 'keepalive-sent');
      return fail(s, cfg, 'unexpected-event', `timer ${ev.timer} in Established`, notification(ERR_FSM, FSM_UNSPECIFIED));
    case 'tcp-connected':
      // §8.2.2 Established: a new connection is refused while the session is up.
      return refuse(s, ev.conn);
    case 'tcp-failed':
      return fail(s, cfg, 'tcp-failed', 'connection lost');
    case 'decode-error': {
      const d = bgpDetail(ev.error);
      if (d && d.treatment !== 'session-reset') {
        // RFC 7606: the session survives treat-as-withdraw and attribute-discard.
        const b = alive();
        b.actions.push({ type: 'update-error', error: ev.error });
        return b.to('Established', 'update-error-tolerated');
      }
      return decodeFailed(s, cfg, ev.error);
    }
    case 'message':
      switch (ev.message.type) {
        case 'keepalive': return alive().to('Established', 'keepalive-received');
        case 'update': {
          const b = alive();
          b.actions.push({ type: 'update', conn: ev.conn, message: ev.message });
          return b.to('Established', 'update-received');
        }
        case 'route-refresh': {
          const b = alive();
          b.actions.push({ type: 'route-refresh', afi: ev.message.afi, safi: ev.message.safi });
          return b.to('Established', 'route-refresh-received');
        }
        case 'notification': return notified(s, cfg, ev.message);
        case 'open': return unexpected(s, cfg, FSM_UNEXPECTED_IN_ESTABLISHED, 'OPEN');
      }
  }
}

const HANDLERS: Record<State, (s: FsmState, ev: StateEvent, cfg: PeerConfig) => Step> = {
  Idle: idle,
  Connect: connect,
  Active: active,
  OpenSent: openSent,
  OpenConfirm: openConfirm,
  Established: established,
};

/** One step of the machine: the handler of the current state. */
export function step(s: FsmState, ev: FsmEvent, cfg: PeerConfig): Step {
  if (ev.type === 'bfd-down') return bfdDown(s, cfg, ev.detail);
  return HANDLERS[s.state](s, ev, cfg);
}

/**
 * BFD saw the forwarding path fail: a session past Connect/Active is reset
 * with Cease / BFD Down (RFC 9384) and restarts after the idle hold, like any
 * failure. Without a connection there is nothing to tear down.
 */
function bfdDown(s: FsmState, cfg: PeerConfig, detail: string): Step {
  if (s.state === 'Idle' || s.state === 'Connect' || s.state === 'Active') return { state: s, reason: 'ignored', actions: [] };
  return fail(s, cfg, 'bfd-down', detail, notification(ERR_CEASE, CEASE_BFD_DOWN));
}

