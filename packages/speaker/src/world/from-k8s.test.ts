import { strict as assert } from 'node:assert';
import { acceptedExternalIPs } from '@portico/shared';
import { endpointsOf, nodeState, serviceState, serviceVerdict, type EndpointSliceObject, type ServiceObject } from './from-k8s.ts';

const svc = (over: Partial<ServiceObject['spec']> = {}, ingress: string[] = ['203.0.113.10'], annotations: Record<string, string> = {}): ServiceObject => ({
  metadata: { name: 'web', namespace: 'shop', uid: 'u1', annotations: { 'portico.dev/ip-allocated-from-pool': 'default', ...annotations } },
  spec: { type: 'LoadBalancer', ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 'http', nodePort: 30080 }], ...over },
  status: { loadBalancer: { ingress: ingress.map((ip) => ({ ip })) } },
});

const slice = (family: 'IPv4' | 'IPv6', eps: NonNullable<EndpointSliceObject['endpoints']>): EndpointSliceObject => ({
  metadata: { name: `web-${family}`, namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } },
  addressType: family, endpoints: eps, ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
});

describe('world: Kubernetes objects to domain values', () => {
  describe('which Services the speaker announces', () => {
    const cases: [string, ServiceObject, string | undefined, string][] = [
      ['a LoadBalancer Service with an IP', svc(), undefined, 'included'],
      ['a ClusterIP Service', svc({ type: 'ClusterIP' }), undefined, 'not-load-balancer'],
      ['a Service of another class', svc({ loadBalancerClass: 'example.com/other' }), undefined, 'other-class'],
      ['a Service of our configured class', svc({ loadBalancerClass: 'portico.dev/lb' }), 'portico.dev/lb', 'included'],
      ['a Service without class when we answer to a class', svc(), 'portico.dev/lb', 'other-class'],
      ['a pending Service', svc({}, []), undefined, 'no-ip'],
    ];
    for (const [what, s, cls, want] of cases) it(`${what}: ${want}`, () => assert.equal(serviceVerdict(s, cls), want));
  });

  describe('accepted externalIPs', () => {
    const EXT = 'portico.dev/external-ips';
    const ext = (type: string, externalIPs: string[], recorded: string | undefined, ingress: string[] = []): ServiceObject => {
      const s = svc({ type, externalIPs }, ingress, recorded === undefined ? {} : { [EXT]: recorded });
      delete s.metadata!.annotations!['portico.dev/ip-allocated-from-pool'];
      return s;
    };
    const cases: [string, ServiceObject, string | undefined, string, string[]][] = [
      ['a ClusterIP Service with an accepted externalIP', ext('ClusterIP', ['203.0.113.17'], '203.0.113.17'), undefined, 'included', ['203.0.113.17']],
      ['a NodePort Service with accepted externalIPs of both families', ext('NodePort', ['2001:db8:e::5', '203.0.113.17'], '203.0.113.17,2001:db8:e::5'), undefined, 'included', ['203.0.113.17', '2001:db8:e::5']],
      ['a ClusterIP Service whose externalIPs were all ignored', ext('ClusterIP', ['203.0.113.3'], undefined), undefined, 'not-load-balancer', []],
      ['an annotation naming an address the Service does not list (stale or hand-written)', ext('ClusterIP', ['203.0.113.17'], '203.0.113.17,203.0.113.99'), undefined, 'included', ['203.0.113.17']],
      ['an annotation alone, without spec.externalIPs', ext('ClusterIP', [], '203.0.113.99'), undefined, 'not-load-balancer', []],
      ['a ClusterIP Service when we answer to a class (it has none)', ext('ClusterIP', ['203.0.113.17'], '203.0.113.17'), 'portico.dev/lb', 'not-load-balancer', []],
      ['an ExternalName Service', ext('ExternalName', ['203.0.113.17'], '203.0.113.17'), undefined, 'not-load-balancer', []],
      ['a pending LoadBalancer Service with an accepted externalIP', ext('LoadBalancer', ['203.0.113.17'], '203.0.113.17'), undefined, 'included', ['203.0.113.17']],
      ['a LoadBalancer Service: its IPs first, then the externalIPs, written long or not', ext('LoadBalancer', ['2001:0db8:e::0005', '203.0.113.17'], '2001:db8:e::5,203.0.113.17', ['203.0.113.10']), undefined, 'included', ['203.0.113.10', '2001:db8:e::5', '203.0.113.17']],
      ['an externalIP equal to the LoadBalancer IP counts once', ext('LoadBalancer', ['203.0.113.10'], '203.0.113.10', ['203.0.113.10']), undefined, 'included', ['203.0.113.10']],
      ['a LoadBalancer Service of another class', { ...ext('LoadBalancer', ['203.0.113.17'], '203.0.113.17'), spec: { type: 'LoadBalancer', loadBalancerClass: 'example.com/other', externalIPs: ['203.0.113.17'] } }, undefined, 'other-class', []],
    ];
    for (const [what, s, cls, verdict, ips] of cases) {
      it(`${what}: ${verdict} with ${ips.join(', ') || 'nothing'}`, () => {
        assert.equal(serviceVerdict(s, cls), verdict);
        const state = serviceState(s, [], cls);
        assert.deepEqual(state?.ips ?? [], ips);
      });
    }

    it('only what the controller recorded counts, whatever spec.externalIPs says', () => {
      assert.deepEqual(acceptedExternalIPs(ext('ClusterIP', ['203.0.113.17', '203.0.113.18'], '203.0.113.18')), ['203.0.113.18']);
      assert.deepEqual(acceptedExternalIPs(ext('ClusterIP', ['203.0.113.17'], ' 203.0.113.17 ,junk,')), ['203.0.113.17']);
    });

    it('a Service with only externalIPs keeps its ports for the dataplane and has no pool', () => {
      const s = serviceState(ext('ClusterIP', ['203.0.113.17'], '203.0.113.17'), [], undefined)!;
      assert.equal(s.key, 'shop/web');
      assert.equal(s.pool, undefined);
      assert.deepEqual(s.ports.map((p) => `${p.protocol}/${p.port}`), ['TCP/80']);
    });
  });

  it('keeps the IPs in status order, the pool, the policy and the affinity', () => {
    const s = serviceState(svc({ externalTrafficPolicy: 'Local', sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 600 } } }, ['203.0.113.10', '2001:db8:ff::10']), [], undefined)!;
    assert.equal(s.key, 'shop/web');
    assert.deepEqual(s.ips, ['203.0.113.10', '2001:db8:ff::10']);
    assert.equal(s.pool, 'default');
    assert.equal(s.externalTrafficPolicy, 'Local');
    assert.deepEqual(s.sessionAffinity, { clientIP: true, timeoutSeconds: 600 });
    assert.deepEqual(s.ports, [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 'http', nodePort: 30080 }]);
    assert.deepEqual(serviceState(svc(), [], undefined)!.sessionAffinity, { clientIP: false, timeoutSeconds: 0 });
  });

  it('reads endpoints of both families with readiness, node and ports; missing ready means ready; terminating is not ready', () => {
    const eps = endpointsOf([
      slice('IPv4', [
        { addresses: ['100.64.2.10'], conditions: { ready: true }, nodeName: 'node-2', targetRef: { kind: 'Pod', name: 'web-b' } },
        { addresses: ['100.64.1.10'], nodeName: 'node-1', targetRef: { kind: 'Pod', name: 'web-a' } },
        { addresses: ['100.64.3.10'], conditions: { ready: false, serving: true, terminating: true }, nodeName: 'node-3' },
      ]),
      slice('IPv6', [{ addresses: ['2001:db8:64:1::a'], conditions: { ready: true }, nodeName: 'node-1' }]),
      { addressType: 'FQDN', endpoints: [{ addresses: ['example.com'] }] },
    ]);
    assert.deepEqual(eps.map((e) => [e.ip, e.family, e.node, e.ready, e.terminating, e.pod]), [
      ['100.64.1.10', 'IPv4', 'node-1', true, false, 'web-a'],
      ['100.64.2.10', 'IPv4', 'node-2', true, false, 'web-b'],
      ['100.64.3.10', 'IPv4', 'node-3', false, true, undefined],
      ['2001:db8:64:1::a', 'IPv6', 'node-1', true, false, undefined],
    ]);
    assert.deepEqual(eps[0]!.ports, { http: { port: 8080, protocol: 'TCP' } });
    assert.equal(eps[2]!.serving, true);
  });

  it('reads node readiness, network, exclusion and addresses', () => {
    const n = nodeState({
      metadata: { name: 'node-1', labels: { 'node.kubernetes.io/exclude-from-external-load-balancers': '' } },
      status: {
        conditions: [{ type: 'Ready', status: 'True' }, { type: 'NetworkUnavailable', status: 'True' }],
        addresses: [{ type: 'InternalIP', address: '198.51.100.11' }, { type: 'Hostname', address: 'node-1' }, { type: 'InternalIP', address: '2001:db8:1::11' }],
      },
    });
    assert.deepEqual([n.ready, n.networkUnavailable, n.excluded], [true, true, true]);
    assert.deepEqual(n.addresses, ['198.51.100.11', '2001:db8:1::11']);
    assert.deepEqual([nodeState({ metadata: { name: 'x' } }).ready, nodeState({ metadata: { name: 'x' } }).excluded], [false, false]);
  });
});
