// The controller against the real API server of the lab: CRDs refuse bad
// objects at apply time, pools from CRDs and the legacy ConfigMap, Services of
// every kind get the IPs the rules say, and neither a leader kill nor a restart
// of both replicas moves an IP. The two replicas are installed from
// manifests/portico.yaml and run as its ServiceAccount, under its RBAC.
import { strict as assert } from 'node:assert';
import * as k8s from '@kubernetes/client-node';
import { PORTICO_NAMESPACE as NS, waitFor } from '../lab/index.ts';
import { type ControllerReplica } from '../lab/portico.ts';
import { controllerEnv } from './controller-env.ts';
import { pool, service, type Obj } from './objects.ts';

describe('controller (e2e, root): pools and allocation on the real API server', function () {
  this.timeout(240_000);
  const env = controllerEnv({ namespaces: ['ctl-a', 'ctl-team', 'ctl-other', 'ctl-many'], replicas: 2 });
  const { apply, ips, ipsOf, events } = env;
  const allIPs = async (namespace: string): Promise<Map<string, string>> => {
    const list = await env.core.listNamespacedService({ namespace });
    return new Map(list.items.map((s) => [s.metadata!.name!, (s.status?.loadBalancer?.ingress ?? []).map((i) => `${i.ip}/${i.ipMode}`).join(',')]));
  };
  const replica = (identity: string): ControllerReplica => {
    const r = env.install.replicas.find((x) => x.identity === identity);
    assert.ok(r, `no controller replica has the identity ${JSON.stringify(identity)} (replicas: ${env.install.replicas.map((x) => x.identity).join(', ')})`);
    return r;
  };
  const holder = async (): Promise<string> => {
    const l = await env.lab.kc.makeApiClient(k8s.CoordinationV1Api).readNamespacedLease({ name: 'portico-controller', namespace: NS });
    return l.spec?.holderIdentity ?? '';
  };

  before(async function () {
    // The Deployment's two replicas (no speakers: nothing here is announced).
    const ids = env.install.replicas.map((r) => r.identity);
    await waitFor('one replica to lead', async () => ids.includes(await holder().catch(() => '')), 30_000, 200);
  });

  describe('kubectl apply refuses invalid objects and names the field', function () {
    const peerObj = (name: string, spec: Record<string, unknown>): Obj => ({ apiVersion: 'portico.dev/v1beta1', kind: 'BGPPeer', metadata: { name, namespace: NS }, spec });
    const cases: [string, Obj, RegExp][] = [
      ['a CIDR with host bits', pool('bad-hostbits', { addresses: ['203.0.113.1/24'] }), /spec\.addresses\[0\].*must be a CIDR without host bits/],
      ['a malformed CIDR', pool('bad-cidr', { addresses: ['203.0.113.0/33'] }), /spec\.addresses\[0\].*must be a CIDR/],
      ['an inverted range', pool('bad-range', { addresses: ['203.0.113.20-203.0.113.10'] }), /spec\.addresses\[0\].*the range ends before it starts/],
      ['a range of two families', pool('bad-family', { addresses: ['203.0.113.1-2001:db8::1'] }), /spec\.addresses\[0\].*same family/],
      ['a negative priority', pool('bad-prio', { addresses: ['203.0.113.0/28'], serviceAllocation: { priority: -1 } }), /spec\.serviceAllocation\.priority.*greater than or equal to 0/],
      ['an unknown field', pool('bad-field', { addresses: ['203.0.113.0/28'], autoAsign: true }), /unknown field "spec\.autoAsign"/],
      ['no addresses', pool('bad-empty', { addresses: [] }), /spec\.addresses.*(should have at least 1 items|must have at least 1 items)/],
      ['a BGPPeer with a bad address', { apiVersion: 'portico.dev/v1beta1', kind: 'BGPPeer', metadata: { name: 'bad-peer', namespace: NS }, spec: { myASN: 64500, peerASN: 64501, peerAddress: '198.51.100.300' } }, /spec\.peerAddress.*must be an IP address/],
      ['a BGPPeer with peerASN and dynamicASN', peerObj('bad-dyn-both', { myASN: 64500, peerASN: 64501, dynamicASN: 'external', peerAddress: '198.51.100.9' }), /spec\.peerASN.*set exactly one of peerASN and dynamicASN/],
      ['a BGPPeer with neither peerASN nor dynamicASN', peerObj('bad-dyn-none', { myASN: 64500, peerAddress: '198.51.100.9' }), /spec\.peerASN.*set exactly one of peerASN and dynamicASN/],
      ['a BGPPeer with an unknown dynamicASN', peerObj('bad-dyn-enum', { myASN: 64500, dynamicASN: 'local', peerAddress: '198.51.100.9' }), /spec\.dynamicASN.*Unsupported value: "local"/],
      ['a BGPPeer with peerAddress and interface', peerObj('bad-iface-both', { myASN: 64500, peerASN: 64501, peerAddress: '198.51.100.9', interface: 'eth1' }), /spec\.peerAddress.*set exactly one of peerAddress and interface/],
      ['a BGPPeer with disableMP and dualStackAddressFamily true', peerObj('bad-mp', { myASN: 64500, peerASN: 64501, peerAddress: '198.51.100.9', disableMP: true, dualStackAddressFamily: true }), /spec\.disableMP.*contradicts dualStackAddressFamily/],
      ['a Community with a bad value', { apiVersion: 'portico.dev/v1beta1', kind: 'Community', metadata: { name: 'bad-comm', namespace: NS }, spec: { communities: [{ name: 'x', value: '70000:1' }] } }, /spec\.communities\[0\]\.value.*must be AS:value/],
    ];
    for (const [what, obj, want] of cases) {
      it(`refuses ${what}`, async function () {
        const r = await env.lab.kubectlResult(['apply', '-f', '-'], JSON.stringify(obj));
        assert.notEqual(r.code, 0, `accepted: ${r.stdout}`);
        assert.match(r.stderr, want);
      });
    }
    it('accepts BGPPeers with dynamicASN, localASN, interface and the family fields', async function () {
      for (const obj of [
        peerObj('good-dyn', { myASN: 64500, dynamicASN: 'internal', localASN: 64600, peerAddress: '2001:db8::9', dualStackAddressFamily: false }),
        peerObj('good-iface', { myASN: 64500, dynamicASN: 'external', interface: 'eth1', disableMP: true }),
      ]) {
        const r = await env.lab.kubectlResult(['apply', '--dry-run=server', '-f', '-'], JSON.stringify(obj));
        assert.equal(r.code, 0, r.stderr);
      }
    });
    it('accepts a valid pool', async function () {
      const r = await env.lab.kubectlResult(['apply', '--dry-run=server', '-f', '-'], JSON.stringify(pool('good', { addresses: ['203.0.113.0/28', '203.0.113.20 - 203.0.113.30', '2001:db8:1::/64'] })));
      assert.equal(r.code, 0, r.stderr);
    });
  });

  describe('allocation', function () {
    before(async function () {
      await apply(
        pool('general', { addresses: ['203.0.113.0/28', '2001:db8:10::/64'] }),
        pool('team', { addresses: ['203.0.113.64/29'], serviceAllocation: { namespaces: ['ctl-team'], priority: 1 } }),
        pool('manual', { addresses: ['203.0.113.128/30'], autoAssign: false }),
      );
      const legacy = 'address-pools:\n- name: legacy\n  protocol: layer2\n  auto-assign: false\n  addresses:\n  - 203.0.113.200-203.0.113.203\n';
      await apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'config', namespace: NS }, data: { config: legacy } });
    });

    it('gives a plain Service the first address, with ipMode VIP, the pool annotation and an Event', async function () {
      await apply(service('plain', 'ctl-a'));
      assert.deepEqual(await ipsOf('ctl-a', 'plain'), ['203.0.113.0']);
      const s = await env.core.readNamespacedService({ name: 'plain', namespace: 'ctl-a' });
      assert.equal(s.status?.loadBalancer?.ingress?.[0]?.ipMode, 'VIP');
      assert.equal(s.metadata?.annotations?.['portico.dev/ip-allocated-from-pool'], 'general');
      await waitFor('an IPAllocated Event', async () => (await events('ctl-a', 'plain')).some((e) => /IPAllocated: assigned 203\.0\.113\.0 from pool general/.test(e)), 10_000, 200);
    });

    it('honours spec.loadBalancerIP, the loadBalancerIPs annotation (dual-stack) and the address-pool annotation', async function () {
      await apply(
        service('asked', 'ctl-a', { loadBalancerIP: '203.0.113.9' }),
        service('dual', 'ctl-a', { ipFamilies: ['IPv4', 'IPv6'], ipFamilyPolicy: 'RequireDualStack' }, { 'portico.dev/loadBalancerIPs': '203.0.113.10,2001:db8:10::a' }),
        service('dual-auto', 'ctl-a', { ipFamilies: ['IPv6', 'IPv4'], ipFamilyPolicy: 'PreferDualStack' }),
        service('by-pool', 'ctl-a', {}, { 'portico.dev/address-pool': 'manual' }),
        service('from-legacy', 'ctl-a', {}, { 'portico.dev/address-pool': 'legacy' }),
      );
      assert.deepEqual(await ipsOf('ctl-a', 'asked'), ['203.0.113.9']);
      assert.deepEqual(await ipsOf('ctl-a', 'dual', 2), ['203.0.113.10', '2001:db8:10::a']);
      assert.deepEqual(await ipsOf('ctl-a', 'dual-auto', 2), ['2001:db8:10::', '203.0.113.1']);
      assert.deepEqual(await ipsOf('ctl-a', 'by-pool'), ['203.0.113.128']);
      assert.deepEqual(await ipsOf('ctl-a', 'from-legacy'), ['203.0.113.200']);
    });

    it('shares an IP between Services with the same key and other ports, and not otherwise', async function () {
      await apply(
        service('share-web', 'ctl-a', { ports: [{ port: 80, protocol: 'TCP' }] }, { 'portico.dev/allow-shared-ip': 'k1', 'portico.dev/address-pool': 'manual' }),
        service('share-dns', 'ctl-a', { ports: [{ port: 53, protocol: 'UDP' }] }, { 'portico.dev/allow-shared-ip': 'k1', 'portico.dev/address-pool': 'manual' }),
      );
      const [web] = await ipsOf('ctl-a', 'share-web');
      assert.deepEqual(await ipsOf('ctl-a', 'share-dns'), [web]);
      await apply(service('share-clash', 'ctl-a', { ports: [{ port: 80, protocol: 'TCP' }] }, { 'portico.dev/allow-shared-ip': 'k1', 'portico.dev/loadBalancerIPs': web! }));
      await waitFor('AllocationFailed for the clash', async () => (await events('ctl-a', 'share-clash')).some((e) => /AllocationFailed: PORTICO_IP_IN_USE.*same ports \(TCP\/80\)/.test(e)), 15_000, 200);
      assert.deepEqual(await ips('ctl-a', 'share-clash'), []);
    });

    it('keeps a namespace\'s pool to itself', async function () {
      await apply(service('mine', 'ctl-team'), service('theirs', 'ctl-other', {}, { 'portico.dev/address-pool': 'team' }));
      assert.deepEqual(await ipsOf('ctl-team', 'mine'), ['203.0.113.64']);
      await waitFor('AllocationFailed for the other namespace', async () => (await events('ctl-other', 'theirs')).some((e) => /PORTICO_NO_MATCHING_POOL/.test(e)), 15_000, 200);
      assert.deepEqual(await ips('ctl-other', 'theirs'), []);
    });

    it('leaves Services of another loadBalancerClass alone', async function () {
      await apply(service('foreign', 'ctl-a', { loadBalancerClass: 'example.com/other' }));
      await new Promise((r) => setTimeout(r, 1500));
      assert.deepEqual(await ips('ctl-a', 'foreign'), []);
    });

    it('frees the IP when the Service is deleted and shows counts on the pool', async function () {
      await apply(service('temp', 'ctl-a', {}, { 'portico.dev/address-pool': 'manual' }));
      const [ip] = await ipsOf('ctl-a', 'temp');
      await env.lab.kubectl('delete', 'service', 'temp', '-n', 'ctl-a');
      await apply(service('temp2', 'ctl-a', {}, { 'portico.dev/address-pool': 'manual' }));
      assert.deepEqual(await ipsOf('ctl-a', 'temp2'), [ip], 'the freed address is the first free one again');
      const out = await waitFor('pool status', async () => {
        const o = await env.lab.kubectl('get', 'ipaddresspools', 'manual', '-n', NS, '-o', 'jsonpath={.status.assignedIPv4}/{.status.availableIPv4}');
        return o === '3/1' ? o : undefined;
      }, 15_000, 200);
      assert.equal(out, '3/1', 'by-pool, the shared IP and temp2 of 4 addresses');
      const table = await env.lab.kubectl('get', 'ipaddresspools', '-n', NS);
      assert.match(table, /ASSIGNED IPV4\s+AVAILABLE IPV4/);
    });

    it('reports an overlapping pool and keeps the last good configuration', async function () {
      await apply(pool('overlap', { addresses: ['203.0.113.8/29'] }));
      await waitFor('the Valid=False condition', async () => {
        const o = await env.lab.kubectl('get', 'ipaddresspools', 'overlap', '-n', NS, '-o', 'jsonpath={.status.conditions[0].reason}:{.status.conditions[0].message}');
        return /^Overlap:.*overlaps/.test(o) ? o : undefined;
      }, 15_000, 200);
      await apply(service('during-problem', 'ctl-a'));
      const got = await ipsOf('ctl-a', 'during-problem');
      assert.ok(got[0]!.startsWith('203.0.113.'), 'the last good pools still serve');
      await env.lab.kubectl('delete', 'ipaddresspools', 'overlap', '-n', NS);
    });
  });

  describe('leadership and restarts', function () {
    it('a killed leader is replaced and no IP changes', async function () {
      const before = await allIPs('ctl-a');
      const leader = replica(await holder());
      // SIGKILL: no release, so the standby must wait out the lease.
      await leader.kill();
      const other = env.install.replicas.find((r) => r !== leader)!.identity;
      await waitFor(`${other} to lead`, async () => (await holder()) === other, 20_000, 200);
      await apply(service('after-failover', 'ctl-a', {}, { 'portico.dev/address-pool': 'legacy' }));
      await ipsOf('ctl-a', 'after-failover');
      const after = await allIPs('ctl-a');
      for (const [name, v] of before) assert.equal(after.get(name), v, name);
      await leader.start();
    });

    it('a replica whose process exits on its own is started again, as the kubelet restarts a container', async function () {
      const r = env.install.replicas[0]!;
      const pid = r.pid();
      assert.ok(pid !== undefined && r.running());
      process.kill(pid, 'SIGKILL'); // behind the lab's back: not through stop() or kill()
      await waitFor('the replica to be started again', () => r.restarts() === 1 && r.pid() !== pid, 20_000, 200);
      await waitFor('the new process to serve its metrics', async () => (await r.metrics()).includes('portico_'), 30_000, 250);
    });

    it('restarting both replicas with 200 Services keeps every IP', async function () {
      // 50 dual-stack and 150 IPv6 Services: 250 addresses, 50 of them IPv4.
      await apply(pool('many', { addresses: ['203.0.113.136/29', '203.0.113.144/28', '203.0.113.160/27', '2001:db8:20::/64'], serviceAllocation: { namespaces: ['ctl-many'] } }));
      const v6only = { ipFamilies: ['IPv6'], ipFamilyPolicy: 'SingleStack' };
      const svcs = Array.from({ length: 200 }, (_, i) => service(`s${i}`, 'ctl-many', i % 4 === 0 ? { ipFamilies: ['IPv6', 'IPv4'], ipFamilyPolicy: 'RequireDualStack' } : v6only));
      await apply(...svcs);
      const before = await waitFor('200 Services allocated', async () => {
        const m = await allIPs('ctl-many');
        return [...m.values()].filter((v) => v !== '').length === 200 ? m : undefined;
      }, 60_000, 500);
      const distinct = new Set([...before.values()].flatMap((v) => v.split(',')));
      assert.equal(distinct.size, 250, 'no IP handed out twice');
      for (const r of env.install.replicas) await r.stop();
      // Delete one Service while no controller runs: its IP must be the first handed out later.
      await env.lab.kubectl('delete', 'service', 's1', '-n', 'ctl-many');
      await Promise.all(env.install.replicas.map((r) => r.start()));
      const ids = env.install.replicas.map((r) => r.identity);
      await waitFor('a new leader', async () => ids.includes(await holder()), 30_000, 200);
      await apply(service('late', 'ctl-many', v6only));
      const late = await ipsOf('ctl-many', 'late');
      assert.equal(`${late[0]}/VIP`, before.get('s1'), 'the newcomer gets the freed address, not a held one');
      const after = await allIPs('ctl-many');
      for (const [name, v] of before) if (name !== 's1') assert.equal(after.get(name), v, name);
    });
  });

  describe('RBAC', function () {
    it('no replica was refused by the API server: the manifests\' roles cover what the controller did here', async function () {
      assert.deepEqual(await env.install.refusals(), []);
    });
  });
});
