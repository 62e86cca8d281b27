import { strict as assert } from 'node:assert';
import { DesiredBuilder, desiredState, serviceDesired, type VirtualService } from './desired.ts';
import { endpoint, port, service, world } from './testdata/world.ts';

const EPS = [
  endpoint('100.64.1.5', 'node-1'),
  endpoint('100.64.2.5', 'node-2'),
  endpoint('100.64.3.5', 'node-3', { ports: { http: { port: 9090, protocol: 'TCP' } } }),
  endpoint('2001:db8:64:1::5', 'node-1'),
  endpoint('2001:db8:64:2::5', 'node-2'),
];

function reals(vs: VirtualService | undefined): string[] {
  return (vs?.reals ?? []).map((r) => `${r.address}:${r.port}${r.remote ? ' remote' : ''}`);
}

describe('dataplane desired state', () => {
  const cases: Array<{ name: string; svc: Parameters<typeof service>[1]; self?: string; check: (s: ReturnType<typeof desiredState>) => void }> = [
    {
      name: 'Cluster: every ready endpoint of the VIP\'s family, named target ports resolved per endpoint, remote ones masqueraded',
      svc: { endpoints: EPS },
      check: (s) => {
        const vs = s.services.get('tcp/203.0.113.10/80');
        assert.deepEqual(reals(vs), ['100.64.1.5:8080', '100.64.2.5:8080 remote', '100.64.3.5:9090 remote']);
        assert.equal(vs?.masquerade, true);
        assert.equal(vs?.scheduler, 'rr');
        assert.equal(vs?.forward, 'masq');
        assert.equal(vs?.persistenceSeconds, undefined);
        assert.deepEqual([...s.vips], ['203.0.113.10']);
      },
    },
    {
      name: 'Local: only this node\'s endpoints, no masquerade (the client address is kept)',
      svc: { endpoints: EPS, externalTrafficPolicy: 'Local' },
      check: (s) => {
        const vs = s.services.get('tcp/203.0.113.10/80');
        assert.deepEqual(reals(vs), ['100.64.1.5:8080']);
        assert.equal(vs?.masquerade, false);
      },
    },
    {
      name: 'Local on a node without endpoints: the virtual service exists with no real servers',
      svc: { endpoints: EPS, externalTrafficPolicy: 'Local' },
      self: 'node-9',
      check: (s) => assert.deepEqual(reals(s.services.get('tcp/203.0.113.10/80')), []),
    },
    {
      name: 'dual stack: each VIP gets the endpoints of its family',
      svc: { endpoints: EPS, ips: ['203.0.113.10', '2001:db8:10::a'] },
      check: (s) => {
        assert.deepEqual(reals(s.services.get('tcp/2001:db8:10::a/80')), ['2001:db8:64:1::5:8080', '2001:db8:64:2::5:8080 remote']);
        assert.equal(s.services.get('tcp/2001:db8:10::a/80')?.family, 'inet6');
        assert.equal(s.services.size, 2);
      },
    },
    {
      name: 'not-ready endpoints get no traffic; serving terminating ones do only when nothing is ready',
      svc: { endpoints: [endpoint('100.64.1.5', 'node-1', { ready: false, serving: false }), endpoint('100.64.2.5', 'node-2', { ready: false, serving: true, terminating: true }), endpoint('100.64.2.6', 'node-2')] },
      check: (s) => assert.deepEqual(reals(s.services.get('tcp/203.0.113.10/80')), ['100.64.2.6:8080 remote']),
    },
    {
      name: 'only terminating serving endpoints left: they keep the traffic',
      svc: { endpoints: [endpoint('100.64.1.5', 'node-1', { ready: false, serving: false }), endpoint('100.64.2.5', 'node-2', { ready: false, serving: true, terminating: true })] },
      check: (s) => assert.deepEqual(reals(s.services.get('tcp/203.0.113.10/80')), ['100.64.2.5:8080 remote']),
    },
    {
      name: 'scheduler and forward annotations; sessionAffinity ClientIP becomes persistence',
      svc: { endpoints: EPS.slice(0, 2), annotations: { 'portico.dev/ipvs-scheduler': 'sh', 'portico.dev/ipvs-forward': 'masq' }, sessionAffinity: { clientIP: true, timeoutSeconds: 600 } },
      check: (s) => {
        const vs = s.services.get('tcp/203.0.113.10/80');
        assert.equal(vs?.scheduler, 'sh');
        assert.equal(vs?.persistenceSeconds, 600);
        assert.deepEqual(s.warnings, []);
      },
    },
    {
      name: 'an unknown scheduler falls back to rr with a warning',
      svc: { endpoints: EPS.slice(0, 1), annotations: { 'portico.dev/ipvs-scheduler': 'fastest' } },
      check: (s) => {
        assert.equal(s.services.get('tcp/203.0.113.10/80')?.scheduler, 'rr');
        assert.deepEqual(s.warnings.map((w) => w.reason), ['unknown-scheduler']);
        assert.match(s.warnings[0]!.message, /"fastest" is not one of rr, wrr/);
      },
    },
    {
      name: 'dr forwarding keeps the destination port and is never masqueraded; an unknown forward falls back to masq',
      svc: { endpoints: EPS.slice(0, 2), annotations: { 'portico.dev/ipvs-forward': 'dr' } },
      check: (s) => {
        const vs = s.services.get('tcp/203.0.113.10/80');
        assert.equal(vs?.forward, 'dr');
        assert.equal(vs?.masquerade, false);
        assert.deepEqual(reals(vs), ['100.64.1.5:80', '100.64.2.5:80 remote']);
        assert.deepEqual(s.warnings.map((w) => w.reason), ['forward-port-ignored']);
      },
    },
    {
      name: 'an unresolvable named target port leaves that endpoint out, with a warning',
      svc: { endpoints: [endpoint('100.64.1.5', 'node-1'), endpoint('100.64.2.5', 'node-2', { ports: {} })] },
      check: (s) => {
        assert.deepEqual(reals(s.services.get('tcp/203.0.113.10/80')), ['100.64.1.5:8080']);
        assert.deepEqual(s.warnings.map((w) => w.reason), ['unresolved-target-port']);
      },
    },
    {
      name: 'a numeric targetPort applies when the EndpointSlice does not name the port; UDP and several ports',
      svc: { endpoints: [endpoint('100.64.1.5', 'node-1', { ports: {} })], ports: [port({ name: 'dns', protocol: 'UDP', port: 53, targetPort: 5353 }), port({ name: 'web', port: 443, targetPort: 8443 })] },
      check: (s) => {
        assert.deepEqual([...s.services.keys()].sort(), ['tcp/203.0.113.10/443', 'udp/203.0.113.10/53']);
        assert.deepEqual(reals(s.services.get('udp/203.0.113.10/53')), ['100.64.1.5:5353']);
        assert.equal(s.services.get('udp/203.0.113.10/53')?.protocol, 'udp');
      },
    },
  ];
  for (const c of cases) {
    it(c.name, () => c.check(desiredState(world(c.self ?? 'node-1', [service('web', c.svc)]))));
  }

  it('two Services on one IP with the same port: the first by key keeps it, the other is told', () => {
    const s = desiredState(world('node-1', [service('b', { endpoints: EPS.slice(1, 2) }), service('a', { endpoints: EPS.slice(0, 1) })]));
    assert.equal(s.services.get('tcp/203.0.113.10/80')?.service, 'default/a');
    assert.deepEqual(s.warnings.map((w) => `${w.service} ${w.reason}`), ['default/b port-conflict']);
  });

  it('memoises per ServiceState object: the same object gives the same virtual service objects', () => {
    const a = service('a', { endpoints: EPS });
    const one = desiredState(world('node-1', [a]));
    const two = desiredState(world('node-1', [a, service('b', { ips: ['203.0.113.11'] })]));
    assert.equal(one.services.get('tcp/203.0.113.10/80'), two.services.get('tcp/203.0.113.10/80'));
    const changed = desiredState(world('node-1', [{ ...a, endpoints: EPS.slice(0, 1) }]));
    assert.notEqual(changed.services.get('tcp/203.0.113.10/80'), one.services.get('tcp/203.0.113.10/80'));
    assert.deepEqual(serviceDesired(a, 'node-2').services[0]!.reals.filter((r) => !r.remote).map((r) => r.address), ['100.64.2.5']);
  });
});

describe('DesiredBuilder (incremental desired state)', () => {
  const a = service('a', { endpoints: EPS });
  const b = service('b', { ips: ['203.0.113.10'], endpoints: EPS.slice(1, 2) });
  const c = service('c', { ips: ['203.0.113.12', '2001:db8:10::c'], endpoints: EPS, externalTrafficPolicy: 'Local' });
  const c2 = { ...c, endpoints: EPS.slice(0, 1) };
  const steps: Array<{ name: string; services: Parameters<typeof world>[1]; changed: string[] }> = [
    { name: 'first World: everything is new', services: [a, c], changed: ['tcp/2001:db8:10::c/80', 'tcp/203.0.113.10/80', 'tcp/203.0.113.12/80'] },
    { name: 'the same objects again: nothing changed', services: [a, c], changed: [] },
    { name: 'b claims a\'s port: a keeps it (smaller key), nothing changes', services: [c, b, a], changed: [] },
    { name: 'a goes: b takes the port', services: [b, c], changed: ['tcp/203.0.113.10/80'] },
    { name: 'one endpoint of c changes: only c\'s virtual services', services: [b, c2], changed: ['tcp/2001:db8:10::c/80', 'tcp/203.0.113.12/80'] },
    { name: 'in another order, b gone and a back at once: only the port they share', services: [c2, a], changed: ['tcp/203.0.113.10/80'] },
    { name: 'everything gone', services: [], changed: ['tcp/2001:db8:10::c/80', 'tcp/203.0.113.10/80', 'tcp/203.0.113.12/80'] },
  ];
  it('matches desiredState after every World, and names exactly the virtual services that changed', () => {
    const builder = new DesiredBuilder();
    for (const s of steps) {
      const w = world('node-1', s.services);
      const { state, changed } = builder.update(w);
      const want = desiredState(w);
      assert.deepEqual(new Map([...state.services].sort()), new Map([...want.services].sort()), s.name);
      assert.deepEqual([...state.vips].sort(), [...want.vips].sort(), s.name);
      assert.deepEqual([...state.masquerade.cluster].sort(), [...want.masquerade.cluster].sort(), s.name);
      assert.deepEqual([...state.masquerade.local].sort(), [...want.masquerade.local].sort(), s.name);
      assert.deepEqual(state.warnings.map((x) => `${x.service} ${x.reason}`).sort(), want.warnings.map((x) => `${x.service} ${x.reason}`).sort(), s.name);
      assert.deepEqual([...changed].sort(), s.changed, s.name);
    }
  });

  it('with Worlds that name their changed Services, gives the same results while looking at those only', () => {
    const full = new DesiredBuilder();
    const delta = new DesiredBuilder();
    let prev = new Map<string, ReturnType<typeof service>>();
    for (const [i, s] of steps.entries()) {
      const w = world('node-1', s.services);
      // The keys whose ServiceState object differs from the last World's, as the watcher reports them.
      const names = new Set([...prev.keys(), ...w.services.keys()].filter((k) => prev.get(k) !== w.services.get(k)));
      const dw = { ...w, generation: i + 1, changed: { from: i, services: names } };
      const want = full.update(w);
      const got = delta.update(dw);
      assert.deepEqual(new Map([...got.state.services].sort()), new Map([...want.state.services].sort()), s.name);
      assert.deepEqual([...got.state.vips].sort(), [...want.state.vips].sort(), s.name);
      assert.deepEqual([...got.changed].sort(), [...want.changed].sort(), s.name);
      prev = new Map(w.services);
    }
    // Only the named Services are looked at: a change the World does not name goes unseen until
    // a World that cannot say what changed (its `from` is not the last one seen) forces a full look.
    const b2 = { ...b, endpoints: EPS.slice(0, 2) };
    const hidden = world('node-1', [b2]); // after 'everything gone': b2 is new
    assert.deepEqual([...delta.update({ ...hidden, generation: 20, changed: { from: steps.length, services: new Set() } }).changed], []);
    assert.deepEqual([...delta.update({ ...hidden, generation: 22, changed: { from: 21, services: new Set() } }).changed], ['tcp/203.0.113.10/80']);
  });
});
