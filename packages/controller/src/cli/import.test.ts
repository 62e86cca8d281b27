import { strict as assert } from 'node:assert';
import { buildConfig, formatRange, parseYAML, type ConfigInput } from '@portico/shared';
import { importMetalLB, type PorticoObject } from './import.ts';
import { readDocuments, renderImport } from './portico.ts';
import { ALL_CRDS, BGP, L2, LEGACY, POOLS } from './testdata-metallb.ts';

const docs = (text: string): unknown[] => readDocuments(['-'], () => text);
const byKind = (objs: readonly PorticoObject[], kind: string): PorticoObject[] => objs.filter((o) => o.kind === kind);
const one = (objs: readonly PorticoObject[], kind: string, name: string): PorticoObject => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(o, `${kind}/${name} missing; have ${objs.map((x) => `${x.kind}/${x.metadata.name}`).join(', ')}`);
  return o;
};
/** What Portico's own config builder makes of the converted objects. */
const configOf = (objs: readonly PorticoObject[], legacy?: string): ReturnType<typeof buildConfig> => {
  const input: ConfigInput = {
    pools: byKind(objs, 'IPAddressPool'), l2Advertisements: byKind(objs, 'L2Advertisement'), bgpAdvertisements: byKind(objs, 'BGPAdvertisement'),
    peers: byKind(objs, 'BGPPeer'), communities: byKind(objs, 'Community'), bfdProfiles: byKind(objs, 'BFDProfile'), legacy,
  };
  return buildConfig(input);
};

describe('portico import: MetalLB CRDs', function () {
  it('IPAddressPools keep every field, move to portico.dev/v1beta1 in portico-system, keep labels', function () {
    const r = importMetalLB(docs(POOLS));
    assert.deepEqual(r.warnings, []);
    const p = one(r.objects, 'IPAddressPool', 'expensive');
    assert.equal(p.apiVersion, 'portico.dev/v1beta1');
    assert.deepEqual(p.metadata, { name: 'expensive', namespace: 'portico-system', labels: { tier: 'premium' } });
    assert.deepEqual(p.spec, {
      addresses: ['203.0.113.64/29'], autoAssign: false, avoidBuggyIPs: true,
      serviceAllocation: { priority: 50, namespaces: ['namespace-a', 'namespace-b'], namespaceSelectors: [{ matchLabels: { foo: 'bar' } }], serviceSelectors: [{ matchExpressions: [{ key: 'serviceType', operator: 'In', values: ['premium'] }] }] },
    });
    assert.deepEqual(one(r.objects, 'IPAddressPool', 'first-pool').spec.addresses, ['203.0.113.0/28', '203.0.113.32-203.0.113.40', '2001:db8:5::/124']);
  });

  it('L2Advertisement: pools, node selectors and interfaces carry over', function () {
    const r = importMetalLB(docs(L2));
    assert.deepEqual(r.warnings, []);
    assert.deepEqual(one(r.objects, 'L2Advertisement', 'example').spec, { ipAddressPools: ['first-pool'], nodeSelectors: [{ matchLabels: { 'kubernetes.io/hostname': 'node-a' } }], interfaces: ['eth3'] });
  });

  it('BGPPeer v1beta2 and v1beta1, BGPAdvertisement, Community and BFDProfile convert; the Secret\'s namespace and echoMode are reported', function () {
    const r = importMetalLB(docs(BGP));
    assert.deepEqual(r.warnings.map((w) => `${w.source} ${w.field}`), [
      'BGPPeer metallb-system/sample spec.passwordSecret',
      'BFDProfile metallb-system/full-example spec.echoMode',
    ]);
    assert.match(r.warnings[0]!.message, /copy Secret metallb-system\/secretname to portico-system/);
    const sample = one(r.objects, 'BGPPeer', 'sample').spec;
    assert.deepEqual(sample.passwordSecret, { name: 'secretname', namespace: 'portico-system' });
    assert.equal(sample.disableMP, false, 'carried over');
    assert.equal(sample.enableGracefulRestart, true);
    assert.deepEqual(one(r.objects, 'BGPPeer', 'old-style').spec.nodeSelectors, [{ matchLabels: { rack: 'frontend' }, matchExpressions: [{ key: 'network-speed', operator: 'NotIn', values: ['slow'] }] }]);
    assert.deepEqual(one(r.objects, 'BGPAdvertisement', 'local').spec.communities, ['65535:65282', 'vpn-only']);
    assert.equal(one(r.objects, 'BFDProfile', 'full-example').spec.minimumTtl, 254);
    assert.equal(one(r.objects, 'BFDProfile', 'full-example').spec.echoMode, undefined, 'echo mode is refused by Portico, so it is left out');
    assert.ok(r.warnings.some((w) => w.field === 'spec.echoMode' && /no echo mode/.test(w.message)));
    assert.equal(byKind(r.objects, 'Community')[0]!.spec.communities instanceof Array, true);
  });

  it('the converted set is a valid Portico configuration (Portico\'s own parser: no problem, names resolved)', function () {
    const r = importMetalLB(docs(ALL_CRDS));
    const { config, problems } = configOf(r.objects);
    assert.deepEqual(problems, []);
    assert.deepEqual(config.pools.map((p) => p.name).sort(), ['expensive', 'first-pool']);
    const ad = config.bgpAdvertisements.find((a) => a.name === 'local')!;
    assert.deepEqual([...ad.communities].sort(), ['1234:1', '65535:65282']);
  });

  it('unknown kinds and fields are reported with their path, never dropped silently', function () {
    const r = importMetalLB(docs(`
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: p, namespace: metallb-system }
spec:
  addresses: [203.0.113.0/30]
  serviceAllocation: { priority: 1, someFutureField: 3 }
  newField: x
---
apiVersion: metallb.io/v1beta1
kind: ServiceL2Status
metadata: { name: s }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: controller }
---
`));
    const got = r.warnings.map((w) => `${w.source}|${w.field}`);
    assert.deepEqual(got, [
      'IPAddressPool metallb-system/p|spec.newField',
      'IPAddressPool metallb-system/p|spec.serviceAllocation.someFutureField',
      'ServiceL2Status s|',
      'Deployment controller|',
    ]);
    assert.deepEqual(one(r.objects, 'IPAddressPool', 'p').spec, { addresses: ['203.0.113.0/30'], serviceAllocation: { priority: 1 } });
    // The rendered YAML says what was left out at its top.
    const yaml = renderImport(r);
    assert.match(yaml, /^# {3}IPAddressPool metallb-system\/p spec\.newField: Portico has no field newField; left out$/m);
  });

  it('a kind: List is unpacked and the target namespace can be changed', function () {
    const list = { apiVersion: 'v1', kind: 'List', items: docs(POOLS) };
    const r = importMetalLB([list], { namespace: 'lb' });
    assert.deepEqual(r.objects.map((o) => `${o.metadata.namespace}/${o.metadata.name}`), ['lb/first-pool', 'lb/expensive']);
  });
});

describe('portico import: the legacy ConfigMap', function () {
  const r = importMetalLB(docs(LEGACY));

  it('becomes pools, one advertisement per protocol entry, peers, communities and BFD profiles', function () {
    assert.deepEqual(r.warnings, []);
    assert.deepEqual(r.objects.map((o) => `${o.kind}/${o.metadata.name}`), [
      'Community/communities', 'BFDProfile/fast', 'BGPPeer/peer-198.51.100.201',
      'IPAddressPool/default', 'L2Advertisement/default',
      'IPAddressPool/routed', 'BGPAdvertisement/routed-0', 'BGPAdvertisement/routed-1',
      'IPAddressPool/routed-defaults', 'BGPAdvertisement/routed-defaults',
    ]);
    assert.deepEqual(one(r.objects, 'IPAddressPool', 'routed').spec, { addresses: ['203.0.113.128/27'], autoAssign: false, avoidBuggyIPs: true });
    assert.deepEqual(one(r.objects, 'BGPAdvertisement', 'routed-0').spec, { aggregationLength: 32, localPref: 100, communities: ['no-advertise'], ipAddressPools: ['routed'] });
    assert.deepEqual(one(r.objects, 'BGPPeer', 'peer-198.51.100.201').spec, {
      peerAddress: '198.51.100.201', peerASN: 64501, myASN: 64500, holdTime: '120s',
      nodeSelectors: [{ matchLabels: { rack: 'frontend' }, matchExpressions: [{ key: 'network-speed', operator: 'NotIn', values: ['slow'] }] }],
    });
    assert.deepEqual(one(r.objects, 'BFDProfile', 'fast').spec, { receiveInterval: 300, transmitInterval: 300 });
  });

  it('gives Portico the same pools, advertisements and peers as reading the ConfigMap itself', function () {
    const text = (parseYAML(LEGACY) as { data: { config: string } }).data.config;
    const fromLegacy = buildConfig({ legacy: text });
    const fromImport = configOf(r.objects);
    assert.deepEqual(fromLegacy.problems, []);
    assert.deepEqual(fromImport.problems, []);
    const pools = (c: typeof fromLegacy.config): string[] => c.pools.map((p) => `${p.name} ${p.ranges.map(formatRange).join(',')} auto=${p.autoAssign} buggy=${p.avoidBuggyIPs}`).sort();
    assert.deepEqual(pools(fromImport.config), pools(fromLegacy.config));
    const ads = (c: typeof fromLegacy.config): string[] => c.bgpAdvertisements.map((a) => `${a.pools.join()} /${a.aggregationLength} /${a.aggregationLengthV6} lp=${a.localPref} ${a.communities.join()}`).sort();
    assert.deepEqual(ads(fromImport.config), ads(fromLegacy.config));
    const l2 = (c: typeof fromLegacy.config): string[] => c.l2Advertisements.map((a) => a.pools.join()).sort();
    assert.deepEqual(l2(fromImport.config), l2(fromLegacy.config));
    const peers = (c: typeof fromLegacy.config): string[] => c.peers.map((p) => `${p.peerAddress} ${p.myASN}->${p.peerASN} ${JSON.stringify(p.nodeSelectors)}`).sort();
    assert.deepEqual(peers(fromImport.config), peers(fromLegacy.config));
  });

  it('a ConfigMap profile with echo-mode: true loses it, with a warning (Portico refuses echo mode)', function () {
    const r = importMetalLB([{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'config', namespace: 'metallb-system' }, data: { config: 'bfd-profiles:\n- name: e\n  echo-mode: true\n  receive-interval: 50\n' } }]);
    assert.deepEqual(one(r.objects, 'BFDProfile', 'e').spec, { receiveInterval: 50 });
    assert.deepEqual(r.warnings.map((w) => w.field), ['config.bfd-profiles[0].echo-mode']);
  });

  it('a ConfigMap that is not MetalLB\'s is skipped with a warning', function () {
    const x = importMetalLB([{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'other' }, data: { foo: 'bar' } }]);
    assert.deepEqual(x.objects, []);
    assert.equal(x.warnings[0]!.field, 'data.config');
  });
});

// Issue 16, points 9 and 10 in `portico import`.
describe('portico import: issue 16', function () {
  it('L2Advertisement serviceSelectors and preferredNodeSelectors carry over and parse', function () {
    const r = importMetalLB([{ apiVersion: 'metallb.io/v1beta1', kind: 'L2Advertisement', metadata: { name: 'pref', namespace: 'metallb-system' },
      spec: { serviceSelectors: [{ matchLabels: { app: 'web' }, junk: 1 }], preferredNodeSelectors: [{ weight: 40, preference: { matchLabels: { zone: 'b' } } }] } }]);
    assert.deepEqual(r.warnings.map((w) => w.field), ['spec.serviceSelectors[0].junk']);
    const spec = one(r.objects, 'L2Advertisement', 'pref').spec;
    assert.deepEqual(spec, { serviceSelectors: [{ matchLabels: { app: 'web' } }], preferredNodeSelectors: [{ weight: 40, preference: { matchLabels: { zone: 'b' } } }] });
    const { config, problems } = configOf(r.objects);
    assert.deepEqual(problems, []);
    assert.equal(config.l2Advertisements[0]!.preferredNodeSelectors[0]!.weight, 40);
  });

  const hostBits: [string, string, string | undefined][] = [
    ['IPv4 with host bits', '203.0.113.40/24', '203.0.113.0/24'],
    ['IPv6 with host bits', '2001:db8::1/64', '2001:db8::/64'],
    ['a /32 has none', '203.0.113.40/32', undefined],
    ['a network is kept', '203.0.113.0/24', undefined],
    ['a range is kept', '203.0.113.1-203.0.113.9', undefined],
  ];
  for (const [what, entry, want] of hostBits) {
    it(`normalises CIDRs with host bits: ${what}`, function () {
      const crd = importMetalLB([{ apiVersion: 'metallb.io/v1beta1', kind: 'IPAddressPool', metadata: { name: 'p' }, spec: { addresses: [entry] } }]);
      const legacy = importMetalLB([{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'config' }, data: { config: `address-pools:\n- name: p\n  protocol: layer2\n  addresses: ['${entry}']\n` } }]);
      for (const r of [crd, legacy]) {
        assert.deepEqual(one(r.objects, 'IPAddressPool', 'p').spec.addresses, [want ?? entry]);
        const said = r.warnings.filter((w) => /host bits/.test(w.message));
        assert.equal(said.length, want ? 1 : 0, JSON.stringify(r.warnings));
        if (want) assert.match(said[0]!.message, new RegExp(`written as its network ${want.replace(/[.]/g, '\\.')}`));
        assert.deepEqual(configOf(r.objects).problems, [], 'Portico accepts what import wrote');
      }
    });
  }
});

// Issue 15, point 3: MetalLB v0.16's BGPPeer fields carry over; the ones the speaker refuses or reads differently say so.
describe('portico import: MetalLB v0.16 BGPPeer fields', function () {
  const peerDoc = (name: string, spec: Record<string, unknown>): unknown => ({ apiVersion: 'metallb.io/v1beta2', kind: 'BGPPeer', metadata: { name, namespace: 'metallb-system' }, spec });
  const cases: { what: string; spec: Record<string, unknown>; want: Record<string, unknown>; warned: string[]; peer?: (p: ReturnType<typeof configOf>['config']['peers'][number]) => void }[] = [
    {
      what: 'dynamicASN external and localASN',
      spec: { myASN: 64500, dynamicASN: 'external', localASN: 64600, peerAddress: '198.51.100.9', dualStackAddressFamily: true },
      want: { myASN: 64500, dynamicASN: 'external', localASN: 64600, peerAddress: '198.51.100.9', dualStackAddressFamily: true },
      warned: [],
      peer: (p) => { assert.equal(p.dynamicASN, 'external'); assert.equal(p.peerASN, undefined); assert.equal(p.localASN, 64600); assert.equal(p.families, 'both'); },
    },
    {
      what: 'dynamicASN internal, dualStackAddressFamily false (MetalLB v0.15+ default, exported with it)',
      spec: { myASN: 64500, dynamicASN: 'internal', peerAddress: '2001:db8::9', dualStackAddressFamily: false, disableMP: false },
      want: { myASN: 64500, dynamicASN: 'internal', peerAddress: '2001:db8::9', dualStackAddressFamily: false, disableMP: false },
      warned: [],
      peer: (p) => { assert.equal(p.dynamicASN, 'internal'); assert.equal(p.families, 'session'); },
    },
    {
      what: 'disableMP true alone: one family per session',
      spec: { myASN: 64500, peerASN: 64501, peerAddress: '198.51.100.9', disableMP: true },
      want: { myASN: 64500, peerASN: 64501, peerAddress: '198.51.100.9', disableMP: true },
      warned: [],
      peer: (p) => assert.equal(p.families, 'session'),
    },
    {
      what: 'disableMP true with dualStackAddressFamily true: MetalLB ignores disableMP, so it is left out',
      spec: { myASN: 64500, peerASN: 64501, peerAddress: '198.51.100.9', disableMP: true, dualStackAddressFamily: true },
      want: { myASN: 64500, peerASN: 64501, peerAddress: '198.51.100.9', dualStackAddressFamily: true },
      warned: ['spec.disableMP'],
      peer: (p) => assert.equal(p.families, 'both'),
    },
    {
      what: 'neither family field on v1beta2: carried as is, and the difference from MetalLB v0.15+ is said',
      spec: { myASN: 64500, peerASN: 64501, peerAddress: '198.51.100.9' },
      want: { myASN: 64500, peerASN: 64501, peerAddress: '198.51.100.9' },
      warned: ['spec.dualStackAddressFamily'],
      peer: (p) => assert.equal(p.families, 'both'),
    },
    {
      what: 'interface (BGP unnumbered): carried, with the warning that the speaker refuses it',
      spec: { myASN: 64500, dynamicASN: 'external', interface: 'eth1', dualStackAddressFamily: true },
      want: { myASN: 64500, dynamicASN: 'external', interface: 'eth1', dualStackAddressFamily: true },
      warned: ['spec.interface'],
      peer: (p) => { assert.equal(p.interface, 'eth1'); assert.equal(p.peerAddress, ''); },
    },
    {
      what: 'vrf: carried, with the warning that the speaker refuses it',
      spec: { myASN: 64500, peerASN: 64501, peerAddress: '198.51.100.9', vrf: 'red', dualStackAddressFamily: false },
      want: { myASN: 64500, peerASN: 64501, peerAddress: '198.51.100.9', vrf: 'red', dualStackAddressFamily: false },
      warned: ['spec.vrf'],
    },
  ];
  for (const c of cases) {
    it(c.what, function () {
      const r = importMetalLB([peerDoc('p', c.spec)]);
      assert.deepEqual(one(r.objects, 'BGPPeer', 'p').spec, c.want);
      assert.deepEqual(r.warnings.map((w) => w.field), c.warned);
      const { config, problems } = configOf(r.objects);
      assert.deepEqual(problems, [], 'Portico accepts what import wrote');
      c.peer?.(config.peers[0]!);
    });
  }

  it('the interface warning names peerAddress as the way out', function () {
    const r = importMetalLB([peerDoc('u', { myASN: 64500, peerASN: 64500, interface: 'eth1', dualStackAddressFamily: true })]);
    assert.match(r.warnings[0]!.message, /BGPPeerUnsupported.*set peerAddress/);
  });
});
