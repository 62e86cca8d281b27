// The BGPPeer fields MetalLB users carry over, and the password Secret watch,
// against the installed speaker and a real FRR in the lab: FRR's own view of
// each session (state, the address families each side sent, the AS it was
// opened with) and the Events the speaker writes through the API server.
import { strict as assert } from 'node:assert';
import { addRouter, installPortico, waitFor, type Lab, type PorticoInstall, type Router } from '../lab/index.ts';
import { apply as applyObjects, type Obj } from './objects.ts';
import { requireE2e, sharedLab } from './shared-lab.ts';

const NS = 'portico-system';
const NODE_AS = 64512;
const ROUTER_AS = 64520;
const SECRET = 'pf-md5';
const PASSWORD = 'pf-md5-password';
const LABEL = { 'portico.dev/e2e': 'bgp-peer-fields' };

interface FrrNeighbor {
  bgpState?: string;
  remoteAs?: number;
  neighborCapabilities?: { multiprotocolExtensions?: Record<string, { advertised?: boolean; received?: boolean; advertisedAndReceived?: boolean }> };
}

describe('BGPPeer fields and the password Secret watch (e2e, root): the installed speaker with FRR', function () {
  this.timeout(180_000);
  let lab: Lab;
  let frr: Router;
  let install: PorticoInstall | undefined;
  const cleanups: (() => Promise<unknown>)[] = [];
  const nodeIP = (i: number): string => lab.nodes[i]!.ipv4;
  const apply = (...items: Obj[]): Promise<void> => applyObjects(lab, ...items);
  const only = (n: string): Obj[] => [{ matchLabels: { 'kubernetes.io/hostname': n } }];
  const peer = (name: string, spec: Obj): Obj => ({
    apiVersion: 'portico.dev/v1beta1', kind: 'BGPPeer', metadata: { name, namespace: NS, labels: LABEL },
    spec: { myASN: NODE_AS, holdTime: '9s', connectTime: '1s', ...spec },
  });

  async function neighbors(): Promise<Record<string, FrrNeighbor>> {
    return JSON.parse(await frr.cli(['show bgp neighbors json'])) as Record<string, FrrNeighbor>;
  }
  interface Ev { reason: string; message: string; involvedObject: { kind: string; name: string } }
  async function events(reason: string, name: string): Promise<Ev[]> {
    const j = JSON.parse(await lab.kubectl('get', 'events', '-n', NS, '--field-selector', `reason=${reason}`, '-o', 'json')) as { items: Ev[] };
    return j.items.filter((e) => e.involvedObject.name === name);
  }

  before(async function () {
    requireE2e(this);
    lab = await sharedLab();
    try {
      await setUp();
    } catch (err) {
      await tearDown();
      throw err;
    }
  });

  async function setUp(): Promise<void> {
    const [n1, n2, n3] = [0, 1, 2].map(nodeIP);
    frr = await addRouter(lab, {
      name: 'pf-frr', kind: 'frr', config: `
frr defaults datacenter
hostname pf-frr
router bgp ${ROUTER_AS}
 bgp router-id {{ipv4}}
 no bgp ebgp-requires-policy
 no bgp network import-check
 no bgp default ipv4-unicast
 neighbor NODES peer-group
 neighbor NODES remote-as ${NODE_AS}
 neighbor NODES passive
 neighbor NODES timers 1 3
 neighbor ${n1} peer-group NODES
 neighbor ${n1} password ${PASSWORD}
 neighbor ${n2} peer-group NODES
 neighbor ${n3} peer-group NODES
 address-family ipv4 unicast
  neighbor NODES activate
 exit-address-family
 address-family ipv6 unicast
  neighbor NODES activate
 exit-address-family
`,
    });
    cleanups.push(() => frr.stop());
    await lab.kubectlResult(['create', 'namespace', NS]);
    install = await installPortico(lab, { replicas: 1 });
    cleanups.push(() => install?.stop() ?? Promise.resolve());
    cleanups.push(() => lab.kubectlResult(['delete', 'secret', SECRET, '-n', NS, '--ignore-not-found']));
    cleanups.push(() => lab.kubectlResult(['delete', 'bgppeers', '-n', NS, '-l', 'portico.dev/e2e=bgp-peer-fields', '--ignore-not-found']));
  }

  async function tearDown(): Promise<void> {
    for (const fn of cleanups.reverse()) await fn().catch(() => undefined);
    cleanups.length = 0;
  }

  after(async function () {
    this.timeout(90_000);
    if (!lab) return;
    await tearDown();
  });

  it('passwordSecret: the Secret deleted, then re-created without password, is reported within seconds each time; the session keeps the last good password', async () => {
    await lab.kubectlResult(['delete', 'secret', SECRET, '-n', NS, '--ignore-not-found']);
    await lab.kubectl('create', 'secret', 'generic', SECRET, '-n', NS, `--from-literal=password=${PASSWORD}`);
    await apply(peer('pf-md5', { peerASN: ROUTER_AS, peerAddress: frr.ipv4, nodeSelectors: only('node-1'), passwordSecret: { name: SECRET, namespace: NS } }));
    await waitFor('the signed session Established', async () => (await neighbors())[nodeIP(0)]?.bgpState === 'Established', 30_000, 250);

    const t0 = Date.now();
    await lab.kubectl('delete', 'secret', SECRET, '-n', NS);
    const gone = await waitFor('the Warning for the deleted Secret', async () =>
      (await events('BGPPasswordSecretMissing', 'pf-md5')).find((e) => /does not exist/.test(e.message)), 20_000, 200);
    const deletedAfter = Date.now() - t0;
    assert.match(gone.message, /passwordSecret.*the last good password stays in use/);

    const t1 = Date.now();
    await lab.kubectl('create', 'secret', 'generic', SECRET, '-n', NS, '--from-literal=username=admin');
    const noKey = await waitFor('the Warning for the Secret without password', async () =>
      (await events('BGPPasswordSecretMissing', 'pf-md5')).find((e) => /has no "password" key/.test(e.message)), 20_000, 200);
    const recreatedAfter = Date.now() - t1;
    assert.equal(noKey.involvedObject.kind, 'BGPPeer');
    // The old 30 s cache would have taken up to 30 s; the watch answers in about the API server's round trip.
    assert.ok(deletedAfter < 10_000 && recreatedAfter < 10_000, `reported after ${deletedAfter} ms and ${recreatedAfter} ms`);
    console.log(`      reported ${deletedAfter} ms after the delete, ${recreatedAfter} ms after the re-create (load ${(await import('node:fs')).readFileSync('/proc/loadavg', 'utf8').split(' ')[0]})`);
    assert.equal((await neighbors())[nodeIP(0)]?.bgpState, 'Established', 'the session runs on with the last good password');
  });

  // Issue 15, point 3: MetalLB v0.16's dynamicASN and dualStackAddressFamily.
  it('dynamicASN external with dualStackAddressFamily false: FRR\'s AS is learnt, the session comes up, and the node offered IPv4 unicast only', async () => {
    await apply(peer('pf-dyn-ext', { dynamicASN: 'external', dualStackAddressFamily: false, peerAddress: frr.ipv4, nodeSelectors: only('node-2') }));
    const n = await waitFor('node-2 Established with FRR', async () => {
      const x = (await neighbors())[nodeIP(1)];
      return x?.bgpState === 'Established' ? x : undefined;
    }, 30_000, 250);
    assert.equal(n.remoteAs, NODE_AS);
    const mp = n.neighborCapabilities?.multiprotocolExtensions ?? {};
    const fromNode = (f: string): boolean => mp[f]?.received === true || mp[f]?.advertisedAndReceived === true;
    assert.deepEqual([fromNode('ipv4Unicast'), fromNode('ipv6Unicast')], [true, false], JSON.stringify(mp));
    const up = await waitFor('the Established Event naming the learnt AS', async () =>
      (await events('BGPSessionEstablished', 'pf-dyn-ext')).find((e) => new RegExp(`AS ${ROUTER_AS}, learnt: dynamicASN external`).test(e.message)), 20_000, 250);
    assert.equal(up.involvedObject.kind, 'BGPPeer');
  });

  it('dynamicASN internal against FRR in another AS: the speaker refuses the OPEN (Bad Peer AS) and says why on the BGPPeer', async () => {
    await apply(peer('pf-dyn-int', { dynamicASN: 'internal', peerAddress: frr.ipv4, nodeSelectors: only('node-3') }));
    const ev = await waitFor('the BGPOpenRejected Warning', async () =>
      (await events('BGPOpenRejected', 'pf-dyn-int')).find((e) => /Bad Peer AS/.test(e.message)), 30_000, 250);
    assert.match(ev.message, new RegExp(`peer says AS ${ROUTER_AS}; dynamicASN internal wants our own AS ${NODE_AS}`));
    assert.notEqual((await neighbors())[nodeIP(2)]?.bgpState, 'Established');
  });

  it('vrf and interface (BGP unnumbered): accepted by the API server, refused by the speaker with a BGPPeerUnsupported Warning each, never silently', async () => {
    await apply(
      peer('pf-vrf', { peerASN: ROUTER_AS, peerAddress: frr.ipv4, vrf: 'red', nodeSelectors: only('node-1') }),
      peer('pf-unnumbered', { dynamicASN: 'external', interface: 'eth1', nodeSelectors: only('node-1') }),
    );
    const vrf = await waitFor('the Warning on pf-vrf', async () => (await events('BGPPeerUnsupported', 'pf-vrf'))[0], 30_000, 250);
    assert.match(vrf.message, /vrf "red" is not supported.*remove spec\.vrf/);
    const un = await waitFor('the Warning on pf-unnumbered', async () => (await events('BGPPeerUnsupported', 'pf-unnumbered'))[0], 30_000, 250);
    assert.match(un.message, /interface "eth1" \(BGP unnumbered\) is not supported.*spec\.peerAddress/);
  });
});
