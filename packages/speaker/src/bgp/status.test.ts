import { strict as assert } from 'node:assert';
import { FakeClock } from './clock.ts';
import type { BgpPlan, ServiceDecision } from './policy.ts';
import { LABEL_NODE, LABEL_SERVICE_NAME, StatusReconciler, desiredStatuses, statusName, type ServiceBGPStatus, type StatusStore } from './status.ts';

const plan = (services: ServiceDecision[]): BgpPlan => ({ node: 'eligible', peers: [], skippedPeers: [], services });

const announced = (service: string, ips: [string, string[]][]): ServiceDecision => ({
  service, ips: ips.map(([ip, peers]) => ({ ip, announce: true, reason: 'cluster-ready-endpoints', pool: 'p', advertisements: ['a'], peers })),
});

/** An API server's worth of ServiceBGPStatus objects in memory, with a switch to fail the next call. */
class MemoryStore implements StatusStore {
  readonly objects = new Map<string, ServiceBGPStatus>();
  writes: string[] = [];
  failNext = 0;
  #maybeFail(): void {
    if (this.failNext > 0) { this.failNext--; throw Object.assign(new Error('api server unavailable'), { code: 503 }); }
  }
  list(node: string): Promise<ServiceBGPStatus[]> {
    this.#maybeFail();
    return Promise.resolve([...this.objects.values()].filter((o) => o.status.node === node));
  }
  create(o: ServiceBGPStatus): Promise<void> {
    this.#maybeFail();
    if (this.objects.has(o.name)) return Promise.reject(Object.assign(new Error('exists'), { code: 409 }));
    this.writes.push(`create ${o.status.serviceName}`);
    this.objects.set(o.name, structuredClone(o));
    return Promise.resolve();
  }
  update(o: ServiceBGPStatus): Promise<void> {
    this.#maybeFail();
    if (!this.objects.has(o.name)) return Promise.reject(Object.assign(new Error('not found'), { code: 404 }));
    this.writes.push(`update ${o.status.serviceName}`);
    this.objects.set(o.name, structuredClone(o));
    return Promise.resolve();
  }
  delete(name: string): Promise<void> {
    this.#maybeFail();
    if (this.objects.delete(name)) this.writes.push(`delete ${name}`);
    return Promise.resolve();
  }
}

describe('bgp: ServiceBGPStatus objects', function () {
  it('one object per announced Service: node, Service, IPs and the peers that get them; withheld Services get none', function () {
    const d = desiredStatuses('node-1', plan([
      announced('default/web', [['203.0.113.10', ['frr', 'bird']], ['2001:db8:ff::10', ['frr-v6']]]),
      { service: 'default/db', ips: [{ ip: '203.0.113.11', announce: false, reason: 'no-local-endpoints' }] },
    ]));
    assert.deepEqual([...d.values()], [{
      name: statusName('node-1', 'default/web'),
      labels: { 'app.kubernetes.io/managed-by': 'portico-speaker', [LABEL_SERVICE_NAME]: 'web', 'portico.dev/service-namespace': 'default', [LABEL_NODE]: 'node-1' },
      status: { node: 'node-1', serviceName: 'web', serviceNamespace: 'default', ips: ['2001:db8:ff::10', '203.0.113.10'], peers: ['bird', 'frr', 'frr-v6'] },
    }]);
    assert.equal(desiredStatuses('node-1', undefined).size, 0);
  });

  it('names are per node and Service, valid object names, and a node name too long for a label stays out of the labels', function () {
    assert.notEqual(statusName('node-1', 'default/web'), statusName('node-2', 'default/web'));
    assert.notEqual(statusName('node-1', 'default/web'), statusName('node-1', 'other/web'));
    assert.match(statusName('node-1', 'default/web'), /^node-1-[0-9a-f]{10}$/);
    const long = `${'n'.repeat(70)}.example`;
    const o = [...desiredStatuses(long, plan([announced('default/web', [['203.0.113.10', ['frr']]])])).values()][0]!;
    assert.equal(o.labels[LABEL_NODE], undefined);
    assert.equal(o.status.node, long);
  });

  it('writes only differences, deletes what is no longer announced, and takes over what an earlier run left', async function () {
    const store = new MemoryStore();
    // Left by a previous run of this node's speaker, and one of another node's that must stay.
    const left = [...desiredStatuses('node-1', plan([announced('default/gone', [['203.0.113.9', ['frr']]])])).values()][0]!;
    const other = [...desiredStatuses('node-2', plan([announced('default/web', [['203.0.113.10', ['frr']]])])).values()][0]!;
    store.objects.set(left.name, left);
    store.objects.set(other.name, other);
    const r = new StatusReconciler({ node: 'node-1', store });

    r.set(desiredStatuses('node-1', plan([announced('default/web', [['203.0.113.10', ['frr']]])])));
    await r.idle();
    assert.deepEqual(store.writes, ['create web', `delete ${left.name}`]);

    store.writes = [];
    r.set(desiredStatuses('node-1', plan([announced('default/web', [['203.0.113.10', ['frr']]])])));
    await r.idle();
    assert.deepEqual(store.writes, [], 'an unchanged set writes nothing');

    r.set(desiredStatuses('node-1', plan([announced('default/web', [['203.0.113.10', ['frr', 'gobgp']]])])));
    await r.idle();
    assert.deepEqual(store.writes, ['update web']);
    assert.deepEqual(store.objects.get(statusName('node-1', 'default/web'))?.status.peers, ['frr', 'gobgp']);

    r.set(desiredStatuses('node-1', plan([])));
    await r.idle();
    assert.deepEqual([...store.objects.keys()], [other.name], 'only the other node\'s object is left');
    await r.stop();
  });

  it('retries a failed pass and converges; an object deleted behind its back is created again', async function () {
    const store = new MemoryStore();
    const clock = new FakeClock();
    const r = new StatusReconciler({ node: 'node-1', store, retryMs: 5, clock });
    store.failNext = 2;
    r.set(desiredStatuses('node-1', plan([announced('default/web', [['203.0.113.10', ['frr']]])])));
    const name = statusName('node-1', 'default/web');
    await r.idle();
    // Two failures: retried after 5 ms, then after 10 ms (the delay doubles).
    clock.advance(4);
    await r.idle();
    assert.ok(!store.objects.has(name), 'no retry before 5 ms');
    clock.advance(1);
    await r.idle();
    clock.advance(9);
    await r.idle();
    assert.ok(!store.objects.has(name), 'the second retry waits 10 ms');
    clock.advance(1);
    await r.idle();
    assert.ok(store.objects.has(name), 'created after the API server came back');

    store.objects.delete(name);
    r.set(desiredStatuses('node-1', plan([announced('default/web', [['203.0.113.10', ['frr', 'bird']]])])));
    await r.idle();
    assert.deepEqual(store.objects.get(name)?.status.peers, ['bird', 'frr']);
    await r.stop();
  });

  it('without the CRD (404 on the list) it waits the long retry and does not call the API server on every change', async function () {
    const store = new MemoryStore();
    let lists = 0;
    const list = store.list.bind(store);
    store.list = (node) => { lists++; return lists === 1 ? Promise.reject(Object.assign(new Error('the server could not find the requested resource'), { code: 404 })) : list(node); };
    const clock = new FakeClock();
    const r = new StatusReconciler({ node: 'node-1', store, retryMs: 1, maxRetryMs: 50, clock });
    r.set(desiredStatuses('node-1', plan([announced('default/web', [['203.0.113.10', ['frr']]])])));
    await r.idle();
    for (let i = 0; i < 5; i++) r.set(desiredStatuses('node-1', plan([announced('default/web', [['203.0.113.10', ['frr']]])])));
    clock.advance(49);
    await r.idle();
    assert.equal(lists, 1, 'changes during the wait do not list again, nor does the short retry (1 ms) apply');
    clock.advance(1);
    await r.idle();
    assert.equal(lists, 2);
    assert.equal(store.objects.size, 1, 'written once the kind exists');
    await r.stop();
  });
});
