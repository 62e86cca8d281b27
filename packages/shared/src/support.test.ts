// Logging, metric naming and object normalisation: the small pieces every package leans on.
import { strict as assert } from 'node:assert';
import * as k8s from '@kubernetes/client-node';
import { memoryLogger } from './log.ts';
import { checkMetricName, counter, createRegistry } from './metrics.ts';
import { toPlain } from './k8s/informer.ts';
import { apiMessage, isConflict } from './k8s/errors.ts';
import { PorticoError, isPorticoError } from './errors.ts';

describe('shared support', function () {
  it('logs a constant message with fields, debug only when enabled, child fields merged', function () {
    const log = memoryLogger(false);
    log.child({ component: 'allocator' }).info('ip allocated', { ip: '203.0.113.1', n: 5n, err: new PorticoError('PORTICO_POOL_EXHAUSTED', 'full') });
    log.debug('not shown');
    assert.equal(log.records.length, 1);
    const r = log.records[0]!;
    assert.deepEqual([r.level, r.msg, r.component, r.ip], ['info', 'ip allocated', 'allocator', '203.0.113.1']);
  });

  it('enforces portico_<area>_<thing>_<unit> metric names', function () {
    for (const good of ['portico_pool_used_addresses', 'portico_allocator_failures_total', 'portico_config_stale_state']) assert.doesNotThrow(() => checkMetricName(good), good);
    for (const bad of ['pool_used', 'portico_used', 'portico_pool_used', 'portico_Pool_used_total']) assert.throws(() => checkMetricName(bad), bad);
    const reg = createRegistry(false);
    const c = counter(reg, { name: 'portico_test_things_total', help: 'x', labelNames: ['kind'] });
    c.inc({ kind: 'a' });
    return reg.metrics().then((text) => assert.match(text, /portico_test_things_total\{kind="a"\} 1/));
  });

  it('exposes the process metrics under their standard names (process_*, nodejs_*), not with a second prefix', async function () {
    const text = await createRegistry().metrics();
    for (const name of ['process_resident_memory_bytes', 'process_cpu_seconds_total', 'process_start_time_seconds', 'nodejs_eventloop_lag_seconds']) {
      assert.match(text, new RegExp(`^${name} `, 'm'), name);
    }
    assert.doesNotMatch(text, /portico_process_/);
  });

  it('normalises model instances from a list to the same plain JSON as a watch event', function () {
    const model = new k8s.V1Service();
    model.metadata = { name: 's', namespace: 'n', creationTimestamp: new Date('2025-01-02T03:04:05Z') };
    model.spec = { type: 'LoadBalancer' };
    const watched = { metadata: { name: 's', namespace: 'n', creationTimestamp: '2025-01-02T03:04:05.000Z' }, spec: { type: 'LoadBalancer' } };
    assert.deepEqual(toPlain(model), watched);
    assert.equal(Object.getPrototypeOf(toPlain(model)), Object.prototype);
    assert.equal(toPlain(watched), watched, 'plain JSON passes through untouched');
  });

  it('reads a 409 ApiException whose body is a string', function () {
    const err = new k8s.ApiException(409, 'conflict', '{"kind":"Status","message":"the object has been modified","reason":"Conflict","code":409}', {});
    assert.equal(isConflict(err), true);
    assert.equal(apiMessage(err), 'the object has been modified');
    assert.equal(isPorticoError(new PorticoError('PORTICO_IP_IN_USE', 'x'), 'PORTICO_IP_IN_USE'), true);
  });
});
