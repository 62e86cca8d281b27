// The BFD session state machine of RFC 5880 §6.2 and §6.8 (asynchronous mode,
// no echo, no demand), as one pure function: step(vars, event) returns the new
// variables, the actions to carry out (send a packet, arm or stop a timer,
// report a state change) and a reason. No I/O and no clock: session.ts does
// those, and tests drive it directly or through a fake clock.
import type { BfdState, ControlPacket } from './packet.ts';
import { Diag } from './packet.ts';

/** RFC 5880 §6.8.3: while not Up, Desired Min TX is at least one second. */
export const SLOW_TX_US = 1_000_000;

/** What the operator configures (BFDProfile). Intervals in microseconds. */
export interface BfdConfig {
  desiredMinTxUs: number;
  requiredMinRxUs: number;
  detectMult: number;
  /** RFC 5880 §6.1: wait for the remote system's first packet before sending. */
  passive: boolean;
}

/** RFC 5880 §6.8.1 state variables (the subset asynchronous mode uses), plus the intervals in use during a Poll Sequence. */
export interface BfdVars {
  readonly config: BfdConfig;
  state: BfdState;
  remoteState: BfdState;
  localDiscr: number;
  remoteDiscr: number;
  localDiag: number;
  /** bfd.DesiredMinTxInterval as advertised (1 s while not Up). */
  desiredMinTxUs: number;
  /** bfd.RequiredMinRxInterval as advertised. */
  requiredMinRxUs: number;
  /**
   * §6.8.3: an increase of Desired Min TX must not slow the transmit rate, and
   * a decrease of Required Min RX must not shorten the detection time, until
   * the Poll Sequence ends. These hold the values in force until then.
   */
  txInUseUs: number;
  rxInUseUs: number;
  remoteMinRxUs: number;
  remoteDesiredMinTxUs: number;
  remoteDetectMult: number;
  /** A Poll Sequence is running (P set on every packet until an F arrives). */
  polling: boolean;
}

export type BfdEvent =
  | { type: 'start' }
  /** A packet that decoded, passed checkReceived() and was matched to this session. */
  | { type: 'packet'; packet: ControlPacket }
  | { type: 'tx-timer' }
  | { type: 'detect-timer' }
  /** New timers or multiplier from the profile. */
  | { type: 'configure'; config: BfdConfig }
  | { type: 'admin-down' }
  | { type: 'admin-up' };

export type BfdAction =
  | { type: 'send'; packet: ControlPacket }
  /** (Re)arm the periodic transmit timer, already jittered. */
  | { type: 'arm-tx'; us: number }
  | { type: 'stop-tx' }
  /** (Re)arm the detection timer. */
  | { type: 'arm-detect'; us: number }
  | { type: 'stop-detect' }
  | { type: 'state'; from: BfdState; to: BfdState; diag: number; reason: BfdReason };

/** Why a step happened: stable strings for logs, metrics and tests. */
export type BfdReason =
  | 'started' | 'periodic' | 'passive-waiting' | 'remote-wants-no-packets'
  | 'remote-down' | 'remote-init' | 'remote-up' | 'remote-admin-down' | 'packet-received'
  | 'detection-time-expired' | 'detection-time-expired-while-down'
  | 'admin-down' | 'admin-up' | 'discarded-admin-down'
  | 'poll-started' | 'poll-answered' | 'poll-finished' | 'timers-changed';

export interface Step {
  vars: BfdVars;
  actions: BfdAction[];
  reason: BfdReason;
}

/** A uniform random number in [0, 1): injected so tests pick the jitter. */
export type Rng = () => number;

/** Fresh variables for a session (RFC 5880 §6.8.1 initial values). */
export function initialVars(config: BfdConfig, localDiscr: number): BfdVars {
  if (!Number.isInteger(localDiscr) || localDiscr < 1 || localDiscr > 0xffffffff) throw new RangeError(`local discriminator ${localDiscr} is not 1..2^32-1`);
  const tx = Math.max(config.desiredMinTxUs, SLOW_TX_US);
  return {
    config, state: 'Down', remoteState: 'Down', localDiscr, remoteDiscr: 0, localDiag: Diag.none,
    desiredMinTxUs: tx, requiredMinRxUs: config.requiredMinRxUs, txInUseUs: tx, rxInUseUs: config.requiredMinRxUs,
    remoteMinRxUs: 1, remoteDesiredMinTxUs: 0, remoteDetectMult: 0, polling: false,
  };
}

/** RFC 5880 §6.8.7: the interval between periodic packets, before jitter. */
export function transmitInterval(v: BfdVars): number {
  return Math.max(v.txInUseUs, v.remoteMinRxUs);
}

/** RFC 5880 §6.8.4: remote Detect Mult x the agreed remote transmit interval. */
export function detectionTime(v: BfdVars): number {
  return v.remoteDetectMult * Math.max(v.rxInUseUs, v.remoteDesiredMinTxUs);
}

/** RFC 5880 §6.8.7: 0-25% shorter, or 10-25% when Detect Mult is 1. */
export function jittered(us: number, detectMult: number, rng: Rng): number {
  const cut = detectMult === 1 ? 0.1 + 0.15 * rng() : 0.25 * rng();
  return Math.max(1, Math.round(us * (1 - cut)));
}

/** RFC 5880 §6.8.7: the packet this session sends now. */
export function controlPacket(v: BfdVars, final = false): ControlPacket {
  return {
    diag: v.localDiag, state: v.state, poll: v.polling && !final, final,
    controlPlaneIndependent: false, demand: false, multipoint: false,
    detectMult: v.config.detectMult, myDiscriminator: v.localDiscr, yourDiscriminator: v.remoteDiscr,
    desiredMinTxInterval: v.desiredMinTxUs, requiredMinRxInterval: v.requiredMinRxUs, requiredMinEchoRxInterval: 0,
  };
}

/** §6.1 and §6.8.7: may periodic packets go out? */
function mayTransmit(v: BfdVars): BfdReason | undefined {
  if (v.config.passive && v.remoteDiscr === 0) return 'passive-waiting';
  if (v.remoteMinRxUs === 0) return 'remote-wants-no-packets';
  return undefined;
}

/** Sends now (if allowed) and restarts the periodic schedule from now. */
function sendNow(v: BfdVars, rng: Rng, out: BfdAction[]): void {
  if (mayTransmit(v) !== undefined) {
    out.push({ type: 'stop-tx' });
    return;
  }
  out.push({ type: 'send', packet: controlPacket(v) }, { type: 'arm-tx', us: jittered(transmitInterval(v), v.config.detectMult, rng) });
}

/** Moves to `to`, with the timer changes §6.8.3 ties to being Up or not. */
function transition(v: BfdVars, to: BfdState, diag: number, reason: BfdReason, out: BfdAction[]): void {
  const from = v.state;
  v.state = to;
  v.localDiag = diag;
  if (to === 'Up') {
    // Leaving the one-second slow rate is a timer change while Up: a Poll Sequence (§6.8.3).
    if (v.desiredMinTxUs !== v.config.desiredMinTxUs) {
      v.desiredMinTxUs = v.config.desiredMinTxUs;
      v.polling = true;
      v.txInUseUs = Math.min(v.txInUseUs, v.desiredMinTxUs);
    }
  } else {
    v.desiredMinTxUs = Math.max(v.config.desiredMinTxUs, SLOW_TX_US);
    v.txInUseUs = v.desiredMinTxUs;
    v.rxInUseUs = v.requiredMinRxUs;
    v.polling = false;
  }
  out.push({ type: 'state', from, to, diag, reason });
}

/** RFC 5880 §6.8.6 from "update bfd.RemoteDiscr" on, for a packet already checked and matched. */
function receive(v: BfdVars, p: ControlPacket, rng: Rng): Step {
  const out: BfdAction[] = [];
  if (v.state === 'AdminDown') return { vars: v, actions: out, reason: 'discarded-admin-down' };
  const oldTx = transmitInterval(v);
  const wasSilent = mayTransmit(v) !== undefined;
  v.remoteDiscr = p.myDiscriminator;
  v.remoteState = p.state;
  v.remoteMinRxUs = p.requiredMinRxInterval;
  v.remoteDesiredMinTxUs = p.desiredMinTxInterval;
  v.remoteDetectMult = p.detectMult;
  let reason: BfdReason = 'packet-received';
  if (p.final && v.polling) {
    v.polling = false;
    v.txInUseUs = v.desiredMinTxUs;
    v.rxInUseUs = v.requiredMinRxUs;
    reason = 'poll-finished';
  }
  const before = v.state;
  if (p.state === 'AdminDown') {
    if (v.state !== 'Down') transition(v, 'Down', Diag.neighborSignaledDown, 'remote-admin-down', out);
  } else if (v.state === 'Down') {
    if (p.state === 'Down') transition(v, 'Init', Diag.none, 'remote-down', out);
    else if (p.state === 'Init') transition(v, 'Up', Diag.none, 'remote-init', out);
  } else if (v.state === 'Init') {
    if (p.state === 'Init' || p.state === 'Up') transition(v, 'Up', Diag.none, p.state === 'Up' ? 'remote-up' : 'remote-init', out);
  } else if (p.state === 'Down') {
    transition(v, 'Down', Diag.neighborSignaledDown, 'remote-down', out);
  }
  out.push({ type: 'arm-detect', us: detectionTime(v) });
  const changed = v.state !== before;
  if (p.poll) {
    // §6.8.7: answer a Poll at once, regardless of the transmit timer; never P and F together.
    out.push({ type: 'send', packet: controlPacket(v, true) });
    if (!changed) reason = 'poll-answered';
  }
  if (changed) {
    sendNow(v, rng, out);
    reason = (out.find((a) => a.type === 'state') as Extract<BfdAction, { type: 'state' }>).reason;
  } else if (wasSilent && mayTransmit(v) === undefined) {
    // A passive session heard its first packet, or the remote wants packets again.
    sendNow(v, rng, out);
  } else if (transmitInterval(v) < oldTx && mayTransmit(v) === undefined) {
    // The remote asked for packets faster than the running schedule.
    out.push({ type: 'arm-tx', us: jittered(transmitInterval(v), v.config.detectMult, rng) });
  } else if (mayTransmit(v) !== undefined) {
    out.push({ type: 'stop-tx' });
  }
  return { vars: v, actions: out, reason };
}

/** One event in, the next variables and actions out. `vars` is not modified. */
export function step(vars: BfdVars, event: BfdEvent, rng: Rng): Step {
  const v: BfdVars = { ...vars };
  const out: BfdAction[] = [];
  switch (event.type) {
    case 'start': {
      const wait = mayTransmit(v);
      if (wait) return { vars: v, actions: out, reason: wait };
      sendNow(v, rng, out);
      return { vars: v, actions: out, reason: 'started' };
    }
    case 'packet':
      return receive(v, event.packet, rng);
    case 'tx-timer': {
      const wait = mayTransmit(v);
      if (wait) return { vars: v, actions: out, reason: wait };
      sendNow(v, rng, out);
      return { vars: v, actions: out, reason: 'periodic' };
    }
    case 'detect-timer': {
      // §6.8.1: after a Detection Time without a packet the remote is forgotten.
      const wasLive = v.state === 'Init' || v.state === 'Up';
      v.remoteDiscr = 0;
      v.remoteState = 'Down';
      v.remoteMinRxUs = 1;
      v.remoteDesiredMinTxUs = 0;
      v.remoteDetectMult = 0;
      if (!wasLive) {
        if (mayTransmit(v)) out.push({ type: 'stop-tx' });
        return { vars: v, actions: out, reason: 'detection-time-expired-while-down' };
      }
      transition(v, 'Down', Diag.controlDetectionTimeExpired, 'detection-time-expired', out);
      sendNow(v, rng, out);
      return { vars: v, actions: out, reason: 'detection-time-expired' };
    }
    case 'configure': {
      const c = event.config;
      const old = v.config;
      (v as { config: BfdConfig }).config = c;
      const timersChanged = c.desiredMinTxUs !== old.desiredMinTxUs || c.requiredMinRxUs !== old.requiredMinRxUs;
      if (v.state === 'Up' && timersChanged) {
        // §6.8.3: new values go out at once with P; the stricter of old and new rules until F.
        v.txInUseUs = Math.min(v.txInUseUs, c.desiredMinTxUs);
        v.rxInUseUs = Math.max(v.rxInUseUs, c.requiredMinRxUs);
        v.desiredMinTxUs = c.desiredMinTxUs;
        v.requiredMinRxUs = c.requiredMinRxUs;
        v.polling = true;
        sendNow(v, rng, out);
        return { vars: v, actions: out, reason: 'poll-started' };
      }
      if (v.state !== 'Up') {
        v.desiredMinTxUs = Math.max(c.desiredMinTxUs, SLOW_TX_US);
        v.txInUseUs = v.desiredMinTxUs;
        v.requiredMinRxUs = c.requiredMinRxUs;
        v.rxInUseUs = c.requiredMinRxUs;
      }
      if (mayTransmit(v) !== undefined) out.push({ type: 'stop-tx' });
      else if (c.passive !== old.passive || c.detectMult !== old.detectMult || timersChanged) sendNow(v, rng, out);
      return { vars: v, actions: out, reason: 'timers-changed' };
    }
    case 'admin-down': {
      if (v.state === 'AdminDown') return { vars: v, actions: out, reason: 'admin-down' };
      transition(v, 'AdminDown', Diag.administrativelyDown, 'admin-down', out);
      out.push({ type: 'stop-detect' });
      sendNow(v, rng, out);
      return { vars: v, actions: out, reason: 'admin-down' };
    }
    case 'admin-up': {
      if (v.state !== 'AdminDown') return { vars: v, actions: out, reason: 'admin-up' };
      transition(v, 'Down', Diag.none, 'admin-up', out);
      sendNow(v, rng, out);
      return { vars: v, actions: out, reason: 'admin-up' };
    }
  }
}
