import { strict as assert } from 'node:assert';
import { nullLogger } from '@portico/shared';
import { Dispatcher } from './dispatch.ts';
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
});
