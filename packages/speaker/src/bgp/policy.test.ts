import { strict as assert } from 'node:assert';
import { EMPTY_CONFIG, parseRange, type Config, type Pool } from '@portico/shared';
import type { EndpointState, NodeState, ServiceState, World } from '../world/types.ts';
import { aggregatePrefix, isIbgp, localAsnOf, peerAsnRule, planBgp, unsupportedPeer, type AdvSettings, type BgpPlan, type PeerSettings } from './policy.ts';

// ---- fixtures: a three-node cluster, one pool, one eBGP and one iBGP peer ----

function node(name: string, extra: Partial<NodeState> = {}): NodeState {
  const i = Number(name.split('-')[1]);
  return { name, labels: { 'kubernetes.io/hostname': name, rack: i === 3 ? 'b' : 'a' }, ready: true, networkUnavailable: false, excluded: false, addresses: [`198.51.100.${10 + i}`, `2001:db8:1::${10 + i}`], ...extra };
}

function pool(name: string, ranges: string[], labels: Record<string, string> = {}): Pool {
  return { name, source: 'crd', ranges: ranges.map(parseRange), autoAssign: true, avoidBuggyIPs: false, allowExternalIPs: false, priority: undefined, namespaces: [], namespaceSelectors: [], serviceSelectors: [], labels };
}

function peer(name: string, extra: Partial<PeerSettings> = {}): PeerSettings {
  return {
    name, source: 'crd', myASN: 64512, peerASN: 64513, peerAddress: '198.51.100.201', sourceAddress: undefined, peerPort: 179, holdTime: 90,
    keepaliveTime: undefined, connectTime: undefined, routerID: undefined, nodeSelectors: [], password: undefined, passwordSecret: undefined, bfdProfile: undefined,
    ebgpMultiHop: false, enableGracefulRestart: false, vrf: undefined, dynamicASN: undefined, localASN: undefined, interface: undefined, families: 'both', ...extra,
  };
}

function adv(name: string, extra: Partial<AdvSettings> = {}): AdvSettings {
  return { name, source: 'crd', aggregationLength: 32, aggregationLengthV6: 128, localPref: undefined, communities: [], pools: [], poolSelectors: [], nodeSelectors: [], peers: [], serviceSelectors: [], ...extra };
}

const ep = (ip: string, nodeName: string, ready = true): EndpointState => ({
  ip, family: ip.includes(':') ? 'IPv6' : 'IPv4', node: nodeName, ready, serving: ready, terminating: false, ports: {}, pod: undefined,
});

function service(name: string, extra: Partial<ServiceState> = {}): ServiceState {
  return {
    key: `default/${name}`, namespace: 'default', name, uid: `uid-${name}`, labels: { app: name }, annotations: {},
    ips: ['203.0.113.10', '2001:db8:ff::10'], pool: 'public', externalTrafficPolicy: 'Cluster', sessionAffinity: { clientIP: false, timeoutSeconds: 0 },
    ports: [], endpoints: [ep('100.64.2.5', 'node-2'), ep('2001:db8:64:2::5', 'node-2')], ...extra,
  };
}

const baseConfig: Config = {
  ...EMPTY_CONFIG,
  pools: [pool('public', ['203.0.113.0/24', '2001:db8:ff::/64'], { tier: 'public' }), pool('private', ['100.64.200.0/24'])],
  peers: [peer('ebgp'), peer('ibgp', { peerASN: 64512, peerAddress: '2001:db8:1::202' })],
  bgpAdvertisements: [adv('all', { pools: ['public'], communities: ['64512:100', 'large:64512:1:2'], localPref: 200 })],
};

function world(opts: { self?: string; config?: Config | undefined; services?: ServiceState[]; nodes?: NodeState[] } = {}): World {
  const nodes = opts.nodes ?? [node('node-1'), node('node-2'), node('node-3')];
  return {
    self: opts.self ?? 'node-1',
    config: 'config' in opts ? opts.config : baseConfig,
    services: new Map((opts.services ?? [service('web')]).map((s) => [s.key, s])),
    nodes: new Map(nodes.map((n) => [n.name, n])),
  };
}

const decision = (plan: BgpPlan, svc = 'default/web', ip = '203.0.113.10') => plan.services.find((s) => s.service === svc)?.ips.find((d) => d.ip === ip);
const adsOf = (plan: BgpPlan, name: string) => plan.peers.find((p) => p.peer.name === name)?.ads;

describe('bgp policy', () => {
  describe('sessions: which peers this node keeps', () => {
    const cases: { name: string; peers: PeerSettings[]; self?: string; nodes?: NodeState[]; want: string[]; skipped: [string, string][] }[] = [
      { name: 'a peer without nodeSelectors is on every node', peers: [peer('a')], want: ['a:all-nodes'], skipped: [] },
      {
        name: 'nodeSelectors pick nodes by label', self: 'node-3',
        peers: [peer('rack-a', { nodeSelectors: [{ matchLabels: { rack: 'a' } }] }), peer('rack-b', { nodeSelectors: [{ matchExpressions: [{ key: 'rack', operator: 'In', values: ['b'] }] }] })],
        want: ['rack-b:node-selected'], skipped: [['rack-a', 'node-not-selected']],
      },
      {
        name: 'a node unknown to the World matches no selector but still peers with unselective peers', self: 'node-9',
        peers: [peer('any'), peer('sel', { nodeSelectors: [{ matchLabels: { rack: 'a' } }] })], want: ['any:all-nodes'], skipped: [['sel', 'node-unknown']],
      },
      { name: 'a VRF peer is refused (default VRF only)', peers: [peer('v', { vrf: 'red' })], want: [], skipped: [['v', 'vrf-unsupported']] },
      {
        name: 'an interface (BGP unnumbered) peer is refused, on every node, whatever its selectors',
        peers: [peer('u', { interface: 'eth1', peerAddress: '' }), peer('u2', { interface: 'eth2', peerAddress: '', nodeSelectors: [{ matchLabels: { rack: 'a' } }] })],
        want: [], skipped: [['u', 'interface-unsupported'], ['u2', 'interface-unsupported']],
      },
      { name: 'a legacy ConfigMap peer comes through the same Config', peers: [peer('configmap-peer-0', { source: 'configmap' })], want: ['configmap-peer-0:all-nodes'], skipped: [] },
    ];
    for (const c of cases) {
      it(c.name, () => {
        const plan = planBgp(world({ self: c.self, config: { ...baseConfig, peers: c.peers } }));
        assert.deepEqual(plan.peers.map((p) => `${p.peer.name}:${p.reason}`), c.want);
        assert.deepEqual(plan.skippedPeers.map((s) => [s.peer, s.reason]), c.skipped);
      });
    }

    it('router ID: the peer\'s routerID, else the node\'s IPv4, else derived from the node name (stable, non-zero)', () => {
      const cfg = { ...baseConfig, peers: [peer('a', { routerID: '198.51.100.99' }), peer('b')] };
      const plan = planBgp(world({ config: cfg }));
      assert.deepEqual(plan.peers.map((p) => p.routerId), ['198.51.100.99', '198.51.100.11']);
      const v6only = planBgp(world({ config: cfg, nodes: [node('node-1', { addresses: ['2001:db8:1::11'] })] }));
      const id = v6only.peers[1]!.routerId;
      assert.match(id, /^\d+\.\d+\.\d+\.\d+$/);
      assert.notEqual(id, '0.0.0.0');
      assert.equal(planBgp(world({ config: cfg, nodes: [node('node-1', { addresses: [] })] })).peers[1]!.routerId, id);
    });

    it('next hop: sourceAddress, else the session address for the peer\'s family and the node\'s address for the other', () => {
      const cfg = { ...baseConfig, peers: [peer('v4'), peer('v6', { peerAddress: '2001:db8:1::201' }), peer('src', { sourceAddress: '198.51.100.50' })] };
      const plan = planBgp(world({ config: cfg }));
      assert.deepEqual(plan.peers.map((p) => [p.peer.name, p.nextHop]), [
        ['src', { ipv4: '198.51.100.50', ipv6: '2001:db8:1::11' }],
        ['v4', { ipv6: '2001:db8:1::11' }],
        ['v6', { ipv4: '198.51.100.11' }],
      ]);
    });
  });

  describe('announcements: scenario table', () => {
    const notReady = [node('node-1', { ready: false }), node('node-2'), node('node-3')];
    const cases: { name: string; w: World; ip?: string; reason: string; announce: boolean }[] = [
      { name: 'Cluster: every eligible node announces when the Service has a ready endpoint anywhere', w: world(), reason: 'cluster-ready-endpoints', announce: true },
      { name: 'Cluster: the /128 too', w: world(), ip: '2001:db8:ff::10', reason: 'cluster-ready-endpoints', announce: true },
      { name: 'Cluster: no ready endpoint anywhere withdraws', w: world({ services: [service('web', { endpoints: [ep('100.64.2.5', 'node-2', false)] })] }), reason: 'no-ready-endpoints', announce: false },
      { name: 'Cluster: endpoints of the other family do not count', w: world({ services: [service('web', { endpoints: [ep('2001:db8:64:2::5', 'node-2')] })] }), reason: 'no-ready-endpoints', announce: false },
      { name: 'Local: a node without a local ready endpoint is silent', w: world({ services: [service('web', { externalTrafficPolicy: 'Local' })] }), reason: 'no-local-endpoints', announce: false },
      { name: 'Local: the node with the endpoint announces', w: world({ self: 'node-2', services: [service('web', { externalTrafficPolicy: 'Local' })] }), reason: 'local-ready-endpoints', announce: true },
      { name: 'Local: an unready local endpoint does not count', w: world({ self: 'node-2', services: [service('web', { externalTrafficPolicy: 'Local', endpoints: [ep('100.64.2.5', 'node-2', false)] })] }), reason: 'no-local-endpoints', announce: false },
      { name: 'a node that is not Ready does not announce', w: world({ nodes: notReady }), reason: 'node-not-ready', announce: false },
      { name: 'NetworkUnavailable does not announce', w: world({ nodes: [node('node-1', { networkUnavailable: true })] }), reason: 'node-network-unavailable', announce: false },
      { name: 'exclude-from-external-load-balancers does not announce', w: world({ nodes: [node('node-1', { excluded: true })] }), reason: 'node-excluded', announce: false },
      { name: 'an unknown node does not announce', w: world({ self: 'node-7' }), reason: 'node-unknown', announce: false },
      { name: 'no configuration yet', w: world({ config: undefined }), reason: 'no-config', announce: false },
      { name: 'a pool that left the configuration', w: world({ services: [service('web', { pool: 'gone' })] }), reason: 'no-pool', announce: false },
      { name: 'no pool annotation: the pool is found by address', w: world({ services: [service('web', { pool: undefined })] }), reason: 'cluster-ready-endpoints', announce: true },
      { name: 'a pool no advertisement selects', w: world({ services: [service('web', { pool: 'private', ips: ['100.64.200.1'], endpoints: [ep('100.64.2.5', 'node-2')] })] }), ip: '100.64.200.1', reason: 'no-advertisement', announce: false },
      {
        name: 'ipAddressPoolSelectors select by the pool\'s labels',
        w: world({ config: { ...baseConfig, bgpAdvertisements: [adv('sel', { poolSelectors: [{ matchLabels: { tier: 'public' } }] })] } }), reason: 'cluster-ready-endpoints', announce: true,
      },
      {
        name: 'ipAddressPoolSelectors that miss the pool',
        w: world({ config: { ...baseConfig, bgpAdvertisements: [adv('sel', { poolSelectors: [{ matchLabels: { tier: 'private' } }] })] } }), reason: 'no-advertisement', announce: false,
      },
      { name: 'an advertisement naming no pool applies to every pool', w: world({ config: { ...baseConfig, bgpAdvertisements: [adv('any')] } }), reason: 'cluster-ready-endpoints', announce: true },
      {
        name: 'serviceSelectors that miss the Service',
        w: world({ config: { ...baseConfig, bgpAdvertisements: [adv('s', { serviceSelectors: [{ matchLabels: { app: 'db' } }] })] } }), reason: 'service-not-selected', announce: false,
      },
      {
        name: 'serviceSelectors that match the Service',
        w: world({ config: { ...baseConfig, bgpAdvertisements: [adv('s', { serviceSelectors: [{ matchLabels: { app: 'web' } }] })] } }), reason: 'cluster-ready-endpoints', announce: true,
      },
      {
        name: 'advertisement nodeSelectors that miss this node',
        w: world({ config: { ...baseConfig, bgpAdvertisements: [adv('n', { nodeSelectors: [{ matchLabels: { rack: 'b' } }] })] } }), reason: 'node-not-selected', announce: false,
      },
      {
        name: 'an advertisement limited to a peer this node has no session with',
        w: world({ config: { ...baseConfig, peers: [peer('ebgp'), peer('far', { nodeSelectors: [{ matchLabels: { rack: 'b' } }] })], bgpAdvertisements: [adv('p', { peers: ['far'] })] } }),
        reason: 'no-peers', announce: false,
      },
    ];
    for (const c of cases) {
      it(c.name, () => {
        const ip = c.ip ?? (c.w.services.get('default/web')?.ips[0] ?? '');
        const d = decision(planBgp(c.w), 'default/web', ip);
        assert.ok(d, 'a decision for the IP');
        assert.deepEqual([d.announce, d.reason], [c.announce, c.reason]);
        const announced = planBgp(c.w).peers.some((p) => p.ads.some((a) => a.prefix.startsWith(`${ip}/`)));
        assert.equal(announced, c.announce, 'peers get prefixes exactly when the IP is announced');
      });
    }
  });

  describe('attributes per peer', () => {
    it('eBGP gets communities and large communities but no local-pref; iBGP gets local-pref too', () => {
      const plan = planBgp(world());
      assert.deepEqual(adsOf(plan, 'ebgp'), [
        { prefix: '2001:db8:ff::10/128', communities: ['64512:100'], largeCommunities: ['64512:1:2'] },
        { prefix: '203.0.113.10/32', communities: ['64512:100'], largeCommunities: ['64512:1:2'] },
      ]);
      assert.deepEqual(adsOf(plan, 'ibgp')?.map((a) => a.localPref), [200, 200]);
      const d = decision(plan);
      assert.ok(d?.announce);
      assert.deepEqual(d.peers, ['ebgp', 'ibgp']);
      assert.deepEqual(d.advertisements, ['all']);
    });

    it('aggregationLength and aggregationLengthV6 announce the covering prefix, once for the Services it covers', () => {
      const cfg = { ...baseConfig, bgpAdvertisements: [adv('agg', { aggregationLength: 24, aggregationLengthV6: 64 })] };
      const plan = planBgp(world({ config: cfg, services: [service('web'), service('api', { ips: ['203.0.113.77', '2001:db8:ff::77'] })] }));
      assert.deepEqual(adsOf(plan, 'ebgp')?.map((a) => a.prefix), ['2001:db8:ff::/64', '203.0.113.0/24']);
    });

    it('two advertisements of one prefix merge communities and keep the highest local-pref', () => {
      const cfg = { ...baseConfig, bgpAdvertisements: [adv('a', { localPref: 50, communities: ['64512:1'] }), adv('b', { localPref: 300, communities: ['64512:2', '64512:1'] })] };
      const ibgp = adsOf(planBgp(world({ config: cfg })), 'ibgp')?.find((a) => a.prefix === '203.0.113.10/32');
      assert.deepEqual(ibgp, { prefix: '203.0.113.10/32', localPref: 300, communities: ['64512:1', '64512:2'] });
    });

    it('an advertisement limited to one peer reaches that peer only', () => {
      const cfg = { ...baseConfig, bgpAdvertisements: [adv('only-ibgp', { peers: ['ibgp'] })] };
      const plan = planBgp(world({ config: cfg }));
      assert.deepEqual(adsOf(plan, 'ebgp'), []);
      assert.equal(adsOf(plan, 'ibgp')?.length, 2);
    });

    it('a prefix whose family has no next hop on a session is skipped with a reason', () => {
      const plan = planBgp(world({ nodes: [node('node-1', { addresses: ['198.51.100.11'] })] }));
      const e = plan.peers.find((p) => p.peer.name === 'ebgp')!;
      assert.deepEqual(e.ads.map((a) => a.prefix), ['203.0.113.10/32']);
      assert.deepEqual(e.skipped, [{ prefix: '2001:db8:ff::10/128', reason: 'no-next-hop' }]);
    });
  });

  // Issue 15, point 3: MetalLB v0.16's BGPPeer fields.
  describe('BGPPeer dynamicASN, localASN and the families a session carries', () => {
    const sessionCases: { name: string; p: Partial<PeerSettings>; local: number; rule: number | string; ibgp: boolean }[] = [
      { name: 'fixed eBGP peer', p: {}, local: 64512, rule: 64513, ibgp: false },
      { name: 'fixed iBGP peer', p: { peerASN: 64512 }, local: 64512, rule: 64512, ibgp: true },
      { name: 'dynamicASN internal is iBGP', p: { peerASN: undefined, dynamicASN: 'internal' }, local: 64512, rule: 'internal', ibgp: true },
      { name: 'dynamicASN external is eBGP', p: { peerASN: undefined, dynamicASN: 'external' }, local: 64512, rule: 'external', ibgp: false },
      { name: 'localASN replaces myASN: the same peerASN is now iBGP', p: { peerASN: 64600, localASN: 64600 }, local: 64600, rule: 64600, ibgp: true },
      { name: 'localASN replaces myASN: a peer in myASN is now eBGP', p: { peerASN: 64512, localASN: 64600 }, local: 64600, rule: 64512, ibgp: false },
    ];
    for (const c of sessionCases) {
      it(`${c.name}: local AS ${c.local}, peer AS rule ${c.rule}, ${c.ibgp ? 'iBGP' : 'eBGP'}`, () => {
        const p = peer('x', c.p);
        assert.deepEqual([localAsnOf(p), peerAsnRule(p), isIbgp(p)], [c.local, c.rule, c.ibgp]);
        const plan = planBgp(world({ config: { ...baseConfig, peers: [p] } }));
        assert.equal(plan.peers[0]!.ibgp, c.ibgp);
        // local-pref goes to iBGP peers only: the plan follows the learnt or overridden AS.
        assert.deepEqual(adsOf(plan, 'x')?.map((a) => a.localPref), c.ibgp ? [200, 200] : [undefined, undefined]);
      });
    }

    it('families both (the default): an IPv4 session also carries the IPv6 prefix, with the node\'s IPv6 next hop', () => {
      const plan = planBgp(world({ config: { ...baseConfig, peers: [peer('v4', { families: 'both' })] } }));
      assert.deepEqual(adsOf(plan, 'v4')?.map((a) => a.prefix), ['2001:db8:ff::10/128', '203.0.113.10/32']);
      assert.deepEqual(plan.peers[0]!.skipped, []);
      assert.deepEqual(plan.peers[0]!.nextHop, { ipv6: '2001:db8:1::11' });
    });

    it('families session (dualStackAddressFamily false, disableMP true): each prefix goes only to the peers of its family, and the rest is skipped with a reason', () => {
      const cfg = { ...baseConfig, peers: [peer('v4', { families: 'session' }), peer('v6', { families: 'session', peerAddress: '2001:db8:1::201' })] };
      const plan = planBgp(world({ config: cfg }));
      assert.deepEqual(adsOf(plan, 'v4')?.map((a) => a.prefix), ['203.0.113.10/32']);
      assert.deepEqual(adsOf(plan, 'v6')?.map((a) => a.prefix), ['2001:db8:ff::10/128']);
      assert.deepEqual(plan.peers.map((p) => [p.peer.name, p.skipped]), [
        ['v4', [{ prefix: '2001:db8:ff::10/128', reason: 'family-not-on-session' }]],
        ['v6', [{ prefix: '203.0.113.10/32', reason: 'family-not-on-session' }]],
      ]);
      // Both IPs are still announced: each by the session of its family.
      assert.deepEqual(plan.services[0]!.ips.map((d) => [d.ip, d.announce && d.peers]), [['203.0.113.10', ['v4']], ['2001:db8:ff::10', ['v6']]]);
    });

    it('families session with only an IPv4 peer: the IPv6 IP is withheld as no-peers', () => {
      const plan = planBgp(world({ config: { ...baseConfig, peers: [peer('v4', { families: 'session' })] } }));
      assert.deepEqual(plan.services[0]!.ips.map((d) => [d.ip, d.reason]), [['203.0.113.10', 'cluster-ready-endpoints'], ['2001:db8:ff::10', 'no-peers']]);
    });

    it('the Warning text for a peer the speaker cannot run names the field and the way out; selection misses get none', () => {
      assert.match(unsupportedPeer('vrf-unsupported', peer('v', { vrf: 'red' }))!, /vrf "red".*default VRF only.*remove spec\.vrf/);
      assert.match(unsupportedPeer('interface-unsupported', peer('u', { interface: 'eth1' }))!, /interface "eth1".*BGP unnumbered.*spec\.peerAddress/);
      assert.equal(unsupportedPeer('node-not-selected', peer('n')), undefined);
      assert.equal(unsupportedPeer('node-unknown', peer('n')), undefined);
    });
  });

  describe('scenario: a Service through its life on node-1 (Local policy)', () => {
    const steps: { step: string; svc: ServiceState | undefined; want: string[]; reason?: string }[] = [
      { step: 's1 has its endpoint on node-2 only: node-1 is silent', svc: service('s1', { externalTrafficPolicy: 'Local' }), want: [], reason: 'no-local-endpoints' },
      { step: 's1 gains a ready endpoint on node-1: announced', svc: service('s1', { externalTrafficPolicy: 'Local', endpoints: [ep('100.64.1.5', 'node-1')] }), want: ['203.0.113.10/32'], reason: 'local-ready-endpoints' },
      { step: 's1 switches to Cluster: still announced, for the other reason', svc: service('s1', { endpoints: [ep('100.64.2.5', 'node-2')] }), want: ['203.0.113.10/32'], reason: 'cluster-ready-endpoints' },
      { step: 's1 is deleted: nothing announced', svc: undefined, want: [] },
    ];
    for (const s of steps) {
      it(s.step, () => {
        const plan = planBgp(world({ services: s.svc ? [s.svc] : [] }));
        assert.deepEqual(adsOf(plan, 'ebgp')?.map((a) => a.prefix).filter((p) => !p.includes(':')), s.want);
        if (s.reason) assert.equal(decision(plan, 'default/s1')?.reason, s.reason);
        else assert.equal(plan.services.length, 0);
      });
    }
  });

  it('aggregatePrefix masks host bits', () => {
    assert.equal(aggregatePrefix('203.0.113.77', 32), '203.0.113.77/32');
    assert.equal(aggregatePrefix('203.0.113.77', 26), '203.0.113.64/26');
    assert.equal(aggregatePrefix('2001:db8:ff::77', 120), '2001:db8:ff::/120');
    assert.equal(aggregatePrefix('2001:db8:ff::77', 0), '::/0');
  });
});

