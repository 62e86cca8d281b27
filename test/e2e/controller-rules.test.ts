// Issue 16 against the real API server of the lab: the allocation and
// configuration rules a MetalLB user expects (sharing decided by the current
// keys, the dual-stack policies, loadBalancerIP against the annotation, the
// metallb.io aliases), what kubectl apply refuses with the field named, and
// a current Valid condition on every config object, also a re-created one.
import { strict as assert } from 'node:assert';
import { buildConfig, type ConfigInput } from '@portico/shared';
import { PORTICO_NAMESPACE as NS, waitFor } from '../lab/index.ts';
import { controllerEnv } from './controller-env.ts';
import { pool, service, type Obj } from './objects.ts';

const NAMESPACES = ['rules-a', 'rules-ds'];

describe('controller rules (e2e, root): issue 16 on the real API server', function () {
  this.timeout(240_000);
  const env = controllerEnv({ namespaces: NAMESPACES, replicas: 1 });
  const { apply, ips, ipsOf, events, eventMatching } = env;

  describe('5, 11: kubectl apply refuses single-object mistakes with the field named, and the controller\'s own check agrees', function () {
    const obj = (kind: string, name: string, spec: Obj): Obj => ({ apiVersion: 'portico.dev/v1beta1', kind, metadata: { name, namespace: NS }, spec });
    const peer = (name: string, extra: Obj): Obj => obj('BGPPeer', name, { myASN: 64500, peerASN: 64501, peerAddress: '198.51.100.1', ...extra });
    // [what, object, the API server's message, the field the controller names (undefined: only the API server sees it)]
    const refused: [string, Obj, RegExp, string | undefined][] = [
      ['two overlapping CIDRs in one pool', pool('ov-cidr', { addresses: ['203.0.113.0/28', '203.0.113.8/29'] }), /spec\.addresses: Invalid value: entries of one pool must not overlap or repeat/, 'spec.addresses'],
      ['the same CIDR twice', pool('ov-dup', { addresses: ['203.0.113.0/28', '203.0.113.0/28'] }), /spec\.addresses: Invalid value: entries of one pool must not overlap or repeat/, 'spec.addresses'],
      ['IPv4 ranges sharing an address', pool('ov-range', { addresses: ['203.0.113.1-203.0.113.10', '203.0.113.10 - 203.0.113.20'] }), /spec\.addresses: .*must not overlap/, 'spec.addresses'],
      ['an IPv4 range around a CIDR', pool('ov-around', { addresses: ['203.0.113.0-203.0.113.40', '203.0.113.32/30'] }), /spec\.addresses: .*must not overlap/, 'spec.addresses'],
      ['nested IPv6 CIDRs', pool('ov-v6', { addresses: ['2001:db8::/64', '2001:db8:0:0:1::/80'] }), /spec\.addresses: .*must not overlap/, 'spec.addresses'],
      ['an IPv6 range inside a CIDR', pool('ov-v6r', { addresses: ['2001:db8::/64', '2001:db8::5-2001:db8::9'] }), /spec\.addresses: .*must not overlap/, 'spec.addresses'],
      ['IPv6 ranges with a common end', pool('ov-v6rr', { addresses: ['2001:db8::1-2001:db8::9', '2001:db8::9-2001:db8::10'] }), /spec\.addresses: .*must not overlap/, 'spec.addresses'],
      ['an IPv6 CIDR with host bits, with an IPv6 example', pool('v6-host', { addresses: ['2001:db8::1/64'] }), /spec\.addresses\[0\]: Invalid value: "2001:db8::1\/64": must be a CIDR without host bits \(2001:db8::\/64\)/, 'spec.addresses[0]'],
      ['holdTime under 3s', peer('p-hold', { holdTime: '2s' }), /spec\.holdTime: Invalid value: "2s": must be 0 or between 3s and 65535s/, 'spec.holdTime'],
      ['holdTime over 65535s', peer('p-hold-big', { holdTime: '70000s' }), /spec\.holdTime: .*must be 0 or between 3s and 65535s/, 'spec.holdTime'],
      ['keepaliveTime above holdTime', peer('p-ka', { holdTime: '9s', keepaliveTime: '10s' }), /spec\.keepaliveTime: Invalid value: must not exceed holdTime/, 'spec.keepaliveTime'],
      ['keepaliveTime above the default holdTime', peer('p-ka-default', { keepaliveTime: '100s' }), /spec\.keepaliveTime: .*must not exceed holdTime \(90s when holdTime is not set\)/, 'spec.keepaliveTime'],
      ['connectTime under 1s', peer('p-ct', { connectTime: '500ms' }), /spec\.connectTime: Invalid value: "500ms": must be between 1s and 65535s/, 'spec.connectTime'],
      ['a routerID that is no address, named as such (not "Too long")', peer('p-rid', { routerID: 'this-is-not-an-address-at-all' }), /spec\.routerID: Invalid value: "this-is-not-an-address-at-all": must be an IPv4 address/, 'spec.routerID'],
    ];
    const toInput = (o: Obj): ConfigInput => (o.kind === 'IPAddressPool' ? { pools: [o] } : { peers: [o] });
    for (const [what, o, want, field] of refused) {
      it(`refuses ${what}`, async function () {
        const r = await env.lab.kubectlResult(['apply', '--dry-run=server', '-f', '-'], JSON.stringify(o));
        assert.notEqual(r.code, 0, `accepted: ${r.stdout}`);
        assert.match(r.stderr, want);
        const problems = buildConfig(toInput(o)).problems.map((p) => p.field);
        if (field) assert.ok(problems.includes(field), `the controller's check names ${field}: ${JSON.stringify(problems)}`);
      });
    }
    const accepted: [string, Obj][] = [
      ['adjacent entries', pool('ok-adj', { addresses: ['203.0.113.1-203.0.113.10', '203.0.113.11-203.0.113.20', '203.0.113.32/27', '2001:db8::/64', '2001:db8:1::/64'] })],
      ['a fractional holdTime with a smaller keepalive', peer('ok-frac', { holdTime: '4.5s', keepaliveTime: '1.5s' })],
      ['holdTime 0', peer('ok-zero', { holdTime: '0s' })],
      ['1m30s and 30s', peer('ok-min', { holdTime: '1m30s', keepaliveTime: '30s', connectTime: '2s' })],
    ];
    for (const [what, o] of accepted) {
      it(`accepts ${what}`, async function () {
        const r = await env.lab.kubectlResult(['apply', '--dry-run=server', '-f', '-'], JSON.stringify(o));
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(buildConfig(toInput(o)).problems, []);
      });
    }
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
      const s = await env.core.readNamespacedService({ name: 'pref-auto', namespace: 'rules-ds' });
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

  describe('8: every config object of the current generation carries a current Valid condition, a re-created one too', function () {
    type Cond = { type?: string; status?: string; reason?: string; message?: string; observedGeneration?: number };
    type Got = { uid: string; generation: number; valid: Cond | undefined };
    const get = async (plural: string, name: string): Promise<Got | undefined> => {
      const r = await env.lab.kubectlResult(['get', plural, name, '-n', NS, '-o', 'json']);
      if (r.code !== 0) return undefined;
      const o = JSON.parse(r.stdout) as { metadata: { uid: string; generation: number }; status?: { conditions?: Cond[] } };
      return { uid: o.metadata.uid, generation: o.metadata.generation, valid: o.status?.conditions?.find((c) => c.type === 'Valid') };
    };
    const current = (plural: string, name: string, status: 'True' | 'False', notUid?: string): Promise<Got> =>
      waitFor(`${plural}/${name} to carry Valid=${status} for its current generation${notUid ? ' (a new object)' : ''}`, async () => {
        const g = await get(plural, name);
        return g && g.uid !== notUid && g.valid?.status === status && g.valid.observedGeneration === g.generation ? g : undefined;
      }, 20_000, 200);
    const objs: [string, Obj][] = [
      ['ipaddresspools', pool('r8', { addresses: ['203.0.113.200/30'], autoAssign: false })],
      ['l2advertisements', { apiVersion: 'portico.dev/v1beta1', kind: 'L2Advertisement', metadata: { name: 'l8', namespace: NS }, spec: { ipAddressPools: ['r8'] } }],
      ['bgppeers', { apiVersion: 'portico.dev/v1beta1', kind: 'BGPPeer', metadata: { name: 'p8', namespace: NS }, spec: { myASN: 64500, peerASN: 64501, peerAddress: '198.51.100.250' } }],
      ['communities', { apiVersion: 'portico.dev/v1beta1', kind: 'Community', metadata: { name: 'c8', namespace: NS }, spec: { communities: [{ name: 'c8', value: '64500:8' }] } }],
    ];
    const name = (o: Obj): string => (o.metadata as { name: string }).name;

    it('objects deleted and created again under the same name get their own condition', async function () {
      await apply(...objs.map(([, o]) => o));
      const first = new Map<string, Got>();
      for (const [plural, o] of objs) first.set(plural, await current(plural, name(o), 'True'));
      for (const [plural, o] of objs) await env.lab.kubectl('delete', plural, name(o), '-n', NS, '--wait=true');
      await apply(...objs.map(([, o]) => o));
      for (const [plural, o] of objs) {
        const again = await current(plural, name(o), 'True', first.get(plural)!.uid);
        assert.notEqual(again.uid, first.get(plural)!.uid);
      }
    });

    it('an edit that leaves the condition as it was still moves observedGeneration', async function () {
      await apply(pool('r8', { addresses: ['203.0.113.200/30'], autoAssign: false, avoidBuggyIPs: true }));
      const g = await current('ipaddresspools', 'r8', 'True');
      assert.equal(g.generation, 2);
    });

    it('a re-created object with a problem gets Valid=False and its Warning Event, and the last good configuration stays', async function () {
      const bad: Obj = { apiVersion: 'portico.dev/v1beta1', kind: 'BGPAdvertisement', metadata: { name: 'b8', namespace: NS }, spec: { ipAddressPools: ['no-such-pool'] } };
      await apply(bad);
      const first = await current('bgpadvertisements', 'b8', 'False');
      assert.equal(first.valid?.reason, 'UnknownReference');
      await env.lab.kubectl('delete', 'bgpadvertisements', 'b8', '-n', NS, '--wait=true');
      await apply(bad);
      const again = await current('bgpadvertisements', 'b8', 'False', first.uid);
      assert.match(again.valid?.message ?? '', /IPAddressPool "no-such-pool" does not exist/);
      await waitFor('a Warning Event on the new b8', async () => {
        const list = await env.core.listNamespacedEvent({ namespace: NS, fieldSelector: `involvedObject.name=b8,involvedObject.uid=${again.uid}` });
        return list.items.some((e) => e.type === 'Warning' && e.reason === 'ConfigUnknownReference') ? true : undefined;
      }, 20_000, 200);
      // Meanwhile the pools in force still serve.
      await apply(service('during-b8', 'rules-a', {}, { 'portico.dev/address-pool': 'r-manual' }));
      assert.equal((await ipsOf('rules-a', 'during-b8')).length, 1);
      await env.lab.kubectl('delete', 'bgpadvertisements', 'b8', '-n', NS);
    });

    it('every config object in the namespace carries Valid for its current generation', async function () {
      await waitFor('every object to carry a current Valid condition', async () => {
        const r = await env.lab.kubectl('get', 'ipaddresspools,l2advertisements,bgpadvertisements,bgppeers,communities,bfdprofiles', '-n', NS, '-o', 'json');
        const items = (JSON.parse(r) as { items: { metadata: { name: string; generation: number }; status?: { conditions?: Cond[] } }[] }).items;
        const stale = items.filter((o) => o.status?.conditions?.find((c) => c.type === 'Valid')?.observedGeneration !== o.metadata.generation);
        return items.length >= objs.length && stale.length === 0 ? true : undefined;
      }, 20_000, 250);
    });
  });

  describe('7: the aggregation length is checked against pools selected by label or all pools', function () {
    const adv = (name: string, spec: Obj): Obj => ({ apiVersion: 'portico.dev/v1beta1', kind: 'BGPAdvertisement', metadata: { name, namespace: NS }, spec });
    const reported = (name: string, re: RegExp): Promise<string> =>
      waitFor(`bgpadvertisements/${name} Valid=False matching ${re}`, async () => {
        const o = await env.lab.kubectl('get', 'bgpadvertisements', name, '-n', NS, '-o', 'jsonpath={.status.conditions[?(@.type=="Valid")].status}|{.status.conditions[?(@.type=="Valid")].message}');
        return o.startsWith('False|') && re.test(o) ? o : undefined;
      }, 20_000, 200);

    after(async function () {
      await env.lab.kubectlResult(['delete', 'bgpadvertisements', 'agg-sel', 'agg-all', '-n', NS, '--ignore-not-found']);
      await env.lab.kubectlResult(['delete', 'ipaddresspools', 'r7', '-n', NS, '--ignore-not-found']);
    });

    it('an advertisement selecting a /28 pool by label with aggregationLength 24 is reported', async function () {
      await apply({ ...pool('r7', { addresses: ['203.0.113.192/28'], autoAssign: false }), metadata: { name: 'r7', namespace: NS, labels: { agg: 'r7' } } });
      await apply(adv('agg-sel', { ipAddressPoolSelectors: [{ matchLabels: { agg: 'r7' } }], aggregationLength: 24 }));
      await reported('agg-sel', /spec\.aggregationLength: \/24 is wider than 203\.0\.113\.192\/28 of pool "r7"/);
    });

    it('an advertisement of every pool with aggregationLengthV6 64 is reported against an IPv6 pool', async function () {
      await apply(adv('agg-all', { aggregationLengthV6: 64 }));
      await reported('agg-all', /spec\.aggregationLengthV6: \/64 is wider than 2001:db8:1[678]::/);
    });
  });

  describe('9: L2Advertisement serviceSelectors and preferredNodeSelectors', function () {
    const l2 = (name: string, spec: Obj): Obj => ({ apiVersion: 'portico.dev/v1beta1', kind: 'L2Advertisement', metadata: { name, namespace: NS }, spec });
    it('are accepted and applied (Valid=True); a weight outside 1-100 is refused, field named', async function () {
      await apply(l2('l9', { serviceSelectors: [{ matchLabels: { app: 'web' } }], preferredNodeSelectors: [{ weight: 100, preference: { matchLabels: { zone: 'b' } } }] }));
      await waitFor('l9 Valid=True', async () => ((await env.lab.kubectl('get', 'l2advertisements', 'l9', '-n', NS, '-o', 'jsonpath={.status.conditions[?(@.type=="Valid")].status}')) === 'True' ? true : undefined), 20_000, 200);
      const r = await env.lab.kubectlResult(['apply', '--dry-run=server', '-f', '-'], JSON.stringify(l2('l9-bad', { preferredNodeSelectors: [{ weight: 101, preference: {} }] })));
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /spec\.preferredNodeSelectors\[0\]\.weight: Invalid value: 101: spec\.preferredNodeSelectors\[0\]\.weight in body should be less than or equal to 100/);
      await env.lab.kubectl('delete', 'l2advertisements', 'l9', '-n', NS);
    });
  });

  describe('12: the controller serves the standard process metrics', function () {
    it('process_resident_memory_bytes, not portico_process_process_*', async function () {
      const text = await env.install.replicas[0]!.metrics();
      assert.match(text, /^process_resident_memory_bytes \d+/m);
      assert.match(text, /^nodejs_eventloop_lag_seconds /m);
      assert.doesNotMatch(text, /portico_process_/);
    });
  });

  describe('6: config objects outside portico-system are refused at apply', function () {
    it('refuses an IPAddressPool in another namespace, naming the namespace', async function () {
      const o = { ...pool('elsewhere', { addresses: ['203.0.113.240/28'] }), metadata: { name: 'elsewhere', namespace: 'rules-a' } };
      // The policy came with the install; the API server may take a moment to load it.
      const r = await waitFor('the namespace policy to refuse', async () => {
        const res = await env.lab.kubectlResult(['apply', '--dry-run=server', '-f', '-'], JSON.stringify(o));
        return res.code !== 0 ? res : undefined;
      }, 20_000, 250);
      assert.match(r.stderr, /metadata\.namespace: Portico reads IPAddressPool objects only in the namespace portico-system, so one in rules-a would be ignored/);
      const peer = { apiVersion: 'portico.dev/v1beta1', kind: 'BGPPeer', metadata: { name: 'elsewhere', namespace: 'rules-a' }, spec: { myASN: 64500, peerASN: 64501, peerAddress: '198.51.100.1' } };
      const r2 = await env.lab.kubectlResult(['apply', '--dry-run=server', '-f', '-'], JSON.stringify(peer));
      assert.match(r2.stderr, /Portico reads BGPPeer objects only in the namespace portico-system/);
    });
  });
});
