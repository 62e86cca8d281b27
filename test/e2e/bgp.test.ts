// Portico's BGP speaker against real FRR, BIRD and GoBGP in the lab, installed
// the way a user installs it: manifests/portico.yaml applied, the controller
// and one speaker per node run with the manifests' command lines and their
// ServiceAccounts' tokens (test/lab/portico.ts), and the configuration given
// as IPAddressPool, BGPPeer, BGPAdvertisement, Community and Secret objects.
// The tests read what the routers hold: their RIBs, FRR's kernel table, and
// what a client behind FRR gets back from the Service's pods through the
// speakers' dataplane.
import { strict as assert } from 'node:assert';
import { addRouter, waitFor, type Lab, type PorticoInstall, type Router } from '../lab/index.ts';
import { BEHIND, NODE_AS, NS, ROUTER_AS, addClientBehind, bgpPeer, frrBgpConfig, frrNeighbors as frrNeighborStates, installSpeakers, onSharedLab, onlyNode as only, type Cleanups } from './bgp-env.ts';
import { SERVICE_BGP_STATUS_CRD, SPEAKER_STATUS_RULE } from './bgp-status.ts';
import { apply as applyObjects, type Obj } from './objects.ts';

const VIP4 = '203.0.113.50';
const VIP6 = '2001:db8:ff::50';
const LOCAL_VIP = '203.0.113.51';
const UNSELECTED_VIP = '203.0.113.52';
const MD5_AS = 64514;
const APP = 'pbgp-e2e';
const POOL = 'bgp-pool';
/** The label the BGPAdvertisement's serviceSelectors ask for. */
const SELECTED = { 'portico.dev/e2e-bgp': 'announce' };

interface FrrPath {
  aspath?: { string?: string };
  community?: { string?: string };
  largeCommunity?: { string?: string };
  nexthops?: { ip?: string }[];
  peer?: { peerId?: string };
  locPrf?: number;
  stale?: boolean;
  multipath?: boolean;
}


describe('BGP speaker interop (e2e, root): the installed speaker with FRR, BIRD and GoBGP', function () {
  this.timeout(180_000);
  let lab: Lab;
  let frr: Router;
  let bird: Router;
  let gobgp: Router;
  let md5: Router;
  let install: PorticoInstall | undefined;

  const nodeIP = (i: number): string => lab.nodes[i]!.ipv4;
  const nodeIP6 = (i: number): string => lab.nodes[i]!.ipv6;

  const apply = (...items: Obj[]): Promise<void> => applyObjects(lab, ...items);
  const peer = (name: string, spec: Obj): Obj => bgpPeer(name, spec);
  const service = (name: string, ips: string[], extra: { labels?: Record<string, string>; selector?: Record<string, string>; local?: boolean } = {}): Obj => ({
    apiVersion: 'v1', kind: 'Service',
    metadata: { name, namespace: APP, labels: extra.labels ?? SELECTED, annotations: { 'portico.dev/address-pool': POOL, 'portico.dev/loadBalancerIPs': ips.join(',') } },
    spec: {
      type: 'LoadBalancer', selector: extra.selector ?? { app: 'bgp-web' }, ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 80 }],
      ...(ips.length === 2 ? { ipFamilyPolicy: 'RequireDualStack', ipFamilies: ['IPv4', 'IPv6'] } : { ipFamilyPolicy: 'SingleStack', ipFamilies: ['IPv4'] }),
      ...(extra.local ? { externalTrafficPolicy: 'Local' } : {}),
    },
  });
  const webService = (): Obj => service('bgp-web', [VIP4, VIP6]);

  async function ingressOf(name: string): Promise<string[]> {
    const j = JSON.parse(await lab.kubectl('get', 'service', name, '-n', APP, '-o', 'json')) as { status?: { loadBalancer?: { ingress?: { ip?: string }[] } } };
    return (j.status?.loadBalancer?.ingress ?? []).map((i) => i.ip ?? '');
  }

  /** ServiceBGPStatus objects as `service node: peers` lines, sorted. */
  async function bgpStatuses(): Promise<string[]> {
    const j = JSON.parse(await lab.kubectl('get', 'servicebgpstatuses', '-n', NS, '-o', 'json')) as { items: { metadata: { labels?: Record<string, string> }; status: { node: string; serviceName: string; serviceNamespace: string; ips?: string[]; peers?: string[] } }[] };
    return j.items.filter((o) => o.status.serviceNamespace === APP)
      .map((o) => `${o.status.serviceName} ${o.status.node} [${(o.status.ips ?? []).join(',')}]: ${(o.status.peers ?? []).join(',')} ${o.metadata.labels?.['portico.dev/service-name'] ?? '-'}`).sort();
  }

  // ---- router queries ----

  async function frrPaths(r: Router, prefix: string): Promise<FrrPath[]> {
    const afi = prefix.includes(':') ? 'ipv6' : 'ipv4';
    const out = await r.cli([`show bgp ${afi} unicast ${prefix} json`]);
    return ((JSON.parse(out || '{}') as { paths?: FrrPath[] }).paths) ?? [];
  }
  const fromPeer = (paths: FrrPath[], peer: string): FrrPath | undefined => paths.find((p) => p.peer?.peerId === peer);

  async function frrNeighbors(r: Router): Promise<Record<string, string>> {
    return Object.fromEntries(Object.entries(await frrNeighborStates(r)).map(([k, v]) => [k, v.bgpState ?? '']));
  }

  async function birdRoutes(protocol: string): Promise<string> {
    return bird.cli(['show', 'route', 'all', 'protocol', protocol]);
  }

  interface GobgpPath { nlri?: { prefix?: string }; attrs?: { type: number; as_paths?: { asns: number[] }[]; nexthop?: string; value?: number; communities?: number[] }[] }
  async function gobgpAdjIn(neighbor: string, family: 'ipv4' | 'ipv6'): Promise<Record<string, GobgpPath[]>> {
    const out = await gobgp.cli(['neighbor', neighbor, 'adj-in', '-a', family, '-j']);
    const j = JSON.parse(out || '{}') as Record<string, GobgpPath[]> | GobgpPath[];
    if (Array.isArray(j)) return Object.fromEntries(j.map((p) => [p.nlri?.prefix ?? '', [p]]));
    return j;
  }

  const cleanups = onSharedLab(async (l, c) => {
    lab = l;
    await setUp(c);
  });

  async function setUp(cleanups: Cleanups): Promise<void> {
    // Routers first: they are passive, and the speakers find them at once.
    const n = [0, 1, 2].map(nodeIP);
    const n1v6 = nodeIP6(0);
    frr = await addRouter(lab, {
      name: 'b-frr', kind: 'frr', config: frrBgpConfig('b-frr', ROUTER_AS, `
 bgp graceful-restart
 neighbor NODES peer-group
 neighbor NODES remote-as ${NODE_AS}
 neighbor NODES passive
 neighbor NODES timers 1 3
${n.map((ip) => ` neighbor ${ip} peer-group NODES`).join('\n')}
 neighbor ${n1v6} remote-as ${ROUTER_AS}
 neighbor ${n1v6} passive
 neighbor ${n1v6} timers 1 3
 address-family ipv4 unicast
  maximum-paths 4
  neighbor NODES activate
  neighbor ${n1v6} activate
 exit-address-family
 address-family ipv6 unicast
  maximum-paths 4
  neighbor NODES activate
  neighbor ${n1v6} activate
 exit-address-family
`),
    });
    bird = await addRouter(lab, {
      name: 'b-bird', kind: 'bird', config: `
router id {{ipv4}};
protocol device {}
protocol direct { ipv4; ipv6; }
protocol bgp n1v4 {
  local as ${ROUTER_AS}; neighbor ${n[0]} as ${NODE_AS}; passive on;
  hold time 9; keepalive time 3;
  ipv4 { import all; export none; };
  ipv6 { import all; export none; };
}
protocol bgp n1v6 {
  local as ${ROUTER_AS}; neighbor ${n1v6} as ${ROUTER_AS}; passive on;
  hold time 9; keepalive time 3;
  ipv4 { import all; export none; };
  ipv6 { import all; export none; };
}
`,
    });
    // GoBGP's eBGP neighbor is active: it connects to the speaker's listener on 179 (see the gobgp-v4 BGPPeer).
    const gobgpNeighbor = (addr: string, asn: number, passive: boolean) => `
[[neighbors]]
  [neighbors.config]
    neighbor-address = "${addr}"
    peer-as = ${asn}
  [neighbors.transport.config]
    passive-mode = ${passive}
  [neighbors.timers.config]
    hold-time = 9
    keepalive-interval = 3
    connect-retry = 1
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
`;
    gobgp = await addRouter(lab, {
      name: 'b-gobgp', kind: 'gobgp', config: `
[global.config]
  as = ${ROUTER_AS}
  router-id = "{{ipv4}}"
${gobgpNeighbor(n[0]!, NODE_AS, false)}${gobgpNeighbor(n1v6, ROUTER_AS, true)}`,
    });
    md5 = await addRouter(lab, {
      name: 'b-md5', kind: 'frr', config: frrBgpConfig('b-md5', MD5_AS, `
 neighbor ${n[2]} remote-as ${NODE_AS}
 neighbor ${n[2]} password portico-md5-secret
 neighbor ${n[2]} passive
 neighbor ${n[2]} timers 1 3
 address-family ipv4 unicast
  neighbor ${n[2]} activate
 exit-address-family
`),
    });

    cleanups.push(() => frr.stop(), () => bird.stop(), () => gobgp.stop(), () => md5.stop());

    // The status kind and the speaker's right to write it (see bgp-status.ts), before the speakers start.
    cleanups.push(() => lab.kubectlResult(['delete', 'crd', 'servicebgpstatuses.portico.dev', '--ignore-not-found']));
    cleanups.push(() => lab.kubectlResult(['delete', 'role,rolebinding', 'portico-speaker-bgp-status', '-n', NS, '--ignore-not-found']));
    const crd = await lab.kubectlResult(['apply', '-f', '-'], SERVICE_BGP_STATUS_CRD);
    assert.equal(crd.code, 0, crd.stderr);
    await lab.kubectlResult(['create', 'namespace', NS]);
    await apply(
      { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'portico-speaker-bgp-status', namespace: NS }, rules: [SPEAKER_STATUS_RULE] },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'portico-speaker-bgp-status', namespace: NS },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'portico-speaker-bgp-status' },
        subjects: [{ kind: 'ServiceAccount', name: 'portico-speaker', namespace: NS }],
      },
    );
    install = await installSpeakers(lab, cleanups);
    await lab.kubectlResult(['delete', 'secret', 'pbgp-md5', '-n', NS, '--ignore-not-found']);
    cleanups.push(() => lab.kubectlResult(['delete', 'secret', 'pbgp-md5', '-n', NS, '--ignore-not-found']));
    cleanups.push(() => lab.kubectlResult(['delete', 'bgppeers,bgpadvertisements,communities', '-n', NS, '-l', 'portico.dev/e2e=bgp', '--ignore-not-found']));
    cleanups.push(() => lab.kubectlResult(['delete', 'ipaddresspools', POOL, '-n', NS, '--ignore-not-found']));
    const label = { 'portico.dev/e2e': 'bgp' };
    await apply(
      { apiVersion: 'portico.dev/v1beta1', kind: 'IPAddressPool', metadata: { name: POOL, namespace: NS }, spec: { addresses: ['203.0.113.48/28', '2001:db8:ff::/64'], autoAssign: false } },
      { apiVersion: 'portico.dev/v1beta1', kind: 'Community', metadata: { name: 'bgp-e2e', namespace: NS, labels: label }, spec: { communities: [{ name: 'portico-large', value: 'large:64512:7:8' }] } },
      {
        apiVersion: 'portico.dev/v1beta1', kind: 'BGPAdvertisement', metadata: { name: 'bgp-adv', namespace: NS, labels: label },
        spec: { ipAddressPools: [POOL], localPref: 50, communities: ['64512:100', 'portico-large'], serviceSelectors: [{ matchLabels: SELECTED }] },
      },
      ...[
        peer('frr-v4', { myASN: NODE_AS, peerASN: ROUTER_AS, peerAddress: frr.ipv4, enableGracefulRestart: true }),
        peer('frr-v6', { myASN: ROUTER_AS, peerASN: ROUTER_AS, peerAddress: frr.ipv6, nodeSelectors: only('node-1') }),
        peer('bird-v4', { myASN: NODE_AS, peerASN: ROUTER_AS, peerAddress: bird.ipv4, nodeSelectors: only('node-1') }),
        peer('bird-v6', { myASN: ROUTER_AS, peerASN: ROUTER_AS, peerAddress: bird.ipv6, nodeSelectors: only('node-1') }),
        // The speaker's own attempts go to a port GoBGP does not listen on: this session can only
        // come up through GoBGP connecting to the speaker's listener on port 179.
        peer('gobgp-v4', { myASN: NODE_AS, peerASN: ROUTER_AS, peerAddress: gobgp.ipv4, peerPort: 1179, nodeSelectors: only('node-1') }),
        peer('gobgp-v6', { myASN: ROUTER_AS, peerASN: ROUTER_AS, peerAddress: gobgp.ipv6, nodeSelectors: only('node-1') }),
      ].map((p) => ({ ...p, metadata: { ...(p.metadata as Obj), labels: label } })),
    );

    // One web pod per node: the Services' real endpoints; only node-2's backs the Local Service.
    await lab.kubectlResult(['create', 'namespace', APP]);
    cleanups.push(() => lab.kubectlResult(['delete', 'namespace', APP, '--wait=false']));
    await apply(...lab.nodes.map((n): Obj => ({
      apiVersion: 'v1', kind: 'Pod', metadata: { name: `bgp-web-${n.name}`, namespace: APP, labels: { app: 'bgp-web', ...(n.name === 'node-2' ? { 'bgp-local': 'yes' } : {}) } },
      spec: {
        nodeName: n.name,
        containers: [{ name: 'web', image: 'portico.dev/lab-web', ports: [{ containerPort: 80 }], readinessProbe: { httpGet: { path: '/healthz', port: 80 }, periodSeconds: 1 } }],
      },
    })));
    await apply(
      webService(),
      service('bgp-local', [LOCAL_VIP], { selector: { app: 'bgp-web', 'bgp-local': 'yes' }, local: true }),
      // In the pool, but the BGPAdvertisement's serviceSelectors do not select it.
      service('bgp-unselected', [UNSELECTED_VIP], { labels: {} }),
    );
    for (const [name, want] of [['bgp-web', [VIP4, VIP6]], ['bgp-local', [LOCAL_VIP]], ['bgp-unselected', [UNSELECTED_VIP]]] as const) {
      await waitFor(`${name} to get ${want.join(', ')} from the controller`, async () => {
        const ips = await ingressOf(name);
        return ips.length === want.length && want.every((ip) => ips.includes(ip)) || undefined;
      }, 60_000, 200);
    }
  }

  it('sessions come up: eBGP over IPv4 from 3 nodes and iBGP over IPv6 from node-1 (FRR), both from node-1 (BIRD, GoBGP)', async () => {
    const want = [nodeIP(0), nodeIP(1), nodeIP(2), nodeIP6(0)];
    await waitFor('FRR sessions Established', async () => {
      const s = await frrNeighbors(frr);
      return want.every((w) => s[w] === 'Established');
    }, 30_000, 250);
    await waitFor('BIRD sessions Established', async () => {
      const out = await bird.cli(['show', 'protocols']);
      return /n1v4\s+BGP\s+---\s+up\s+.*Established/.test(out) && /n1v6\s+BGP\s+---\s+up\s+.*Established/.test(out);
    }, 30_000, 250);
    await waitFor('GoBGP sessions Established', async () => {
      const out = await gobgp.cli(['neighbor']);
      return out.split('\n').filter((l) => (l.includes(nodeIP(0)) || l.includes(nodeIP6(0))) && /Establ/.test(l)).length === 2;
    }, 30_000, 250);
    // The eBGP one is GoBGP's connection to node-1:179 (the speaker never reaches GoBGP on 1179).
    const ss = (await lab.exec('node-1', ['ss', '-Htn', 'state', 'established', `( sport = :179 and dst ${gobgp.ipv4} )`])).stdout;
    // The listener is dual-stack, so ss shows IPv4 peers as [::ffff:a.b.c.d].
    const v4 = (ip: string): string => `(\\[::ffff:)?${ip.replaceAll('.', '\\.')}\\]?`;
    assert.match(ss, new RegExp(`${v4(nodeIP(0))}:179\\s+${v4(gobgp.ipv4)}:\\d+`), `no connection from GoBGP to the listener: ${ss}`);
  });

  it('FRR holds the /32 and /128 with next hop, AS path, local-pref (iBGP only) and communities', async () => {
    const p4 = await waitFor('the /32 from every node in FRR', async () => {
      const paths = await frrPaths(frr, `${VIP4}/32`);
      return paths.length === 4 ? paths : undefined;
    }, 20_000, 200);
    const ebgp = fromPeer(p4, nodeIP(0))!;
    assert.equal(ebgp.aspath?.string, String(NODE_AS));
    assert.equal(ebgp.nexthops?.[0]?.ip, nodeIP(0));
    assert.equal(ebgp.community?.string, '64512:100');
    assert.equal(ebgp.largeCommunity?.string, '64512:7:8');
    const ibgp = fromPeer(p4, nodeIP6(0))!;
    assert.match(ibgp.aspath?.string ?? '', /^(Local)?$/, 'iBGP: empty AS path');
    assert.equal(ibgp.locPrf, 50);
    assert.equal(ibgp.nexthops?.[0]?.ip, nodeIP(0), 'IPv4 next hop over the IPv6 session is the node\'s IPv4 address');
    const p6 = await waitFor('the /128 in FRR', async () => {
      const paths = await frrPaths(frr, `${VIP6}/128`);
      return paths.length === 4 ? paths : undefined;
    }, 20_000, 200);
    assert.equal(fromPeer(p6, nodeIP(1))?.nexthops?.[0]?.ip, nodeIP6(1));
    assert.equal(fromPeer(p6, nodeIP6(0))?.nexthops?.[0]?.ip, nodeIP6(0));
    assert.equal(fromPeer(p6, nodeIP6(0))?.locPrf, 50);
  });

  it('BIRD holds them with the same attributes on each session', async () => {
    const v4 = await waitFor('routes from n1v4 in BIRD', async () => {
      const out = await birdRoutes('n1v4');
      return out.includes(`${VIP4}/32`) && out.includes(`${VIP6}/128`) ? out : undefined;
    }, 20_000, 200);
    const block = (out: string, prefix: string): string => {
      const i = out.indexOf(prefix);
      const rest = out.slice(i);
      const next = rest.slice(1).search(/\n\S/);
      return next < 0 ? rest : rest.slice(0, next + 1);
    };
    const b4 = block(v4, `${VIP4}/32`);
    assert.match(b4, new RegExp(`BGP\\.as_path: ${NODE_AS}\\s`));
    assert.match(b4, new RegExp(`BGP\\.next_hop: ${nodeIP(0).replaceAll('.', '\\.')}`));
    assert.match(b4, /BGP\.community: \(64512,100\)/);
    assert.match(b4, /BGP\.large_community: \(64512, 7, 8\)/);
    assert.doesNotMatch(b4, /BGP\.local_pref: 50/, 'eBGP carries no local-pref of ours');
    assert.match(block(v4, `${VIP6}/128`), new RegExp(`BGP\\.next_hop: ${nodeIP6(0)}`));
    const v6 = await waitFor('routes from n1v6 in BIRD', async () => {
      const out = await birdRoutes('n1v6');
      return out.includes(`${VIP4}/32`) && out.includes(`${VIP6}/128`) ? out : undefined;
    }, 20_000, 200);
    const i4 = block(v6, `${VIP4}/32`);
    assert.match(i4, /BGP\.local_pref: 50/);
    assert.match(i4, /BGP\.as_path: *\n/);
  });

  it('GoBGP holds them with the same attributes on each session', async () => {
    const v4 = await waitFor('the /32 in GoBGP from the eBGP session', async () => (await gobgpAdjIn(nodeIP(0), 'ipv4'))[`${VIP4}/32`]?.[0], 20_000, 200);
    const attr = (p: GobgpPath, t: number) => p.attrs?.find((a) => a.type === t);
    assert.deepEqual(attr(v4, 2)?.as_paths?.[0]?.asns, [NODE_AS]);
    assert.equal(attr(v4, 3)?.nexthop, nodeIP(0));
    assert.deepEqual(attr(v4, 8)?.communities, [64512 * 65536 + 100]);
    // GoBGP spells large communities as {ASN, LocalData1, LocalData2}.
    assert.deepEqual((attr(v4, 32) as { value?: unknown } | undefined)?.value, [{ ASN: 64512, LocalData1: 7, LocalData2: 8 }]);
    assert.equal(attr(v4, 5), undefined, 'no local-pref over eBGP');
    const v6 = await waitFor('the /128 in GoBGP from the eBGP session', async () => (await gobgpAdjIn(nodeIP(0), 'ipv6'))[`${VIP6}/128`]?.[0], 20_000, 200);
    assert.equal(attr(v6, 14)?.nexthop ?? (attr(v6, 14) as { nexthops?: string[] } | undefined)?.nexthops?.[0], nodeIP6(0));
    const i4 = await waitFor('the /32 in GoBGP from the iBGP session', async () => (await gobgpAdjIn(nodeIP6(0), 'ipv4'))[`${VIP4}/32`]?.[0], 20_000, 200);
    assert.equal(attr(i4, 5)?.value, 50);
    assert.deepEqual(attr(i4, 2)?.as_paths ?? [], []);
  });

  it('ECMP: FRR uses the three nodes\' paths and installs three next hops in its kernel table', async () => {
    const paths = await waitFor('three multipath eBGP paths', async () => {
      const p = (await frrPaths(frr, `${VIP4}/32`)).filter((x) => x.multipath);
      return p.length === 3 ? p : undefined;
    }, 20_000, 200);
    assert.deepEqual(paths.map((p) => p.nexthops?.[0]?.ip).sort(), [nodeIP(0), nodeIP(1), nodeIP(2)].sort());
    const route = await waitFor('a 3-way route in b-frr\'s kernel', async () => {
      const out = (await lab.exec(frr.host.name, ['ip', 'route', 'show', `${VIP4}/32`])).stdout;
      return (out.match(/nexthop via/g) ?? []).length === 3 ? out : undefined;
    }, 20_000, 200);
    for (let i = 0; i < 3; i++) assert.ok(route.includes(`nexthop via ${nodeIP(i)} `), route);
  });

  it('Local policy: only the node with a ready endpoint (node-2) announces', async () => {
    const paths = await waitFor('the Local VIP in FRR', async () => {
      const p = await frrPaths(frr, `${LOCAL_VIP}/32`);
      return p.length > 0 ? p : undefined;
    }, 20_000, 200);
    // Give the other nodes time to (wrongly) announce it too.
    await new Promise((r) => setTimeout(r, 1500));
    const again = await frrPaths(frr, `${LOCAL_VIP}/32`);
    assert.deepEqual(again.map((p) => p.peer?.peerId), [nodeIP(1)], JSON.stringify(paths));
    assert.equal(again[0]?.nexthops?.[0]?.ip, nodeIP(1));
  });

  it('serviceSelectors: a Service of the pool that the BGPAdvertisement does not select is never announced', async () => {
    // By now every selected prefix is in FRR (tests above); the unselected one had as long to show up.
    assert.deepEqual(await frrPaths(frr, `${UNSELECTED_VIP}/32`), []);
    assert.ok(!(await birdRoutes('n1v4')).includes(`${UNSELECTED_VIP}/32`));
  });

  it('a ServiceBGPStatus per announcing node and Service names the node, the IPs and the peers', async () => {
    const v46 = `${VIP6},${VIP4}`;
    const want = [
      `bgp-local node-2 [${LOCAL_VIP}]: frr-v4 bgp-local`,
      `bgp-web node-1 [${v46}]: bird-v4,bird-v6,frr-v4,frr-v6,gobgp-v4,gobgp-v6 bgp-web`,
      `bgp-web node-2 [${v46}]: frr-v4 bgp-web`,
      `bgp-web node-3 [${v46}]: frr-v4 bgp-web`,
    ];
    let last: string[] = [];
    await waitFor('the ServiceBGPStatus objects', async () => {
      last = await bgpStatuses();
      return JSON.stringify(last) === JSON.stringify(want) || undefined;
    }, 20_000, 250).catch(() => assert.deepEqual(last, want));
  });

  it('the layer-2 announcer in the same speakers stays idle without an L2Advertisement', async () => {
    const j = JSON.parse(await lab.kubectl('get', 'services', '-n', APP, '-o', 'json')) as { items: { metadata: { name: string; annotations?: Record<string, string> } }[] };
    for (const s of j.items) {
      assert.deepEqual(Object.keys(s.metadata.annotations ?? {}).filter((k) => k.startsWith('portico.dev/layer2-')), [], `${s.metadata.name} got layer-2 annotations`);
    }
    const events = JSON.parse(await lab.kubectl('get', 'events', '-n', APP, '-o', 'json')) as { items: { reason: string; involvedObject: { name: string } }[] };
    assert.deepEqual(events.items.filter((e) => e.reason === 'nodeAssigned').map((e) => e.involvedObject.name), [], 'no layer-2 owner was assigned');
    // ARP for the VIP from a client on the segment goes unanswered: no node claims it in layer 2.
    await lab.exec('client', ['ip', 'route', 'replace', `${VIP4}/32`, 'dev', 'eth0']);
    try {
      await lab.exec('client', ['ping', '-c', '1', '-W', '1', VIP4], { allowFail: true });
      const neigh = (await lab.exec('client', ['ip', 'neigh', 'show', VIP4])).stdout;
      assert.doesNotMatch(neigh, /lladdr/, `a node answered ARP for the BGP VIP: ${neigh}`);
    } finally {
      await lab.exec('client', ['ip', 'route', 'del', `${VIP4}/32`, 'dev', 'eth0'], { allowFail: true });
    }
  });

  it('a client behind FRR reaches the Service\'s pods through it and the speakers\' dataplane', async () => {
    // A namespace behind the router; the nodes route its network back through FRR (the lab's routing, not Portico's).
    await addClientBehind(lab, frr, cleanups, 'bhd');
    // Forwarding is the speakers' own nftables dataplane (no ip_vs here): its table holds the VIPs.
    const table = await waitFor('table inet portico with the VIP on node-1', async () => {
      const r = await lab.exec('node-1', ['nft', 'list', 'table', 'inet', 'portico'], { allowFail: true });
      return r.code === 0 && r.stdout.includes(VIP4) ? r.stdout : undefined;
    }, 20_000, 200);
    assert.ok(table.includes(LOCAL_VIP), 'the Local VIP is programmed too');
    const nodes = new Set(lab.nodes.map((n) => n.ipv4));
    const answers = new Set<string>();
    for (let i = 0; i < 12; i++) {
      // Different source ports do not move an L3-hashed flow; the answer proves the path, whichever node it took.
      const body = await lab.curl('bhd', `http://${VIP4}/`, { timeoutS: 3 });
      const a = JSON.parse(body) as { pod: string; client: string };
      // Cluster policy: a pod on the receiving node sees the client; one on another node sees that node (masqueraded).
      assert.ok(a.client === BEHIND.client || nodes.has(a.client), `the pod saw ${a.client}`);
      answers.add(a.pod);
    }
    assert.ok([...answers].every((p) => p.startsWith('bgp-web-')), [...answers].join(','));
    // Local policy: only node-2 announces, its own pod answers and sees the client's own address.
    for (let i = 0; i < 3; i++) {
      const a = JSON.parse(await lab.curl('bhd', `http://${LOCAL_VIP}/`, { timeoutS: 3 })) as { pod: string; client: string };
      assert.deepEqual([a.pod, a.client], ['bgp-web-node-2', BEHIND.client]);
    }
  });

  it('graceful restart: a restarted speaker\'s route stays in FRR (stale) and is refreshed', async () => {
    const speakers = install!.speakers!;
    await lab.stopOnNodes(speakers, 'node-1');
    const stale = await waitFor('node-1\'s path marked stale', async () => {
      const p = fromPeer(await frrPaths(frr, `${VIP4}/32`), nodeIP(0));
      return p?.stale ? p : undefined;
    }, 10_000, 100);
    assert.equal(stale.nexthops?.[0]?.ip, nodeIP(0));
    const kernel = (await lab.exec(frr.host.name, ['ip', 'route', 'show', `${VIP4}/32`])).stdout;
    assert.ok(kernel.includes(`via ${nodeIP(0)} `), `FRR still forwards to node-1 while it restarts: ${kernel}`);
    await lab.restartOnNode(speakers, 'node-1');
    await waitFor('node-1\'s path fresh again', async () => {
      const p = fromPeer(await frrPaths(frr, `${VIP4}/32`), nodeIP(0));
      return p && !p.stale ? p : undefined;
    }, 20_000, 100);
    const restarted = JSON.parse(await frr.cli([`show bgp neighbors ${nodeIP(0)} json`])) as Record<string, { gracefulRestartInfo?: { remoteGrMode?: string } }>;
    assert.ok(restarted[nodeIP(0)]?.gracefulRestartInfo?.remoteGrMode, 'FRR saw graceful restart from the node');
  });

  it('deleting the Service withdraws its routes from every router', async () => {
    await lab.kubectl('delete', 'service', 'bgp-web', '-n', APP);
    await waitFor('FRR withdrawal', async () => (await frrPaths(frr, `${VIP4}/32`)).length === 0 && (await frrPaths(frr, `${VIP6}/128`)).length === 0, 10_000, 100);
    await waitFor('BIRD withdrawal', async () => !(await birdRoutes('n1v4')).includes(`${VIP4}/32`), 10_000, 100);
    // The global RIB, not the neighbour's adj-in: a query for a neighbour whose session is down fails.
    await waitFor('GoBGP withdrawal', async () => !(JSON.parse((await gobgp.routes('ipv4')) || '{}') as Record<string, unknown>)[`${VIP4}/32`], 20_000, 100);
    assert.ok((await frrPaths(frr, `${LOCAL_VIP}/32`)).length === 1, 'the other Service stays');
    await waitFor('bgp-web\'s ServiceBGPStatus objects deleted, bgp-local\'s kept', async () => {
      const st = await bgpStatuses();
      return st.length === 1 && st[0]!.startsWith('bgp-local node-2') || undefined;
    }, 10_000, 200);
    const kernel = (await lab.exec(frr.host.name, ['ip', 'route', 'show', `${VIP4}/32`])).stdout;
    assert.equal(kernel.trim(), '');
  });

  it('TCP MD5: a wrong password keeps the session down with a clear Event; the password from a Secret brings it up', async () => {
    const md5Peer = (auth: Obj): Obj => ({
      ...peer('md5', { myASN: NODE_AS, peerASN: MD5_AS, peerAddress: md5.ipv4, nodeSelectors: only('node-3'), ...auth }),
      metadata: { name: 'md5', namespace: NS, labels: { 'portico.dev/e2e': 'bgp' } },
    });
    await apply(md5Peer({ password: 'not-the-password' }));
    const event = await waitFor('the BGPAuthenticationFailed Event', async () => {
      const j = JSON.parse(await lab.kubectl('get', 'events', '-n', NS, '--field-selector', 'reason=BGPAuthenticationFailed', '-o', 'json')) as { items: { message: string; involvedObject: { kind: string; name: string } }[] };
      return j.items.find((e) => e.involvedObject.name === 'md5');
    }, 30_000, 500);
    assert.equal(event.involvedObject.kind, 'BGPPeer');
    assert.match(event.message, /TCP MD5/);
    assert.notEqual((await frrNeighbors(md5))[nodeIP(2)], 'Established');
    await lab.kubectl('create', 'secret', 'generic', 'pbgp-md5', '-n', NS, '--from-literal=password=portico-md5-secret');
    await apply(md5Peer({ passwordSecret: { name: 'pbgp-md5', namespace: NS } }));
    await waitFor('the signed session Established', async () => (await frrNeighbors(md5))[nodeIP(2)] === 'Established', 30_000, 250);
    // The web Service was deleted above: bring it back and see node-3 announce it over the signed session.
    await apply(webService());
    const p = await waitFor('the /32 in b-md5', async () => (await frrPaths(md5, `${VIP4}/32`))[0], 30_000, 200);
    assert.equal(p.nexthops?.[0]?.ip, nodeIP(2));
  });
});
