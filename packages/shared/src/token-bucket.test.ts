import { strict as assert } from 'node:assert';
import { TokenBucket } from './token-bucket.ts';

describe('TokenBucket', function () {
  it('allows a burst, then refills at its rate', function () {
    let t = 0;
    const b = new TokenBucket(3, 2, () => t);
    assert.deepEqual([b.take(), b.take(), b.take(), b.take()], [true, true, true, false]);
    t = 400; // 0.8 token
    assert.equal(b.take(), false);
    t = 600; // 1.2 tokens accrued since the start of the refill
    assert.equal(b.take(), true);
    t = 100_000;
    assert.deepEqual([b.take(), b.take(), b.take(), b.take()], [true, true, true, false]);
  });

  it('says how long until a token is there, takes more than the burst only from a full bucket, and 0 per second is no limit', function () {
    let t = 0;
    const b = new TokenBucket(2, 4, () => t);
    assert.equal(b.msUntil(), 0);
    assert.deepEqual([b.take(), b.take()], [true, true]);
    assert.equal(b.msUntil(), 250);
    t = 250;
    assert.equal(b.take(), true, 'a timer set by msUntil finds the token there');
    t = 10_000;
    assert.equal(b.take(5), true, 'five from a full bucket of two');
    assert.equal(b.take(), false);
    const free = new TokenBucket(1, 0, () => t);
    assert.deepEqual([free.unlimited, free.take(), free.take(), free.msUntil()], [true, true, true, 0]);
    assert.throws(() => new TokenBucket(0, 1), /burst >= 1/);
  });
});
