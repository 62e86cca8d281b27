// The shared Service rules as scenario tables: each row is a Service (or an
// endpoint's conditions), a Portico's class, and what every component must
// conclude from them.
import { strict as assert } from 'node:assert';
import { ANNOTATIONS } from './api/types.ts';
import { acceptedExternalIPs, classifyService, endpointReadiness, handlesExternalIPs, isOurService, serviceClass, type ServiceFacts } from './service.ts';

const svc = (type: string | undefined, loadBalancerClass?: string | null): ServiceFacts => ({ spec: { type, ...(loadBalancerClass === undefined ? {} : { loadBalancerClass }) } });

describe('shared Service rules', () => {
  describe('which Services are Portico\'s (classifyService, isOurService, handlesExternalIPs)', () => {
    const rows: Array<{ what: string; svc: ServiceFacts; ours: string | undefined; want: string; externalIPs: boolean }> = [
      { what: 'classless LoadBalancer, classless Portico', svc: svc('LoadBalancer'), ours: undefined, want: 'mine', externalIPs: true },
      { what: 'empty class is no class (the API refuses "" anyway)', svc: svc('LoadBalancer', ''), ours: undefined, want: 'mine', externalIPs: true },
      { what: 'null class is no class', svc: svc('LoadBalancer', null), ours: undefined, want: 'mine', externalIPs: true },
      { what: 'another implementation\'s class', svc: svc('LoadBalancer', 'example.com/other'), ours: undefined, want: 'other-class', externalIPs: false },
      { what: 'our class', svc: svc('LoadBalancer', 'portico.dev/a'), ours: 'portico.dev/a', want: 'mine', externalIPs: true },
      { what: 'a classless Service is not a classed Portico\'s', svc: svc('LoadBalancer'), ours: 'portico.dev/a', want: 'other-class', externalIPs: false },
      { what: 'an empty-class Service is not a classed Portico\'s', svc: svc('LoadBalancer', ''), ours: 'portico.dev/a', want: 'other-class', externalIPs: false },
      { what: 'a class that only starts like ours', svc: svc('LoadBalancer', 'portico.dev/ab'), ours: 'portico.dev/a', want: 'other-class', externalIPs: false },
      { what: '--load-balancer-class= (empty flag) is the classless Portico', svc: svc('LoadBalancer'), ours: '', want: 'mine', externalIPs: true },
      { what: 'ClusterIP: externalIPs for the classless Portico only', svc: svc('ClusterIP'), ours: undefined, want: 'not-load-balancer', externalIPs: true },
      { what: 'NodePort, classed Portico', svc: svc('NodePort'), ours: 'portico.dev/a', want: 'not-load-balancer', externalIPs: false },
      { what: 'ExternalName has no addresses', svc: svc('ExternalName'), ours: undefined, want: 'not-load-balancer', externalIPs: false },
      { what: 'no type at all', svc: svc(undefined), ours: undefined, want: 'not-load-balancer', externalIPs: true },
    ];
    for (const r of rows) {
      it(r.what, () => {
        const c = classifyService(r.svc, r.ours);
        assert.equal(c.mine ? 'mine' : c.why, r.want);
        assert.equal(isOurService(r.svc, r.ours), r.want === 'mine');
        assert.equal(handlesExternalIPs(r.svc, r.ours), r.externalIPs);
      });
    }
    it('serviceClass normalises the field', () => {
      assert.deepEqual([svc('LoadBalancer'), svc('LoadBalancer', ''), svc('LoadBalancer', null), svc('LoadBalancer', 'x.io/y')].map(serviceClass), [undefined, undefined, undefined, 'x.io/y']);
    });
  });

  describe('accepted externalIPs: recorded by the controller and still listed', () => {
    const ext = (listed: string[], recorded: string | undefined): ServiceFacts => ({
      metadata: { annotations: recorded === undefined ? {} : { [ANNOTATIONS.externalIPs]: recorded } },
      spec: { type: 'ClusterIP', externalIPs: listed },
    });
    const rows: Array<[string, ServiceFacts, string[]]> = [
      ['no annotation: nothing, whatever the spec lists', ext(['203.0.113.17'], undefined), []],
      ['recorded and listed', ext(['203.0.113.17', '203.0.113.18'], '203.0.113.18'), ['203.0.113.18']],
      ['recorded but no longer listed (stale annotation)', ext(['203.0.113.17'], '203.0.113.18'), []],
      ['junk and blanks in the annotation are skipped', ext(['203.0.113.17'], ' 203.0.113.17 ,junk,'), ['203.0.113.17']],
      ['IPv6 compared in canonical form, answered canonical', ext(['2001:DB8:0:0::1'], '2001:db8::0:1'), ['2001:db8::1']],
      ['duplicates once, in the annotation\'s order', ext(['203.0.113.2', '203.0.113.1'], '203.0.113.1,203.0.113.2,203.0.113.1'), ['203.0.113.1', '203.0.113.2']],
    ];
    for (const [what, s, want] of rows) it(what, () => assert.deepEqual(acceptedExternalIPs(s), want));
  });

  describe('endpoint readiness (discovery.k8s.io/v1 conditions)', () => {
    const rows: Array<[string, Parameters<typeof endpointReadiness>[0], [boolean, boolean, boolean]]> = [
      ['no conditions: ready and serving', undefined, [true, true, false]],
      ['ready absent means ready', {}, [true, true, false]],
      ['null ready means ready', { ready: null }, [true, true, false]],
      ['not ready, serving absent: not serving', { ready: false }, [false, false, false]],
      ['terminating is never ready, even if it says so', { ready: true, terminating: true }, [false, false, true]],
      ['terminating but still serving (drains)', { ready: false, serving: true, terminating: true }, [false, true, true]],
      ['serving false wins over ready', { ready: true, serving: false }, [true, false, false]],
    ];
    for (const [what, c, [ready, serving, terminating]] of rows) it(what, () => assert.deepEqual(endpointReadiness(c), { ready, serving, terminating }));
  });
});
