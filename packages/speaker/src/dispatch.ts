// Hands World snapshots to announcers one update at a time each: while an
// update runs, newer snapshots replace each other, so a slow announcer always
// catches up with the latest state and never processes a backlog. An
// announcer may ask for a rest after each update (restAfter), which bounds
// the CPU that an announcer with whole-World updates takes under churn.
import type { Logger } from '@portico/shared';
import { systemClock, type Clock } from './bgp/clock.ts';
import type { Announcer, World } from './world/types.ts';

export interface DispatchHooks {
  onError?: (announcer: string, err: unknown) => void;
  onDone?: (announcer: string, seconds: number) => void;
  /** Times updates and rests (tests pass a FakeClock). */
  clock?: Clock;
}

export class Dispatcher {
  private readonly running = new Map<string, Promise<void>>();
  private readonly pending = new Map<string, World>();
  private readonly announcers: readonly Announcer[];
  private readonly log: Logger;
  private readonly hooks: DispatchHooks;
  private readonly clock: Clock;

  constructor(announcers: readonly Announcer[], log: Logger, hooks: DispatchHooks = {}) {
    this.announcers = announcers;
    this.log = log;
    this.hooks = hooks;
    this.clock = hooks.clock ?? systemClock;
  }

  push(world: World): void {
    for (const a of this.announcers) {
      this.pending.set(a.name, coalesce(this.pending.get(a.name), world));
      if (this.running.has(a.name)) continue;
      // drain() can finish synchronously (an update that throws at once), so
      // the entry is removed in a later turn, after it has been recorded.
      const run = this.drain(a);
      this.running.set(a.name, run);
      void run.finally(() => { if (this.running.get(a.name) === run) this.running.delete(a.name); });
    }
  }

  private async drain(a: Announcer): Promise<void> {
    for (let w = this.pending.get(a.name); w; w = this.pending.get(a.name)) {
      this.pending.delete(a.name);
      const t0 = this.clock.now();
      try {
        await a.update(w);
        this.hooks.onDone?.(a.name, (this.clock.now() - t0) / 1000);
      } catch (err) {
        this.log.error('announcer update failed', { announcer: a.name, err });
        this.hooks.onError?.(a.name, err);
      }
      // Snapshots pushed during the rest wait in `pending`, coalesced, as during an update.
      const rest = a.restAfter?.((this.clock.now() - t0) / 1000) ?? 0;
      if (rest > 0 && this.hurry === 0) await this.rest(rest);
    }
  }

  /** idle() callers waiting: rests are skipped and cut short meanwhile. */
  private hurry = 0;
  private readonly resting = new Set<() => void>();

  private rest(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => { this.clock.clearTimeout(t); this.resting.delete(done); resolve(); };
      const t = this.clock.setTimeout(done, ms);
      this.resting.add(done);
    });
  }

  /** Resolves when every announcer has handled the latest snapshot (rests are cut short). */
  async idle(): Promise<void> {
    this.hurry++;
    try {
      for (const wake of [...this.resting]) wake();
      while (this.running.size) await Promise.all([...this.running.values()]);
    } finally {
      this.hurry--;
    }
  }
}

/**
 * The snapshot that replaces a pending one the announcer never saw: `next`,
 * with its list of changed Services widened to cover `skipped`'s too, so
 * that it still describes the change from the snapshot the announcer saw.
 */
export function coalesce(skipped: World | undefined, next: World): World {
  const a = skipped?.changed;
  const b = next.changed;
  if (!skipped) return next;
  if (!a || !b || b.from !== skipped.generation) {
    const { changed: _unknown, ...whole } = next;
    return whole;
  }
  return { ...next, changed: { from: a.from, services: new Set([...a.services, ...b.services]) } };
}
