// The BGP announcer against a router on loopback TCP: a passive Portico
// session that keeps a RIB of what it receives, so the tests check what the
// router holds (prefixes, next hops, AS path, local-pref, communities), the
// metrics and the Events, not the calls made.
import { strict as assert } from 'node:assert';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net, { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { EMPTY_CONFIG, Registry, parseRange, type Config, type EventTarget } from '@portico/shared';
import { nativeAvailable, loadNative } from '../native/index.ts';
import type { NodeState, ServiceState, World } from '../world/types.ts';
import { BgpAnnouncer, type BgpAnnouncerOptions } from './announcer.ts';
import type { SecretSource } from './secrets.ts';
import { md5SocketFactory } from './md5.ts';
import type { PathAttribute } from './attributes.ts';
import { FakeClock } from './clock.ts';
import type { Negotiated } from './fsm.ts';
import { encodeMessage, type UpdateMessage } from './message.ts';
import type { AdvSettings, PeerSettings } from './policy.ts';
import { announcedPrefixes } from './metrics.ts';
import { BgpSession } from './session.ts';

async function until<T>(fn: () => T | undefined | false, what: string, ms = 8000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface Route { nextHop: string | undefined; asPath: number[]; localPref: number | undefined; communities: string[]; large: string[] }

/** A router: a passive Portico session behind a TCP listener, with a RIB built from the UPDATEs it receives. */
class TestRouter {
  readonly rib = new Map<string, Route>();
  readonly downs: string[] = [];
  opens: Negotiated[] = [];
  session!: BgpSession;
  server!: Server;
  /** The accepted connection, for writing raw bytes (a malformed UPDATE). */
  socket: net.Socket | undefined;
  port = 0;

  async start(o: { asn: number; peerAsn: number; md5?: string; holdTime?: number }): Promise<this> {
    this.session = new BgpSession({ localAsn: o.asn, peerAsn: o.peerAsn, bgpId: '198.51.100.201', holdTime: o.holdTime ?? 9, connectRetryTime: 1, passive: true, peerAddress: '127.0.0.1' });
    this.session.on('update', (m: UpdateMessage) => this.#apply(m));
    this.session.on('established', (n: Negotiated) => this.opens.push(n));
    this.session.on('down', (_r: string, detail: string) => { this.downs.push(detail); this.rib.clear(); });
    this.server = createServer((s) => { this.socket = s; this.session.accept(s); });
    if (o.md5) {
      const native = loadNative();
      const fd = native.tcpSocket(4);
      native.bindAddress(fd, '127.0.0.1', 0);
      native.tcpMd5Sig(fd, '127.0.0.1', -1, Buffer.from(o.md5));
      this.server.listen({ fd });
    } else {
      this.server.listen(0, '127.0.0.1');
    }
    await new Promise((r) => this.server.once('listening', r));
    this.port = (this.server.address() as net.AddressInfo).port;
    this.session.start();
    return this;
  }

  #apply(m: UpdateMessage): void {
    const find = <T extends PathAttribute['type']>(t: T) => m.attributes.find((a): a is Extract<PathAttribute, { type: T }> => a.type === t);
    for (const p of m.withdrawn) this.rib.delete(p);
    for (const p of find('mp-unreach')?.withdrawn ?? []) this.rib.delete(p);
    const base = {
      asPath: find('as-path')?.segments.flatMap((s) => s.asns) ?? [],
      localPref: find('local-pref')?.localPref,
      communities: find('communities')?.communities ?? [],
      large: find('large-communities')?.communities ?? [],
    };
    for (const p of m.nlri) this.rib.set(p, { ...base, nextHop: find('next-hop')?.nextHop });
    const mp = find('mp-reach');
    for (const p of mp?.nlri ?? []) this.rib.set(p, { ...base, nextHop: mp?.nextHops[0] });
  }

  stop(): void {
    this.session.stop();
    this.server.close();
  }
}

// ---- World fixtures ----

const node1: NodeState = { name: 'node-1', labels: {}, ready: true, networkUnavailable: false, excluded: false, addresses: ['198.51.100.11', '2001:db8:1::11'] };

function peer(port: number, extra: Partial<PeerSettings> = {}): PeerSettings {
  return {
    name: 'r1', source: 'crd', myASN: 64512, peerASN: 64513, peerAddress: '127.0.0.1', sourceAddress: undefined, peerPort: port, holdTime: 9,
    keepaliveTime: undefined, connectTime: 1, routerID: undefined, nodeSelectors: [], password: undefined, passwordSecret: undefined, bfdProfile: undefined,
    ebgpMultiHop: false, enableGracefulRestart: false, vrf: undefined, dynamicASN: undefined, localASN: undefined, interface: undefined, families: 'both', ...extra,
  };
}

const adv: AdvSettings = { name: 'all', source: 'crd', aggregationLength: 32, aggregationLengthV6: 128, localPref: 150, communities: ['64512:100', 'large:64512:7:8'], pools: [], poolSelectors: [], nodeSelectors: [], peers: [], serviceSelectors: [] };

function svc(name: string, ips: string[]): ServiceState {
  return {
    key: `default/${name}`, namespace: 'default', name, uid: name, labels: {}, annotations: {}, ips, pool: 'public', externalTrafficPolicy: 'Cluster',
    sessionAffinity: { clientIP: false, timeoutSeconds: 0 }, ports: [],
    endpoints: [
      { ip: '100.64.2.5', family: 'IPv4', node: 'node-2', ready: true, serving: true, terminating: false, ports: {}, pod: undefined },
      { ip: '2001:db8:64:2::5', family: 'IPv6', node: 'node-2', ready: true, serving: true, terminating: false, ports: {}, pod: undefined },
    ],
  };
}

function world(peers: PeerSettings[], services: ServiceState[]): World {
  const config: Config = {
    ...EMPTY_CONFIG,
    pools: [{ name: 'public', source: 'crd', ranges: [parseRange('203.0.113.0/24'), parseRange('2001:db8:ff::/64')], autoAssign: true, avoidBuggyIPs: false, allowExternalIPs: false, priority: undefined, namespaces: [], namespaceSelectors: [], serviceSelectors: [], labels: {} }],
    peers, bgpAdvertisements: [adv],
  };
  return { self: 'node-1', config, services: new Map(services.map((s) => [s.key, s])), nodes: new Map([['node-1', node1]]) };
}

class Events {
  readonly list: { target: EventTarget; type: string; reason: string; message: string }[] = [];
  event(target: EventTarget, type: 'Normal' | 'Warning', reason: string, message: string): void {
    this.list.push({ target, type, reason, message });
  }
  find(reason: string) {
    return this.list.find((e) => e.reason === reason);
  }
}

async function metric(registry: Registry, name: string, labels: Record<string, string>): Promise<number | undefined> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  const v = m?.values.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return v?.value;
}

describe('bgp announcer (loopback router)', function () {
  this.timeout(20_000);
  const routers: TestRouter[] = [];
  const announcers: BgpAnnouncer[] = [];
  const dirs: string[] = [];
  const router = async (o: Parameters<TestRouter['start']>[0]) => { const r = await new TestRouter().start(o); routers.push(r); return r; };
  const announcer = (o: ConstructorParameters<typeof BgpAnnouncer>[0] = {}) => { const a = new BgpAnnouncer({ registry: new Registry(), ...o }); announcers.push(a); return a; };
  afterEach(async () => {
    for (const a of announcers.splice(0)) await a.stop();
    for (const r of routers.splice(0)) r.stop();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('announces a Service\'s /32 and /128 with next hop, AS path and communities; withdraws when it goes; counts in metrics', async () => {
    const r = await router({ asn: 64513, peerAsn: 64512 });
    const registry = new Registry();
    const events = new Events();
    const a = announcer({ registry, events });
    await a.update(world([peer(r.port)], [svc('web', ['203.0.113.10', '2001:db8:ff::10'])]));
    await until(() => r.rib.size === 2, 'both prefixes at the router');
    assert.deepEqual(r.rib.get('203.0.113.10/32'), { nextHop: '127.0.0.1', asPath: [64512], localPref: undefined, communities: ['64512:100'], large: ['64512:7:8'] });
    assert.deepEqual(r.rib.get('2001:db8:ff::10/128')?.nextHop, '2001:db8:1::11');
    assert.equal(await metric(registry, 'portico_bgp_session_up', { peer: 'r1' }), 1);
    assert.equal(await metric(registry, 'portico_bgp_announced_prefixes_count', { peer: 'r1' }), 2);
    const sent = await metric(registry, 'portico_bgp_updates_sent_total', { peer: 'r1' });
    assert.ok(sent !== undefined && sent >= 3, `UPDATEs counted (${sent}): two End-of-RIB and the routes`);
    assert.equal(events.find('BGPSessionEstablished')?.target.kind, 'BGPPeer');

    await a.update(world([peer(r.port)], [svc('api', ['203.0.113.11'])]));
    await until(() => r.rib.size === 1 && r.rib.has('203.0.113.11/32'), 'the deleted Service withdrawn, the new one announced');
    assert.deepEqual(a.plan?.services.map((s) => s.ips.map((d) => `${d.ip}:${d.reason}`)), [['203.0.113.11:cluster-ready-endpoints']]);
  });

  it('listener: a peer that only connects to us (its address matches a BGPPeer) gets the routes; another address is closed', async () => {
    // A port nothing listens on, so our own attempts fail and only the peer's connection can carry the session.
    const closed = createServer();
    await new Promise<void>((res) => closed.listen(0, '127.0.0.1', res));
    const deadPort = (closed.address() as net.AddressInfo).port;
    await new Promise<void>((res) => closed.close(() => res()));
    const a = announcer({ listen: { port: 0, host: '127.0.0.1' } });
    await a.update(world([peer(deadPort)], [svc('web', ['203.0.113.10'])]));
    const port = a.listeningPort;
    assert.ok(port, 'listening');
    const router = new BgpSession({ localAsn: 64513, peerAsn: 64512, bgpId: '198.51.100.250', holdTime: 9, connectRetryTime: 1, passive: false, peerAddress: '127.0.0.1', peerPort: port });
    const got = new Set<string>();
    router.on('update', (u: UpdateMessage) => { for (const p of u.nlri) got.add(p); });
    router.start();
    try {
      await until(() => got.has('203.0.113.10/32'), 'the route over the incoming connection', 10_000);
      assert.equal(a.status()[0]!.state, 'Established');
    } finally {
      router.stop();
    }
    // A connection from an address that is no peer of this node is closed at once.
    const stranger = net.createConnection({ host: '127.0.0.1', port, localAddress: '127.0.0.9' });
    const closedBy = await new Promise<string>((res) => { stranger.once('close', () => res('closed')); stranger.once('data', () => res('data')); });
    assert.equal(closedBy, 'closed');
  });

  it('counts UPDATEs and prefixes received, and a malformed UPDATE the session survives (RFC 7606 treat-as-withdraw) in metrics and a log line', async () => {
    const r = await router({ asn: 64513, peerAsn: 64512 });
    const registry = new Registry();
    const lines: { msg: string; fields: Record<string, unknown> }[] = [];
    const log = { info: (msg: string, fields: Record<string, unknown> = {}) => lines.push({ msg, fields }), error: () => {}, debug: () => {}, debugEnabled: false, child: () => log };
    const a = announcer({ registry, log: log });
    await a.update(world([peer(r.port)], []));
    await until(() => r.opens.length === 1, 'the session');
    r.session.set([{ prefix: '198.51.100.0/25' }, { prefix: '198.51.100.128/26' }, { prefix: '198.51.100.192/26' }]);
    const prefixes = async (): Promise<number | undefined> => metric(registry, 'portico_bgp_received_prefixes_total', { peer: 'r1' });
    const end = Date.now() + 8000;
    while ((await prefixes()) !== 3 && Date.now() < end) await new Promise((res) => setTimeout(res, 20));
    assert.equal(await prefixes(), 3, 'three prefixes announced by the router');
    const updates = await metric(registry, 'portico_bgp_updates_received_total', { peer: 'r1' });
    assert.ok(updates !== undefined && updates >= 2, `UPDATEs counted: ${updates}`);
    // An UPDATE whose ORIGIN value is 5: RFC 7606 §7.1 says treat-as-withdraw, and the session stays up.
    const good = encodeMessage({ type: 'update', withdrawn: [], nlri: ['203.0.113.0/24'], attributes: [{ type: 'origin', origin: 'igp' }, { type: 'as-path', segments: [{ type: 'sequence', asns: [64513] }] }, { type: 'next-hop', nextHop: '127.0.0.1' }] });
    const at = good.indexOf(Buffer.from([0x40, 0x01, 0x01, 0x00]));
    assert.ok(at > 0, 'the ORIGIN attribute in the encoded UPDATE');
    const bad = Buffer.from(good);
    bad[at + 3] = 5;
    r.socket!.write(bad);
    const malformed = async (): Promise<number | undefined> => metric(registry, 'portico_bgp_malformed_updates_total', { peer: 'r1', treatment: 'treat-as-withdraw' });
    const end2 = Date.now() + 8000;
    while ((await malformed()) !== 1 && Date.now() < end2) await new Promise((res) => setTimeout(res, 20));
    assert.equal(await malformed(), 1);
    const line = lines.find((l) => l.msg === 'bgp malformed update tolerated');
    assert.ok(line, 'logged');
    assert.equal(line.fields.treatment, 'treat-as-withdraw');
    assert.equal(await metric(registry, 'portico_bgp_session_up', { peer: 'r1' }), 1, 'the session survived');
    assert.equal(await prefixes(), 3, 'the malformed UPDATE added no prefix');
  });

  it('counts the prefixes of an UPDATE in its NLRI and in every MP_REACH_NLRI', () => {
    const table: [UpdateMessage, number][] = [
      [{ type: 'update', withdrawn: [], attributes: [], nlri: [] }, 0],
      [{ type: 'update', withdrawn: ['203.0.113.9/32'], attributes: [], nlri: ['203.0.113.1/32', '203.0.113.2/32'] }, 2],
      [{ type: 'update', withdrawn: [], nlri: [], attributes: [{ type: 'mp-reach', afi: 2, safi: 1, nextHops: ['2001:db8::1'], nlri: ['2001:db8:1::/48', '2001:db8:2::/48'] }, { type: 'mp-unreach', afi: 2, safi: 1, withdrawn: ['2001:db8:3::/48'] }] }, 2],
      [{ type: 'update', withdrawn: [], nlri: ['203.0.113.0/24'], attributes: [{ type: 'mp-reach', afi: 2, safi: 1, nextHops: ['2001:db8::1'], nlri: ['2001:db8:1::/48'] }] }, 2],
    ];
    for (const [u, n] of table) assert.equal(announcedPrefixes(u), n, JSON.stringify(u));
  });

  it('iBGP gets local-pref; a peer that leaves the configuration is stopped with Cease and its metrics removed', async () => {
    const r = await router({ asn: 64512, peerAsn: 64512 });
    const registry = new Registry();
    const a = announcer({ registry });
    await a.update(world([peer(r.port, { peerASN: 64512 })], [svc('web', ['203.0.113.10'])]));
    await until(() => r.rib.get('203.0.113.10/32'), 'the route');
    assert.equal(r.rib.get('203.0.113.10/32')?.localPref, 150);
    assert.deepEqual(r.rib.get('203.0.113.10/32')?.asPath, []);
    await a.update(world([], [svc('web', ['203.0.113.10'])]));
    await until(() => r.downs.length === 1, 'the router to see the session end');
    assert.match(r.downs[0]!, /Cease \/ Administrative Shutdown: "peer no longer configured for this node"/);
    assert.equal(await metric(registry, 'portico_bgp_session_up', { peer: 'r1' }), undefined);
    assert.deepEqual(a.status(), []);
  });

  it('a changed peer setting replaces the session; an unchanged World keeps it', async () => {
    const r = await router({ asn: 64513, peerAsn: 64512 });
    const a = announcer();
    const w = world([peer(r.port)], [svc('web', ['203.0.113.10'])]);
    await a.update(w);
    await until(() => r.opens.length === 1 && r.rib.size === 1, 'first session');
    await a.update(w);
    await a.update(world([peer(r.port)], [svc('web', ['203.0.113.10'])]));
    await new Promise((res) => setTimeout(res, 200));
    assert.equal(r.opens.length, 1, 'same settings: same session');
    await a.update(world([peer(r.port, { holdTime: 6 })], [svc('web', ['203.0.113.10'])]));
    await until(() => r.opens.length === 2 && r.rib.size === 1, 'a new session with the new hold time');
    assert.equal(r.opens[1]!.holdTime, 6);
  });

  it('a NOTIFICATION from the peer becomes a Warning Event in words and a metric by reason', async () => {
    const r = await router({ asn: 64513, peerAsn: 64999 });
    const registry = new Registry();
    const events = new Events();
    const a = announcer({ registry, events });
    await a.update(world([peer(r.port)], []));
    const ev = await until(() => events.find('BGPPeerRefused'), 'the Event');
    assert.equal(ev.type, 'Warning');
    assert.match(ev.message, /sent NOTIFICATION OPEN Message Error \/ Bad Peer AS/);
    assert.equal(await metric(registry, 'portico_bgp_notifications_received_total', { peer: 'r1', reason: 'OPEN Message Error / Bad Peer AS' }), 1);
    assert.match(a.status()[0]!.lastError ?? '', /Bad Peer AS/);
  });

  // Issue 15, point 3: MetalLB v0.16's BGPPeer fields, against the router.
  describe('dynamicASN, localASN, families, unsupported peers', () => {
    it('dynamicASN external: the router\'s AS is learnt from its OPEN, routes flow as eBGP, the Event names the AS', async () => {
      const r = await router({ asn: 64513, peerAsn: 64512 });
      const events = new Events();
      const a = announcer({ events });
      await a.update(world([peer(r.port, { peerASN: undefined, dynamicASN: 'external' })], [svc('web', ['203.0.113.10'])]));
      await until(() => r.rib.get('203.0.113.10/32'), 'the route');
      assert.deepEqual([r.rib.get('203.0.113.10/32')?.asPath, r.rib.get('203.0.113.10/32')?.localPref], [[64512], undefined]);
      assert.match(events.find('BGPSessionEstablished')?.message ?? '', /AS 64513, learnt: dynamicASN external/);
    });

    it('dynamicASN internal against a router in another AS: refused with Bad Peer AS and a Warning that says which rule', async () => {
      const r = await router({ asn: 64513, peerAsn: 64512 });
      const registry = new Registry();
      const events = new Events();
      const a = announcer({ events, registry });
      await a.update(world([peer(r.port, { peerASN: undefined, dynamicASN: 'internal' })], [svc('web', ['203.0.113.10'])]));
      const ev = await until(() => events.find('BGPOpenRejected'), 'the Warning');
      assert.equal(ev.type, 'Warning');
      assert.match(ev.message, /OPEN Message Error \/ Bad Peer AS.*peer says AS 64513; dynamicASN internal wants our own AS 64512/);
      assert.equal(await metric(registry, 'portico_bgp_notifications_sent_total', { peer: 'r1', reason: 'OPEN Message Error / Bad Peer AS' }), 1);
      assert.match(a.status()[0]!.lastError ?? '', /dynamicASN internal/);
      assert.equal(r.rib.size, 0);
    });

    it('dynamicASN internal against a router in our AS: iBGP, with local-pref and an empty AS path', async () => {
      const r = await router({ asn: 64512, peerAsn: 64512 });
      const a = announcer();
      await a.update(world([peer(r.port, { peerASN: undefined, dynamicASN: 'internal' })], [svc('web', ['203.0.113.10'])]));
      const route = await until(() => r.rib.get('203.0.113.10/32'), 'the route');
      assert.deepEqual([route.asPath, route.localPref], [[], 150]);
    });

    it('localASN: the session speaks as that AS in its OPEN and AS path, not myASN', async () => {
      const r = await router({ asn: 64513, peerAsn: 64600 });
      const a = announcer();
      await a.update(world([peer(r.port, { localASN: 64600 })], [svc('web', ['203.0.113.10'])]));
      const route = await until(() => r.rib.get('203.0.113.10/32'), 'the route');
      assert.deepEqual(route.asPath, [64600]);
      assert.equal(r.opens[0]!.peerAsn, 64600);
    });

    it('families session: the OPEN offers IPv4 only on an IPv4 session and the IPv6 prefix stays home; both: it goes too', async () => {
      const r = await router({ asn: 64513, peerAsn: 64512 });
      const a = announcer();
      const ips = ['203.0.113.10', '2001:db8:ff::10'];
      await a.update(world([peer(r.port, { families: 'session' })], [svc('web', ips)]));
      await until(() => r.opens.length === 1 && r.rib.size === 1, 'the session and its route');
      assert.deepEqual(r.opens[0]!.families, [{ afi: 1, safi: 1 }], 'only IPv4 unicast negotiated');
      assert.deepEqual([...r.rib.keys()], ['203.0.113.10/32']);
      assert.deepEqual(a.plan?.peers[0]?.skipped, [{ prefix: '2001:db8:ff::10/128', reason: 'family-not-on-session' }]);
      // Changing the field is a new session (the OPEN changes), now with both families.
      await a.update(world([peer(r.port, { families: 'both' })], [svc('web', ips)]));
      await until(() => r.opens.length === 2 && r.rib.size === 2, 'a new session with both families');
      assert.deepEqual(r.opens[1]!.families, [{ afi: 1, safi: 1 }, { afi: 2, safi: 1 }]);
    });

    it('a vrf or interface peer gets no session and one BGPPeerUnsupported Warning per problem, again only when it changes', async () => {
      const events = new Events();
      const a = announcer({ events, socketFactory: () => assert.fail('no connection for an unsupported peer') });
      const peers = [peer(179, { name: 'red', vrf: 'red' }), peer(179, { name: 'unnumbered', peerAddress: '', interface: 'eth1' })];
      await a.update(world(peers, [svc('web', ['203.0.113.10'])]));
      await a.update(world(peers, [svc('web', ['203.0.113.10'])]));
      const warned = () => events.list.filter((e) => e.reason === 'BGPPeerUnsupported').map((e) => [e.type, e.target.name, e.message]);
      assert.deepEqual(warned(), [
        ['Warning', 'red', 'vrf "red" is not supported: Portico\'s speaker peers from the default VRF only; remove spec.vrf [peer red]'],
        ['Warning', 'unnumbered', 'interface "eth1" (BGP unnumbered) is not supported: set spec.peerAddress to the router\'s address instead [peer unnumbered]'],
      ]);
      assert.deepEqual(a.status(), []);
      await a.update(world([peer(179, { name: 'red', vrf: 'blue' })], []));
      assert.equal(warned().length, 3, 'a changed vrf is reported again');
      assert.match(warned()[2]![2]!, /vrf "blue"/);
    });
  });

  it('a legacy ConfigMap peer\'s Events go to the ConfigMap', async () => {
    const events = new Events();
    const a = announcer({ events });
    // Nothing listens on port 1 of loopback: the connection is refused.
    await a.update(world([peer(1, { name: 'configmap-peer-0', source: 'configmap' })], []));
    const ev = await until(() => events.find('BGPPeerRefused'), 'the refusal Event');
    assert.deepEqual([ev.target.kind, ev.target.namespace, ev.target.name], ['ConfigMap', 'portico-system', 'config']);
    assert.match(ev.message, /refused the TCP connection/);
  });

  it('hold timer expiry is reported (injected clock)', async () => {
    const r = await router({ asn: 64513, peerAsn: 64512 });
    const clock = new FakeClock();
    const events = new Events();
    const a = announcer({ events, clock });
    await a.update(world([peer(r.port, { holdTime: 3 })], []));
    clock.advance(0);
    await until(() => a.status()[0]?.state === 'Established', 'Established');
    clock.advance(3000);
    const ev = await until(() => events.find('BGPHoldTimerExpired'), 'the Event');
    assert.match(ev.message, /hold time \(3 s\)/);
    assert.equal(a.status()[0]!.state, 'Idle');
  });

  describe('passwords', () => {
    /** Secrets of one namespace, changed by the test as the API server's watch would hand them over. */
    class FakeSecrets implements SecretSource {
      readonly namespace = 'portico-system';
      synced: boolean;
      starts = 0;
      readonly #data: Map<string, Record<string, string>>;
      readonly #handlers: ((name: string) => void)[] = [];
      #sync: (() => void) | undefined;
      constructor(data: Record<string, Record<string, string>> = {}, synced = true) {
        this.#data = new Map(Object.entries(data));
        this.synced = synced;
      }
      start(): Promise<void> {
        this.starts++;
        return this.synced ? Promise.resolve() : new Promise((resolve) => { this.#sync = resolve; });
      }
      stop(): Promise<void> { return Promise.resolve(); }
      get(name: string) { return this.#data.get(name); }
      onChange(h: (name: string) => void): void { this.#handlers.push(h); }
      /** The first list arrives: every Secret is an add. */
      syncNow(): void {
        this.synced = true;
        this.#sync?.();
        for (const n of this.#data.keys()) this.#emit(n);
      }
      put(name: string, data: Record<string, string>): void { this.#data.set(name, data); this.#emit(name); }
      delete(name: string): void { this.#data.delete(name); this.#emit(name); }
      #emit(name: string): void { for (const h of this.#handlers) h(name); }
    }

    /** An announcer whose sessions are recorded with the password each was opened with (connections go to port 1: refused). */
    function recorded(o: BgpAnnouncerOptions) {
      const sessions: (string | undefined)[] = [];
      const a = announcer({
        ...o,
        sessionFactory: (so) => { sessions.push(so.password); return new BgpSession(so); },
        socketFactory: (so) => net.createConnection({ host: so.host, port: 1 }),
      });
      return { a, sessions };
    }
    const ref = (name = 'bgp-pass', namespace = 'portico-system') => ({ passwordSecret: { name, namespace } });
    const warnings = (events: Events) => events.list.filter((e) => e.type === 'Warning').map((e) => `${e.reason}: ${e.message}`);

    it('passwordSecret comes from the Secret source; a missing Secret starts nothing and says so', async () => {
      const events = new Events();
      const src = new FakeSecrets({ 'bgp-pass': { password: 's3cret' } });
      const { a, sessions } = recorded({ events, secrets: src });
      await a.update(world([peer(179, ref())], []));
      await a.update(world([peer(179, ref())], []));
      assert.deepEqual(sessions, ['s3cret'], 'one session, opened with the Secret\'s password');
      assert.equal(src.starts >= 1, true, 'the watch was started');

      const b = recorded({ events, secrets: new FakeSecrets() });
      await b.a.update(world([peer(179, { name: 'r2', ...ref('nope') })], []));
      assert.deepEqual(b.a.status(), []);
      assert.match(events.find('BGPPasswordSecretMissing')?.message ?? '', /Secret portico-system\/nope does not exist \(named in passwordSecret\); the session is not started/);
      await a.stop();
    });

    // Each step changes the Secret only (no new World): the watch alone must make the announcer react.
    it('a Secret deleted, re-created without password, then with a new one: each reported at once, the last good password kept meanwhile', async () => {
      const events = new Events();
      const src = new FakeSecrets({ 'bgp-pass': { password: 'first' } });
      const { a, sessions } = recorded({ events, secrets: src });
      await a.update(world([peer(179, ref())], []));
      const steps: { what: string; change: () => void; warning: RegExp | undefined; sessions: (string | undefined)[] }[] = [
        { what: 'deleted', change: () => src.delete('bgp-pass'), warning: /BGPPasswordSecretMissing: Secret portico-system\/bgp-pass does not exist.*the last good password stays in use/, sessions: ['first'] },
        { what: 're-created without password', change: () => src.put('bgp-pass', { username: 'x' }), warning: /BGPPasswordSecretMissing: Secret portico-system\/bgp-pass \(passwordSecret\) has no "password" key; the last good password stays in use/, sessions: ['first'] },
        { what: 'an empty password', change: () => src.put('bgp-pass', { password: '' }), warning: /has an empty "password" key; the last good password stays in use/, sessions: ['first'] },
        { what: 'a new password', change: () => src.put('bgp-pass', { password: 'second' }), warning: undefined, sessions: ['first', 'second'] },
      ];
      for (const st of steps) {
        const before = warnings(events).length;
        st.change();
        if (st.warning) {
          const w = await until(() => warnings(events).slice(before).find((x) => st.warning!.test(x)), `the Warning after the Secret was ${st.what}`);
          assert.match(a.status()[0]?.passwordSecret ?? '', /passwordSecret/, `status names the problem (${st.what})`);
          assert.ok(w);
        } else {
          await until(() => sessions.length === st.sessions.length, `a session with the ${st.what}`);
          assert.equal(a.status()[0]?.passwordSecret, undefined, 'the problem is cleared');
        }
        assert.deepEqual(sessions, st.sessions, `sessions after: ${st.what}`);
      }
      // The same bad state again is not reported twice. Only the Secret's Warnings are counted: the
      // sessions dial a closed port, and when their BGPPeerRefused Warnings land depends on the load.
      const secretWarnings = () => warnings(events).filter((w) => w.startsWith('BGPPasswordSecret')).length;
      const n = secretWarnings();
      src.delete('bgp-pass');
      await until(() => secretWarnings() > n, 'the Warning for the second delete');
      src.delete('bgp-pass');
      await a.update(world([peer(179, ref())], []));
      assert.equal(secretWarnings(), n + 1, 'one Warning per distinct problem');
      await a.stop();
    });

    it('a Secret changed that no peer names is ignored; a Secret in another namespace is refused naming passwordSecret.namespace', async () => {
      const events = new Events();
      const src = new FakeSecrets({ 'bgp-pass': { password: 'p' } });
      const { a, sessions } = recorded({ events, secrets: src });
      await a.update(world([peer(179, ref()), peer(179, { name: 'r2', peerAddress: '127.0.0.2', ...ref('bgp-pass', 'default') })], []));
      assert.deepEqual(sessions, ['p']);
      assert.match(events.find('BGPPasswordSecretUnreadable')?.message ?? '', /passwordSecret\.namespace is default: the speaker reads Secrets in portico-system only/);
      src.put('unrelated', { password: 'q' });
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(sessions, ['p']);
      await a.stop();
    });

    it('before the watch has listed the Secrets the peer waits (reported), and starts as soon as the list arrives', async () => {
      const events = new Events();
      const src = new FakeSecrets({ 'bgp-pass': { password: 'late' } }, false);
      const { a, sessions } = recorded({ events, secrets: src, secretSyncWaitMs: 1 });
      await a.update(world([peer(179, ref())], []));
      assert.deepEqual(sessions, []);
      assert.match(events.find('BGPPasswordSecretUnreadable')?.message ?? '', /not read yet/);
      src.syncNow();
      await until(() => sessions.length === 1, 'the session once the Secrets are listed');
      assert.deepEqual(sessions, ['late']);
      await a.stop();
    });

    it('single-hop eBGP asks for TTL 1; ebgpMultiHop and iBGP leave the system default', async () => {
      const seen = new Map<string, number | undefined>();
      const a = announcer({ socketFactory: (o) => { seen.set(`${o.host}`, o.ttl); return net.createConnection({ host: o.host, port: 1 }); } });
      await a.update(world([
        peer(179, { name: 'ebgp', peerAddress: '127.0.0.2' }),
        peer(179, { name: 'multihop', peerAddress: '127.0.0.3', ebgpMultiHop: true }),
        peer(179, { name: 'ibgp', peerAddress: '127.0.0.4', myASN: 64513 }),
      ], []));
      await until(() => seen.size === 3, 'three connection attempts');
      assert.deepEqual(Object.fromEntries(seen), { '127.0.0.2': 1, '127.0.0.3': undefined, '127.0.0.4': undefined });
    });

    it('the native socket factory sets the TTL before connecting (needs the native addon)', async function () {
      if (!nativeAvailable()) this.skip();
      const server = createServer((s) => s.destroy());
      await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
      try {
        const port = (server.address() as net.AddressInfo).port;
        const s = md5SocketFactory({ host: '127.0.0.1', port, ttl: 1 });
        await new Promise<void>((res, rej) => { s.once('connect', res); s.once('error', rej); });
        const fd = (s as unknown as { _handle: { fd: number } })._handle.fd;
        const c = loadNative().constants;
        assert.equal(loadNative().getIntOption(fd, c.IPPROTO_IP, c.IP_TTL), 1);
        s.destroy();
      } finally {
        server.close();
      }
    });

    it('TCP MD5: the right password brings the session up, a wrong one keeps it down with a clear Event (needs the native addon)', async function () {
      if (!nativeAvailable()) this.skip();
      const r = await router({ asn: 64513, peerAsn: 64512, md5: 'right-key' });
      const events = new Events();
      const wrong = announcer({ events, md5FailureThreshold: 1 });
      await wrong.update(world([peer(r.port, { password: 'wrong-key' })], [svc('web', ['203.0.113.10'])]));
      const ev = await until(() => events.find('BGPAuthenticationFailed'), 'the password Event', 10_000);
      assert.match(ev.message, /TCP MD5/);
      assert.equal(r.opens.length, 0);
      assert.notEqual(wrong.status()[0]!.state, 'Established');
      await wrong.stop();
      const right = announcer({ events });
      await right.update(world([peer(r.port, { password: 'right-key' })], [svc('web', ['203.0.113.10'])]));
      await until(() => r.rib.has('203.0.113.10/32'), 'the route over the signed session');
    });
  });

  it('graceful restart: a stop drops the session without Cease, remembers it, and the next start sets the R bit once', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pbgp-gr-'));
    dirs.push(dir);
    const r = await router({ asn: 64513, peerAsn: 64512 });
    const w = world([peer(r.port, { enableGracefulRestart: true })], [svc('web', ['203.0.113.10'])]);
    const first = announcer({ stateDir: dir });
    await first.update(w);
    await until(() => r.rib.size === 1, 'the route');
    assert.equal(r.opens[0]!.peerGracefulRestart?.restarting, false);
    assert.match(readFileSync(path.join(dir, 'bgp-graceful-restart.json'), 'utf8'), /r1\|127\.0\.0\.1/);
    await first.stop();
    await until(() => r.downs.length === 1, 'the router to see the connection drop');
    assert.doesNotMatch(r.downs[0]!, /Cease/, 'no NOTIFICATION: the peer may keep the routes');
    const second = announcer({ stateDir: dir });
    await second.update(w);
    await until(() => r.opens.length === 2 && r.rib.size === 1, 'the restarted session and its route');
    assert.equal(r.opens[1]!.peerGracefulRestart?.restarting, true);
    // A later session of the same process is not a restart.
    await second.update(world([peer(r.port, { enableGracefulRestart: true, holdTime: 6 })], [svc('web', ['203.0.113.10'])]));
    await until(() => r.opens.length === 3, 'the replaced session');
    assert.equal(r.opens[2]!.peerGracefulRestart?.restarting, false);
    // Without graceful restart a stop is a Cease and the memory is cleared.
    await second.update(world([peer(r.port)], [svc('web', ['203.0.113.10'])]));
    await until(() => r.opens.length === 4, 'session without graceful restart');
    assert.equal(JSON.parse(readFileSync(path.join(dir, 'bgp-graceful-restart.json'), 'utf8')).announcing.length, 0);
  });

  it('graceful restart, but leaving (an uninstall): Cease, so the peer withdraws at once, and no memory left in the state directory', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pbgp-gr-'));
    dirs.push(dir);
    const r = await router({ asn: 64513, peerAsn: 64512 });
    const a = announcer({ stateDir: dir });
    await a.update(world([peer(r.port, { enableGracefulRestart: true })], [svc('web', ['203.0.113.10'])]));
    await until(() => r.rib.size === 1, 'the route');
    assert.ok(existsSync(path.join(dir, 'bgp-graceful-restart.json')));
    await a.stop('leave');
    await until(() => r.downs.length === 1, 'the router to see the session end');
    assert.match(r.downs[0]!, /Cease/);
    assert.ok(!existsSync(path.join(dir, 'bgp-graceful-restart.json')), 'the graceful-restart memory is removed');
  });
});
