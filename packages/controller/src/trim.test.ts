import { strict as assert } from 'node:assert';
import { toRequest, trimNamespace, trimService, type ServiceObject } from './service.ts';

describe('informer cache trimming', function () {
  const full = (): Record<string, unknown> => ({
    apiVersion: 'v1', kind: 'Service',
    metadata: {
      name: 'web', namespace: 'shop', uid: 'u1', resourceVersion: '42', creationTimestamp: '2026-01-01T00:00:00Z',
      labels: { app: 'web' }, annotations: { 'portico.dev/address-pool': 'lan', 'kubectl.kubernetes.io/last-applied-configuration': '{"big":true}' },
      managedFields: [{ manager: 'kubectl', fieldsV1: { 'f:spec': {} } }],
    },
    spec: {
      type: 'LoadBalancer', clusterIP: '198.51.100.1', clusterIPs: ['198.51.100.1'], ipFamilies: ['IPv4'], ipFamilyPolicy: 'SingleStack', externalTrafficPolicy: 'Local',
      selector: { app: 'web' }, ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080, nodePort: 30080 }], externalIPs: ['203.0.113.5'], sessionAffinity: 'None',
    },
    status: { loadBalancer: { ingress: [{ ip: '203.0.113.1', ipMode: 'VIP', ports: [] }] } },
  });

  it('keeps what the controller reads and drops the rest, so the allocator request is unchanged', function () {
    const before = full();
    const req = toRequest(before, {});
    const obj = full();
    trimService(obj);
    assert.deepEqual(obj, {
      metadata: { name: 'web', namespace: 'shop', uid: 'u1', resourceVersion: '42', creationTimestamp: '2026-01-01T00:00:00Z', labels: { app: 'web' }, annotations: { 'portico.dev/address-pool': 'lan' } },
      spec: { type: 'LoadBalancer', ipFamilies: ['IPv4'], ipFamilyPolicy: 'SingleStack', externalTrafficPolicy: 'Local', selector: { app: 'web' }, ports: [{ port: 80, protocol: 'TCP' }], externalIPs: ['203.0.113.5'] },
      status: { loadBalancer: { ingress: [{ ip: '203.0.113.1', ipMode: 'VIP' }] } },
    });
    assert.deepEqual(toRequest(obj as ServiceObject, {}), req);
    // A deleted Service's last state (no spec, no status) still trims.
    const bare: Record<string, unknown> = { metadata: { name: 'x', namespace: 'y', resourceVersion: '1' } };
    trimService(bare);
    assert.deepEqual(bare, { metadata: { name: 'x', namespace: 'y', resourceVersion: '1' }, status: {} });
  });

  it('keeps a namespace\'s name and labels', function () {
    const ns: Record<string, unknown> = { kind: 'Namespace', metadata: { name: 'shop', resourceVersion: '7', labels: { team: 'a' }, managedFields: [{}] }, spec: { finalizers: ['kubernetes'] }, status: { phase: 'Active' } };
    trimNamespace(ns);
    assert.deepEqual(ns, { metadata: { name: 'shop', resourceVersion: '7', labels: { team: 'a' } } });
  });
});
