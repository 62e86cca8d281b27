// BFD wired into the BGP announcer, against a router on loopback: a passive
// Portico BGP session plus a BFD manager on 127.0.0.1, the speaker on
// 127.0.0.2 (sourceAddress). When the router's BFD vanishes, the speaker's
// BFD goes Down after the detection time and the BGP session is reset at once
// with Cease / BFD Down, long before the 9 s hold time; AdminDown from the
// router keeps BGP up (RFC 5882 §3.2). Flap damping holds BGP down.
import { strict as assert } from 'node:assert';
import net, { createServer, type Server } from 'node:net';
import { EMPTY_CONFIG, Registry, parseRange, type BFDProfileConfig, type Config, type EventTarget } from '@portico/shared';
import { BgpAnnouncer } from '../bgp/announcer.ts';
import { systemClock } from '../bgp/clock.ts';
import type { NotificationMessage } from '../bgp/message.ts';
import type { AdvSettings, PeerSettings } from '../bgp/policy.ts';
import { BgpSession } from '../bgp/session.ts';
import { nativeAvailable } from '../native/index.ts';
import type { NodeState, World } from '../world/types.ts';
import { Damper } from './damping.ts';
import { BfdManager } from './manager.ts';
import { UdpEndpoint } from './transport.ts';

async function until<T>(fn: () => T | undefined | false, what: string, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const node1: NodeState = { name: 'node-1', labels: {}, ready: true, networkUnavailable: false, excluded: false, addresses: ['198.51.100.11'] };
const adv: AdvSettings = { name: 'all', source: 'crd', aggregationLength: 32, aggregationLengthV6: 128, localPref: undefined, communities: [], pools: [], poolSelectors: [], nodeSelectors: [], peers: [], serviceSelectors: [] };
const fast: BFDProfileConfig = { name: 'fast', source: 'crd', receiveInterval: 20, transmitInterval: 20, detectMultiplier: 3 };

function world(port: number, profile: BFDProfileConfig = fast): World {
  const peer: PeerSettings = {
    name: 'r1', source: 'crd', myASN: 64512, peerASN: 64512, peerAddress: '127.0.0.1', sourceAddress: '127.0.0.2', peerPort: port, holdTime: 9,
    keepaliveTime: undefined, connectTime: 1, routerID: undefined, nodeSelectors: [], password: undefined, passwordSecret: undefined, bfdProfile: profile.name,
    ebgpMultiHop: false, enableGracefulRestart: false, vrf: undefined, dynamicASN: undefined, localASN: undefined, interface: undefined, families: 'both',
  };
  const config: Config = {
    ...EMPTY_CONFIG,
    pools: [{ name: 'public', source: 'crd', ranges: [parseRange('203.0.113.0/24')], autoAssign: true, avoidBuggyIPs: false, allowExternalIPs: false, priority: undefined, namespaces: [], namespaceSelectors: [], serviceSelectors: [], labels: {} }],
    peers: [peer], bgpAdvertisements: [adv], bfdProfiles: [profile],
  };
  return { self: 'node-1', config, services: new Map(), nodes: new Map([['node-1', node1]]) };
}

async function metric(registry: Registry, name: string, labels: Record<string, string>): Promise<number | undefined> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  return m?.values.find((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v))?.value;
}

describe('bfd in the bgp announcer (loopback router)', function () {
  this.timeout(30_000);
  if (!nativeAvailable()) {
    it('needs the native addon (pnpm install builds it)', function () { this.skip(); });
    return;
  }
  let server: Server | undefined;
  let router: BgpSession | undefined;
  let routerBfd: BfdManager | undefined;
  let announcer: BgpAnnouncer | undefined;
  afterEach(async () => {
    await announcer?.stop();
    router?.stop();
    server?.close();
    routerBfd?.close();
    announcer = undefined; router = undefined; server = undefined; routerBfd = undefined;
  });

  async function setup(): Promise<{ port: number; bfdPort: number; notifications: NotificationMessage[]; downs: number[]; events: { reason: string; target: EventTarget }[]; registry: Registry }> {
    const notifications: NotificationMessage[] = [];
    const downs: number[] = [];
    router = new BgpSession({ localAsn: 64512, peerAsn: 64512, bgpId: '198.51.100.201', holdTime: 9, connectRetryTime: 1, passive: true, peerAddress: '127.0.0.2' });
    router.on('notification', (n: NotificationMessage) => notifications.push(n));
    router.on('down', () => downs.push(Date.now()));
    const r = router;
    server = createServer((s) => r.accept(s));
    server.listen(0, '127.0.0.1');
    await new Promise((res) => server!.once('listening', res));
    router.start();
    const port = (server.address() as net.AddressInfo).port;
    const bfdPort = 20_000 + Math.floor(Math.random() * 20_000);
    routerBfd = new BfdManager({ network: new UdpEndpoint({ singleHopPort: bfdPort, multihopPort: bfdPort + 1, bind: { 4: '127.0.0.1' } }), clock: systemClock });
    routerBfd.set([{ key: 'speaker', path: { peer: '127.0.0.2', local: '127.0.0.1', multihop: false }, config: { desiredMinTxUs: 20_000, requiredMinRxUs: 20_000, detectMult: 3, passive: false } }]);
    const events: { reason: string; target: EventTarget }[] = [];
    const registry = new Registry();
    announcer = new BgpAnnouncer({
      registry, events: { event: (target, _t, reason) => { events.push({ reason, target }); } },
      bfdNetwork: () => new UdpEndpoint({ singleHopPort: bfdPort, multihopPort: bfdPort + 1, bind: { 4: '127.0.0.2' } }),
    });
    await announcer.update(world(port));
    await until(() => announcer!.status()[0]?.state === 'Established' && announcer!.status()[0]?.bfd?.state === 'Up' && routerBfd!.snapshot('speaker')?.state === 'Up', 'BGP Established and BFD Up');
    return { port, bfdPort, notifications, downs, events, registry };
  }

  it('BFD Down resets the BGP session at once with Cease / BFD Down; metrics and Events follow', async () => {
    const s = await setup();
    // Up first runs at the slow rate; the Poll Sequences that leave it bring the 60 ms detection time.
    await until(() => announcer!.status()[0]?.bfd?.detectionTimeMs === 60, 'the agreed 20 ms x 3');
    assert.equal(await metric(s.registry, 'portico_bfd_session_state', { peer: 'r1' }), 3);
    assert.equal(await metric(s.registry, 'portico_bfd_detection_time_seconds', { peer: 'r1' }), 0.06);
    assert.ok(s.events.some((e) => e.reason === 'BFDSessionUp' && e.target.kind === 'BGPPeer'));
    const t0 = Date.now();
    routerBfd!.close(); // the router's BFD vanishes, as with a failed path
    routerBfd = undefined;
    await until(() => s.notifications.length > 0, 'the Cease from the speaker');
    const took = Date.now() - t0;
    assert.deepEqual([s.notifications[0]!.code, s.notifications[0]!.subcode], [6, 10], 'Cease / BFD Down (RFC 9384)');
    assert.ok(took < 2000, `reset ${took} ms after BFD stopped (hold time 9 s)`);
    assert.equal(await metric(s.registry, 'portico_bfd_session_flaps_total', { peer: 'r1' }), 1);
    assert.equal(await metric(s.registry, 'portico_bgp_session_drops_total', { peer: 'r1', reason: 'bfd-down' }), 1);
    assert.ok(s.events.some((e) => e.reason === 'BFDSessionDown'));
    assert.notEqual(announcer!.status()[0]?.bfd?.state, 'Up');
  });

  it('AdminDown from the router takes BFD Down but keeps the BGP session (RFC 5882 §3.2)', async () => {
    const s = await setup();
    routerBfd!.set([]); // removing the session sends AdminDown first
    await until(() => announcer!.status()[0]?.bfd?.state === 'Down', 'BFD Down');
    assert.equal(announcer!.status()[0]?.bfd?.localDiag, 3);
    assert.ok(s.events.some((e) => e.reason === 'BFDPeerAdminDown'));
    assert.equal(announcer!.status()[0]?.state, 'Established');
    assert.deepEqual(s.notifications, []);
  });

  it('a profile change reaches the running session as a Poll Sequence, without a flap', async () => {
    const s = await setup();
    await announcer!.update(world(s.port, { ...fast, transmitInterval: 40, receiveInterval: 40 }));
    await until(() => routerBfd!.snapshot('speaker')?.detectionTimeMs === 120, 'the router sees the new 40 ms interval');
    assert.equal(announcer!.status()[0]?.bfd?.flaps, 0);
    assert.equal(announcer!.status()[0]?.bfd?.state, 'Up');
  });
});

describe('bfd flap damping', () => {
  it('one flap is not damped; three quick flaps hold the session until the penalty decays below reuse', () => {
    const d = new Damper({ penalty: 1000, suppress: 2500, reuse: 800, halfLifeMs: 30_000, maxSuppressMs: 300_000 });
    assert.equal(d.flap(0), false);
    assert.equal(d.flap(1000), false);
    assert.equal(d.flap(2000), true);
    const at = d.reuseAt(2000);
    assert.ok(at > 40_000 && at < 60_000, `reuse at ${at}`);
    assert.equal(d.suppressed(at - 100), true);
    assert.equal(d.suppressed(at + 100), false);
    // Far apart, flaps never add up.
    const e = new Damper();
    for (let t = 0; t < 10; t++) assert.equal(e.flap(t * 120_000), false);
  });

  it('the penalty is capped so no session is held longer than maxSuppressMs', () => {
    const d = new Damper({ penalty: 1000, suppress: 2500, reuse: 800, halfLifeMs: 30_000, maxSuppressMs: 60_000 });
    for (let i = 0; i < 100; i++) d.flap(i);
    assert.ok(d.reuseAt(100) - 99 <= 60_000 + 1);
  });
});
