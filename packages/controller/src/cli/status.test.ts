import { strict as assert } from 'node:assert';
import { buildStatus, renderStatus, type RawEvent, type RawObject, type StatusInput } from './status.ts';
import { painter, table, visibleWidth } from './table.ts';

const NS = 'portico-system';
const valid = (ok: boolean, reason = ok ? 'Valid' : 'Overlap', message = ok ? 'pool in use' : 'overlaps pool b') => ({ conditions: [{ type: 'Valid', status: ok ? 'True' : 'False', reason, message }] });
const ADDRS: Record<string, string[]> = { lan: ['203.0.113.10-203.0.113.40', '2001:db8:1::ff:0/120'], 'empty-v6': ['203.0.113.60/30'], routed: ['203.0.113.128/29'] };
const pool = (name: string, status: Record<string, unknown>): RawObject => ({ kind: 'IPAddressPool', metadata: { name, namespace: NS }, spec: { addresses: ADDRS[name] ?? ['203.0.113.200/30'] }, status });
const svc = (ns: string, name: string, ips: string[], extra: { pool?: string; cls?: string; type?: string } = {}): RawObject => ({
  kind: 'Service', metadata: { name, namespace: ns, annotations: extra.pool ? { 'portico.dev/ip-allocated-from-pool': extra.pool } : {} },
  spec: { type: extra.type ?? 'LoadBalancer', ...(extra.cls ? { loadBalancerClass: extra.cls } : {}) },
  status: { loadBalancer: { ingress: ips.map((ip) => ({ ip, ipMode: 'VIP' })) } },
});
const ev = (kind: string, ns: string, name: string, reason: string, message: string, at: string, type = 'Normal', host?: string): RawEvent => ({
  type, reason, message, involvedObject: { kind, namespace: ns, name }, lastTimestamp: at, ...(host ? { source: { component: 'portico-speaker', host } } : {}),
});

function input(): StatusInput {
  return {
    namespace: NS,
    services: [
      svc('shop', 'web', ['203.0.113.10', '2001:db8:1::ff:0'], { pool: 'lan' }),
      svc('shop', 'api', []),
      svc('shop', 'bgp', ['203.0.113.129'], { pool: 'routed' }),
      svc('shop', 'bgp2', ['203.0.113.131'], { pool: 'routed' }),
      { ...svc('shop', 'l2', ['203.0.113.11'], { pool: 'lan' }), metadata: { name: 'l2', namespace: 'shop', annotations: { 'portico.dev/ip-allocated-from-pool': 'lan', 'portico.dev/layer2-node': 'node-3', 'portico.dev/layer2-interfaces': 'eth0' } } },
      svc('default', 'kubernetes', [], { type: 'ClusterIP' }),
      svc('other', 'theirs', [], { cls: 'example.com/other-lb' }),
    ],
    config: {
      IPAddressPool: [
        pool('lan', { assignedIPv4: 1, availableIPv4: 30, assignedIPv6: 1, availableIPv6: 255, ...valid(true) }),
        pool('empty-v6', { assignedIPv4: 0, availableIPv4: 4, assignedIPv6: 0, availableIPv6: 0, ...valid(true) }),
        pool('routed', { assignedIPv4: 2, availableIPv4: 6, ...valid(true) }),
      ],
      BGPPeer: [
        { kind: 'BGPPeer', metadata: { name: 'tor-1' }, spec: { myASN: 64512, peerASN: 64513, peerAddress: '198.51.100.201' } },
        { kind: 'BGPPeer', metadata: { name: 'tor-2' }, spec: { myASN: 64512, peerASN: 64513, peerAddress: '198.51.100.202' } },
        { kind: 'BGPPeer', metadata: { name: 'tor-3' }, spec: { myASN: 64512, peerASN: 64513, peerAddress: '198.51.100.203' } },
      ],
      L2Advertisement: [{ kind: 'L2Advertisement', metadata: { name: 'bad' }, spec: {}, status: valid(false, 'UnknownPool', 'pool "nope" does not exist') }],
      BGPAdvertisement: [{ kind: 'BGPAdvertisement', metadata: { name: 'routed' }, spec: { ipAddressPools: ['routed'], peers: ['tor-1', 'tor-2'] } }],
    },
    bgpStatuses: [
      { kind: 'ServiceBGPStatus', metadata: { name: 'node-1-x' }, status: { node: 'node-1', serviceName: 'bgp', serviceNamespace: 'shop', ips: ['203.0.113.129'], peers: ['tor-1'] } },
      { kind: 'ServiceBGPStatus', metadata: { name: 'node-2-x' }, status: { node: 'node-2', serviceName: 'bgp', serviceNamespace: 'shop', ips: ['203.0.113.129'], peers: ['tor-1', 'tor-2'] } },
      { kind: 'ServiceBGPStatus', metadata: { name: 'node-2-y' }, status: { node: 'node-2', serviceName: 'other', serviceNamespace: 'shop', ips: ['203.0.113.130'], peers: ['tor-1'] } },
    ],
    events: [
      ev('Service', 'shop', 'web', 'IPAllocated', 'assigned 203.0.113.10 from pool lan', '2026-01-01T00:00:00Z'),
      ev('Service', 'shop', 'web', 'nodeAssigned', 'announcing from node node-1, layer 2', '2026-01-01T00:00:01Z'),
      ev('Service', 'shop', 'web', 'nodeAssigned', 'announcing from node node-2, layer 2', '2026-01-01T00:00:05Z'),
      ev('Service', 'shop', 'api', 'AllocationFailed', 'PORTICO_POOL_EXHAUSTED: no free IPv4 address in pool lan', '2026-01-01T00:00:02Z', 'Warning'),
      ev('BGPPeer', NS, 'tor-1', 'BGPSessionEstablished', 'BGP session with 198.51.100.201 (AS 64513) established', '2026-01-01T00:00:03Z', 'Normal', 'node-1'),
      ev('BGPPeer', NS, 'tor-2', 'BGPSessionEstablished', 'established', '2026-01-01T00:00:01Z'),
      ev('BGPPeer', NS, 'tor-2', 'BGPSessionDown', 'Hold Timer Expired', '2026-01-01T00:00:04Z', 'Warning', 'node-3'),
    ],
  };
}

describe('portico status: the model', function () {
  const m = buildStatus(input());

  it('pools: used/free per family from pool status; a family the pool lacks shows as absent', function () {
    assert.deepEqual(m.pools.map((p) => [p.name, p.ipv4, p.ipv6, p.valid]), [
      ['empty-v6', { used: 0, free: 4 }, undefined, true],
      ['lan', { used: 1, free: 30 }, { used: 1, free: 255 }, true],
      ['routed', { used: 2, free: 6 }, undefined, true],
    ]);
  });

  it('Services: only LoadBalancers; IPs, pool, the layer-2 owner (annotations, else Event), BGP nodes and peers (ServiceBGPStatus, else the config); pending with the AllocationFailed reason', function () {
    assert.deepEqual(m.services.map((s) => [`${s.namespace}/${s.name}`, s.ips.join(','), s.pool, s.announcedBy, s.state, s.problem]), [
      ['other/theirs', '', '', '', 'other-class', ''],
      ['shop/api', '', '', '', 'pending', 'PORTICO_POOL_EXHAUSTED: no free IPv4 address in pool lan'],
      ['shop/bgp', '203.0.113.129', 'routed', 'BGP from node-1, node-2 to tor-1, tor-2 (down)', 'allocated', ''],
      ['shop/bgp2', '203.0.113.131', 'routed', 'BGP to tor-1, tor-2 (down)', 'allocated', ''],
      ['shop/l2', '203.0.113.11', 'lan', 'node-3 (layer 2, eth0)', 'allocated', ''],
      ['shop/web', '203.0.113.10,2001:db8:1::ff:0', 'lan', 'announcing from node node-2, layer 2', 'allocated', ''],
    ]);
  });

  it('peers: up from an Established Event, down from a later Warning', function () {
    assert.deepEqual(m.peers.map((p) => [p.name, p.state]), [['tor-1', 'up'], ['tor-2', 'down'], ['tor-3', 'unknown']]);
    assert.match(m.peers[1]!.detail, /BGPSessionDown \(node-3\): Hold Timer Expired/);
  });

  it('peers with dynamicASN, localASN or an interface show them; a BGPPeerUnsupported Warning is a peer down', function () {
    const x = buildStatus({
      namespace: NS, services: [], events: [ev('BGPPeer', NS, 'unnumbered', 'BGPPeerUnsupported', 'interface "eth1" (BGP unnumbered) is not supported', '2026-01-01T00:00:03Z', 'Warning', 'node-1')],
      config: { BGPPeer: [
        { kind: 'BGPPeer', metadata: { name: 'dyn' }, spec: { myASN: 64512, localASN: 64600, dynamicASN: 'external', peerAddress: '198.51.100.201' } },
        { kind: 'BGPPeer', metadata: { name: 'unnumbered' }, spec: { myASN: 64512, peerASN: 64512, interface: 'eth1' } },
      ] },
    });
    assert.deepEqual(x.peers.map((p) => [p.name, p.address, p.asn, p.state]), [
      ['dyn', '198.51.100.201', '64600 -> external (dynamic)', 'unknown'],
      ['unnumbered', 'interface eth1', '64512 -> 64512', 'down'],
    ]);
    assert.match(x.problems.at(-1)!, /BGPPeer unnumbered down: BGPPeerUnsupported \(node-1\): interface "eth1"/);
  });

  it('problems: stale config first, then each refused object, pending Service and peer down', function () {
    assert.deepEqual(m.problems, [
      'configuration refused: the last good one stays in force (stale) until the problems below are fixed',
      'L2Advertisement bad: UnknownPool: pool "nope" does not exist',
      'Service shop/api pending: PORTICO_POOL_EXHAUSTED: no free IPv4 address in pool lan',
      'BGPPeer tor-2 down: BGPSessionDown (node-3): Hold Timer Expired',
    ]);
  });

  it('a pending Service with no Event says the controller may not be running', function () {
    const x = buildStatus({ namespace: NS, services: [svc('a', 'b', [])], config: {}, events: [] });
    assert.match(x.services[0]!.problem, /is the controller running/);
  });

  it('legacy ConfigMap pools are listed, and a broken ConfigMap is a problem', function () {
    const ok = buildStatus({ namespace: NS, services: [], config: {}, events: [], legacyConfig: 'address-pools:\n- name: old\n  protocol: layer2\n  addresses: [203.0.113.0/30]\n' });
    assert.deepEqual(ok.pools.map((p) => [p.name, p.source]), [['old', 'configmap']]);
    assert.deepEqual(ok.problems, []);
    const bad = buildStatus({ namespace: NS, services: [], config: {}, events: [], legacyConfig: 'address-pools:\n- name: old\n  protocol: carrier-pigeon\n  addresses: [203.0.113.0/30]\n' });
    assert.equal(bad.problems.length, 2);
    assert.match(bad.problems[1]!, /address-pools\[0\]\.protocol: must be layer2 or bgp/);
  });
});

describe('portico status: rendering', function () {
  const m = buildStatus(input());

  it('aligned tables without colour when colour is off', function () {
    const text = renderStatus(m, painter(false));
    assert.ok(!text.includes('\x1b['));
    const lines = text.split('\n');
    const head = lines.find((l) => l.startsWith('SERVICE'))!;
    const web = lines.find((l) => l.startsWith('shop/web'))!;
    const api = lines.find((l) => l.startsWith('shop/api'))!;
    // Every column starts at the same offset on every row.
    for (const col of ['IPS', 'POOL', 'ANNOUNCED BY', 'STATE']) {
      const at = head.indexOf(col);
      assert.ok(at > 0, col);
      assert.notEqual(web[at - 1], undefined);
      assert.equal(web[at - 1], ' ', `${col} in ${web}`);
      assert.equal(api[at - 1], ' ', `${col} in ${api}`);
    }
    assert.equal(web.slice(head.indexOf('STATE')), 'allocated');
    assert.equal(api.slice(head.indexOf('STATE')), 'pending');
    assert.match(text, /^lan {3,}crd {3,}1\/31 {3,}1\/256 {3,}yes$/m);
    assert.match(text, /^empty-v6 {3,}crd {3,}0\/4 {3,}- {3,}yes$/m);
    assert.match(text, /^Problems \(4\)$/m);
  });

  it('colour on a terminal does not break the alignment', function () {
    const coloured = renderStatus(m, painter(true));
    assert.ok(coloured.includes('\x1b[32mallocated\x1b[0m'));
    assert.ok(coloured.includes('\x1b[31mpending\x1b[0m'));
    const strip = (s: string): string => s.split(String.fromCharCode(27)).map((part, i) => (i === 0 ? part : part.replace(/^\[[0-9;]*m/, ''))).join('');
    assert.equal(strip(coloured), renderStatus(m, painter(false)));
  });

  it('no problems is said plainly', function () {
    const clean = buildStatus({ namespace: NS, services: [], config: { IPAddressPool: [pool('lan', { assignedIPv4: 0, availableIPv4: 8, ...valid(true) })] }, events: [] });
    assert.match(renderStatus(clean, painter(false)), /No problems\.\n$/);
  });

  it('table(): widths ignore escape codes', function () {
    const p = painter(true);
    const t = table(['A', 'B'], [[p('red', 'xx'), 'y'], ['zzzz', 'w']], p).split('\n');
    assert.equal(visibleWidth(t[1]!), visibleWidth(t[2]!));
  });
});
