// The clock the BGP session runs on, injected so tests drive time by hand, and
// the small timer table that turns the state machine's start/stop-timer
// actions into callbacks.

/** What the session needs of time. Milliseconds throughout. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

/** A clock that moves only when told to; timers fire in time order during advance(). */
export class FakeClock implements Clock {
  #now = 0;
  #seq = 0;
  readonly #timers = new Map<number, { at: number; fn: () => void }>();

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.#seq;
    this.#timers.set(id, { at: this.#now + Math.max(0, ms), fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }

  /** Number of timers waiting. */
  get pending(): number {
    return this.#timers.size;
  }

  /** Moves time forward by `ms`, firing every timer that comes due, in order (bounded). */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (let guard = 0; guard < 100_000; guard++) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.#timers) if (e[1].at <= end && (!next || e[1].at < next[1].at || (e[1].at === next[1].at && e[0] < next[0]))) next = e;
      if (!next) break;
      this.#timers.delete(next[0]);
      this.#now = next[1].at;
      next[1].fn();
    }
    this.#now = end;
  }
}

/** Named one-shot timers on a clock: start replaces a running one of the same name. */
export class Timers<Name extends string> {
  readonly #clock: Clock;
  readonly #fire: (name: Name) => void;
  readonly #running = new Map<Name, unknown>();

  constructor(clock: Clock, fire: (name: Name) => void) {
    this.#clock = clock;
    this.#fire = fire;
  }

  start(name: Name, seconds: number): void {
    this.stop(name);
    const h = this.#clock.setTimeout(() => {
      this.#running.delete(name);
      this.#fire(name);
    }, seconds * 1000);
    this.#running.set(name, h);
  }

  stop(name: Name): void {
    const h = this.#running.get(name);
    if (h !== undefined) this.#clock.clearTimeout(h);
    this.#running.delete(name);
  }

  stopAll(): void {
    for (const name of [...this.#running.keys()]) this.stop(name);
  }

  running(name: Name): boolean {
    return this.#running.has(name);
  }
}
