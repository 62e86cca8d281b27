import { strict as assert } from 'node:assert';
import { buildConfig } from './build.ts';
import { formatRange } from '../ip/ipmath.ts';
import type { ConfigProblem } from './model.ts';

const obj = (kind: string, name: string, spec: unknown, labels?: Record<string, string>): unknown => ({
  apiVersion: 'portico.dev/v1beta1', kind, metadata: { name, namespace: 'portico-system', ...(labels ? { labels } : {}) }, spec,
});
const brief = (ps: readonly ConfigProblem[]): string[] => ps.map((p) => `${p.kind}/${p.name} ${p.code} ${p.field ?? ''}`);

const LEGACY = `
peers:
- peer-address: 198.51.100.1
  peer-asn: 64501
  my-asn: 64500
  hold-time: 9s
  bfd-profile: fast
  node-selectors:
  - match-labels:
      rack: r1
bgp-communities:
  no-export: 65535:65281
bfd-profiles:
- name: fast
  receive-interval: 50
  transmit-interval: 50
address-pools:
- name: legacy-l2
  protocol: layer2
  addresses:
  - 203.0.113.0/28
  - 2001:db8:5::/120
- name: legacy-bgp
  protocol: bgp
  auto-assign: false
  avoid-buggy-ips: true
  addresses:
  - 198.51.100.128-198.51.100.200
  bgp-advertisements:
  - aggregation-length: 32
    localpref: 100
    communities: [no-export, 64512:7]
`;

describe('config: CRDs and the legacy ConfigMap', function () {
  it('parses CRD objects with defaults', function () {
    const { config, problems } = buildConfig({
      pools: [obj('IPAddressPool', 'p', { addresses: ['203.0.113.0/24', '2001:db8::/64'], serviceAllocation: { priority: 3, namespaces: ['a'] } }, { env: 'prod' })],
      l2Advertisements: [obj('L2Advertisement', 'l2', { ipAddressPools: ['p'], interfaces: ['eth0'] })],
      bgpAdvertisements: [obj('BGPAdvertisement', 'bgp', { ipAddressPools: ['p'], communities: ['mine', '64512:1'], peers: ['r1'] })],
      peers: [obj('BGPPeer', 'r1', { myASN: 64500, peerASN: 64501, peerAddress: '198.51.100.1' })],
      communities: [obj('Community', 'c', { communities: [{ name: 'mine', value: 'large:64500:1:2' }] })],
    });
    assert.deepEqual(brief(problems), []);
    const p = config.pools[0]!;
    assert.equal(p.autoAssign, true);
    assert.equal(p.avoidBuggyIPs, false);
    assert.equal(p.priority, 3);
    assert.deepEqual(p.ranges.map(formatRange), ['203.0.113.0/24', '2001:db8::/64']);
    assert.deepEqual(p.labels, { env: 'prod' });
    assert.deepEqual(config.bgpAdvertisements[0]!.communities, ['large:64500:1:2', '64512:1']);
    assert.equal(config.peers[0]!.holdTime, 90);
    assert.equal(config.peers[0]!.peerPort, 179);
  });

  it('reads MetalLB\'s old ConfigMap format', function () {
    const { config, problems } = buildConfig({ legacy: LEGACY });
    assert.deepEqual(brief(problems), []);
    assert.deepEqual(config.pools.map((p) => [p.name, p.source, p.autoAssign, p.avoidBuggyIPs, p.ranges.map(formatRange)]), [
      ['legacy-bgp', 'configmap', false, true, ['198.51.100.128-198.51.100.200']],
      ['legacy-l2', 'configmap', true, false, ['203.0.113.0/28', '2001:db8:5::/120']],
    ]);
    assert.deepEqual(config.l2Advertisements.map((a) => [a.name, a.pools]), [['configmap-legacy-l2-l2', ['legacy-l2']]]);
    const bgp = config.bgpAdvertisements[0]!;
    assert.deepEqual([bgp.pools, bgp.localPref, bgp.communities], [['legacy-bgp'], 100, ['65535:65281', '64512:7']]);
    const peer = config.peers[0]!;
    assert.deepEqual([peer.myASN, peer.peerASN, peer.holdTime, peer.bfdProfile, peer.nodeSelectors], [64500, 64501, 9, 'fast', [{ matchLabels: { rack: 'r1' } }]]);
    assert.equal(config.bfdProfiles[0]!.receiveInterval, 50);
  });

  it('carries connectTime, enableGracefulRestart and serviceSelectors (with their defaults)', function () {
    const { config, problems } = buildConfig({
      pools: [obj('IPAddressPool', 'p', { addresses: ['203.0.113.0/24'] })],
      bgpAdvertisements: [
        obj('BGPAdvertisement', 'web', { ipAddressPools: ['p'], serviceSelectors: [{ matchLabels: { app: 'web' } }, { matchExpressions: [{ key: 'tier', operator: 'In', values: ['edge'] }] }] }),
        obj('BGPAdvertisement', 'all', { ipAddressPools: ['p'] }),
      ],
      peers: [
        obj('BGPPeer', 'gr', { myASN: 64500, peerASN: 64501, peerAddress: '198.51.100.1', connectTime: '2500ms', enableGracefulRestart: true }),
        obj('BGPPeer', 'plain', { myASN: 64500, peerASN: 64501, peerAddress: '198.51.100.2' }),
      ],
    });
    assert.deepEqual(brief(problems), []);
    assert.deepEqual(config.peers.map((p) => [p.name, p.connectTime, p.enableGracefulRestart]), [['gr', 2.5, true], ['plain', undefined, false]]);
    assert.deepEqual(config.bgpAdvertisements.map((a) => [a.name, a.serviceSelectors]), [
      ['all', []],
      ['web', [{ matchLabels: { app: 'web' } }, { matchExpressions: [{ key: 'tier', operator: 'In', values: ['edge'] }] }]],
    ]);
  });

  it('reads connect-time and enable-graceful-restart from the ConfigMap', function () {
    const legacy = 'peers:\n- peer-address: 198.51.100.1\n  peer-asn: 64501\n  my-asn: 64500\n  connect-time: 3s\n  enable-graceful-restart: true\n'
      + '- peer-address: 198.51.100.2\n  peer-asn: 64501\n  my-asn: 64500\n';
    const { config, problems } = buildConfig({ legacy });
    assert.deepEqual(brief(problems), []);
    assert.deepEqual(config.peers.map((p) => [p.connectTime, p.enableGracefulRestart]), [[3, true], [undefined, false]]);
  });

  it('merges the ConfigMap with the CRDs', function () {
    const { config, problems } = buildConfig({ legacy: LEGACY, pools: [obj('IPAddressPool', 'crd-pool', { addresses: ['203.0.113.128/25'] })] });
    assert.deepEqual(brief(problems), []);
    assert.deepEqual(config.pools.map((p) => `${p.name}:${p.source}`), ['crd-pool:crd', 'legacy-bgp:configmap', 'legacy-l2:configmap']);
  });

  const cases: { name: string; input: Parameters<typeof buildConfig>[0]; want: string[]; message?: RegExp }[] = [
    {
      name: 'a pool in both sources is a conflict, not a guess',
      input: { legacy: LEGACY, pools: [obj('IPAddressPool', 'legacy-l2', { addresses: ['203.0.113.200/29'] })] },
      want: ['IPAddressPool/legacy-l2 Conflict metadata.name', 'ConfigMap/portico-system/config Conflict metadata.name', 'ConfigMap/configmap-legacy-l2-l2 UnknownReference spec.ipAddressPools[0]'],
    },
    {
      name: 'overlapping pools',
      input: { pools: [obj('IPAddressPool', 'a', { addresses: ['203.0.113.0/24'] }), obj('IPAddressPool', 'b', { addresses: ['198.51.100.0/24', '203.0.113.100-203.0.113.110'] })] },
      want: ['IPAddressPool/b Overlap spec.addresses', 'IPAddressPool/a Overlap spec.addresses'],
      message: /203\.0\.113\.100-203\.0\.113\.110 overlaps 203\.0\.113\.0\/24 of pool "a"/,
    },
    {
      name: 'overlap between a CRD pool and a ConfigMap pool',
      input: { legacy: LEGACY, pools: [obj('IPAddressPool', 'x', { addresses: ['203.0.113.8/29'] })] },
      want: ['IPAddressPool/x Overlap spec.addresses', 'ConfigMap/legacy-l2 Overlap spec.addresses'],
    },
    {
      name: 'unknown references',
      input: {
        l2Advertisements: [obj('L2Advertisement', 'l2', { ipAddressPools: ['ghost'] })],
        bgpAdvertisements: [obj('BGPAdvertisement', 'b', { communities: ['nope'], peers: ['nobody'] })],
        peers: [obj('BGPPeer', 'r', { myASN: 1, peerASN: 2, peerAddress: '198.51.100.1', bfdProfile: 'none' })],
      },
      want: ['L2Advertisement/l2 UnknownReference spec.ipAddressPools[0]', 'BGPAdvertisement/b UnknownReference spec.peers[0]', 'BGPAdvertisement/b UnknownReference spec.communities[0]', 'BGPPeer/r UnknownReference spec.bfdProfile'],
    },
    {
      name: 'BFD echo mode is refused by field, in the CRD and the ConfigMap',
      input: {
        bfdProfiles: [obj('BFDProfile', 'echo', { echoMode: true, receiveInterval: 50 })],
        legacy: 'bfd-profiles:\n- name: e2\n  echo-mode: true\n',
      },
      want: ['ConfigMap/portico-system/config Invalid bfd-profiles[0].echo-mode', 'BFDProfile/echo Invalid spec.echoMode'],
    },
    {
      name: 'invalid fields are named',
      input: { pools: [obj('IPAddressPool', 'bad', { addresses: ['203.0.113.0/24', '203.0.113.9-203.0.113.1'], serviceAllocation: { priority: -1 }, autoAsign: true })] },
      want: ['IPAddressPool/bad Invalid spec.autoAsign', 'IPAddressPool/bad Invalid spec.addresses[1]', 'IPAddressPool/bad Invalid spec.serviceAllocation.priority'],
    },
    {
      name: 'a bad connectTime, a non-boolean enableGracefulRestart and a bad serviceSelector',
      input: {
        peers: [obj('BGPPeer', 'r', { myASN: 1, peerASN: 2, peerAddress: '198.51.100.1', connectTime: 'soon', enableGracefulRestart: 'yes' }), obj('BGPPeer', 'z', { myASN: 1, peerASN: 2, peerAddress: '198.51.100.2', connectTime: '0s' })],
        bgpAdvertisements: [obj('BGPAdvertisement', 'b', { serviceSelectors: [{ matchExpressions: [{ key: 'app', operator: 'Near' }] }] })],
      },
      want: ['BGPAdvertisement/b Invalid spec.serviceSelectors[0].matchExpressions[0].operator', 'BGPPeer/r Invalid spec.connectTime', 'BGPPeer/r Invalid spec.enableGracefulRestart', 'BGPPeer/z Invalid spec.connectTime'],
    },
    {
      name: 'a legacy connect-time that is not a duration',
      input: { legacy: 'peers:\n- peer-address: 198.51.100.1\n  peer-asn: 1\n  my-asn: 2\n  connect-time: 5\n' },
      want: ['ConfigMap/portico-system/config Invalid peers[0].connect-time'],
    },
    {
      name: 'a community defined twice with different values',
      input: { legacy: 'bgp-communities:\n  c1: 64512:1\n', communities: [obj('Community', 'k', { communities: [{ name: 'c1', value: '64512:2' }] })] },
      want: ['ConfigMap/portico-system/config Conflict communities'],
    },
    {
      name: 'an aggregate wider than the pool',
      input: { pools: [obj('IPAddressPool', 'p', { addresses: ['203.0.113.10-203.0.113.20'] })], bgpAdvertisements: [obj('BGPAdvertisement', 'b', { ipAddressPools: ['p'], aggregationLength: 24 })] },
      want: ['BGPAdvertisement/b Invalid spec.aggregationLength'],
    },
    {
      name: 'legacy mistakes are named by their YAML path',
      input: { legacy: 'address-pools:\n- name: x\n  protocol: arp\n  addresses: [203.0.113.0/33]\npeers:\n- peer-address: nope\n  peer-asn: 1\n  my-asn: 2\n' },
      want: ['ConfigMap/portico-system/config Invalid peers[0].peer-address', 'ConfigMap/portico-system/config Invalid address-pools[0].protocol', 'ConfigMap/portico-system/config Invalid address-pools[0].addresses[0]'],
    },
    {
      name: 'legacy YAML that does not parse',
      input: { legacy: 'address-pools: [\n' },
      want: ['ConfigMap/portico-system/config Invalid config'],
    },
  ];
  for (const c of cases) {
    it(`reports ${c.name}`, function () {
      const { problems } = buildConfig(c.input);
      assert.deepEqual(brief(problems), c.want);
      if (c.message) assert.ok(problems.some((p) => c.message!.test(p.message)), problems.map((p) => p.message).join('\n'));
    });
  }
});

// Issue 16, point 7: the aggregation length is checked against every pool an
// advertisement covers, however it selects them, in both families.
describe('config: aggregation length against the pools an advertisement covers', function () {
  const pools = [
    obj('IPAddressPool', 'cidr28', { addresses: ['203.0.113.0/28'] }, { tier: 'gold' }),
    obj('IPAddressPool', 'range', { addresses: ['203.0.113.32-203.0.113.47'] }, { tier: 'silver' }),
    obj('IPAddressPool', 'odd', { addresses: ['203.0.113.64-203.0.113.72'] }, { tier: 'silver' }),
    obj('IPAddressPool', 'v6', { addresses: ['2001:db8:7::/120'] }, { tier: 'gold' }),
  ];
  const adv = (spec: Record<string, unknown>): unknown => obj('BGPAdvertisement', 'b', spec);
  const table: { name: string; spec: Record<string, unknown>; want: string[] }[] = [
    { name: 'named pool, /24 wider than a /28', spec: { ipAddressPools: ['cidr28'], aggregationLength: 24 }, want: ['cidr28:spec.aggregationLength'] },
    { name: 'selected by label, /24 wider than a /28', spec: { ipAddressPoolSelectors: [{ matchLabels: { tier: 'gold' } }], aggregationLength: 24 }, want: ['cidr28:spec.aggregationLength'] },
    { name: 'every pool (neither names nor selectors), /24', spec: { aggregationLength: 24 }, want: ['cidr28:spec.aggregationLength', 'odd:spec.aggregationLength', 'range:spec.aggregationLength'] },
    { name: 'every pool, /28 fits the /28 and the whole-block range, not the odd range', spec: { aggregationLength: 28 }, want: ['odd:spec.aggregationLength'] },
    { name: 'a range too wide for /31: its last address would aggregate outside it', spec: { ipAddressPools: ['odd'], aggregationLength: 31 }, want: ['odd:spec.aggregationLength'] },
    { name: 'aggregationLength 0 is the whole address space', spec: { ipAddressPoolSelectors: [{ matchLabels: { tier: 'silver' } }], aggregationLength: 0 }, want: ['odd:spec.aggregationLength', 'range:spec.aggregationLength'] },
    { name: 'the IPv6 variant, by selector', spec: { ipAddressPoolSelectors: [{ matchLabels: { tier: 'gold' } }], aggregationLengthV6: 64 }, want: ['v6:spec.aggregationLengthV6'] },
    { name: 'the IPv6 variant, every pool, /120 fits', spec: { aggregationLengthV6: 120 }, want: [] },
    { name: 'a selector matching nothing checks nothing', spec: { ipAddressPoolSelectors: [{ matchLabels: { tier: 'none' } }], aggregationLength: 0 }, want: [] },
    { name: '/32 always fits', spec: {}, want: [] },
  ];
  for (const t of table) {
    it(t.name, function () {
      const { problems } = buildConfig({ pools, bgpAdvertisements: [adv(t.spec)] });
      const got = problems.map((p) => `${/pool "([^"]+)"/.exec(p.message)?.[1]}:${p.field}`).sort();
      assert.deepEqual(got, t.want);
      for (const p of problems) assert.deepEqual([p.kind, p.name, p.code], ['BGPAdvertisement', 'b', 'Invalid']);
    });
  }

  it('a holdTime over 65535s is refused by the parser too (the CRD refuses it at apply)', function () {
    const { problems } = buildConfig({ peers: [obj('BGPPeer', 'r', { myASN: 1, peerASN: 2, peerAddress: '198.51.100.1', holdTime: '70000s' })] });
    assert.deepEqual(brief(problems), ['BGPPeer/r Invalid spec.holdTime']);
  });
});

describe('config: L2Advertisement serviceSelectors and preferredNodeSelectors', function () {
  it('reads them, and names a bad weight or selector', function () {
    const ok = buildConfig({ l2Advertisements: [obj('L2Advertisement', 'l', { serviceSelectors: [{ matchLabels: { app: 'web' } }], preferredNodeSelectors: [{ weight: 30, preference: { matchLabels: { zone: 'b' } } }] })] });
    assert.deepEqual(brief(ok.problems), []);
    const l = ok.config.l2Advertisements[0]!;
    assert.deepEqual([l.serviceSelectors, l.preferredNodeSelectors], [[{ matchLabels: { app: 'web' } }], [{ weight: 30, preference: { matchLabels: { zone: 'b' } } }]]);
    const bad = buildConfig({ l2Advertisements: [obj('L2Advertisement', 'l', { preferredNodeSelectors: [{ weight: 0, preference: {} }, { weight: 5, preference: { matchExpressions: [{ key: 'z', operator: 'Near' }] } }, { weight: 5, preferense: {} }] })] });
    assert.deepEqual(brief(bad.problems).map((p) => p.split(' ')[2]), ['spec.preferredNodeSelectors[0].weight', 'spec.preferredNodeSelectors[1].preference[0].matchExpressions[0].operator', 'spec.preferredNodeSelectors[2].preferense']);
  });

  it('the legacy ConfigMap has neither: empty', function () {
    const { config } = buildConfig({ legacy: LEGACY });
    for (const l of config.l2Advertisements) assert.deepEqual([l.serviceSelectors, l.preferredNodeSelectors], [[], []]);
  });
});

// Issue 15, point 3: MetalLB v0.16's BGPPeer fields, read and checked like the CRD checks them.
describe('config: BGPPeer dynamicASN, localASN, interface, disableMP, dualStackAddressFamily', function () {
  const peer = (spec: Record<string, unknown>): unknown => obj('BGPPeer', 'r', { myASN: 64500, ...spec });
  const ok: { name: string; spec: Record<string, unknown>; want: Record<string, unknown> }[] = [
    { name: 'peerASN alone: no dynamicASN, both families', spec: { peerASN: 64501, peerAddress: '198.51.100.1' }, want: { peerASN: 64501, dynamicASN: undefined, localASN: undefined, interface: undefined, families: 'both' } },
    { name: 'dynamicASN internal', spec: { dynamicASN: 'internal', peerAddress: '198.51.100.1' }, want: { peerASN: undefined, dynamicASN: 'internal' } },
    { name: 'dynamicASN external with localASN', spec: { dynamicASN: 'external', localASN: 64600, peerAddress: '198.51.100.1' }, want: { dynamicASN: 'external', localASN: 64600 } },
    { name: 'interface instead of peerAddress', spec: { peerASN: 64501, interface: 'eth1' }, want: { interface: 'eth1', peerAddress: '' } },
    { name: 'dualStackAddressFamily true: both', spec: { peerASN: 64501, peerAddress: '198.51.100.1', dualStackAddressFamily: true }, want: { families: 'both' } },
    { name: 'dualStackAddressFamily false: the session\'s family', spec: { peerASN: 64501, peerAddress: '198.51.100.1', dualStackAddressFamily: false }, want: { families: 'session' } },
    { name: 'disableMP true: the session\'s family', spec: { peerASN: 64501, peerAddress: '198.51.100.1', disableMP: true }, want: { families: 'session' } },
    { name: 'disableMP false: both', spec: { peerASN: 64501, peerAddress: '198.51.100.1', disableMP: false }, want: { families: 'both' } },
  ];
  for (const c of ok) {
    it(`reads ${c.name}`, function () {
      const { config, problems } = buildConfig({ peers: [peer(c.spec)] });
      assert.deepEqual(brief(problems), []);
      const p = config.peers[0] as unknown as Record<string, unknown>;
      for (const [k, v] of Object.entries(c.want)) assert.deepEqual(p[k], v, k);
    });
  }
  const bad: { name: string; spec: Record<string, unknown>; want: string[]; message: RegExp }[] = [
    { name: 'peerASN and dynamicASN', spec: { peerASN: 64501, dynamicASN: 'external', peerAddress: '198.51.100.1' }, want: ['BGPPeer/r Invalid spec.dynamicASN'], message: /exactly one of peerASN and dynamicASN/ },
    { name: 'neither peerASN nor dynamicASN', spec: { peerAddress: '198.51.100.1' }, want: ['BGPPeer/r Invalid spec.peerASN'], message: /required/ },
    { name: 'an unknown dynamicASN', spec: { dynamicASN: 'local', peerAddress: '198.51.100.1' }, want: ['BGPPeer/r Invalid spec.dynamicASN'], message: /"local" must be internal or external/ },
    { name: 'peerAddress and interface', spec: { peerASN: 64501, peerAddress: '198.51.100.1', interface: 'eth1' }, want: ['BGPPeer/r Invalid spec.interface'], message: /exactly one of peerAddress and interface/ },
    { name: 'neither peerAddress nor interface', spec: { peerASN: 64501 }, want: ['BGPPeer/r Invalid spec.peerAddress'], message: /required/ },
    { name: 'localASN 0', spec: { peerASN: 64501, peerAddress: '198.51.100.1', localASN: 0 }, want: ['BGPPeer/r Invalid spec.localASN'], message: /./ },
    { name: 'disableMP with dualStackAddressFamily true', spec: { peerASN: 64501, peerAddress: '198.51.100.1', disableMP: true, dualStackAddressFamily: true }, want: ['BGPPeer/r Invalid spec.disableMP'], message: /contradicts dualStackAddressFamily/ },
  ];
  for (const c of bad) {
    it(`refuses ${c.name}, naming the field`, function () {
      const { config, problems } = buildConfig({ peers: [peer(c.spec)] });
      assert.deepEqual(brief(problems), c.want);
      assert.ok(problems.some((p) => c.message.test(p.message)), problems.map((p) => p.message).join('\n'));
      assert.deepEqual(config.peers, []);
    });
  }

  it('the legacy ConfigMap has none of them: a legacy peer gets the defaults, and the keys are unknown there', function () {
    const { config } = buildConfig({ legacy: LEGACY });
    const p = config.peers[0]!;
    assert.deepEqual([p.dynamicASN, p.localASN, p.interface, p.families], [undefined, undefined, undefined, 'both']);
    const { problems } = buildConfig({ legacy: 'peers:\n- peer-address: 198.51.100.1\n  my-asn: 64500\n  dynamic-asn: external\n' });
    assert.ok(brief(problems).includes('ConfigMap/portico-system/config Invalid peers[0].dynamic-asn'), brief(problems).join('\n'));
  });
});
