// figures(): what the client felt after the kill, from the probe's samples (pure; no lab).
import { strict as assert } from 'node:assert';
import { figures, type Samples } from './service-failover-probe.ts';

const samples = (rows: [at: number, pod: string][]): Samples => ({
  url: 'http://198.51.100.176/', at: rows.map((r) => r[0]), ok: rows.map((r) => r[1] !== ''), pod: rows.map((r) => r[1]), errors: {}, skipped: 0,
});

describe('service-failover probe: figures()', () => {
  const s = samples([[0, 'a'], [90, ''], [95, 'a'], [100, ''], [110, 'b'], [120, 'b']]);

  it('a request that failed before the kill counts as failed before it when no in-flight window is given', () => {
    assert.deepEqual({ ...figures(s, 100), url: undefined }, { url: undefined, requests: 3, failed: 1, lastFailureMs: 0, maxGapMs: 15, failedBefore: 1, pods: ['b'], skipped: 0 });
  });

  it('a request still in flight at the kill (started within its timeout before it) counts with the kill', () => {
    assert.deepEqual({ ...figures(s, 100, 300), url: undefined }, { url: undefined, requests: 4, failed: 2, lastFailureMs: 0, maxGapMs: 15, failedBefore: 0, pods: ['b'], skipped: 0 });
  });

  it('a failure older than the window is still a failure before the kill; the last failure after it sets lastFailureMs', () => {
    const f = figures(samples([[0, ''], [500, 'a'], [600, ''], [650, 'a'], [700, ''], [900, 'b']]), 550, 100);
    assert.deepEqual([f.failedBefore, f.failed, f.lastFailureMs, f.pods], [1, 2, 150, ['b']]);
  });
});
