// Issue 16 against the real API server of the lab: the allocation and
// configuration rules a MetalLB user expects (sharing decided by the current
// keys, the dual-stack policies, loadBalancerIP against the annotation, the
// metallb.io aliases), what kubectl apply refuses with the field named, and
// a current Valid condition on every config object, also a re-created one.
import { strict as assert } from 'node:assert';
import * as k8s from '@kubernetes/client-node';
import { PORTICO_NAMESPACE as NS, installPortico, waitFor, type Lab, type PorticoInstall } from '../lab/index.ts';
import { FAST_LEASE } from '../lab/portico.ts';
import { apply as applyTo, pool, service, type Obj } from './objects.ts';
import { requireE2e, sharedLab } from './shared-lab.ts';

const NAMESPACES = ['rules-a', 'rules-ds'];

describe('controller rules (e2e, root): issue 16 on the real API server', function () {
  this.timeout(240_000);
  let lab: Lab;
  let core: k8s.CoreV1Api;
  let install: PorticoInstall | undefined;

  const apply = (...objs: Obj[]): Promise<void> => applyTo(lab, ...objs);
  const ips = async (namespace: string, name: string): Promise<string[]> => {
    const s = await core.readNamespacedService({ name, namespace });
    return (s.status?.loadBalancer?.ingress ?? []).map((i) => i.ip ?? '');
  };
  const ipsOf = async (namespace: string, name: string, count = 1): Promise<string[]> =>
    waitFor(`${namespace}/${name} to get ${count} IP(s)`, async () => { const got = await ips(namespace, name); return got.length === count ? got : undefined; }, 30_000, 100);
  const events = async (namespace: string, name: string): Promise<string[]> => {
    const list = await core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.name=${name}` });
    return list.items.map((e) => `${e.type} ${e.reason}: ${e.message}`);
  };
  const eventMatching = (namespace: string, name: string, re: RegExp): Promise<string> =>
    waitFor(`an Event on ${namespace}/${name} matching ${re}`, async () => (await events(namespace, name)).find((e) => re.test(e)), 20_000, 200);

  before(async function () {
    requireE2e(this);
    lab = await sharedLab();
    core = lab.kc.makeApiClient(k8s.CoreV1Api);
    for (const ns of NAMESPACES) await lab.kubectlResult(['create', 'namespace', ns]);
    install = await installPortico(lab, { speakers: false, replicas: 1, controllerArgs: FAST_LEASE });
  });

  after(async function () {
    await install?.stop();
    await lab?.kubectlResult(['delete', 'namespace', ...NAMESPACES, '--wait=false']);
    await lab?.kubectlResult(['delete', 'ipaddresspools,l2advertisements,bgpadvertisements,bgppeers,communities,bfdprofiles', '--all', '-n', NS, '--wait=false']);
  });

  describe('allocation', function () {
    before(async function () {
      await apply(
        pool('r-one', { addresses: ['203.0.113.160/32'], autoAssign: false }),
        pool('r-manual', { addresses: ['203.0.113.164/30'], autoAssign: false }),
        pool('r-ds', { addresses: ['203.0.113.168/30', '2001:db8:16::/126'], autoAssign: false }),
        pool('r-v6', { addresses: ['2001:db8:17::/127'], autoAssign: false }),
        // For rules-ds only: a one-family pool first by priority, a dual-stack one second.
        pool('r-ns-v4', { addresses: ['203.0.113.172/31'], serviceAllocation: { namespaces: ['rules-ds'], priority: 1 } }),
        pool('r-ns-dual', { addresses: ['203.0.113.174/31', '2001:db8:18::/127'], serviceAllocation: { namespaces: ['rules-ds'], priority: 2 } }),
      );
    });

    it('1: a sharing key added after the IP was taken lets a second Service share it; changing it moves only the changed one', async function () {
      const pin = { 'portico.dev/address-pool': 'r-one' };
      await apply(service('web', 'rules-a', { ports: [{ port: 80, protocol: 'TCP' }] }, pin));
      assert.deepEqual(await ipsOf('rules-a', 'web'), ['203.0.113.160']);
      await apply(service('dns', 'rules-a', { ports: [{ port: 53, protocol: 'UDP' }] }, { ...pin, 'portico.dev/allow-shared-ip': 'k1' }));
      await eventMatching('rules-a', 'dns', /AllocationFailed: PORTICO_POOL_EXHAUSTED/);
      // web takes the key now: dns (pending, not retried by the resync for minutes) must get the IP.
      await apply(service('web', 'rules-a', { ports: [{ port: 80, protocol: 'TCP' }] }, { ...pin, 'portico.dev/allow-shared-ip': 'k1' }));
      assert.deepEqual(await ipsOf('rules-a', 'dns'), ['203.0.113.160']);
      assert.deepEqual(await ips('rules-a', 'web'), ['203.0.113.160']);
      // dns changes its key: it cannot share any more and the one-address pool has nothing else.
      await apply(service('dns', 'rules-a', { ports: [{ port: 53, protocol: 'UDP' }] }, { ...pin, 'portico.dev/allow-shared-ip': 'k2' }));
      await waitFor('dns to lose the shared IP', async () => ((await ips('rules-a', 'dns')).length === 0 ? true : undefined), 20_000, 200);
      assert.deepEqual(await ips('rules-a', 'web'), ['203.0.113.160'], 'web keeps it');
      // web, alone on the IP, changes to k2 as well: dns shares again.
      await apply(service('web', 'rules-a', { ports: [{ port: 80, protocol: 'TCP' }] }, { ...pin, 'portico.dev/allow-shared-ip': 'k2' }));
      assert.deepEqual(await ipsOf('rules-a', 'dns'), ['203.0.113.160']);
      // dns removes its key: it moves out (and stays pending), web keeps the IP.
      await apply(service('dns', 'rules-a', { ports: [{ port: 53, protocol: 'UDP' }] }, pin));
      await waitFor('dns to lose the shared IP again', async () => ((await ips('rules-a', 'dns')).length === 0 ? true : undefined), 20_000, 200);
      assert.deepEqual(await ips('rules-a', 'web'), ['203.0.113.160']);
    });

    it('2: RequireDualStack naming only an IPv4 is refused with a Warning, never half served', async function () {
      await apply(service('req-half', 'rules-a', { ipFamilies: ['IPv4', 'IPv6'], ipFamilyPolicy: 'RequireDualStack' }, { 'portico.dev/loadBalancerIPs': '203.0.113.169' }));
      await eventMatching('rules-a', 'req-half', /Warning AllocationFailed: PORTICO_IP_FAMILY_UNAVAILABLE: ipFamilyPolicy RequireDualStack needs one requested IP of each family \(IPv4 and IPv6\), but the request names no IPv6 address/);
      assert.deepEqual(await ips('rules-a', 'req-half'), []);
      assert.ok(!(await events('rules-a', 'req-half')).some((e) => /IPAllocated/.test(e)), 'no IPAllocated Event');
      await apply(service('req-half', 'rules-a', { ipFamilies: ['IPv4', 'IPv6'], ipFamilyPolicy: 'RequireDualStack' }, { 'portico.dev/loadBalancerIPs': '203.0.113.169,2001:db8:16::2' }));
      assert.deepEqual(await ipsOf('rules-a', 'req-half', 2), ['203.0.113.169', '2001:db8:16::2']);
    });

    it('3: PreferDualStack gets the one family a pool has, and a pool with both wins over priority', async function () {
      await apply(service('pref-v6', 'rules-a', { ipFamilies: ['IPv4', 'IPv6'], ipFamilyPolicy: 'PreferDualStack' }, { 'portico.dev/address-pool': 'r-v6' }));
      assert.deepEqual(await ipsOf('rules-a', 'pref-v6'), ['2001:db8:17::']);
      await apply(service('pref-auto', 'rules-ds', { ipFamilies: ['IPv4', 'IPv6'], ipFamilyPolicy: 'PreferDualStack' }));
      assert.deepEqual(await ipsOf('rules-ds', 'pref-auto', 2), ['203.0.113.174', '2001:db8:18::']);
      const s = await core.readNamespacedService({ name: 'pref-auto', namespace: 'rules-ds' });
      assert.equal(s.metadata?.annotations?.['portico.dev/ip-allocated-from-pool'], 'r-ns-dual');
      // A SingleStack Service in the same namespace still follows priority.
      await apply(service('single', 'rules-ds'));
      assert.deepEqual(await ipsOf('rules-ds', 'single'), ['203.0.113.172']);
    });

    it('4: spec.loadBalancerIP and the annotation disagreeing: the annotation wins and a Warning says so', async function () {
      await apply(service('both', 'rules-a', { loadBalancerIP: '203.0.113.164' }, { 'portico.dev/loadBalancerIPs': '203.0.113.165' }));
      assert.deepEqual(await ipsOf('rules-a', 'both'), ['203.0.113.165']);
      await eventMatching('rules-a', 'both', /Warning RequestIgnored: spec\.loadBalancerIP 203\.0\.113\.164 is ignored: the annotation portico\.dev\/loadBalancerIPs \(203\.0\.113\.165\) wins/);
      await apply(service('agree', 'rules-a', { loadBalancerIP: '203.0.113.166' }, { 'portico.dev/loadBalancerIPs': '203.0.113.166' }));
      assert.deepEqual(await ipsOf('rules-a', 'agree'), ['203.0.113.166']);
      assert.ok(!(await events('rules-a', 'agree')).some((e) => /RequestIgnored/.test(e)), 'no Warning when they agree');
    });

    it('10: metallb.io annotations are read as aliases', async function () {
      await apply(service('mlb', 'rules-a', { ports: [{ port: 443, protocol: 'TCP' }] }, { 'metallb.io/loadBalancerIPs': '203.0.113.167', 'metallb.io/allow-shared-ip': 'm' }));
      assert.deepEqual(await ipsOf('rules-a', 'mlb'), ['203.0.113.167']);
      await apply(service('mlb2', 'rules-a', { ports: [{ port: 8443, protocol: 'TCP' }] }, { 'metallb.io/address-pool': 'r-manual', 'metallb.io/allow-shared-ip': 'm' }));
      assert.deepEqual(await ipsOf('rules-a', 'mlb2'), ['203.0.113.167'], 'shared by the metallb.io key, from the metallb.io pool');
    });
  });
});
