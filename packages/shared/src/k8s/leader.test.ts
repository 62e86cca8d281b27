// Leader election on an in-memory Lease store and a fake clock: two candidates,
// take-over on release, and a leader that cannot renew stops before the other starts.
import { strict as assert } from 'node:assert';
import { LeaderElector, type Clock, type LeaseRecord, type LeaseStore } from './leader.ts';

class FakeClock implements Clock {
  t = 1_000_000;
  private timers: { at: number; resolve: () => void }[] = [];
  now(): number { return this.t; }
  sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) { resolve(); return; }
      const timer = { at: this.t + ms, resolve };
      this.timers.push(timer);
      signal.addEventListener('abort', () => { this.timers = this.timers.filter((x) => x !== timer); resolve(); }, { once: true });
    });
  }
  /** Moves time forward by `ms`, firing timers in order and letting promises settle between them. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await settle();
      this.timers.sort((a, b) => a.at - b.at);
      const next = this.timers[0];
      if (!next || next.at > end) break;
      this.timers.shift();
      this.t = next.at;
      next.resolve();
    }
    this.t = end;
    await settle();
  }
}

const settle = async (): Promise<void> => { for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r)); };

class MemoryStore {
  record: LeaseRecord | undefined;
  version = 0;
  failFor = new Set<string>();
  writes: string[] = [];
  for(identity: string): LeaseStore {
    const check = (): void => { if (this.failFor.has(identity)) throw new Error('API server unreachable'); };
    return {
      get: async () => { check(); return this.record ? { record: { ...this.record }, version: String(this.version) } : undefined; },
      create: async (r) => { check(); if (this.record) return false; this.record = { ...r }; this.version++; this.writes.push(identity); return true; },
      update: async (r, v) => { check(); if (String(this.version) !== v) return false; this.record = { ...r }; this.version++; this.writes.push(identity); return true; },
    };
  }
}

function candidate(store: MemoryStore, clock: FakeClock, identity: string, events: string[]): LeaderElector {
  return new LeaderElector({
    identity, store: store.for(identity), clock, leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000,
    onStartedLeading: () => events.push(`${identity} started`),
    onStoppedLeading: (why) => events.push(`${identity} stopped: ${why}`),
  });
}

describe('leader election (Lease, client-go semantics)', function () {
  it('one leader; a released Lease is taken over within one retry period', async function () {
    const clock = new FakeClock();
    const store = new MemoryStore();
    const events: string[] = [];
    const a = candidate(store, clock, 'a', events);
    void a.start();
    await clock.advance(1);
    const b = candidate(store, clock, 'b', events);
    void b.start();
    await clock.advance(60_000);
    assert.deepEqual(events, ['a started']);
    assert.equal(a.isLeader(), true);
    assert.equal(b.isLeader(), false);
    assert.equal(store.record?.holderIdentity, 'a');
    assert.equal(store.record?.leaseTransitions, 0);
    await a.stop();
    assert.equal(store.record?.holderIdentity, '', 'released');
    const releasedAt = clock.t;
    await clock.advance(2_500);
    assert.deepEqual(events, ['a started', 'a stopped: released', 'b started']);
    assert.ok(clock.t - releasedAt <= 2_500);
    assert.equal(store.record?.holderIdentity, 'b');
    assert.equal(store.record?.leaseTransitions, 1);
    await b.stop();
  });

  it('a leader that cannot renew stops writing before anyone else takes over', async function () {
    const clock = new FakeClock();
    const store = new MemoryStore();
    const events: string[] = [];
    const a = candidate(store, clock, 'a', events);
    void a.start();
    await clock.advance(1);
    const b = candidate(store, clock, 'b', events);
    void b.start();
    await clock.advance(5_000);
    const cutAt = clock.t;
    store.failFor.add('a');
    let aStoppedAt = 0;
    let bStartedAt = 0;
    for (let i = 0; i < 300 && (!aStoppedAt || !bStartedAt); i++) {
      await clock.advance(100);
      if (!aStoppedAt && !a.isLeader()) aStoppedAt = clock.t;
      if (!bStartedAt && b.isLeader()) bStartedAt = clock.t;
    }
    assert.ok(aStoppedAt > 0 && bStartedAt > 0, JSON.stringify(events));
    assert.ok(aStoppedAt - cutAt <= 10_000, `a stopped ${aStoppedAt - cutAt} ms after losing the API`);
    assert.ok(bStartedAt > aStoppedAt, 'b starts only after a stopped');
    assert.ok(bStartedAt - cutAt >= 13_000, `b waited the lease duration from its last observation (${bStartedAt - cutAt} ms)`);
    assert.deepEqual(events, ['a started', 'a stopped: renew-failed', 'b started']);
    assert.equal(store.record?.holderIdentity, 'b');
    await b.stop();
    await a.stop();
  });

  it('refuses timings that break the protocol', function () {
    const store = new MemoryStore();
    assert.throws(() => new LeaderElector({ identity: 'x', store: store.for('x'), leaseDurationMs: 10_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 }));
    assert.throws(() => new LeaderElector({ identity: 'x', store: store.for('x'), leaseDurationMs: 15_000, renewDeadlineMs: 2_000, retryPeriodMs: 2_000 }));
  });
});
