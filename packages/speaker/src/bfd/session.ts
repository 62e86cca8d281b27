// One BFD session: runs the pure state machine (fsm.ts) on an injected clock,
// turns its actions into timers and sends, and keeps what status and metrics
// report (state, up since, flaps, detection time). Sockets live in transport.ts.
import type { Clock } from '../bgp/clock.ts';
import { encodeControl, type BfdState, type ControlPacket } from './packet.ts';
import { detectionTime, initialVars, step, transmitInterval, type BfdAction, type BfdConfig, type BfdEvent, type BfdReason, type BfdVars, type Rng } from './fsm.ts';

export interface StateChange {
  from: BfdState;
  to: BfdState;
  diag: number;
  reason: BfdReason;
  /** Clock time of the change, ms. */
  at: number;
}

export interface BfdSessionOptions {
  config: BfdConfig;
  localDiscr: number;
  clock: Clock;
  /** Jitter source; Math.random unless a test fixes it. */
  rng?: Rng;
  /** Sends one encoded Control packet to the peer. */
  send(packet: Buffer): void;
  onStateChange?(change: StateChange): void;
}

export interface BfdSnapshot {
  state: BfdState;
  remoteState: BfdState;
  localDiscr: number;
  remoteDiscr: number;
  localDiag: number;
  /** Clock time the session last came Up, ms; undefined when not Up. */
  upSince: number | undefined;
  /** Times the session left Up. */
  flaps: number;
  /** Current detection time (remote mult x agreed interval), ms; 0 before the first packet. */
  detectionTimeMs: number;
  /** Interval between our periodic packets before jitter, ms. */
  transmitIntervalMs: number;
  packetsSent: number;
  packetsReceived: number;
}

export class BfdSession {
  #vars: BfdVars;
  readonly #opts: BfdSessionOptions;
  readonly #rng: Rng;
  #tx: unknown;
  #detect: unknown;
  #upSince: number | undefined;
  #flaps = 0;
  #sent = 0;
  #received = 0;
  #stopped = true;

  constructor(opts: BfdSessionOptions) {
    this.#opts = opts;
    this.#rng = opts.rng ?? Math.random;
    this.#vars = initialVars(opts.config, opts.localDiscr);
  }

  get state(): BfdState {
    return this.#vars.state;
  }

  get vars(): Readonly<BfdVars> {
    return this.#vars;
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#run({ type: 'start' });
  }

  /** Stops timers and sending; the session object can be dropped after. */
  stop(): void {
    this.#stopped = true;
    this.#clearTx();
    this.#clearDetect();
  }

  /** A packet that decoded, passed checkReceived() and belongs to this session. */
  receive(packet: ControlPacket): void {
    this.#received++;
    this.#run({ type: 'packet', packet });
  }

  configure(config: BfdConfig): void {
    this.#run({ type: 'configure', config });
  }

  adminDown(): void {
    this.#run({ type: 'admin-down' });
  }

  adminUp(): void {
    this.#run({ type: 'admin-up' });
  }

  snapshot(): BfdSnapshot {
    const v = this.#vars;
    return {
      state: v.state, remoteState: v.remoteState, localDiscr: v.localDiscr, remoteDiscr: v.remoteDiscr, localDiag: v.localDiag,
      upSince: this.#upSince, flaps: this.#flaps, detectionTimeMs: detectionTime(v) / 1000, transmitIntervalMs: transmitInterval(v) / 1000,
      packetsSent: this.#sent, packetsReceived: this.#received,
    };
  }

  #run(event: BfdEvent): void {
    if (this.#stopped) return;
    const r = step(this.#vars, event, this.#rng);
    this.#vars = r.vars;
    for (const a of r.actions) this.#do(a);
  }

  #do(a: BfdAction): void {
    const clock = this.#opts.clock;
    switch (a.type) {
      case 'send':
        this.#sent++;
        this.#opts.send(encodeControl(a.packet));
        return;
      case 'arm-tx':
        this.#clearTx();
        this.#tx = clock.setTimeout(() => {
          this.#tx = undefined;
          this.#run({ type: 'tx-timer' });
        }, a.us / 1000);
        return;
      case 'stop-tx':
        this.#clearTx();
        return;
      case 'arm-detect':
        this.#clearDetect();
        if (a.us <= 0) return;
        this.#detect = clock.setTimeout(() => {
          this.#detect = undefined;
          this.#run({ type: 'detect-timer' });
        }, a.us / 1000);
        return;
      case 'stop-detect':
        this.#clearDetect();
        return;
      case 'state': {
        const at = clock.now();
        if (a.to === 'Up') this.#upSince = at;
        else if (a.from === 'Up') {
          this.#upSince = undefined;
          this.#flaps++;
        }
        this.#opts.onStateChange?.({ from: a.from, to: a.to, diag: a.diag, reason: a.reason, at });
        return;
      }
    }
  }

  #clearTx(): void {
    if (this.#tx !== undefined) this.#opts.clock.clearTimeout(this.#tx);
    this.#tx = undefined;
  }

  #clearDetect(): void {
    if (this.#detect !== undefined) this.#opts.clock.clearTimeout(this.#detect);
    this.#detect = undefined;
  }
}
