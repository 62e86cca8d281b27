import { strict as assert } from 'node:assert';
import { nullLogger } from '@portico/shared';
import { FakeClock } from './bgp/clock.ts';
import { coalesce, Dispatcher } from './dispatch.ts';
import type { Announcer, World } from './world/types.ts';

const world = (n: number): World => ({ self: `w${n}`, config: undefined, services: new Map(), nodes: new Map() });

describe('speaker dispatch', () => {
  it('gives a slow announcer only the latest snapshot after the one it is working on', async () => {
    const seen: string[] = [];
    let release!: () => void;
    const slow: Announcer = {
      name: 'slow',
      update: async (w) => { seen.push(w.self); if (w.self === 'w1') await new Promise<void>((r) => { release = r; }); },
      stop: async () => undefined,
    };
    const d = new Dispatcher([slow], nullLogger);
    d.push(world(1));
    d.push(world(2));
    d.push(world(3));
    release();
    await d.idle();
    assert.deepEqual(seen, ['w1', 'w3']);
  });

  it('a snapshot that replaces an unseen one names the Services both changed, from the one seen before them', async () => {
    const w = (generation: number, from: number | undefined, services: string[]): World => ({
      ...world(generation), generation, ...(from === undefined ? {} : { changed: { from, services: new Set(services) } }),
    });
    const merged = coalesce(w(2, 1, ['a/x']), w(3, 2, ['a/y']));
    assert.deepEqual([merged.generation, merged.changed?.from, [...merged.changed?.services ?? []].sort()], [3, 1, ['a/x', 'a/y']]);
    // Not consecutive, or one of them cannot say what changed: the result cannot either.
    assert.equal(coalesce(w(2, 1, ['a/x']), w(4, 3, ['a/y'])).changed, undefined);
    assert.equal(coalesce(w(2, undefined, []), w(3, 2, ['a/y'])).changed, undefined);
    assert.deepEqual([...coalesce(undefined, w(3, 2, ['a/y'])).changed!.services], ['a/y']);
    // Through the dispatcher: the slow announcer's second snapshot covers the one it skipped.
    const seen: Array<{ from: number | undefined; services: string[] }> = [];
    let release!: () => void;
    const slow: Announcer = {
      name: 'slow',
      update: async (x) => { seen.push({ from: x.changed?.from, services: [...x.changed?.services ?? []].sort() }); if (x.generation === 1) await new Promise<void>((r) => { release = r; }); },
      stop: async () => undefined,
    };
    const d = new Dispatcher([slow], nullLogger);
    d.push(w(1, 0, ['a/w']));
    d.push(w(2, 1, ['a/x']));
    d.push(w(3, 2, ['a/y']));
    release();
    await d.idle();
    assert.deepEqual(seen, [{ from: 0, services: ['a/w'] }, { from: 1, services: ['a/x', 'a/y'] }]);
  });

  it('keeps going after an announcer fails, and reports the failure', async () => {
    const errors: string[] = [];
    let calls = 0;
    const flaky: Announcer = { name: 'flaky', update: () => { calls++; if (calls === 1) throw new Error('boom'); }, stop: async () => undefined };
    const d = new Dispatcher([flaky], nullLogger, { onError: (a) => errors.push(a) });
    d.push(world(1));
    await d.idle();
    d.push(world(2));
    await d.idle();
    assert.deepEqual([calls, errors], [2, ['flaky']]);
  });

  it('rests as long as an announcer asks after each update, applying the snapshots pushed meanwhile together', async () => {
    const clock = new FakeClock();
    const seen: Array<{ self: string; at: number }> = [];
    const costly: Announcer = {
      name: 'costly',
      update: (w) => { seen.push({ self: w.self, at: clock.now() }); },
      stop: async () => undefined,
      restAfter: () => 150,
    };
    const d = new Dispatcher([costly], nullLogger, { clock });
    d.push(world(1));
    d.push(world(2));
    await turn();
    clock.advance(50);
    d.push(world(3));
    await turn();
    clock.advance(99);
    await turn();
    assert.deepEqual(seen.map((s) => s.self), ['w1'], 'still resting 149 ms after the first update');
    clock.advance(1);
    await turn();
    assert.deepEqual(seen, [{ self: 'w1', at: 0 }, { self: 'w3', at: 150 }], 'w2 and w3 arrived during the rest: only the latest is applied, once the rest is over');
    // idle() (the speaker stopping) does not wait out a rest: the clock never moves.
    d.push(world(4));
    await d.idle();
    assert.deepEqual(seen.map((s) => `${s.self}@${s.at}`), ['w1@0', 'w3@150', 'w4@150']);
    assert.equal(clock.pending, 0, 'no rest timer is left behind');
  });
});

/** Lets queued promise callbacks run (a turn of the event loop, not a timed wait). */
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
