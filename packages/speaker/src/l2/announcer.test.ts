import { strict as assert } from 'node:assert';
import { createRegistry, memoryLogger, type Config, type EventTarget } from '@portico/shared';
import { rendezvousScore } from '../election/election.ts';
import type { NodeLiveness } from '../membership/membership.ts';
import type { ServiceState, World } from '../world/types.ts';
import { arp } from './arp.ts';
import { ANNOUNCED_BY, ANNOUNCED_INTERFACES, L2Announcer, type L2AnnouncerOptions, type MembershipView, type Timers } from './announcer.ts';
import { ethernet } from './ethernet.ts';
import { createL2Metrics } from './metrics.ts';
import { Responder, type FrameTransport } from './responder.ts';

class FakeLink implements FrameTransport {
  readonly mac: string;
  readonly ifname: string;
  sent: Buffer[] = [];
  constructor(ifname: string, mac: string) { this.ifname = ifname; this.mac = mac; }
  send(frame: Uint8Array): boolean { this.sent.push(Buffer.from(frame)); return true; }
  onFrame(): void { /* frames are fed with Responder.handle */ }
  joinMulticast(): void { /* no groups in these tests */ }
  leaveMulticast(): void { /* no groups in these tests */ }
  close(): void { /* nothing to close */ }
}

class FakeTimers implements Timers {
  t = 0;
  private q: { at: number; fn: () => void; id: number }[] = [];
  private id = 0;
  setTimeout(fn: () => void, ms: number): unknown { this.q.push({ at: this.t + ms, fn, id: ++this.id }); return this.id; }
  clearTimeout(h: unknown): void { this.q = this.q.filter((x) => x.id !== h); }
  /** Timers set and not yet fired or cleared. */
  get size(): number { return this.q.length; }
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      this.q.sort((a, b) => a.at - b.at);
      const n = this.q[0];
      if (!n || n.at > end) break;
      this.q.shift();
      this.t = n.at;
      n.fn();
    }
    this.t = end;
  }
}

class FakeMembership implements MembershipView {
  liveSet = new Set(['node-1', 'node-2', 'node-3']);
  isSettled = true;
  hasKey = true;
  onChange: () => void = () => undefined;
  stoppedWith: string | undefined;
  started = 0;
  start(): void { this.started++; }
  setPeers(): void { /* peers come from the test */ }
  live(): ReadonlySet<string> { return this.liveSet; }
  reasons(): ReadonlyMap<string, NodeLiveness> { return new Map([...this.liveSet].map((n) => [n, 'alive'])); }
  settled(): boolean { return this.isSettled; }
  ready(): boolean { return this.hasKey; }
  async stop(mode: 'leave' | 'restart' | 'silent'): Promise<void> { this.stoppedWith = mode; }
  /** Kills or revives a node and tells the announcer, as the real membership does. */
  set(live: string[]): void { this.liveSet = new Set(live); this.onChange(); }
}

const NODES = ['node-1', 'node-2', 'node-3'];
const config = (interfaces: string[] = []): Config => ({
  pools: [{ name: 'p', source: 'crd', ranges: [], autoAssign: true, avoidBuggyIPs: false, allowExternalIPs: false, priority: undefined, namespaces: [], namespaceSelectors: [], serviceSelectors: [], labels: {} }],
  l2Advertisements: [{ name: 'l2', source: 'crd', pools: ['p'], poolSelectors: [], nodeSelectors: [], interfaces, serviceSelectors: [], preferredNodeSelectors: [] }],
  bgpAdvertisements: [], peers: [], communities: {}, bfdProfiles: [],
});
const service = (name: string, ips: string[], annotations: Record<string, string> = {}): ServiceState => ({
  key: `default/${name}`, namespace: 'default', name, uid: `uid-${name}`, labels: {}, annotations, ips, pool: 'p',
  externalTrafficPolicy: 'Cluster', sessionAffinity: { clientIP: false, timeoutSeconds: 0 }, ports: [],
  endpoints: [{ ip: '100.64.1.5', family: 'IPv4', node: 'node-1', ready: true, serving: true, terminating: false, ports: {}, pod: 'p1' }],
});
const world = (self: string, services: ServiceState[], cfg = config()): World => ({
  self, config: cfg, services: new Map(services.map((s) => [s.key, s])),
  nodes: new Map(NODES.map((n, i) => [n, { name: n, labels: {}, ready: true, networkUnavailable: false, excluded: false, addresses: [`198.51.100.${11 + i}`] }])),
});
/** The node the hash prefers for a key among `among`. */
const best = (key: string, among: string[]): string => [...among].sort((a, b) => (rendezvousScore(b, key) > rendezvousScore(a, key) ? 1 : -1))[0]!;

type Tuning = Pick<L2AnnouncerOptions, 'statusSettleMs' | 'statusBurst' | 'statusWritesPerSecond'>;

type StrictArp = Pick<L2AnnouncerOptions, 'strictArp' | 'sysctlWritable' | 'nft' | 'stopMode'>;

function setup(self: string, opts: { linkUp?: boolean; sysctlFails?: boolean } & Tuning & StrictArp = {}) {
  const timers = new FakeTimers();
  const membership = new FakeMembership();
  const links = new Map<string, FakeLink>();
  const events: string[] = [];
  const annotations: Record<string, string | null>[] = [];
  /** Every status write in order: `event name`, `annotate name`. */
  const writes: string[] = [];
  const sysctls: string[] = [];
  const log = memoryLogger();
  const metrics = createL2Metrics(createRegistry(false));
  const { linkUp, sysctlFails, ...tuning } = opts;
  const a = new L2Announcer({
    self, log, metrics, timers, now: () => timers.t,
    sysctlWritable: () => true, nft: async () => { throw new Error('no nft in this test'); },
    ...tuning,
    membership: (onChange) => { membership.onChange = onChange; return membership; },
    openResponder: (ifname) => { const l = new FakeLink(ifname, '02:00:5e:00:53:0' + self.slice(-1)); links.set(ifname, l); return new Responder(l); },
    interfaces: () => new Map([['lo', ['127.0.0.1']], ['eth0', [`198.51.100.${10 + Number(self.slice(-1))}`]], ['eth1', ['203.0.113.250']]]),
    linkUp: () => linkUp ?? true,
    sysctl: (k, v) => { if (sysctlFails) throw Object.assign(new Error('EROFS: read-only file system'), { code: 'EROFS' }); sysctls.push(`${k}=${v}`); },
    sink: {
      event: async (t: EventTarget, _type, reason, message) => { events.push(`${t.name} ${reason}: ${message}`); writes.push(`event ${t.name}`); },
      annotate: async (_ns, name, ann) => { annotations.push(ann); writes.push(`annotate ${name}`); },
    },
  });
  return { a, timers, membership, links, events, annotations, writes, sysctls, log, metrics };
}

const arpOps = (frames: Buffer[]): string[] => frames.map((f) => { const p = arp.decode(ethernet.decode(f).payload); return p.kind === 'ethernet-ipv4' ? `${p.operation === 1 ? 'request' : 'reply'} ${p.senderIp}` : 'other'; });

describe('layer-2 announcer', () => {
  const IP = '203.0.113.7';
  const owner = best(IP, NODES);
  const other = NODES.find((n) => n !== owner)!;

  it('the elected node answers on the default interface, announces at once, once more quickly (IPv6: five more NAs within 750 ms), then twice spaced beyond locktime; sets strict ARP, reports once', () => {
    const { a, timers, links, events, annotations, sysctls } = setup(owner);
    a.update(world(owner, [service('web', [IP, '2001:db8:10::7'])]));
    assert.deepEqual([...a.owned()], [['eth0', ['2001:db8:10::7', IP]]]);
    assert.deepEqual(sysctls, ['net.ipv4.conf.eth0.arp_ignore=1', 'net.ipv4.conf.eth0.arp_announce=2']);
    const link = links.get('eth0')!;
    assert.equal(link.sent.length, 3, 'gratuitous request + reply for IPv4, one unsolicited NA');
    const nas = (): number => link.sent.filter((f) => ethernet.decode(f).etherType === 0x86dd).length;
    timers.advance(150);
    assert.deepEqual([link.sent.length, nas()], [5, 3], 'NDP has no locktime: two more NAs by 150 ms');
    timers.advance(150);
    assert.deepEqual([link.sent.length, nas()], [8, 4], 'the quick repeat (ARP request + reply, one NA)');
    timers.advance(799);
    assert.deepEqual([link.sent.length, nas()], [10, 6], 'only NAs (at 500 and 750 ms) within the receivers\' ARP locktime of the first');
    timers.advance(1);
    assert.equal(link.sent.length, 13);
    timers.advance(1100);
    assert.equal(link.sent.length, 16);
    timers.advance(10_000);
    assert.equal(link.sent.length, 16, 'three rounds and the quick repeats, then quiet');
    assert.deepEqual(arpOps(link.sent.filter((f) => ethernet.decode(f).etherType === 0x0806)).slice(0, 2), [`request ${IP}`, `reply ${IP}`]);
    assert.deepEqual(events, [`web nodeAssigned: announcing from node "${owner}" with protocol "layer2" on eth0`]);
    assert.deepEqual(annotations, [{ [ANNOUNCED_BY]: owner, 'portico.dev/layer2-interfaces': 'eth0' }]);
    assert.equal(a.plan?.services[0]?.election.reason, 'elected');
    a.update(world(owner, [service('web', [IP, '2001:db8:10::7'])]));
    assert.equal(events.length, 1, 'same ownership, no new Event');
  });

  it('another node answers nothing for it; heartbeats start with the first World', () => {
    const { a, links, membership } = setup(other);
    assert.equal(membership.started, 0);
    a.update(world(other, [service('web', [IP])]));
    assert.ok(membership.started > 0);
    assert.deepEqual([...a.owned()], []);
    assert.equal(links.size, 0);
  });

  it('a liveness change re-elects at once, without a new World: the next node takes over, the old owner back makes it stop', () => {
    const survivors = NODES.filter((n) => n !== owner);
    const heir = best(IP, survivors);
    const { a, membership, links, timers } = setup(heir);
    a.update(world(heir, [service('web', [IP])]));
    assert.deepEqual([...a.owned()], []);
    membership.set(survivors);
    assert.deepEqual([...a.owned()], [['eth0', [IP]]]);
    assert.equal(links.get('eth0')!.sent.length, 2, 'gratuitous request and reply at once');
    membership.set(NODES);
    assert.deepEqual([...a.owned()], [['eth0', []]], 'stops answering at once when the owner is back');
    timers.advance(5000);
    assert.equal(links.get('eth0')!.sent.length, 2, 'and its pending announcements are cancelled');
  });

  it('claims nothing before membership settled or without a heartbeat key, then claims on its own', () => {
    const { a, membership, timers } = setup(owner);
    membership.isSettled = false;
    a.update(world(owner, [service('web', [IP])]));
    assert.deepEqual([...a.owned()], []);
    membership.isSettled = true;
    membership.hasKey = false;
    timers.advance(100);
    assert.deepEqual([...a.owned()], []);
    membership.hasKey = true;
    timers.advance(100);
    assert.deepEqual([...a.owned()], [['eth0', [IP]]]);
  });

  it('claims nothing on an interface without carrier (a node cut off its segment)', () => {
    const { a, log } = setup(owner, { linkUp: false });
    a.update(world(owner, [service('web', [IP])]));
    assert.deepEqual([...a.owned()], []);
    assert.ok(log.records.some((r) => r.msg === 'link down: claiming nothing on it'));
  });

  it('announces on the advertisement\'s interfaces, and reports none it lacks', () => {
    const { a } = setup(owner);
    a.update(world(owner, [service('web', [IP])], config(['eth1', 'eth9'])));
    assert.deepEqual([...a.owned()], [['eth1', [IP]]]);
    assert.deepEqual(a.plan?.problems, [{ service: 'default/web', problem: 'missing-interface', detail: 'eth9' }]);
  });

  it('without L2Advertisements it is idle; a Service that already names this node gets no new Event (restart)', () => {
    const { a, events } = setup(owner);
    a.update({ ...world(owner, [service('web', [IP])]), config: { ...config(), l2Advertisements: [] } });
    assert.deepEqual([...a.owned()], []);
    a.update(world(owner, [service('web', [IP], { [ANNOUNCED_BY]: owner, 'portico.dev/layer2-interfaces': 'eth0' })]));
    assert.deepEqual([...a.owned()], [['eth0', [IP]]]);
    assert.deepEqual(events, []);
  });

  describe('stale layer-2 annotations', () => {
    const CLEAR = { [ANNOUNCED_BY]: null, [ANNOUNCED_INTERFACES]: null };
    const named = (node: string): Record<string, string> => ({ [ANNOUNCED_BY]: node, [ANNOUNCED_INTERFACES]: 'eth0' });

    it('the named node clears them at once (no settle) when the Service no longer matches an L2Advertisement, once until the World shows it, and again if the write was lost', () => {
      const { a, annotations, timers } = setup(owner, { statusSettleMs: 0 });
      a.update(world(owner, [service('web', [IP], named(owner))]));
      assert.deepEqual(annotations, [], 'announcing and named: nothing to write');
      const unadvertised = { ...config(), l2Advertisements: [] };
      a.update(world(owner, [service('web', [IP], named(owner))], unadvertised));
      assert.deepEqual([...a.owned()], [['eth0', []]]);
      assert.deepEqual(annotations, [CLEAR]);
      a.update(world(owner, [service('web', [IP], named(owner))], unadvertised));
      assert.equal(annotations.length, 1, 'not again within annotateEveryMs');
      timers.advance(5001);
      assert.deepEqual(annotations, [CLEAR, CLEAR], 'the World still names this node: cleared again, without a new World');
      a.update(world(owner, [service('web', [IP])], unadvertised));
      timers.advance(60_000);
      assert.equal(annotations.length, 2, 'once the World shows them gone, nothing more');
    });

    it('the named node clears them when the Service has no ready endpoint (nobody announces it), once that held for the settle', () => {
      const { a, annotations, timers } = setup(owner);
      const gone = { ...service('web', [IP], named(owner)), endpoints: [] };
      a.update(world(owner, [gone]));
      assert.equal(a.plan?.services[0]?.election.reason, 'no-ready-endpoints');
      timers.advance(2000);
      assert.deepEqual(annotations, [], 'not before the settle');
      timers.advance(1);
      assert.deepEqual(annotations, [CLEAR]);
    });

    it('when another node is elected, the named node leaves them to it (no race with its write), however long they stay', () => {
      const heir = best(IP, NODES.filter((n) => n !== owner));
      const { a, membership, annotations, timers } = setup(owner);
      a.update(world(owner, [service('web', [IP], named(owner))]));
      membership.set(NODES.filter((n) => n !== owner)); // this node cut off: the heir is elected
      assert.equal(a.plan?.services[0]?.election.owner, heir);
      timers.advance(60_000);
      a.update(world(owner, [service('web', [IP], named(owner))]));
      assert.deepEqual(annotations, []);
    });

    it('an owner whose World keeps disagreeing (a lagging watch) writes again with a doubling wait, not every 5 s, with or without new Worlds', () => {
      const { a, annotations, timers } = setup(owner, { statusSettleMs: 0 });
      const stale = (): World => world(owner, [service('web', [IP], named(other))]);
      a.update(stale());
      assert.equal(annotations.length, 1, 'written on the gain');
      const writesAt: number[] = [];
      for (let t = 0; t < 80_000; t += 1000) {
        const n = annotations.length;
        timers.advance(1000);
        if (t % 2000 === 0) a.update(stale());
        if (annotations.length > n) writesAt.push(timers.t);
      }
      assert.deepEqual(writesAt.map((t) => Math.round(t / 1000)), [5, 15, 35, 75], 'again after 5, 10, 20, 40 s');
      a.update(world(owner, [service('web', [IP], named(owner))]));
      a.update(stale());
      assert.equal(annotations.length, 6, 'once confirmed, a new disagreement (another writer) is answered at once, with the wait from 5 s again');
    });

    it('a node they do not name never touches them; the new owner overwrites them', () => {
      const { a, annotations, membership } = setup(other, { statusSettleMs: 0 });
      a.update(world(other, [service('web', [IP], named(owner))]));
      assert.deepEqual(annotations, []);
      const heir = best(IP, NODES.filter((n) => n !== owner));
      const h = setup(heir, { statusSettleMs: 0 });
      h.a.update(world(heir, [service('web', [IP], named(owner))]));
      h.membership.set(NODES.filter((n) => n !== owner));
      assert.deepEqual(h.annotations, [named(heir)], 'the heir names itself');
      membership.set(NODES.filter((n) => n !== owner));
      if (other !== heir) assert.deepEqual(annotations, []);
    });
  });

  describe('status writes: settle and rate limit', () => {
    const named = (node: string): Record<string, string> => ({ [ANNOUNCED_BY]: node, [ANNOUNCED_INTERFACES]: 'eth0' });
    const counterValue = async (m: { get(): Promise<{ values: { value: number; labels: Record<string, unknown> }[] }> }, labels: Record<string, string> = {}): Promise<number> =>
      (await m.get()).values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value ?? 0;
    /** `count` IPv6 Services whose IPs `node` wins among all three nodes, named so that the plan keeps their order. */
    const servicesOf = (node: string, count: number): ServiceState[] => {
      const out: ServiceState[] = [];
      for (let i = 1; out.length < count; i++) {
        const ip = `2001:db8:10::${i.toString(16)}`;
        if (best(ip, NODES) === node) out.push(service(`s${String(out.length).padStart(4, '0')}`, [ip]));
      }
      return out;
    };

    it('a gain answers ARP at once but writes the annotations and nodeAssigned once, after statusSettleMs and not before', () => {
      const { a, timers, links, events, annotations } = setup(owner, { statusSettleMs: 2000 });
      a.update(world(owner, [service('web', [IP])]));
      assert.deepEqual([...a.owned()], [['eth0', [IP]]], 'answering at once');
      assert.equal(links.get('eth0')!.sent.length, 2, 'gratuitous request and reply at once');
      timers.advance(2000);
      assert.deepEqual([events, annotations], [[], []], 'nothing written within the settle');
      timers.advance(1);
      assert.deepEqual(events, [`web nodeAssigned: announcing from node "${owner}" with protocol "layer2" on eth0`]);
      assert.deepEqual(annotations, [named(owner)]);
      a.update(world(owner, [service('web', [IP], named(owner))]));
      timers.advance(60_000);
      assert.equal(events.length + annotations.length, 2, 'written once');
    });

    it('an ownership that moves away and back within the settle writes nothing more, while ARP ownership follows each move at once', () => {
      // The owner, settled and shown in the World, loses the Service (its endpoints go) and gets it back 1 s later.
      const o = setup(owner);
      o.a.update(world(owner, [service('web', [IP])]));
      o.timers.advance(2001);
      assert.equal(o.writes.length, 2, 'the Event and the annotations of the first claim');
      const shown = service('web', [IP], named(owner));
      o.a.update(world(owner, [{ ...shown, endpoints: [] }]));
      assert.deepEqual(o.a.responder('eth0')!.owned(), [], 'stops answering at once');
      o.timers.advance(1000);
      o.a.update(world(owner, [shown]));
      assert.deepEqual(o.a.responder('eth0')!.owned(), [IP], 'answers again at once');
      o.timers.advance(60_000);
      assert.equal(o.writes.length, 2, 'no clear while it was away, no write or Event once back');

      // The heir takes over each time the owner looks dead: twice for 600 ms, then for good.
      const heir = best(IP, NODES.filter((n) => n !== owner));
      const h = setup(heir);
      h.a.update(world(heir, [shown]));
      const ownedAfter: string[][] = [];
      for (const live of [NODES.filter((n) => n !== owner), NODES, NODES.filter((n) => n !== owner), NODES]) {
        h.membership.set(live);
        ownedAfter.push(h.a.responder('eth0')?.owned() ?? []);
        h.timers.advance(600);
      }
      assert.deepEqual(ownedAfter, [[IP], [], [IP], []], 'ARP ownership changed at once each time');
      h.timers.advance(60_000);
      assert.deepEqual(h.writes, [], 'claims shorter than the settle write nothing');
      h.membership.set(NODES.filter((n) => n !== owner));
      h.timers.advance(2001);
      assert.deepEqual(h.writes, ['event web', 'annotate web'], 'a claim that holds writes once');
    });

    it('500 Services gained at once: a burst, then the rate, oldest first; all written in the end but those lost meanwhile', async () => {
      const self = 'node-1';
      const svcs = servicesOf(self, 500);
      const { a, timers, writes, events, metrics } = setup(self, { statusSettleMs: 2000, statusBurst: 50, statusWritesPerSecond: 20 });
      a.update(world(self, svcs));
      assert.equal(a.responder('eth0')!.owned().length, 500, 'all answered at once');
      assert.equal(await counterValue(metrics.statusWritesPending, { wait: 'settle' }), 1000);
      timers.advance(2001);
      assert.equal(writes.length, 50, 'the burst: 25 Services, an Event and an annotation each');
      assert.deepEqual(writes.slice(0, 2), ['event s0000', 'annotate s0000']);
      assert.equal(await counterValue(metrics.statusWritesDeferred), 950);
      assert.equal(await counterValue(metrics.statusWritesPending, { wait: 'rate-limit' }), 950);
      // The World shows what was written (the watch); before their turn, the last Service is deleted and the one before loses its endpoints (no owner).
      const kept = svcs.slice(0, -2);
      const shown = (): World => world(self, [...kept.map((s) => (writes.includes(`annotate ${s.name}`) ? { ...s, annotations: named(self) } : s)), { ...svcs[498]!, endpoints: [] }]);
      a.update(shown());
      assert.equal(a.responder('eth0')!.owned().length, 498);
      assert.equal(writes.length, 50, 'a new World spends no token it does not have');
      const perSecond: number[] = [];
      for (let i = 0; i < 60; i++) {
        const n = writes.length;
        timers.advance(1000);
        perSecond.push(writes.length - n);
        a.update(shown());
      }
      assert.ok(perSecond.every((n) => n <= 20), `at most 20 writes a second: ${perSecond.join(' ')}`);
      assert.ok(perSecond.slice(0, 40).every((n) => n >= 18), `and close to 20 while some wait: ${perSecond.join(' ')}`);
      assert.equal(events.length, 498);
      assert.deepEqual(new Set(writes.filter((w) => w.startsWith('annotate')).map((w) => w.slice(9))), new Set(kept.map((s) => s.name)));
      assert.equal(writes.length, 996, 'each once, the lost ones never');
      assert.equal(await counterValue(metrics.statusWritesDeferred), 950, 'each deferred write counted once (the lost ones included: they waited)');
      assert.equal(await counterValue(metrics.statusWritesPending, { wait: 'rate-limit' }), 0);
    });

    it('stale clears settle too and share the limit with the owner\'s writes', () => {
      const self = 'node-1';
      const mine = servicesOf(self, 41);
      // 40 Services name this node but are not advertised any more: 40 clears, plus one gain (an Event and an annotation).
      const stale = mine.slice(1).map((s) => ({ ...s, annotations: named(self) }));
      const cfg = config();
      const unadvertised = { ...cfg, pools: [...cfg.pools, { ...cfg.pools[0]!, name: 'q' }] };
      const { a, timers, writes, annotations } = setup(self, { statusSettleMs: 2000, statusBurst: 10, statusWritesPerSecond: 5 });
      // The World shows each write once done (the watch).
      const gained = mine[0]!;
      const shown = (): World => world(self, [writes.includes(`annotate ${gained.name}`) ? { ...gained, annotations: named(self) } : gained, ...stale.map((s) => ({ ...s, pool: 'q', annotations: writes.includes(`annotate ${s.name}`) ? {} : s.annotations }))], unadvertised);
      a.update(shown());
      assert.equal(a.plan?.services.filter((s) => s.election.owner === null).length, 40);
      timers.advance(2000);
      assert.deepEqual(writes, [], 'no clear within the settle');
      timers.advance(1);
      assert.equal(writes.length, 10, 'the burst covers the gain and 8 clears');
      a.update(shown());
      timers.advance(1000);
      assert.equal(writes.length, 15, 'then 5 a second');
      for (let i = 0; i < 10; i++) {
        a.update(shown());
        timers.advance(1000);
      }
      assert.equal(writes.length, 42);
      assert.equal(annotations.filter((x) => x[ANNOUNCED_BY] === null).length, 40);
      assert.equal(new Set(writes).size, 42, 'each once');
    });

    it('stop() leaves no timer behind: no settle, token, repeat or backoff wait fires after it', async () => {
      const self = 'node-1';
      const { a, timers, writes } = setup(self, { statusBurst: 4, statusWritesPerSecond: 1 });
      a.update(world(self, servicesOf(self, 20)));
      timers.advance(2500);
      assert.equal(writes.length, 4);
      assert.ok(timers.size > 0, 'writes and announcements were waiting');
      await a.stop();
      assert.equal(timers.size, 0);
      timers.advance(60_000);
      assert.equal(writes.length, 4);
    });
  });

  it('stops answering and tells the peers it restarts on stop', async () => {
    const { a, membership, links } = setup(owner);
    a.update(world(owner, [service('web', [IP])]));
    const r = a.responder('eth0')!;
    await a.stop();
    assert.deepEqual(r.owned(), []);
    assert.equal(membership.stoppedWith, 'restart');
    assert.ok(links.get('eth0'));
  });

  describe('strict ARP', () => {
    const flush = (): Promise<void> => new Promise((r) => setImmediate(r));
    const recorder = () => {
      const scripts: string[] = [];
      let fail = false;
      return { scripts, failNext: (f: boolean) => { fail = f; }, nft: async (script: string) => { if (fail) throw new Error('nft: no such file'); scripts.push(script); } };
    };

    it('a node that does not own the Service sets it too (its kernel may hold the VIP on a local interface)', () => {
      const { a, sysctls } = setup(other);
      a.update(world(other, [service('web', [IP])]));
      assert.deepEqual([...a.owned()], [], 'answers nothing');
      assert.deepEqual(sysctls, ['net.ipv4.conf.eth0.arp_ignore=1', 'net.ipv4.conf.eth0.arp_announce=2']);
    });

    it('auto with a read-only /proc/sys: no sysctl write, the table arp portico holds every layer-2 IPv4 VIP, owner or not, rewritten only on change', async () => {
      const rec = recorder();
      const { a, sysctls, log } = setup(other, { sysctlWritable: () => false, nft: rec.nft });
      a.update(world(other, [service('web', [IP, '2001:db8:10::7']), service('api', ['203.0.113.2'])]));
      await flush();
      assert.deepEqual(sysctls, []);
      assert.equal(rec.scripts.length, 1);
      assert.match(rec.scripts[0]!, /elements = \{ 203\.0\.113\.2, 203\.0\.113\.7 \}/);
      assert.match(rec.scripts[0]!, /arp operation reply arp saddr ip @vips counter drop/);
      assert.ok(log.records.some((r) => r.msg === 'strict ARP through nftables' && r.why === '/proc/sys is read-only'), 'the choice is logged with the reason');
      a.update(world(other, [service('web', [IP, '2001:db8:10::7']), service('api', ['203.0.113.2'])]));
      await flush();
      assert.equal(rec.scripts.length, 1, 'the same VIPs: nothing written');
      a.update(world(other, [service('web', [IP])]));
      await flush();
      assert.equal(rec.scripts.length, 2);
      assert.match(rec.scripts[1]!, /elements = \{ 203\.0\.113\.7 \}/);
      await a.stop();
      assert.equal(rec.scripts.length, 2, 'a restart keeps the table (the VIPs stay during the hold time)');
    });

    it('stop(\'leave\') (an uninstall) removes the table and tells the peers it leaves, whatever PORTICO_STOP_MODE says', async () => {
      const rec = recorder();
      const { a, membership } = setup(other, { sysctlWritable: () => false, nft: rec.nft, stopMode: 'restart' });
      a.update(world(other, [service('web', [IP])]));
      await flush();
      assert.equal(rec.scripts.length, 1);
      await a.stop('leave');
      assert.equal(rec.scripts[1], 'table arp portico\ndelete table arp portico\n');
      assert.equal(membership.stoppedWith, 'leave');
    });

    it('stop(\'leave\') removes a table an earlier speaker wrote, though this one never had a layer-2 VIP; with writable sysctls there is none to remove', async () => {
      const rec = recorder();
      const { a, membership } = setup(other, { sysctlWritable: () => false, nft: rec.nft });
      a.update(world(other, []));
      await a.stop('leave');
      assert.deepEqual(rec.scripts, ['table arp portico\ndelete table arp portico\n']);
      assert.equal(membership.stoppedWith, 'leave');
      const rec2 = recorder();
      const host = setup(other, { nft: rec2.nft });
      host.a.update(world(other, []));
      await host.a.stop('leave');
      assert.deepEqual(rec2.scripts, []);
    });

    it('auto: a sysctl write that fails (EROFS) switches to the table; --strict-arp=sysctl only logs', async () => {
      const rec = recorder();
      const auto = setup(owner, { sysctlFails: true, nft: rec.nft });
      auto.a.update(world(owner, [service('web', [IP])]));
      await flush();
      assert.equal(rec.scripts.length, 1);
      assert.ok(auto.log.records.some((r) => r.msg === 'strict ARP through nftables' && r.why === 'the sysctls cannot be written'));
      const rec2 = recorder();
      const strict = setup(owner, { sysctlFails: true, strictArp: 'sysctl', nft: rec2.nft });
      strict.a.update(world(owner, [service('web', [IP])]));
      await flush();
      assert.equal(rec2.scripts.length, 0);
      assert.ok(strict.log.records.some((r) => r.msg === 'strict ARP not set; the kernel may answer ARP for local VIPs' && r.level === 'error'));
    });

    it('nftables: a failed write is logged and tried again after 5 s; leaving removes the table', async () => {
      const rec = recorder();
      rec.failNext(true);
      const { a, timers, sysctls, log } = setup(owner, { strictArp: 'nftables', nft: rec.nft, stopMode: 'leave' });
      a.update(world(owner, [service('web', [IP])]));
      await flush();
      assert.deepEqual(sysctls, [], 'nftables asked for: no sysctl');
      assert.equal(rec.scripts.length, 0);
      assert.ok(log.records.some((r) => r.msg === 'cannot write the ARP filter; the kernel may answer ARP for local VIPs'));
      rec.failNext(false);
      timers.advance(4999);
      await flush();
      assert.equal(rec.scripts.length, 0);
      timers.advance(1);
      await flush();
      assert.equal(rec.scripts.length, 1);
      await a.stop();
      assert.equal(rec.scripts.length, 2);
      assert.equal(rec.scripts[1], 'table arp portico\ndelete table arp portico\n');
    });
  });
});
