import { strict as assert } from 'node:assert';
import { IntervalSet } from './interval-set.ts';

describe('IntervalSet', function () {
  it('takes the lowest index, splits and merges intervals', function () {
    const s = new IntervalSet(10n);
    assert.equal(s.takeFirst(), 0n);
    assert.equal(s.take(5n), true);
    assert.equal(s.take(5n), false, 'taking twice fails');
    assert.deepEqual(s.intervals(), [[1n, 4n], [6n, 9n]]);
    assert.equal(s.free, 8n);
    assert.equal(s.give(5n), true);
    assert.equal(s.give(5n), false, 'giving twice fails');
    assert.deepEqual(s.intervals(), [[1n, 9n]]);
    assert.equal(s.give(0n), true);
    assert.deepEqual(s.intervals(), [[0n, 9n]]);
    assert.equal(s.free, 10n);
  });

  it('agrees with a naive model under random operations', function () {
    const size = 200n;
    const s = new IntervalSet(size);
    const used = new Set<bigint>();
    let seed = 7;
    const rnd = (): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed; };
    for (let i = 0; i < 5000; i++) {
      const op = rnd() % 3;
      const x = BigInt(rnd() % 200);
      if (op === 0) {
        const got = s.takeFirst();
        let want: bigint | undefined;
        for (let j = 0n; j < size; j++) if (!used.has(j)) { want = j; break; }
        assert.equal(got, want);
        if (want !== undefined) used.add(want);
      } else if (op === 1) {
        assert.equal(s.take(x), !used.has(x));
        used.add(x);
      } else {
        assert.equal(s.give(x), used.has(x));
        used.delete(x);
      }
      assert.equal(s.free, size - BigInt(used.size));
    }
  });

  it('handles 2^64 without enumerating', function () {
    const s = new IntervalSet(1n << 64n);
    assert.equal(s.take((1n << 64n) - 1n), true);
    assert.equal(s.takeFirst(), 0n);
    assert.equal(s.free, (1n << 64n) - 2n);
  });

  it('an empty set hands out nothing', function () {
    const s = new IntervalSet(0n);
    assert.equal(s.takeFirst(), undefined);
    assert.equal(s.take(0n), false);
  });
});
