// A token bucket: at most `burst` at once, refilled at `perSecond`. It budgets
// the controller's Normal Events and the speaker's layer-2 status writes. The
// clock can be passed in (tests); by default it is performance.now().

const EPSILON = 1e-6;

export class TokenBucket {
  private tokens: number;
  private last: number;
  readonly burst: number;
  readonly perSecond: number;
  private readonly now: () => number;

  /** `perSecond` 0 means no limit. */
  constructor(burst: number, perSecond: number, now: () => number = () => performance.now()) {
    if (!(burst >= 1) || !(perSecond >= 0)) throw new RangeError(`token bucket needs burst >= 1 and perSecond >= 0, got ${burst} and ${perSecond}`);
    this.burst = burst;
    this.perSecond = perSecond;
    this.now = now;
    this.tokens = burst;
    this.last = now();
  }

  get unlimited(): boolean {
    return this.perSecond === 0;
  }

  private refill(): void {
    const t = this.now();
    if (t > this.last) this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.perSecond);
    this.last = t;
  }

  /**
   * Takes `n` tokens, all or none. More than the burst is taken from a full
   * bucket (otherwise it could never go).
   */
  take(n = 1): boolean {
    if (this.unlimited) return true;
    this.refill();
    const need = Math.min(n, this.burst);
    // A timer set by msUntil finds the token there, float rounding or not.
    if (this.tokens + EPSILON < need) return false;
    this.tokens = Math.max(0, this.tokens - need);
    return true;
  }

  /** Milliseconds until `n` tokens are there (0: now). */
  msUntil(n = 1): number {
    if (this.unlimited) return 0;
    this.refill();
    const missing = Math.min(n, this.burst) - this.tokens - EPSILON;
    return missing <= 0 ? 0 : Math.ceil((missing / this.perSecond) * 1000);
  }
}
