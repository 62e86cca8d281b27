// The reconciler against a fake API server that applies its writes to stored
// Service objects: tests check what the objects hold, not which calls were made.
import { strict as assert } from 'node:assert';
import { ANNOTATIONS, parseIP, parseRange, type Pool } from '@portico/shared';
import { Allocator } from './allocator.ts';
import { ServiceReconciler, type ServiceSink } from './reconciler.ts';
import type { ServiceObject } from './service.ts';

class FakeCluster implements ServiceSink {
  readonly services = new Map<string, ServiceObject>();
  readonly events: string[] = [];
  writes = 0;
  failWrites = false;
  add(name: string, spec: ServiceObject['spec'], annotations: Record<string, string> = {}, ns = 'default'): ServiceObject {
    const svc: ServiceObject = {
      metadata: { name, namespace: ns, annotations, creationTimestamp: `2025-01-01T00:00:${String(this.services.size).padStart(2, '0')}Z` },
      spec: { type: 'LoadBalancer', ipFamilies: ['IPv4'], ipFamilyPolicy: 'SingleStack', ports: [{ port: 80, protocol: 'TCP' }], ...spec },
    };
    this.services.set(`${ns}/${name}`, svc);
    return svc;
  }
  get(key: string): ServiceObject { return structuredClone(this.services.get(key)!); }
  ips(key: string): string[] { return (this.services.get(key)?.status?.loadBalancer?.ingress ?? []).map((i) => `${i.ip}:${i.ipMode}`); }
  /** Set to model an API server whose status subresource drops metadata changes. */
  statusDropsAnnotations = false;
  async setIngress(ns: string, name: string, ingress: { ip: string; ipMode: 'VIP' }[], ann?: Record<string, string | null>): Promise<void> {
    if (this.failWrites) throw new Error('API server unavailable');
    this.writes++;
    this.services.get(`${ns}/${name}`)!.status = { loadBalancer: { ingress } };
    if (ann !== undefined && !this.statusDropsAnnotations) this.annotate(ns, name, ann);
  }
  async setAnnotations(ns: string, name: string, ann: Record<string, string | null>): Promise<void> {
    if (this.failWrites) throw new Error('API server unavailable');
    this.writes++;
    this.annotate(ns, name, ann);
  }
  private annotate(ns: string, name: string, ann: Record<string, string | null>): void {
    const meta = this.services.get(`${ns}/${name}`)!.metadata!;
    const cur = { ...meta.annotations };
    for (const [k, v] of Object.entries(ann)) { if (v === null) delete cur[k]; else cur[k] = v; }
    meta.annotations = cur;
  }
  async event(svc: ServiceObject, type: string, reason: string, message: string): Promise<void> {
    this.events.push(`${svc.metadata?.namespace}/${svc.metadata?.name} ${type} ${reason}: ${message}`);
  }
}

const pool = (name: string, addresses: string[], opts: Partial<Pool> = {}): Pool => ({
  name, source: 'crd', ranges: addresses.map(parseRange), autoAssign: true, avoidBuggyIPs: false, allowExternalIPs: false,
  priority: undefined, namespaces: [], namespaceSelectors: [], serviceSelectors: [], labels: {}, ...opts,
});

function controller(cluster: FakeCluster, pools: Pool[], cls?: string): { alloc: Allocator; rec: ServiceReconciler; all: () => Promise<void> } {
  const alloc = new Allocator(pools);
  const rec = new ServiceReconciler({ allocator: alloc, sink: cluster, loadBalancerClass: cls, namespaceLabels: () => ({}) });
  const all = async (): Promise<void> => {
    for (const key of [...cluster.services.keys()].sort()) await rec.reconcile(key, cluster.get(key));
  };
  return { alloc, rec, all };
}

describe('service reconciler', function () {
  it('writes ingress with ipMode VIP and the pool annotation, then nothing more', async function () {
    const c = new FakeCluster();
    c.add('web', {});
    const { rec } = controller(c, [pool('p', ['203.0.113.0/29'])]);
    const r = await rec.reconcile('default/web', c.get('default/web'));
    assert.deepEqual([r.outcome, r.reason], ['success', 'allocated']);
    assert.deepEqual(c.ips('default/web'), ['203.0.113.0:VIP']);
    assert.equal(c.services.get('default/web')!.metadata!.annotations![ANNOTATIONS.allocatedFromPool], 'p');
    assert.match(c.events.join('\n'), /IPAllocated: assigned 203\.0\.113\.0 from pool p/);
    assert.equal(c.writes, 1, 'the IP and the pool annotation go in one write');
    const again = await rec.reconcile('default/web', c.get('default/web'));
    assert.deepEqual([again.outcome, again.reason], ['success', 'unchanged']);
    assert.equal(c.writes, 1, 'a second pass writes nothing');
  });

  it('an API server that drops annotations from status writes still ends with the pool annotation, written alone on the next pass', async function () {
    const c = new FakeCluster();
    c.statusDropsAnnotations = true;
    c.add('web', {});
    const { rec } = controller(c, [pool('p', ['203.0.113.0/29'])]);
    await rec.reconcile('default/web', c.get('default/web'));
    assert.equal(c.services.get('default/web')!.metadata!.annotations![ANNOTATIONS.allocatedFromPool], undefined);
    const r = await rec.reconcile('default/web', c.get('default/web'));
    assert.equal(r.outcome, 'success');
    assert.deepEqual(c.ips('default/web'), ['203.0.113.0:VIP']);
    assert.equal(c.services.get('default/web')!.metadata!.annotations![ANNOTATIONS.allocatedFromPool], 'p');
    assert.equal(c.writes, 2);
    await rec.reconcile('default/web', c.get('default/web'));
    assert.equal(c.writes, 2, 'then nothing more');
  });

  it('a Service that stops being type LoadBalancer loses its IP and pool annotation in one write', async function () {
    const c = new FakeCluster();
    c.add('web', {});
    const { rec } = controller(c, [pool('p', ['203.0.113.0/29'])]);
    await rec.reconcile('default/web', c.get('default/web'));
    c.services.get('default/web')!.spec!.type = 'ClusterIP';
    const before = c.writes;
    await rec.reconcile('default/web', c.get('default/web'));
    assert.deepEqual(c.ips('default/web'), []);
    assert.equal(c.services.get('default/web')!.metadata!.annotations![ANNOTATIONS.allocatedFromPool], undefined);
    assert.equal(c.writes - before, 1);
  });

  it('a restart keeps every IP and writes nothing', async function () {
    const c = new FakeCluster();
    for (let i = 0; i < 20; i++) c.add(`s${i}`, i % 3 === 0 ? { ipFamilies: ['IPv6', 'IPv4'], ipFamilyPolicy: 'RequireDualStack' } : {});
    const pools = [pool('p', ['203.0.113.0/24', '2001:db8::/64'])];
    const first = controller(c, pools);
    await first.all();
    const hole = c.ips('default/s3').find((i) => !i.includes(':VIP') || i.split(':').length === 2)!;
    c.services.delete('default/s3'); // a hole, so the first free address is not simply "the next one"
    first.alloc.release('default/s3');
    const before = new Map([...c.services.keys()].map((k) => [k, c.ips(k)]));
    const writes = c.writes;
    // New process: rebuild from status before handling anything, then handle everything.
    const second = controller(c, pools);
    const rb = second.rec.rebuild([...c.services.values()]);
    assert.equal(rb.kept, 19);
    assert.deepEqual(rb.conflicts, []);
    await second.all();
    assert.equal(c.writes, writes, 'no Service was rewritten');
    for (const [k, ips] of before) assert.deepEqual(c.ips(k), ips, k);
    c.add('new', {});
    await second.rec.reconcile('default/new', c.get('default/new'));
    const taken = [...c.services.keys()].filter((k) => k !== 'default/new').flatMap((k) => c.ips(k));
    assert.ok(!taken.includes(c.ips('default/new')[0]!), 'the new Service does not get a held IP');
    assert.deepEqual(c.ips('default/new'), [hole], 'it gets the hole s3 left');
  });

  it('rebuild lets the older of two Services claiming one IP keep it', async function () {
    const c = new FakeCluster();
    const a = c.add('a', {}, { [ANNOTATIONS.allocatedFromPool]: 'p' });
    const b = c.add('b', {}, { [ANNOTATIONS.allocatedFromPool]: 'p' });
    a.status = { loadBalancer: { ingress: [{ ip: '203.0.113.5', ipMode: 'VIP' }] } };
    b.status = { loadBalancer: { ingress: [{ ip: '203.0.113.5', ipMode: 'VIP' }] } };
    const { rec, all } = controller(c, [pool('p', ['203.0.113.0/29'])]);
    const rb = rec.rebuild([...c.services.values()]);
    assert.equal(rb.kept, 1);
    assert.equal(rb.conflicts.length, 1);
    await all();
    assert.deepEqual(c.ips('default/a'), ['203.0.113.5:VIP']);
    assert.deepEqual(c.ips('default/b'), ['203.0.113.0:VIP'], 'the younger one moves to a free IP');
  });

  it('leaves other classes alone and answers only to its own class when one is set', async function () {
    const c = new FakeCluster();
    c.add('mine', {});
    c.add('theirs', { loadBalancerClass: 'example.com/other' });
    c.add('classed', { loadBalancerClass: 'portico.dev/lb' });
    const none = controller(c, [pool('p', ['203.0.113.0/29'])]);
    await none.all();
    assert.deepEqual([c.ips('default/mine'), c.ips('default/theirs'), c.ips('default/classed')], [['203.0.113.0:VIP'], [], []]);
    const c2 = new FakeCluster();
    c2.add('mine', {});
    c2.add('classed', { loadBalancerClass: 'portico.dev/lb' });
    const withClass = controller(c2, [pool('p', ['203.0.113.0/29'])], 'portico.dev/lb');
    await withClass.all();
    assert.deepEqual([c2.ips('default/mine'), c2.ips('default/classed')], [[], ['203.0.113.0:VIP']]);
  });

  it('frees the IP when the type changes, and hands it to a pending Service', async function () {
    const c = new FakeCluster();
    c.add('a', {});
    c.add('b', {});
    const { rec } = controller(c, [pool('tiny', ['203.0.113.7/32'])]);
    await rec.reconcile('default/a', c.get('default/a'));
    const pending = await rec.reconcile('default/b', c.get('default/b'));
    assert.deepEqual([pending.outcome, pending.reason], ['give-up', 'allocation-failed']);
    assert.match(c.events.join('\n'), /default\/b Warning AllocationFailed: PORTICO_POOL_EXHAUSTED: pool "tiny" has no free IPv4 address/);
    c.services.get('default/a')!.spec!.type = 'ClusterIP';
    const freed = await rec.reconcile('default/a', c.get('default/a'));
    assert.equal(freed.outcome, 'reprocess-all');
    assert.deepEqual(c.ips('default/a'), []);
    assert.equal(c.services.get('default/a')!.metadata!.annotations![ANNOTATIONS.allocatedFromPool], undefined);
    await rec.reconcile('default/b', c.get('default/b'));
    assert.deepEqual(c.ips('default/b'), ['203.0.113.7:VIP']);
  });

  it('a request that cannot be met leaves the Service pending with the reason', async function () {
    const c = new FakeCluster();
    c.add('bad', { loadBalancerIP: 'not-an-ip' });
    c.add('outside', {}, { [ANNOTATIONS.loadBalancerIPs]: '198.51.100.77' });
    c.add('nopool', {}, { [ANNOTATIONS.addressPool]: 'ghost' });
    const { all } = controller(c, [pool('p', ['203.0.113.0/29'])]);
    await all();
    for (const k of ['default/bad', 'default/outside', 'default/nopool']) assert.deepEqual(c.ips(k), [], k);
    const ev = c.events.join('\n');
    assert.match(ev, /default\/bad Warning AllocationFailed: PORTICO_INVALID_ADDRESS/);
    assert.match(ev, /default\/outside Warning AllocationFailed: PORTICO_IP_NOT_IN_POOL: requested IP 198\.51\.100\.77 is not in any pool/);
    assert.match(ev, /default\/nopool Warning AllocationFailed: PORTICO_POOL_NOT_FOUND/);
  });

  it('a failed write asks for a retry and the next pass completes it', async function () {
    const c = new FakeCluster();
    c.add('web', {});
    const { rec } = controller(c, [pool('p', ['203.0.113.0/29'])]);
    c.failWrites = true;
    const r = await rec.reconcile('default/web', c.get('default/web'));
    assert.deepEqual([r.outcome, r.reason], ['retry', 'write-failed']);
    c.failWrites = false;
    await rec.reconcile('default/web', c.get('default/web'));
    assert.deepEqual(c.ips('default/web'), ['203.0.113.0:VIP'], 'the same IP, written on retry');
  });

  it('a deleted Service frees its IP', async function () {
    const c = new FakeCluster();
    c.add('web', {});
    const { rec, alloc } = controller(c, [pool('p', ['203.0.113.0/29'])]);
    await rec.reconcile('default/web', c.get('default/web'));
    const r = await rec.reconcile('default/web', null);
    assert.equal(r.outcome, 'reprocess-all');
    assert.equal(alloc.usage('p')!.IPv4.assigned, 0n);
  });
});

describe('service reconciler: opt-in externalIPs', function () {
  const EXT = ANNOTATIONS.externalIPs;
  const pools = (): Pool[] => [
    pool('lb', ['203.0.113.0/29']),
    pool('ext', ['203.0.113.16/30', '2001:db8:e::/64'], { allowExternalIPs: true, autoAssign: false }),
    pool('ext-team', ['203.0.113.24/30'], { allowExternalIPs: true, namespaces: ['team'] }),
  ];
  const ann = (c: FakeCluster, key: string): string | undefined => c.services.get(key)!.metadata!.annotations![EXT];
  const warnings = (c: FakeCluster, key: string): string[] => c.events.filter((e) => e.startsWith(`${key} Warning ExternalIPIgnored`)).map((e) => e.slice(e.indexOf(':') + 2));

  it('records the accepted externalIPs of a ClusterIP Service and names each ignored one with its reason', async function () {
    const c = new FakeCluster();
    c.add('web', { type: 'ClusterIP', externalIPs: ['203.0.113.17', '2001:db8:e::5', '203.0.113.3', '198.51.100.9', '203.0.113.25', 'nonsense'] });
    const { rec } = controller(c, pools());
    const r = await rec.reconcile('default/web', c.get('default/web'));
    assert.equal(r.reason, 'not-ours', 'no LoadBalancer allocation for a ClusterIP Service');
    assert.deepEqual(r.externalIPs!.map((d) => `${d.ip} ${d.reason}`), [
      '203.0.113.17 accepted', '2001:db8:e::5 accepted', '203.0.113.3 no-pool-allows', '198.51.100.9 no-pool-allows', '203.0.113.25 namespace-not-admitted', 'nonsense invalid',
    ]);
    assert.equal(ann(c, 'default/web'), '203.0.113.17,2001:db8:e::5');
    assert.deepEqual(c.ips('default/web'), [], 'no status is written');
    assert.match(c.events.join('\n'), /default\/web Normal ExternalIPAccepted: externalIPs 203\.0\.113\.17, 2001:db8:e::5 recorded/);
    assert.deepEqual(warnings(c, 'default/web'), [
      'externalIP 203.0.113.3 ignored (no-pool-allows): 203.0.113.3 is in pool "lb", which does not set allowExternalIPs: true',
      'externalIP 198.51.100.9 ignored (no-pool-allows): 198.51.100.9 is in no address pool; externalIPs must be inside a pool with allowExternalIPs: true',
      'externalIP 203.0.113.25 ignored (namespace-not-admitted): pool "ext-team" does not admit Services of namespace default with these labels',
      'externalIP nonsense ignored (invalid): "nonsense" is not an IP address',
    ]);
    const writes = c.writes;
    await rec.reconcile('default/web', c.get('default/web'));
    assert.equal(c.writes, writes, 'a second pass writes nothing');
  });

  it('a LoadBalancer Service never gets a reserved externalIP, and an externalIP never takes an allocated IP', async function () {
    const c = new FakeCluster();
    c.add('ext-user', { type: 'NodePort', externalIPs: ['203.0.113.16'] });
    c.add('lb-auto', {}, { [ANNOTATIONS.addressPool]: 'ext' });
    c.add('lb-asks', { loadBalancerIP: '203.0.113.16' });
    const { rec } = controller(c, pools());
    await rec.reconcile('default/ext-user', c.get('default/ext-user'));
    await rec.reconcile('default/lb-auto', c.get('default/lb-auto'));
    await rec.reconcile('default/lb-asks', c.get('default/lb-asks'));
    assert.equal(ann(c, 'default/ext-user'), '203.0.113.16');
    assert.deepEqual(c.ips('default/lb-auto'), ['203.0.113.17:VIP'], 'the first free address skips the reserved one');
    assert.deepEqual(c.ips('default/lb-asks'), []);
    assert.match(c.events.join('\n'), /default\/lb-asks Warning AllocationFailed: PORTICO_IP_IN_USE: IP 203\.0\.113\.16 is an accepted externalIP of default\/ext-user/);
    // The other way round: a Service listing an allocated LoadBalancer IP.
    c.add('late', { type: 'ClusterIP', externalIPs: ['203.0.113.17'] });
    await rec.reconcile('default/late', c.get('default/late'));
    assert.equal(ann(c, 'default/late'), undefined);
    assert.deepEqual(warnings(c, 'default/late'), ['externalIP 203.0.113.17 ignored (in-use): 203.0.113.17 is the LoadBalancer IP of default/lb-auto']);
  });

  it('a LoadBalancer Service can have accepted externalIPs next to its allocated IP', async function () {
    const c = new FakeCluster();
    c.add('both', { externalIPs: ['203.0.113.18'] });
    const { rec } = controller(c, pools());
    const r = await rec.reconcile('default/both', c.get('default/both'));
    assert.deepEqual([r.outcome, r.reason], ['success', 'allocated']);
    assert.deepEqual(c.ips('default/both'), ['203.0.113.0:VIP']);
    assert.equal(ann(c, 'default/both'), '203.0.113.18');
  });

  it('a second Service listing an accepted externalIP is refused until the first lets it go', async function () {
    const c = new FakeCluster();
    c.add('first', { type: 'ClusterIP', externalIPs: ['203.0.113.19'] });
    c.add('second', { type: 'ClusterIP', externalIPs: ['203.0.113.19'] });
    const { rec, all } = controller(c, pools());
    await all();
    assert.deepEqual([ann(c, 'default/first'), ann(c, 'default/second')], ['203.0.113.19', undefined]);
    assert.deepEqual(warnings(c, 'default/second'), ['externalIP 203.0.113.19 ignored (in-use): 203.0.113.19 is already an accepted externalIP of default/first']);
    c.services.get('default/first')!.spec!.externalIPs = [];
    const r = await rec.reconcile('default/first', c.get('default/first'));
    assert.equal(r.outcome, 'reprocess-all', 'a freed externalIP makes the others look again');
    assert.equal(ann(c, 'default/first'), undefined, 'the annotation is removed');
    await rec.reconcile('default/second', c.get('default/second'));
    assert.equal(ann(c, 'default/second'), '203.0.113.19');
  });

  it('a restart rebuilds reservations from the annotations before anything else and writes nothing', async function () {
    const c = new FakeCluster();
    c.add('lb', {}, {});
    c.add('ext', { type: 'ClusterIP', externalIPs: ['203.0.113.16', '2001:db8:e::1'] });
    c.add('ext-later', { type: 'ClusterIP', externalIPs: ['203.0.113.16'] });
    const first = controller(c, pools());
    await first.all();
    assert.equal(ann(c, 'default/ext'), '203.0.113.16,2001:db8:e::1');
    const writes = c.writes;
    const second = controller(c, pools());
    const rb = second.rec.rebuild([...c.services.values()]);
    assert.deepEqual([rb.kept, rb.externalKept, rb.externalDropped], [1, 2, []]);
    // A new LoadBalancer Service handled first (a watch event racing the others) cannot take the reserved address.
    c.add('newcomer', {}, { [ANNOTATIONS.addressPool]: 'ext' });
    await second.rec.reconcile('default/newcomer', c.get('default/newcomer'));
    assert.deepEqual(c.ips('default/newcomer'), ['203.0.113.17:VIP']);
    const afterNew = c.writes;
    await second.all();
    assert.equal(c.writes, afterNew, 'nothing else was rewritten');
    assert.ok(afterNew > writes);
    assert.deepEqual([ann(c, 'default/ext'), ann(c, 'default/ext-later')], ['203.0.113.16,2001:db8:e::1', undefined], 'the older Service keeps its externalIP');
  });

  it('rebuild ignores an annotation the Service no longer backs with spec.externalIPs, or that someone else wrote outside an allowing pool', async function () {
    const c = new FakeCluster();
    c.add('stale', { type: 'ClusterIP', externalIPs: [] }, { [EXT]: '203.0.113.16' });
    c.add('forged', { type: 'ClusterIP', externalIPs: ['203.0.113.1'] }, { [EXT]: '203.0.113.1' });
    const { rec, alloc, all } = controller(c, pools());
    const rb = rec.rebuild([...c.services.values()]);
    assert.deepEqual([rb.externalKept, rb.externalDropped], [0, ['default/stale: 203.0.113.16', 'default/forged: 203.0.113.1']]);
    assert.equal(alloc.holderOf(parseIP('203.0.113.16')), undefined);
    assert.equal(alloc.holderOf(parseIP('203.0.113.1')), undefined);
    await all();
    assert.deepEqual([ann(c, 'default/stale'), ann(c, 'default/forged')], [undefined, undefined], 'the controller removes what it would not have written');
  });

  it('turning allowExternalIPs off withdraws the externalIP with a Warning; a configured class leaves ClusterIP Services alone', async function () {
    const c = new FakeCluster();
    c.add('web', { type: 'ClusterIP', externalIPs: ['203.0.113.17'] });
    const { rec, alloc } = controller(c, pools());
    await rec.reconcile('default/web', c.get('default/web'));
    assert.equal(ann(c, 'default/web'), '203.0.113.17');
    alloc.setPools(pools().map((p) => (p.name === 'ext' ? { ...p, allowExternalIPs: false } : p)));
    const r = await rec.reconcile('default/web', c.get('default/web'));
    assert.equal(r.outcome, 'reprocess-all');
    assert.equal(ann(c, 'default/web'), undefined);
    assert.deepEqual(warnings(c, 'default/web'), ['externalIP 203.0.113.17 ignored (no-pool-allows): 203.0.113.17 is in pool "ext", which does not set allowExternalIPs: true']);

    const c2 = new FakeCluster();
    c2.add('web', { type: 'ClusterIP', externalIPs: ['203.0.113.17'] });
    c2.add('classed', { loadBalancerClass: 'portico.dev/lb', externalIPs: ['203.0.113.18'] });
    const classed = controller(c2, pools(), 'portico.dev/lb');
    await classed.all();
    assert.deepEqual([ann(c2, 'default/web'), ann(c2, 'default/classed')], [undefined, '203.0.113.18']);
    assert.equal(c2.events.filter((e) => e.startsWith('default/web')).length, 0, 'not a word about a Service another instance speaks for');
  });

  it('a deleted Service frees its externalIPs', async function () {
    const c = new FakeCluster();
    c.add('web', { type: 'ClusterIP', externalIPs: ['203.0.113.17'] });
    const { rec, alloc } = controller(c, pools());
    await rec.reconcile('default/web', c.get('default/web'));
    assert.equal(alloc.usage('ext')!.IPv4.assigned, 1n);
    const r = await rec.reconcile('default/web', null);
    assert.equal(r.outcome, 'reprocess-all');
    assert.equal(alloc.usage('ext')!.IPv4.assigned, 0n);
  });
});

// Issue 16, points 1, 4, 10 and 11 through the reconciler: what the Services
// hold and which Events they got after each step.
describe('service reconciler: requests as a MetalLB user writes them', function () {
  const warns = (c: FakeCluster, key: string): string[] => c.events.filter((e) => e.startsWith(`${key} Warning`)).map((e) => e.slice(key.length + 1));

  it('a sharing key added to a Service that holds an IP lets a pending Service share it', async function () {
    const c = new FakeCluster();
    c.add('web', { ports: [{ port: 80, protocol: 'TCP' }] });
    c.add('dns', { ports: [{ port: 53, protocol: 'UDP' }] }, { [ANNOTATIONS.allowSharedIP]: 'k1' });
    const { rec } = controller(c, [pool('p', ['203.0.113.0/32'])]);
    await rec.reconcile('default/web', c.get('default/web'));
    const pending = await rec.reconcile('default/dns', c.get('default/dns'));
    assert.match(pending.message ?? '', /PORTICO_POOL_EXHAUSTED/);
    c.services.get('default/web')!.metadata!.annotations = { ...c.services.get('default/web')!.metadata!.annotations, [ANNOTATIONS.allowSharedIP]: 'k1' };
    const r = await rec.reconcile('default/web', c.get('default/web'));
    assert.deepEqual([r.outcome, r.reason], ['reprocess-all', 'unchanged'], 'the pending Service is looked at again');
    await rec.reconcile('default/dns', c.get('default/dns'));
    assert.deepEqual(c.ips('default/dns'), ['203.0.113.0:VIP']);
    assert.deepEqual(c.ips('default/web'), ['203.0.113.0:VIP']);
  });

  const cases: { name: string; spec: ServiceObject['spec']; ann: Record<string, string>; ips: string[]; warnings: RegExp[] }[] = [
    { name: 'annotation and spec.loadBalancerIP agree: no warning', spec: { loadBalancerIP: '203.0.113.5' }, ann: { [ANNOTATIONS.loadBalancerIPs]: '203.0.113.5' }, ips: ['203.0.113.5:VIP'], warnings: [] },
    { name: 'they disagree: the annotation wins and a Warning says so', spec: { loadBalancerIP: '203.0.113.5' }, ann: { [ANNOTATIONS.loadBalancerIPs]: '203.0.113.6' }, ips: ['203.0.113.6:VIP'], warnings: [/RequestIgnored: spec\.loadBalancerIP 203\.0\.113\.5 is ignored: the annotation portico\.dev\/loadBalancerIPs \(203\.0\.113\.6\) wins/] },
    { name: 'metallb.io/loadBalancerIPs is read as an alias', spec: {}, ann: { 'metallb.io/loadBalancerIPs': '203.0.113.7' }, ips: ['203.0.113.7:VIP'], warnings: [] },
    { name: 'metallb.io/address-pool is read as an alias', spec: {}, ann: { 'metallb.io/address-pool': 'q' }, ips: ['198.51.100.0:VIP'], warnings: [] },
    { name: 'portico.dev wins over a different metallb.io value', spec: {}, ann: { 'metallb.io/address-pool': 'q', [ANNOTATIONS.addressPool]: 'p' }, ips: ['203.0.113.0:VIP'], warnings: [/RequestIgnored: annotation metallb\.io\/address-pool \("q"\) is ignored: portico\.dev\/address-pool \("p"\) wins/] },
    { name: 'a metallb.io request and spec.loadBalancerIP disagree', spec: { loadBalancerIP: '203.0.113.5' }, ann: { 'metallb.io/loadBalancerIPs': '203.0.113.4' }, ips: ['203.0.113.4:VIP'], warnings: [/spec\.loadBalancerIP 203\.0\.113\.5 is ignored: the annotation metallb\.io\/loadBalancerIPs/] },
    { name: 'a failed request still says what was ignored', spec: { loadBalancerIP: '203.0.113.5' }, ann: { [ANNOTATIONS.loadBalancerIPs]: '198.51.100.200' }, ips: [], warnings: [/AllocationFailed: PORTICO_IP_NOT_IN_POOL/, /RequestIgnored: spec\.loadBalancerIP/] },
  ];
  for (const t of cases) {
    it(t.name, async function () {
      const c = new FakeCluster();
      c.add('s', t.spec, t.ann);
      const { rec } = controller(c, [pool('p', ['203.0.113.0/29']), pool('q', ['198.51.100.0/30'])]);
      await rec.reconcile('default/s', c.get('default/s'));
      assert.deepEqual(c.ips('default/s'), t.ips);
      const got = warns(c, 'default/s');
      assert.equal(got.length, t.warnings.length, got.join('\n'));
      t.warnings.forEach((w, i) => assert.match(got[i]!, w));
    });
  }

  it('a metallb.io/allow-shared-ip key shares like portico.dev/allow-shared-ip', async function () {
    const c = new FakeCluster();
    c.add('web', { ports: [{ port: 80, protocol: 'TCP' }] }, { 'metallb.io/allow-shared-ip': 'k' });
    c.add('dns', { ports: [{ port: 53, protocol: 'UDP' }] }, { [ANNOTATIONS.allowSharedIP]: 'k' });
    const { all } = controller(c, [pool('p', ['203.0.113.0/29'])]);
    await all();
    assert.deepEqual(c.ips('default/dns'), c.ips('default/web'));
  });

  it('a Service MetalLB allocated keeps its IP when Portico first sees it, and gets Portico\'s pool annotation', async function () {
    const c = new FakeCluster();
    const s = c.add('legacy', {}, { 'metallb.io/ip-allocated-from-pool': 'old-name' });
    s.status = { loadBalancer: { ingress: [{ ip: '203.0.113.6' }] } };
    const { rec } = controller(c, [pool('p', ['203.0.113.0/29'])]);
    await rec.reconcile('default/legacy', c.get('default/legacy'));
    assert.deepEqual(c.ips('default/legacy'), ['203.0.113.6:VIP']);
    assert.equal(c.services.get('default/legacy')!.metadata!.annotations![ANNOTATIONS.allocatedFromPool], 'p');
  });

  it('a Service deleted while its status is written is a normal race: success, nothing logged as an error', async function () {
    const c = new FakeCluster();
    c.add('web', {});
    const errors: string[] = [];
    const log = { error: (m: string) => errors.push(m), info: () => {}, debug: () => {}, child: () => log, debugEnabled: false };
    const alloc = new Allocator([pool('p', ['203.0.113.0/29'])]);
    const gone = Object.assign(new Error('HTTP-Code: 404'), { code: 404 });
    const sink: ServiceSink = { setIngress: () => Promise.reject(gone), setAnnotations: () => Promise.reject(gone), event: () => Promise.resolve() };
    const rec = new ServiceReconciler({ allocator: alloc, sink, loadBalancerClass: undefined, namespaceLabels: () => ({}), log: log });
    const r = await rec.reconcile('default/web', c.get('default/web'));
    assert.deepEqual([r.outcome, r.reason], ['success', 'gone']);
    assert.deepEqual(errors, []);
    const other = await new ServiceReconciler({ allocator: new Allocator([pool('p', ['203.0.113.0/29'])]), sink: { ...sink, setIngress: () => Promise.reject(new Error('connection refused')) }, loadBalancerClass: undefined, namespaceLabels: () => ({}), log: log })
      .reconcile('default/web', c.get('default/web'));
    assert.equal(other.outcome, 'retry');
    assert.deepEqual(errors, ['service write failed'], 'other failures stay errors');
  });
});
