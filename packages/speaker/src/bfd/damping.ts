// Flap damping for BFD-driven BGP resets (the penalty scheme of RFC 2439,
// applied to a session instead of a route): each BFD flap adds a penalty that
// halves every half-life; above the suppress limit the BGP session stays
// down until the penalty decays below the reuse limit. Pure: times are passed in.

export interface DampingConfig {
  /** Added per flap. */
  penalty: number;
  /** Penalty at or above which the session is held down. */
  suppress: number;
  /** Penalty below which a held session may come back. */
  reuse: number;
  halfLifeMs: number;
  /** The penalty never exceeds what decays to `reuse` in this time, so no session is held longer. */
  maxSuppressMs: number;
}

/** Three flaps within a few seconds hold the session ~50 s; a single flap never does. */
export const DEFAULT_DAMPING: DampingConfig = { penalty: 1000, suppress: 2500, reuse: 800, halfLifeMs: 30_000, maxSuppressMs: 300_000 };

export class Damper {
  readonly #c: DampingConfig;
  #penalty = 0;
  #at = 0;
  #suppressed = false;

  constructor(config: DampingConfig = DEFAULT_DAMPING) {
    this.#c = config;
  }

  /** The decayed penalty at `now`. */
  penalty(now: number): number {
    return this.#penalty * 2 ** (-(now - this.#at) / this.#c.halfLifeMs);
  }

  /** Records a flap; returns whether the session is now held down. */
  flap(now: number): boolean {
    const ceiling = this.#c.reuse * 2 ** (this.#c.maxSuppressMs / this.#c.halfLifeMs);
    this.#penalty = Math.min(this.penalty(now) + this.#c.penalty, ceiling);
    this.#at = now;
    if (this.#penalty >= this.#c.suppress) this.#suppressed = true;
    return this.suppressed(now);
  }

  /** Held down at `now` (suppressed until the penalty decays below reuse). */
  suppressed(now: number): boolean {
    if (this.#suppressed && this.penalty(now) < this.#c.reuse) this.#suppressed = false;
    return this.#suppressed;
  }

  /** When a held session may come back (ms, same clock); `now` if it is not held. */
  reuseAt(now: number): number {
    if (!this.suppressed(now)) return now;
    return this.#at + this.#c.halfLifeMs * Math.log2(this.#penalty / this.#c.reuse);
  }
}
