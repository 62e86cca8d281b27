// Which objects get their Valid condition written, step by step: a scenario
// table over the objects the caches hold (name, uid, generation) and the
// configuration's problems. Every object of the current generation must end
// each step with a written condition, and nothing is written twice.
import { strict as assert } from 'node:assert';
import type { ConfigProblem } from '@portico/shared';
import { Written, objectKey, validCondition } from './conditions.ts';

interface Obj { metadata: { name: string; uid: string; generation: number } }
const o = (name: string, uid: string, generation = 1): Obj => ({ metadata: { name, uid, generation } });

interface Step { why: string; objects: Obj[]; problems?: ConfigProblem[]; written: string[] }

const overlap: ConfigProblem = { kind: 'IPAddressPool', name: 'b', field: 'spec.addresses', code: 'Overlap', message: '203.0.113.0/28 overlaps 203.0.113.0/29 of pool "a"' };

const steps: Step[] = [
  { why: 'two new pools', objects: [o('a', 'u1'), o('b', 'u2')], written: ['a', 'b'] },
  { why: 'nothing changed', objects: [o('a', 'u1'), o('b', 'u2')], written: [] },
  { why: 'b deleted', objects: [o('a', 'u1')], written: [] },
  { why: 'b created again under its name, same spec: a new uid, written', objects: [o('a', 'u1'), o('b', 'u3')], written: ['b'] },
  { why: 'a edited, condition the same: a new generation, written (observedGeneration)', objects: [o('a', 'u1', 2), o('b', 'u3')], written: ['a'] },
  { why: 'b now overlaps: both conditions change', objects: [o('a', 'u1', 2), o('b', 'u3', 2)], problems: [overlap], written: ['a', 'b'] },
  { why: 'b deleted and re-created while still overlapping: the new b gets its Valid=False', objects: [o('a', 'u1', 2), o('b', 'u4')], problems: [overlap], written: ['b'] },
  { why: 'the problem goes away', objects: [o('a', 'u1', 2), o('b', 'u4', 2)], written: ['a', 'b'] },
];

describe('Valid conditions per object and generation', function () {
  it('writes every new, re-created or edited object once, and nothing else', function () {
    const w = new Written();
    for (const [i, s] of steps.entries()) {
      const written: string[] = [];
      const present = new Set<string>();
      for (const obj of s.objects) {
        const key = objectKey('IPAddressPool', obj);
        present.add(key);
        if (w.claim(key, validCondition('IPAddressPool', obj.metadata.name, s.problems ?? []).condition)) written.push(obj.metadata.name);
      }
      w.prune(present);
      assert.deepEqual(written, s.written, `step ${i + 1}: ${s.why}`);
      assert.equal(w.size, s.objects.length, `step ${i + 1}: memory holds only the present objects`);
    }
  });

  it('a failed write is forgotten and written on the next pass', function () {
    const w = new Written();
    const key = objectKey('BGPPeer', o('r', 'u1'));
    assert.equal(w.claim(key, { status: 'True' }), true);
    w.forget(key);
    assert.equal(w.claim(key, { status: 'True' }), true);
    assert.equal(w.claim(key, { status: 'True' }), false);
  });

  it('names the problem on the object at fault and says valid-but-elsewhere on the others', function () {
    assert.deepEqual(validCondition('IPAddressPool', 'b', [overlap]).condition, { type: 'Valid', status: 'False', reason: 'Overlap', message: overlap.message });
    assert.equal(validCondition('IPAddressPool', 'a', [overlap]).condition.message, 'this object is valid, but the configuration has problems elsewhere');
    assert.equal(validCondition('IPAddressPool', 'a', []).condition.message, 'configuration applied');
  });
});
