// The speaker's BFD sessions, one per peer that asks for it: takes the whole
// desired set (set()), opens, reconfigures and closes sessions to match,
// allocates discriminators and routes received datagrams to their session.
import { randomInt } from 'node:crypto';
import type { Clock } from '../bgp/clock.ts';
import type { BfdConfig, Rng } from './fsm.ts';
import { BfdSession, type BfdSnapshot, type StateChange } from './session.ts';
import { BfdError, canonicalAddress, classify, familyOf, type BfdNetwork, type BfdPath, type BfdSender, type DropReason, type Received } from './transport.ts';

export interface BfdPeerSpec {
  /** Who owns the session (the BGP peer's key). */
  key: string;
  path: BfdPath;
  config: BfdConfig;
}

export interface BfdManagerOptions {
  network: BfdNetwork;
  clock: Clock;
  rng?: Rng;
  /** Local discriminators (random 1..2^32-1 unless a test fixes them). */
  discriminator?: () => number;
  onStateChange?(key: string, change: StateChange, snapshot: BfdSnapshot): void;
  onDrop?(reason: DropReason, r: Received, detail?: string): void;
}

interface Entry {
  key: string;
  path: BfdPath;
  config: BfdConfig;
  session: BfdSession;
  sender: BfdSender;
}

const samePath = (a: BfdPath, b: BfdPath): boolean =>
  a.peer === b.peer && a.local === b.local && a.multihop === b.multihop && a.minimumTtl === b.minimumTtl;
const sameConfig = (a: BfdConfig, b: BfdConfig): boolean =>
  a.desiredMinTxUs === b.desiredMinTxUs && a.requiredMinRxUs === b.requiredMinRxUs && a.detectMult === b.detectMult && a.passive === b.passive;

export class BfdManager {
  readonly #opts: BfdManagerOptions;
  readonly #rng: Rng;
  readonly #byKey = new Map<string, Entry>();
  readonly #byDiscr = new Map<number, Entry>();
  readonly #listening = new Set<4 | 6>();
  readonly drops = new Map<DropReason, number>();

  constructor(opts: BfdManagerOptions) {
    this.#opts = opts;
    this.#rng = opts.rng ?? Math.random;
  }

  /** Makes the running sessions exactly `specs` (keys unique). */
  set(specs: readonly BfdPeerSpec[]): void {
    const want = new Map<string, BfdPeerSpec>();
    for (const s of specs) {
      const path: BfdPath = { ...s.path, peer: canonicalAddress(s.path.peer), ...(s.path.local ? { local: canonicalAddress(s.path.local) } : {}) };
      want.set(s.key, { ...s, path });
    }
    for (const [key, e] of this.#byKey) {
      const w = want.get(key);
      if (!w || !samePath(w.path, e.path)) this.#remove(e, true);
    }
    for (const w of want.values()) {
      const e = this.#byKey.get(w.key);
      if (!e) this.#add(w);
      else if (!sameConfig(e.config, w.config)) {
        e.config = w.config;
        e.session.configure(w.config);
      }
    }
  }

  snapshot(key: string): BfdSnapshot | undefined {
    return this.#byKey.get(key)?.session.snapshot();
  }

  /** Every session's key, path and snapshot (metrics, status). */
  sessions(): { key: string; path: BfdPath; snapshot: BfdSnapshot }[] {
    return [...this.#byKey.values()].map((e) => ({ key: e.key, path: e.path, snapshot: e.session.snapshot() }));
  }

  /** Hands one received datagram to its session (the network calls this). */
  receive(r: Received): void {
    const c = classify(r, {
      byDiscriminator: (d) => this.#byDiscr.get(d),
      byPath: (multihop, src, dst) => {
        for (const e of this.#byKey.values()) {
          if (e.path.multihop === multihop && e.path.peer === src && (!e.path.local || e.path.local === dst)) return e;
        }
        return undefined;
      },
    });
    if (!c.ok) {
      this.drops.set(c.reason, (this.drops.get(c.reason) ?? 0) + 1);
      this.#opts.onDrop?.(c.reason, r, c.detail);
      return;
    }
    c.session.receive(c.packet);
  }

  /** Stops every session without telling the peers (they detect it, as they would a crash). */
  close(): void {
    for (const e of [...this.#byKey.values()]) this.#remove(e, false);
    this.#opts.network.close();
    this.#listening.clear();
  }

  #add(spec: BfdPeerSpec): void {
    const family = familyOf(spec.path.peer);
    if (!this.#listening.has(family)) {
      this.#opts.network.listen(family, (r) => this.receive(r));
      this.#listening.add(family);
    }
    const next = this.#opts.discriminator ?? (() => randomInt(1, 0xffffffff));
    let discr = next();
    for (let i = 0; discr === 0 || this.#byDiscr.has(discr); i++) {
      if (i > 1000) throw new BfdError('PORTICO_BFD_NO_DISCRIMINATOR', 'no free BFD discriminator');
      discr = next();
    }
    const sender = this.#opts.network.openSender(spec.path);
    const entry: Entry = {
      ...spec,
      sender,
      session: new BfdSession({
        config: spec.config, localDiscr: discr, clock: this.#opts.clock, rng: this.#rng,
        send: (b) => { sender.send(b); },
        onStateChange: (c) => this.#opts.onStateChange?.(spec.key, c, entry.session.snapshot()),
      }),
    };
    this.#byKey.set(spec.key, entry);
    this.#byDiscr.set(discr, entry);
    entry.session.start();
  }

  /** `graceful`: an AdminDown packet first (RFC 5880 §6.8.16), so the peer knows this was deliberate. */
  #remove(e: Entry, graceful: boolean): void {
    if (graceful) e.session.adminDown();
    e.session.stop();
    e.sender.close();
    this.#byKey.delete(e.key);
    this.#byDiscr.delete(e.session.vars.localDiscr);
  }
}
