// Opt-in externalIPs and the config problems that must not move an IP, against
// the lab's real API server: what the Services and pools hold after the
// controller acted, and that a controller restart changes none of it.
import { strict as assert } from 'node:assert';
import * as k8s from '@kubernetes/client-node';
import { PORTICO_NAMESPACE as NS, installPortico, waitFor, type Lab, type PorticoInstall } from '../lab/index.ts';
import { FAST_LEASE, type ControllerReplica } from '../lab/portico.ts';
import { APP, neighbour, startL2, type L2Env } from './l2-env.ts';
import { apply as applyTo, l2Advertisement, pool, service, type Obj } from './objects.ts';
import { requireE2e, sharedLab } from './shared-lab.ts';

const EXT = 'portico.dev/external-ips';
const NAMESPACES = ['xip-a', 'xip-team'];

describe('externalIPs and refused config changes (e2e, root): the controller on the real API server', function () {
  this.timeout(180_000);
  let lab: Lab;
  let core: k8s.CoreV1Api;
  /** The manifests' controller, one replica, as its ServiceAccount. */
  let install: PorticoInstall | undefined;
  let controller: ControllerReplica;

  const apply = (...objs: Obj[]): Promise<void> => applyTo(lab, ...objs);
  const read = (namespace: string, name: string): Promise<k8s.V1Service> => core.readNamespacedService({ name, namespace });
  const ips = async (namespace: string, name: string): Promise<string[]> => ((await read(namespace, name)).status?.loadBalancer?.ingress ?? []).map((i) => i.ip ?? '');
  const ipsOf = (namespace: string, name: string): Promise<string[]> =>
    waitFor(`${namespace}/${name} to get an IP`, async () => { const got = await ips(namespace, name); return got.length > 0 ? got : undefined; }, 30_000, 100);
  const recorded = async (namespace: string, name: string): Promise<string | undefined> => (await read(namespace, name)).metadata?.annotations?.[EXT];
  const recordedAs = (namespace: string, name: string, want: string): Promise<string> =>
    waitFor(`${namespace}/${name} to record ${want}`, async () => ((await recorded(namespace, name)) === want ? want : undefined), 30_000, 100);
  const events = async (namespace: string, name: string, kind?: string): Promise<string[]> => {
    const list = await core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.name=${name}${kind ? `,involvedObject.kind=${kind}` : ''}` });
    return list.items.map((e) => `${e.type} ${e.reason}: ${e.message}`);
  };
  const eventMatching = (namespace: string, name: string, re: RegExp, kind?: string): Promise<string> =>
    waitFor(`an Event on ${namespace}/${name} matching ${re}`, async () => (await events(namespace, name, kind)).find((e) => re.test(e)), 20_000, 200);
  const condition = (poolName: string): Promise<string> =>
    lab.kubectl('get', 'ipaddresspools', poolName, '-n', NS, '-o', 'jsonpath={.status.conditions[0].status}:{.status.conditions[0].reason}:{.status.conditions[0].message}');
  const conditionMatching = (poolName: string, re: RegExp): Promise<string> =>
    waitFor(`pool ${poolName}'s condition to match ${re}`, async () => { const c = await condition(poolName); return re.test(c) ? c : undefined; }, 20_000, 200);
  const holder = async (): Promise<string> => {
    const l = await lab.kc.makeApiClient(k8s.CoordinationV1Api).readNamespacedLease({ name: 'portico-controller', namespace: NS });
    return l.spec?.holderIdentity ?? '';
  };
  /** portico_config_stale_state from the controller's /metrics: '1' while a refused configuration waits. */
  const stale = async (): Promise<string | undefined> => /^portico_config_stale_state (\d+)/m.exec(await controller.metrics())?.[1];
  const staleIs = (want: string): Promise<string> => waitFor(`portico_config_stale_state ${want}`, async () => ((await stale()) === want ? want : undefined), 20_000, 100);
  const startController = async (): Promise<void> => {
    await controller.start();
    await waitFor('the controller to lead', async () => ((await holder().catch(() => '')) === controller.identity ? true : undefined), 30_000, 200);
  };

  before(async function () {
    requireE2e(this);
    lab = await sharedLab();
    core = lab.kc.makeApiClient(k8s.CoreV1Api);
    for (const ns of NAMESPACES) await lab.kubectlResult(['create', 'namespace', ns]);
    // The CRDs, accounts and RBAC come with the manifest; the controller starts once the pools are in.
    install = await installPortico(lab, { speakers: false, controller: false });
    await apply(
      // autoAssign for xip-a only, so leftovers of other tests never take its addresses.
      pool('xip-open', { addresses: ['203.0.113.96/30', '2001:db8:96::/126'], allowExternalIPs: true, serviceAllocation: { namespaces: ['xip-a'] } }),
      pool('xip-team', { addresses: ['203.0.113.100/30'], allowExternalIPs: true, autoAssign: false, serviceAllocation: { namespaces: ['xip-team'] } }),
      pool('xip-plain', { addresses: ['203.0.113.104/30'], autoAssign: false }),
    );
    install = await installPortico(lab, { speakers: false, replicas: 1, controllerArgs: FAST_LEASE });
    controller = install.replicas[0]!;
    await startController();
  });

  after(async function () {
    await install?.stop();
    await lab?.kubectlResult(['delete', 'namespace', ...NAMESPACES, '--wait=false']);
    await lab?.kubectlResult(['delete', 'ipaddresspools', '--all', '-n', NS, '--wait=false']);
    await lab?.kubectlResult(['delete', 'configmap', 'config', '-n', NS, '--ignore-not-found']);
  });

  describe('opt-in externalIPs', function () {
    it('records an admitted externalIP and ignores the others with an Event naming the address and the reason', async function () {
      await apply(
        service('web', 'xip-a', { type: 'ClusterIP', externalIPs: ['203.0.113.96', '2001:db8:96::1', '203.0.113.101', '203.0.113.105', '198.51.100.250'] }),
        service('team-web', 'xip-team', { type: 'ClusterIP', externalIPs: ['203.0.113.101'] }),
      );
      assert.equal(await recordedAs('xip-a', 'web', '203.0.113.96,2001:db8:96::1'), '203.0.113.96,2001:db8:96::1');
      assert.equal(await recordedAs('xip-team', 'team-web', '203.0.113.101'), '203.0.113.101', 'the pool admits its own namespace');
      await eventMatching('xip-a', 'web', /^Warning ExternalIPIgnored: externalIP 203\.0\.113\.101 ignored \(namespace-not-admitted\): pool "xip-team" does not admit Services of namespace xip-a/);
      await eventMatching('xip-a', 'web', /^Warning ExternalIPIgnored: externalIP 203\.0\.113\.105 ignored \(no-pool-allows\): .*pool "xip-plain", which does not set allowExternalIPs/);
      await eventMatching('xip-a', 'web', /^Warning ExternalIPIgnored: externalIP 198\.51\.100\.250 ignored \(no-pool-allows\): .*in no address pool/);
      await eventMatching('xip-a', 'web', /^Normal ExternalIPAccepted: externalIPs 203\.0\.113\.96, 2001:db8:96::1 recorded/);
      assert.deepEqual(await ips('xip-a', 'web'), [], 'a ClusterIP Service gets no status');
    });

    it('a LoadBalancer Service never gets a reserved externalIP, and one already allocated is not accepted as an externalIP', async function () {
      await apply(service('lb-auto', 'xip-a', {}, { 'portico.dev/address-pool': 'xip-open' }), service('lb-asks', 'xip-a', { loadBalancerIP: '203.0.113.96' }));
      assert.deepEqual(await ipsOf('xip-a', 'lb-auto'), ['203.0.113.97'], 'the first free address after the reserved one');
      await eventMatching('xip-a', 'lb-asks', /^Warning AllocationFailed: PORTICO_IP_IN_USE: IP 203\.0\.113\.96 is an accepted externalIP of xip-a\/web/);
      assert.deepEqual(await ips('xip-a', 'lb-asks'), []);
      await apply(service('late', 'xip-a', { type: 'NodePort', externalIPs: ['203.0.113.97'] }));
      await eventMatching('xip-a', 'late', /^Warning ExternalIPIgnored: externalIP 203\.0\.113\.97 ignored \(in-use\): 203\.0\.113\.97 is the LoadBalancer IP of xip-a\/lb-auto/);
      assert.equal(await recorded('xip-a', 'late'), undefined);
      const pool = await waitFor('pool counts', async () => {
        const o = await lab.kubectl('get', 'ipaddresspools', 'xip-open', '-n', NS, '-o', 'jsonpath={.status.assignedIPv4}/{.status.availableIPv4}');
        return o === '2/2' ? o : undefined;
      }, 15_000, 200);
      assert.equal(pool, '2/2', 'the reservation counts as assigned');
    });

    it('a restart rebuilds the reservations first: a Service created while no controller runs does not get a recorded externalIP', async function () {
      await controller.stop();
      await apply(service('while-down', 'xip-a', {}, { 'portico.dev/address-pool': 'xip-open' }));
      await startController();
      assert.deepEqual(await ipsOf('xip-a', 'while-down'), ['203.0.113.98']);
      assert.equal(await recorded('xip-a', 'web'), '203.0.113.96,2001:db8:96::1');
      assert.deepEqual(await ips('xip-a', 'lb-auto'), ['203.0.113.97']);
    });

    it('an externalIP removed from the spec is released and goes to the next Service that asked for it', async function () {
      await apply(service('waiting', 'xip-a', { type: 'ClusterIP', externalIPs: ['2001:db8:96::1'] }));
      await eventMatching('xip-a', 'waiting', /ExternalIPIgnored: externalIP 2001:db8:96::1 ignored \(in-use\): .*accepted externalIP of xip-a\/web/);
      await lab.kubectl('patch', 'service', 'web', '-n', 'xip-a', '--type=merge', '-p', JSON.stringify({ spec: { externalIPs: ['203.0.113.96'] } }));
      assert.equal(await recordedAs('xip-a', 'web', '203.0.113.96'), '203.0.113.96');
      assert.equal(await recordedAs('xip-a', 'waiting', '2001:db8:96::1'), '2001:db8:96::1');
    });
  });

  describe('config problems keep the last good configuration and move no IP', function () {
    it('a CRD pool and a ConfigMap pool of the same name: reported, and the last good pools stay in force', async function () {
      const before = await ips('xip-a', 'lb-auto');
      const legacy = 'address-pools:\n- name: xip-plain\n  protocol: layer2\n  addresses:\n  - 203.0.113.120/30\n';
      await apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'config', namespace: NS }, data: { config: legacy } });
      await conditionMatching('xip-plain', /^False:Conflict:.*xip-plain/);
      assert.equal(await staleIs('1'), '1');
      await eventMatching(NS, 'config', /^Warning ConfigConflict: .*xip-plain/, 'ConfigMap');
      // The ConfigMap's addresses are not in force; the CRD pool still is.
      await apply(service('during-conflict', 'xip-a', {}, { 'portico.dev/address-pool': 'xip-plain' }));
      assert.deepEqual(await ipsOf('xip-a', 'during-conflict'), ['203.0.113.104']);
      await apply(service('legacy-ask', 'xip-a', { loadBalancerIP: '203.0.113.120' }));
      await eventMatching('xip-a', 'legacy-ask', /AllocationFailed: PORTICO_IP_NOT_IN_POOL/);
      assert.deepEqual(await ips('xip-a', 'lb-auto'), before);
      await lab.kubectl('delete', 'configmap', 'config', '-n', NS);
      await conditionMatching('xip-plain', /^True:Valid:/);
      assert.equal(await staleIs('0'), '0');
    });

    it('shrinking a pool under an allocated IP is refused with a condition on the pool, and no IP changes', async function () {
      await apply(pool('xip-strand', { addresses: ['203.0.113.112/30'], autoAssign: false }), service('stranded', 'xip-a', {}, { 'portico.dev/address-pool': 'xip-strand' }));
      assert.deepEqual(await ipsOf('xip-a', 'stranded'), ['203.0.113.112']);
      await apply(pool('xip-strand', { addresses: ['203.0.113.114/31'], autoAssign: false }));
      await conditionMatching('xip-strand', /^False:StrandsIPs:203\.0\.113\.112 is in use by xip-a\/stranded and would be in no pool/);
      assert.equal(await staleIs('1'), '1');
      await eventMatching(NS, 'xip-strand', /^Warning ConfigStrandsIPs: 203\.0\.113\.112 is in use/);
      // The old addresses are still in force: the next Service of the pool gets .113, which the new spec would not hold.
      await apply(service('stranded-2', 'xip-a', {}, { 'portico.dev/address-pool': 'xip-strand' }));
      assert.deepEqual(await ipsOf('xip-a', 'stranded-2'), ['203.0.113.113']);
      assert.deepEqual(await ips('xip-a', 'stranded'), ['203.0.113.112']);
    });

    it('deleting a pool whose IPs are in use is refused with an Event on the pool, and no IP changes; it goes through once they are released', async function () {
      await lab.kubectl('delete', 'ipaddresspools', 'xip-strand', '-n', NS);
      await eventMatching(NS, 'xip-strand', /^Warning ConfigStrandsIPs: 203\.0\.113\.112 is in use by xip-a\/stranded/);
      await apply(service('after-delete', 'xip-a', {}, { 'portico.dev/address-pool': 'xip-strand' }));
      assert.deepEqual(await ipsOf('xip-a', 'after-delete'), ['203.0.113.114'], 'the deleted pool is still in force');
      assert.deepEqual(await ips('xip-a', 'stranded'), ['203.0.113.112']);
      assert.deepEqual(await ips('xip-a', 'stranded-2'), ['203.0.113.113']);
      await lab.kubectl('delete', 'service', 'stranded', 'stranded-2', 'after-delete', '-n', 'xip-a');
      // With the last of its IPs released, the removal goes through on its own.
      assert.equal(await staleIs('0'), '0');
      await apply(service('no-pool', 'xip-a', {}, { 'portico.dev/address-pool': 'xip-strand' }));
      await eventMatching('xip-a', 'no-pool', /AllocationFailed: PORTICO_POOL_NOT_FOUND/);
    });
  });

  describe('layer 2 (e2e, root): the client reaches accepted externalIPs through the speakers', function () {
    let env: L2Env | undefined;
    const V4 = '198.51.100.145';
    const V6 = '2001:db8:1::c1';
    const ONLY = '198.51.100.146';
    const get = async (url: string): Promise<string | undefined> => {
      const r = await lab.exec('client', ['curl', '-sS', '-g', '--max-time', '1', url], { allowFail: true });
      return r.code === 0 && r.stdout.length > 0 ? r.stdout : undefined;
    };

    before(async function () {
      requireE2e(this);
      // startL2 installs Portico again, with speakers on every node.
      await install?.stop();
      env = await startL2(lab);
      await apply(
        pool('xip-l2', { addresses: ['198.51.100.144/29', '2001:db8:1::c0/124'], allowExternalIPs: true, autoAssign: false }),
        // No pool named: a Service with only externalIPs has no pool annotation for an advertisement to select.
        l2Advertisement('xip-l2-all'),
      );
    });

    after(async function () {
      await lab?.kubectlResult(['delete', 'l2advertisements', 'xip-l2-all', '-n', NS, '--ignore-not-found']);
      await env?.stop();
    });

    it('a LoadBalancer Service\'s accepted externalIPs answer beside its VIPs, from the owner', async function () {
      await lab.kubectl('patch', 'service', 'web', '-n', APP, '--type=merge', '-p', JSON.stringify({ spec: { externalIPs: [V4, V6] } }));
      assert.equal(await recordedAs(APP, 'web', `${V4},${V6}`), `${V4},${V6}`);
      const body = await waitFor(`the client to reach ${V4}`, () => get(`http://${V4}/`), 30_000, 250);
      assert.ok(body.length > 0);
      await waitFor(`the client to reach [${V6}]`, () => get(`http://[${V6}]/`), 30_000, 250);
      // The owner's annotation is written once its ownership has held for the status settle time.
      const owner = await waitFor('the layer-2 owner in the Service\'s annotations', async () => { const o = await env!.owner(); return o !== '' ? o : undefined; }, 20_000, 200);
      assert.equal(await neighbour(lab, V4), await env!.macOf(owner), 'the layer-2 owner of the VIPs answers for the externalIP');
    });

    it('a ClusterIP Service with only an accepted externalIP is announced and forwarded; an ignored one is not', async function () {
      await apply(
        service('xip-only', APP, { type: 'ClusterIP', externalIPs: [ONLY], selector: { app: 'web' } }),
        service('xip-refused', APP, { type: 'ClusterIP', externalIPs: ['198.51.100.153'], selector: { app: 'web' } }),
      );
      assert.equal(await recordedAs(APP, 'xip-only', ONLY), ONLY);
      await waitFor(`the client to reach ${ONLY}`, () => get(`http://${ONLY}/`), 30_000, 250);
      await eventMatching(APP, 'xip-refused', /ExternalIPIgnored: externalIP 198\.51\.100\.153 ignored \(no-pool-allows\)/);
      assert.equal(await get('http://198.51.100.153/'), undefined, 'nobody answers for an ignored externalIP');
    });

    it('no component was refused by the API server while serving externalIPs', async function () {
      assert.deepEqual(await env!.install.refusals(), []);
    });
  });

  describe('RBAC', function () {
    it('the controller was never refused by the API server: the manifests\' roles cover the externalIP and config-problem paths', async function () {
      assert.deepEqual(await install!.refusals(), []);
    });
  });
});
