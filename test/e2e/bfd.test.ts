// Portico's native BFD against FRR's bfdd and BIRD's BFD in the lab, single
// hop over IPv4 and IPv6, with the speakers installed from the manifests and
// configured through BFDProfile and BGPPeer objects. The tests read what the
// routers report (`show bfd peers`, `show bfd sessions`, the BGP neighbor
// state) and the speakers' metrics: sessions Up with the profile's timers, a
// router-side timer change without a flap, a router-side admin down that
// keeps BGP, and a path failure that resets BGP long before the hold time.
import { strict as assert } from 'node:assert';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { addRouter, waitFor, type Lab, type Router } from '../lab/index.ts';
import { NODE_AS, NS, ROUTER_AS, bgpPeer, frrBfdPeers, frrBgpConfig, frrNeighbors, installSpeakers, onSharedLab, onlyNode as only, type Cleanups } from './bgp-env.ts';
import { apply as applyObjects, type Obj } from './objects.ts';

const LABEL = { 'portico.dev/e2e': 'bfd' };
const METRICS_PORT = 7473;

const birdConf = (nodes: string[], ms: number): string => `
router id {{ipv4}};
protocol device {}
protocol bfd pbfd {
  interface "*" { min rx interval ${ms} ms; min tx interval ${ms} ms; multiplier 3; };
}
protocol bgp n1v4 {
  local as ${ROUTER_AS}; neighbor ${nodes[0]} as ${NODE_AS}; passive on; bfd on;
  hold time 9; keepalive time 3;
  ipv4 { import all; export none; };
}
protocol bgp n1v6 {
  local as ${ROUTER_AS}; neighbor ${nodes[1]} as ${ROUTER_AS}; passive on; bfd on; direct;
  hold time 9; keepalive time 3;
  ipv6 { import all; export none; };
}
`;

describe('BFD interop (e2e, root): the speaker\'s BFD with FRR bfdd and BIRD', function () {
  this.timeout(180_000);
  let lab: Lab;
  let frr: Router;
  let bird: Router;
  const node = (i: number) => lab.nodes[i]!;

  const peer = (name: string, spec: Obj): Obj => bgpPeer(name, { bfdProfile: 'pbfd-fast', ...spec }, LABEL);
  const frrBfd = () => frrBfdPeers(frr);
  const frrBgp = () => frrNeighbors(frr);
  /** BIRD's `show bfd sessions`: address -> state. */
  async function birdBfd(): Promise<Map<string, string>> {
    const out = await bird.cli(['show', 'bfd', 'sessions']);
    const m = new Map<string, string>();
    for (const line of out.split('\n')) {
      const f = line.trim().split(/\s+/);
      if (f.length >= 3 && /[:.]/.test(f[0]!) && /^(Up|Down|Init|AdminDown)$/.test(f[2]!)) m.set(f[0]!, f[2]!);
    }
    return m;
  }
  /** One metric of one node's speaker, by exact label set text (`peer="frr-v4"`). */
  async function speakerMetric(i: number, name: string, labels: string): Promise<number | undefined> {
    const r = await lab.exec(node(i).name, ['curl', '-sS', '--max-time', '2', `http://127.0.0.1:${METRICS_PORT}/metrics`], { allowFail: true });
    const line = r.stdout.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
    return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
  }

  const cleanups = onSharedLab(async (l, c) => {
    lab = l;
    await setUp(c);
  });

  async function setUp(cleanups: Cleanups): Promise<void> {
    const n1 = node(0).ipv4;
    const n1v6 = node(0).ipv6;
    const n2 = node(1).ipv4;
    const n3 = node(2).ipv4;
    frr = await addRouter(lab, {
      name: 'd-frr', kind: 'frr',
      bfdd: `
bfd
 profile fast
  transmit-interval 100
  receive-interval 100
  detect-multiplier 3
 !
!
`,
      config: frrBgpConfig('d-frr', ROUTER_AS, `
 neighbor NODES peer-group
 neighbor NODES remote-as ${NODE_AS}
 neighbor NODES passive
 neighbor NODES timers 3 9
 neighbor NODES bfd profile fast
 neighbor ${n1} peer-group NODES
 neighbor ${n2} peer-group NODES
 neighbor ${n3} remote-as ${NODE_AS}
 neighbor ${n3} passive
 neighbor ${n3} timers 3 9
 neighbor ${n3} ebgp-multihop 2
 neighbor ${n3} bfd profile fast
 neighbor ${n1v6} remote-as ${ROUTER_AS}
 neighbor ${n1v6} passive
 neighbor ${n1v6} timers 3 9
 neighbor ${n1v6} bfd profile fast
 address-family ipv4 unicast
  neighbor NODES activate
  neighbor ${n3} activate
 exit-address-family
 address-family ipv6 unicast
  neighbor ${n1v6} activate
 exit-address-family
`),
    });
    cleanups.push(() => frr.stop());
    bird = await addRouter(lab, { name: 'd-bird', kind: 'bird', config: birdConf([n1, n1v6], 100) });
    cleanups.push(() => bird.stop());

    await installSpeakers(lab, cleanups);
    cleanups.push(() => lab.kubectlResult(['delete', 'bgppeers,bfdprofiles', '-n', NS, '-l', 'portico.dev/e2e=bfd', '--ignore-not-found']));
    await applyObjects(lab,
      { apiVersion: 'portico.dev/v1beta1', kind: 'BFDProfile', metadata: { name: 'pbfd-fast', namespace: NS, labels: LABEL }, spec: { receiveInterval: 100, transmitInterval: 100, detectMultiplier: 3 } },
      peer('frr-v4', { myASN: NODE_AS, peerASN: ROUTER_AS, peerAddress: frr.ipv4, nodeSelectors: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: ['node-1', 'node-2'] }] }] }),
      // Multihop eBGP, so BFD runs multihop (RFC 5883, port 4784) with its TTL floor.
      peer('frr-mh', { myASN: NODE_AS, peerASN: ROUTER_AS, peerAddress: frr.ipv4, ebgpMultiHop: true, nodeSelectors: only('node-3') }),
      peer('frr-v6', { myASN: ROUTER_AS, peerASN: ROUTER_AS, peerAddress: frr.ipv6, nodeSelectors: only('node-1') }),
      peer('bird-v4', { myASN: NODE_AS, peerASN: ROUTER_AS, peerAddress: bird.ipv4, nodeSelectors: only('node-1') }),
      peer('bird-v6', { myASN: ROUTER_AS, peerASN: ROUTER_AS, peerAddress: bird.ipv6, nodeSelectors: only('node-1') }),
    );
  }

  it('the API server refuses echoMode: true, naming the field', async () => {
    const r = await lab.kubectlResult(['apply', '-f', '-'], JSON.stringify({
      apiVersion: 'portico.dev/v1beta1', kind: 'BFDProfile', metadata: { name: 'pbfd-echo', namespace: NS, labels: LABEL }, spec: { echoMode: true },
    }));
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /spec\.echoMode.*echo mode is not implemented/);
  });

  it('sessions come Up: FRR over IPv4 (two nodes) and IPv6, BIRD over IPv4 and IPv6, at the profile\'s 100 ms x 3', async () => {
    const want = [node(0).ipv4, node(1).ipv4, node(0).ipv6];
    const peers = await waitFor('FRR BFD peers up', async () => {
      const m = await frrBfd();
      return want.every((a) => m.get(a)?.status === 'up') ? m : undefined;
    }, 60_000, 250);
    for (const a of want) {
      const p = peers.get(a)!;
      assert.deepEqual([p['remote-receive-interval'], p['remote-transmit-interval'], p['remote-detect-multiplier']], [100, 100, 3], `FRR's view of ${a}`);
    }
    await waitFor('BIRD BFD sessions Up', async () => {
      const m = await birdBfd();
      return m.get(node(0).ipv4) === 'Up' && m.get(node(0).ipv6) === 'Up' || undefined;
    }, 60_000, 250);
    await waitFor('BGP Established at FRR', async () => {
      const n = await frrBgp();
      return want.every((a) => n[a]?.bgpState === 'Established') || undefined;
    }, 60_000, 250);
    for (const p of ['frr-v4', 'frr-v6', 'bird-v4', 'bird-v6']) {
      await waitFor(`speaker state Up for ${p}`, async () => (await speakerMetric(0, 'portico_bfd_session_state', `peer="${p}"`)) === 3 || undefined, 20_000, 200);
    }
    assert.equal(await speakerMetric(0, 'portico_bfd_detection_time_seconds', 'peer="frr-v4"'), 0.3);
  });

  it('multihop (RFC 5883): node-3\'s eBGP multihop peer gets a BFD session on port 4784, Up at both ends', async () => {
    const n3 = node(2).ipv4;
    await waitFor('FRR multihop BFD peer up', async () => {
      const p = (await frrBfd()).get(n3);
      return p?.multihop === true && p.status === 'up' || undefined;
    }, 60_000, 250);
    await waitFor('speaker state Up for frr-mh', async () => (await speakerMetric(2, 'portico_bfd_session_state', 'peer="frr-mh"')) === 3 || undefined, 20_000, 200);
    await waitFor('BGP Established with node-3', async () => (await frrBgp())[n3]?.bgpState === 'Established' || undefined, 60_000, 250);
    assert.equal(await speakerMetric(2, 'portico_bfd_packets_dropped_total', 'reason="ttl-too-low"') ?? 0, 0);
  });

  it('a router-side timer change (FRR to 300 ms, BIRD to 200 ms) is a Poll Sequence: the speaker follows without a flap', async () => {
    const peers = ['frr-v4', 'frr-v6', 'bird-v4', 'bird-v6'];
    const flapsBefore = await Promise.all(peers.map(async (p) => (await speakerMetric(0, 'portico_bfd_session_flaps_total', `peer="${p}"`)) ?? 0));
    await frr.cli(['configure terminal', 'bfd', 'profile fast', 'transmit-interval 300', 'receive-interval 300']);
    // Our detection time: FRR's multiplier x max(our 100 ms RX, FRR's new 300 ms TX).
    await waitFor('the speaker at 3 x 300 ms', async () => (await speakerMetric(0, 'portico_bfd_detection_time_seconds', 'peer="frr-v4"')) === 0.9 || undefined, 20_000, 200);
    writeFileSync(path.join(bird.dir, 'bird.conf'), birdConf([node(0).ipv4, node(0).ipv6], 200).replaceAll('{{ipv4}}', bird.ipv4));
    await bird.cli(['configure']);
    await waitFor('the speaker at 3 x 200 ms with BIRD', async () => (await speakerMetric(0, 'portico_bfd_detection_time_seconds', 'peer="bird-v4"')) === 0.6 || undefined, 20_000, 200);
    const m = await frrBfd();
    assert.equal(m.get(node(0).ipv4)?.status, 'up');
    assert.equal(m.get(node(0).ipv4)?.['remote-receive-interval'], 100, 'the speaker\'s own timers are unchanged');
    const flapsAfter = await Promise.all(peers.map(async (p) => (await speakerMetric(0, 'portico_bfd_session_flaps_total', `peer="${p}"`)) ?? 0));
    assert.deepEqual(flapsAfter, flapsBefore, `no flap during the change (${peers.join(', ')})`);
    assert.equal((await birdBfd()).get(node(0).ipv4), 'Up');
  });

  it('a router-side admin down: the speaker\'s BFD goes Down, BGP stays Established (RFC 5882 §3.2); no shutdown brings it back', async () => {
    await frr.cli(['configure terminal', 'bfd', 'profile fast', 'shutdown']);
    try {
      await waitFor('speaker BFD Down for frr-v4', async () => (await speakerMetric(0, 'portico_bfd_session_state', 'peer="frr-v4"')) === 1 || undefined, 20_000, 100);
      await waitFor('speaker BFD Down for frr-v6', async () => (await speakerMetric(0, 'portico_bfd_session_state', 'peer="frr-v6"')) === 1 || undefined, 20_000, 100);
      // Give a wrongly torn-down session the time to show: 2 s of polling that it stays up.
      const end = Date.now() + 2000;
      while (Date.now() < end) {
        assert.equal(await speakerMetric(0, 'portico_bgp_session_up', 'peer="frr-v4"'), 1, 'BGP kept');
        assert.equal((await frrBgp())[node(0).ipv4]?.bgpState, 'Established');
      }
      assert.equal((await frrBfd()).get(node(0).ipv4)?.status, 'shutdown');
    } finally {
      await frr.cli(['configure terminal', 'bfd', 'profile fast', 'no shutdown']);
    }
    await waitFor('FRR BFD up again', async () => (await frrBfd()).get(node(0).ipv4)?.status === 'up' || undefined, 20_000, 200);
    await waitFor('speaker BFD Up again', async () => (await speakerMetric(0, 'portico_bfd_session_state', 'peer="frr-v4"')) === 3 || undefined, 20_000, 200);
  });

  it('a path failure (BFD from FRR dropped at node-2): BGP is reset at once with Cease / BFD Down, long before the 9 s hold time', async () => {
    const n2 = node(1);
    await waitFor('node-2 BFD Up', async () => (await frrBfd()).get(n2.ipv4)?.status === 'up' || undefined, 20_000, 200);
    const table = 'pbfd_e2e';
    const nft = (...args: string[]) => lab.exec(n2.name, ['nft', ...args]);
    cleanups.push(() => lab.exec(n2.name, ['nft', 'delete', 'table', 'inet', table], { allowFail: true }));
    await nft('add', 'table', 'inet', table);
    const t0 = Date.now();
    await nft('add', 'chain', 'inet', table, 'in', '{ type filter hook input priority 0 ; }');
    await nft('add', 'rule', 'inet', table, 'in', 'udp', 'dport', '3784', 'ip', 'saddr', frr.ipv4, 'drop');
    try {
      await waitFor('FRR drops the BGP session with node-2', async () => (await frrBgp())[n2.ipv4]?.bgpState !== 'Established' || undefined, 8000, 50);
      const took = Date.now() - t0;
      assert.ok(took < 3000, `BGP left Established ${took} ms after the path failed (BFD 300 ms x 3 now, hold time 9 s)`);
      await waitFor('the reset counted as bfd-down', async () => ((await speakerMetric(1, 'portico_bgp_session_drops_total', 'reason="bfd-down"')) ?? 0) >= 1 || undefined, 10_000, 100);
      assert.ok(((await speakerMetric(1, 'portico_bfd_session_flaps_total', 'peer="frr-v4"')) ?? 0) >= 1);
      // node-1's sessions are untouched.
      assert.equal((await frrBgp())[node(0).ipv4]?.bgpState, 'Established');
    } finally {
      await lab.exec(n2.name, ['nft', 'delete', 'table', 'inet', table], { allowFail: true });
    }
    await waitFor('node-2 BFD and BGP back', async () => {
      const up = (await frrBfd()).get(n2.ipv4)?.status === 'up' && (await frrBgp())[n2.ipv4]?.bgpState === 'Established';
      return up || undefined;
    }, 60_000, 250);
  });
});
