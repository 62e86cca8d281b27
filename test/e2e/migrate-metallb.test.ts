// The in-place switch from MetalLB (issue 16, point 10), on the real API
// server of the lab. MetalLB itself cannot be pulled as an image here, so the
// test writes what MetalLB would have left behind: Services with MetalLB's
// annotations and the status its controller wrote (IPs that are not the ones
// Portico would pick first, a shared IP, a requested IP, a dual-stack pair),
// and MetalLB's pool with a CIDR that has host bits. Then, with those Services
// untouched, `portico import` converts MetalLB's objects, the output is
// applied and Portico's controller starts: every IP MetalLB wrote is kept and
// adopted (Portico's pool annotation added), and a new Service gets a free one.
// Traffic to the kept IPs needs speakers and is covered by the layer-2 suites.
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { PORTICO_NAMESPACE as NS, installPortico, repoRoot, waitFor, type Lab, type PorticoInstall } from '../lab/index.ts';
import { FAST_LEASE } from '../lab/portico.ts';
import { requireE2e, sharedLab } from './shared-lab.ts';

const PORTICO = path.join(repoRoot, 'bin', 'portico');
const APP = 'mig-app';
type Obj = Record<string, unknown>;

// MetalLB's objects as a user has them (metallb-system, metallb.io names).
const METALLB = [
  { apiVersion: 'metallb.io/v1beta1', kind: 'IPAddressPool', metadata: { name: 'mlb-pool', namespace: 'metallb-system' }, spec: { addresses: ['203.0.113.40/27', '2001:db8:30::/124'] } },
  { apiVersion: 'metallb.io/v1beta1', kind: 'IPAddressPool', metadata: { name: 'mlb-manual', namespace: 'metallb-system' }, spec: { addresses: ['203.0.113.96/29'], autoAssign: false } },
  { apiVersion: 'metallb.io/v1beta1', kind: 'L2Advertisement', metadata: { name: 'mlb-l2', namespace: 'metallb-system' }, spec: { ipAddressPools: ['mlb-pool', 'mlb-manual'] } },
];

// name -> [annotations MetalLB's user wrote, spec extras, the ingress MetalLB's controller wrote, the pool it recorded]
const SERVICES: Record<string, [Record<string, string>, Obj, string[], string]> = {
  'auto': [{}, {}, ['203.0.113.45'], 'mlb-pool'],
  'requested': [{ 'metallb.io/loadBalancerIPs': '203.0.113.50' }, {}, ['203.0.113.50'], 'mlb-pool'],
  'share-web': [{ 'metallb.io/allow-shared-ip': 'k' }, { ports: [{ port: 80, protocol: 'TCP', targetPort: 80 }] }, ['203.0.113.33'], 'mlb-pool'],
  'share-dns': [{ 'metallb.io/allow-shared-ip': 'k' }, { ports: [{ port: 53, protocol: 'UDP', targetPort: 53 }] }, ['203.0.113.33'], 'mlb-pool'],
  'dual': [{}, { ipFamilies: ['IPv4', 'IPv6'], ipFamilyPolicy: 'RequireDualStack' }, ['203.0.113.34', '2001:db8:30::7'], 'mlb-pool'],
  'manual': [{ 'metallb.io/address-pool': 'mlb-manual' }, {}, ['203.0.113.99'], 'mlb-manual'],
};

describe('migration from MetalLB in place (e2e, root): every IP MetalLB wrote is kept', function () {
  this.timeout(240_000);
  let lab: Lab;
  let core: k8s.CoreV1Api;
  let install: PorticoInstall | undefined;

  const ingress = async (name: string): Promise<{ ips: string[]; pool: string | undefined }> => {
    const s = await core.readNamespacedService({ name, namespace: APP });
    return { ips: (s.status?.loadBalancer?.ingress ?? []).map((i) => i.ip ?? ''), pool: s.metadata?.annotations?.['portico.dev/ip-allocated-from-pool'] };
  };

  before(async function () {
    requireE2e(this);
    lab = await sharedLab();
    core = lab.kc.makeApiClient(k8s.CoreV1Api);
    await lab.kubectlResult(['create', 'namespace', APP]);
    // What MetalLB left: the Services and the status its controller wrote (MetalLB is gone).
    for (const [name, [annotations, spec, ips, pool]] of Object.entries(SERVICES)) {
      const svc = { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: APP, annotations }, spec: { type: 'LoadBalancer', selector: { app: name }, ports: [{ port: 80, protocol: 'TCP', targetPort: 80 }], ...spec } };
      const r = await lab.kubectlResult(['apply', '-f', '-'], JSON.stringify(svc));
      assert.equal(r.code, 0, r.stderr);
      await lab.kubectl('-n', APP, 'annotate', 'service', name, `metallb.io/ip-allocated-from-pool=${pool}`);
      await lab.kubectl('-n', APP, 'patch', 'service', name, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { loadBalancer: { ingress: ips.map((ip) => ({ ip, ipMode: 'VIP' })) } } }));
    }
  });

  after(async function () {
    await install?.stop();
    await lab?.kubectlResult(['delete', 'namespace', APP, '--wait=false']);
    await lab?.kubectlResult(['delete', 'ipaddresspools,l2advertisements', '--all', '-n', NS, '--wait=false']);
  });

  it('portico import normalises the CIDR with host bits and says so; Portico installed on top keeps every IP', async function () {
    const r = spawnSync(PORTICO, ['import', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: METALLB }), encoding: 'utf8', env: { ...process.env, KUBECONFIG: lab.kubeconfig, NO_COLOR: '1' } });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /203\.0\.113\.40\/27 has host bits set: written as its network 203\.0\.113\.32\/27/);
    // The order a user follows: Portico's CRDs, the imported configuration, then the components.
    await lab.kubectl('apply', '-f', path.join(repoRoot, 'manifests', 'crds'));
    await lab.kubectl('wait', '--for=condition=Established', '--timeout=60s', 'crd/ipaddresspools.portico.dev', 'crd/l2advertisements.portico.dev');
    await lab.kubectlResult(['create', 'namespace', NS]);
    const applied = await lab.kubectlResult(['apply', '-f', '-'], r.stdout);
    assert.equal(applied.code, 0, applied.stderr);
    const before = new Map<string, string[]>();
    for (const name of Object.keys(SERVICES)) before.set(name, (await ingress(name)).ips);

    install = await installPortico(lab, { speakers: false, replicas: 1, controllerArgs: FAST_LEASE });
    for (const [name, [, , ips, pool]] of Object.entries(SERVICES)) {
      const got = await waitFor(`${APP}/${name} adopted (Portico's pool annotation)`, async () => { const g = await ingress(name); return g.pool !== undefined ? g : undefined; }, 30_000, 200);
      assert.deepEqual(got.ips, ips, `${name} keeps what MetalLB wrote`);
      assert.deepEqual(got.ips, before.get(name));
      assert.equal(got.pool, pool);
    }
    // A new Service gets a free address, none of the adopted ones.
    const fresh = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'fresh', namespace: APP }, spec: { type: 'LoadBalancer', selector: { app: 'fresh' }, ports: [{ port: 80, targetPort: 80 }] } };
    assert.equal((await lab.kubectlResult(['apply', '-f', '-'], JSON.stringify(fresh))).code, 0);
    const got = await waitFor('fresh to get an IP', async () => { const g = await ingress('fresh'); return g.ips.length === 1 ? g.ips : undefined; }, 30_000, 200);
    assert.deepEqual(got, ['203.0.113.32'], 'the lowest free address of the normalised pool');
    // And a second shared Service joins the MetalLB-era shared IP through the metallb.io key.
    const third = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'share-ntp', namespace: APP, annotations: { 'metallb.io/allow-shared-ip': 'k' } }, spec: { type: 'LoadBalancer', selector: { app: 'share-ntp' }, ports: [{ port: 123, protocol: 'UDP', targetPort: 123 }] } };
    assert.equal((await lab.kubectlResult(['apply', '-f', '-'], JSON.stringify(third))).code, 0);
    const shared = await waitFor('share-ntp to get an IP', async () => { const g = await ingress('share-ntp'); return g.ips.length === 1 ? g.ips : undefined; }, 30_000, 200);
    assert.deepEqual(shared, ['203.0.113.33']);
    for (const [name, [, , ips]] of Object.entries(SERVICES)) assert.deepEqual((await ingress(name)).ips, ips, `${name} still the same`);
  });
});
