import { strict as assert } from 'node:assert';
import { assertCodecError } from '../codec/check.ts';
import { FakeClock, Timers } from './clock.ts';
import {
  backoff, checkOpen, collisionWinner, initialState, step,
  type Action, type FsmEvent, type FsmState, type PeerConfig, type Reason, type State, type TimerName,
} from './fsm.ts';
import { MP_IPV4_UNICAST, MP_IPV6_UNICAST } from './capabilities.ts';
import { buildOpen, decodeMessage, encodeMessage, type BgpMessage, type OpenMessage } from './message.ts';
import { AS_TRANS } from './attributes.ts';

const CFG: PeerConfig = {
  localAsn: 64512, peerAsn: 64501, bgpId: '198.51.100.11', holdTime: 9, connectRetryTime: 5, maxConnectRetryTime: 60,
  passive: false, capabilities: [MP_IPV4_UNICAST, MP_IPV6_UNICAST, { type: 'route-refresh' }],
};
const peerOpen = (o: Partial<{ asn: number; holdTime: number; bgpId: string }> = {}): OpenMessage =>
  buildOpen({ asn: o.asn ?? 64501, holdTime: o.holdTime ?? 90, bgpId: o.bgpId ?? '198.51.100.2', capabilities: [MP_IPV4_UNICAST, { type: 'route-refresh' }] });

/** Every (from -> to) transition any test drove. */
const seen = new Set<string>();

/** Runs the FSM on a fake clock the way session.ts does, recording what it asks for. */
class Harness {
  readonly clock = new FakeClock();
  readonly cfg: PeerConfig;
  s: FsmState = initialState();
  readonly reasons: Reason[] = [];
  readonly sent: { conn: number; message: BgpMessage }[] = [];
  readonly closed: number[] = [];
  readonly started: { timer: TimerName; seconds: number }[] = [];
  readonly events: Action[] = [];
  connects = 0;
  readonly timers: Timers<TimerName>;

  constructor(cfg: Partial<PeerConfig> = {}) {
    this.cfg = { ...CFG, ...cfg };
    this.timers = new Timers(this.clock, (timer) => this.fire({ type: 'timer', timer }));
  }

  fire(ev: FsmEvent): Reason {
    const from = this.s.state;
    const r = step(this.s, ev, this.cfg);
    this.s = r.state;
    seen.add(`${from}->${r.state.state}`);
    this.reasons.push(r.reason);
    for (const a of r.actions) {
      switch (a.type) {
        case 'connect': this.connects++; break;
        case 'send': this.sent.push({ conn: a.conn, message: a.message }); break;
        case 'close': this.closed.push(a.conn); break;
        case 'start-timer': this.timers.start(a.timer, a.seconds); this.started.push({ timer: a.timer, seconds: a.seconds }); break;
        case 'stop-timer': this.timers.stop(a.timer); break;
        default: this.events.push(a);
      }
    }
    // The FSM's view of its timers and the clock's agree.
    for (const t of ['connect-retry', 'hold', 'keepalive', 'idle-hold'] as const) {
      assert.equal(this.timers.running(t), this.s.timers.includes(t), `timer ${t} after ${r.reason}`);
    }
    return r.reason;
  }

  get state(): State { return this.s.state; }
  lastSent(): BgpMessage | undefined { return this.sent.at(-1)?.message; }
  sentTypes(conn?: number): string[] { return this.sent.filter((x) => conn === undefined || x.conn === conn).map((x) => x.message.type); }

  /** Idle -> Connect -> OpenSent -> OpenConfirm -> Established over connection 1. */
  establish(open: OpenMessage = peerOpen()): void {
    assert.equal(this.fire({ type: 'start' }), 'started');
    assert.equal(this.fire({ type: 'tcp-connected', conn: { id: 1, direction: 'outgoing' } }), 'tcp-connected');
    assert.equal(this.fire({ type: 'message', conn: 1, message: open }), 'open-accepted');
    assert.equal(this.fire({ type: 'message', conn: 1, message: { type: 'keepalive' } }), 'keepalive-received');
    assert.equal(this.state, 'Established');
  }
}

const notificationOf = (m: BgpMessage | undefined): [number, number] => {
  assert.equal(m?.type, 'notification');
  return m.type === 'notification' ? [m.code, m.subcode] : [0, 0];
};

describe('bgp fsm (RFC 4271 §8)', () => {
  it('an active peer comes up: Idle, Connect, OpenSent, OpenConfirm, Established', () => {
    const h = new Harness();
    h.fire({ type: 'start' });
    assert.deepEqual([h.state, h.connects, h.timers.running('connect-retry')], ['Connect', 1, true]);
    h.fire({ type: 'tcp-connected', conn: { id: 1, direction: 'outgoing' } });
    assert.equal(h.state, 'OpenSent');
    const open = h.lastSent();
    assert.ok(open?.type === 'open');
    assert.deepEqual([open.myAsn, open.holdTime, open.bgpId], [64512, 9, '198.51.100.11']);
    assert.deepEqual(h.started.at(-1), { timer: 'hold', seconds: 240 }, 'OpenSent waits 4 minutes for the OPEN');
    assert.equal(h.timers.running('connect-retry'), false);
    h.fire({ type: 'message', conn: 1, message: peerOpen({ holdTime: 90 }) });
    assert.equal(h.state, 'OpenConfirm');
    assert.equal(h.lastSent()?.type, 'keepalive');
    assert.deepEqual(h.s.negotiated && [h.s.negotiated.holdTime, h.s.negotiated.keepaliveTime, h.s.negotiated.fourOctetAs], [9, 3, true]);
    h.fire({ type: 'message', conn: 1, message: { type: 'keepalive' } });
    assert.equal(h.state, 'Established');
    const up = h.events.find((a) => a.type === 'established');
    assert.ok(up?.type === 'established');
    assert.deepEqual(up.session.families, [{ afi: 1, safi: 1 }], 'only the families both sides offered');
    assert.equal(up.session.routeRefresh, true);
  });

  it('sends KEEPALIVEs every keepalive interval and stays up while the peer talks', () => {
    const h = new Harness();
    h.establish();
    const before = h.sent.length;
    for (let i = 0; i < 10; i++) {
      h.clock.advance(3000);
      h.fire({ type: 'message', conn: 1, message: { type: 'keepalive' } });
    }
    assert.equal(h.state, 'Established');
    assert.equal(h.sent.slice(before).filter((x) => x.message.type === 'keepalive').length, 10);
  });

  it('hold timer expiry in Established sends Hold Timer Expired and restarts after the idle hold', () => {
    const h = new Harness();
    h.establish();
    h.clock.advance(9000);
    assert.equal(h.state, 'Idle');
    assert.deepEqual(notificationOf(h.lastSent()), [4, 0]);
    assert.ok(h.closed.includes(1));
    const down = h.events.find((a) => a.type === 'down');
    assert.ok(down?.type === 'down' && down.reason === 'hold-timer-expired');
    assert.deepEqual(h.started.at(-1), { timer: 'idle-hold', seconds: 5 });
    h.clock.advance(5000);
    assert.equal(h.state, 'Connect');
    assert.equal(h.reasons.at(-1), 'automatic-restart');
  });

  it('BFD down resets an Established session at once with Cease / BFD Down (RFC 9384) and restarts after the idle hold', () => {
    const h = new Harness();
    h.establish();
    assert.equal(h.fire({ type: 'bfd-down', detail: 'BFD session Down' }), 'bfd-down');
    assert.equal(h.state, 'Idle');
    assert.deepEqual(notificationOf(h.lastSent()), [6, 10]);
    assert.ok(h.closed.includes(1));
    const down = h.events.find((a) => a.type === 'down');
    assert.ok(down?.type === 'down' && down.reason === 'bfd-down');
    h.clock.advance(5000);
    assert.equal(h.state, 'Connect');
    // Without a connection there is nothing to reset.
    assert.equal(h.fire({ type: 'bfd-down', detail: 'again' }), 'ignored');
    assert.equal(h.state, 'Connect');
  });

  it('negotiates the hold time: the smaller wins, 0 means no keepalives, 1 and 2 are refused', () => {
    const cases: { ours: number; theirs: number; keepalive?: number; hold?: number; ka?: number; error?: number }[] = [
      { ours: 9, theirs: 90, hold: 9, ka: 3 },
      { ours: 90, theirs: 30, hold: 30, ka: 10 },
      { ours: 90, theirs: 30, keepalive: 2, hold: 30, ka: 2 },
      { ours: 9, theirs: 0, hold: 0, ka: 0 },
      { ours: 3, theirs: 3, hold: 3, ka: 1 },
      { ours: 9, theirs: 1, error: 6 },
      { ours: 9, theirs: 2, error: 6 },
    ];
    for (const c of cases) {
      const r = checkOpen(peerOpen({ holdTime: c.theirs }), { ...CFG, holdTime: c.ours, keepaliveTime: c.keepalive }, 1);
      if (c.error !== undefined) {
        assert.ok(!r.ok && r.notification.code === 2 && r.notification.subcode === c.error, JSON.stringify(c));
      } else {
        assert.ok(r.ok, JSON.stringify(c));
        assert.deepEqual([r.session.holdTime, r.session.keepaliveTime], [c.hold, c.ka], JSON.stringify(c));
      }
    }
  });

  it('with hold time 0 neither side sends keepalives and nothing expires', () => {
    const h = new Harness();
    h.establish(peerOpen({ holdTime: 0 }));
    const n = h.sent.length;
    h.clock.advance(3_600_000);
    assert.deepEqual([h.state, h.sent.length], ['Established', n]);
  });

  it('refuses an OPEN with the NOTIFICATION it deserves', () => {
    const raw: OpenMessage = { ...peerOpen(), parameters: [...peerOpen().parameters, { type: 'raw', code: 9, value: Buffer.alloc(1) }] };
    const v6only: OpenMessage = buildOpen({ asn: 64501, holdTime: 90, bgpId: '198.51.100.2', capabilities: [MP_IPV6_UNICAST] });
    const liar: OpenMessage = { ...peerOpen({ asn: 4200000001 }), myAsn: 64999 };
    const cases: { name: string; open: OpenMessage; cfg?: Partial<PeerConfig>; sub: number; data?: string }[] = [
      { name: 'wrong AS', open: peerOpen({ asn: 64999 }), sub: 2, data: 'fde7' },
      { name: 'wrong 4-octet AS behind AS_TRANS', open: peerOpen({ asn: 4200000009 }), cfg: { peerAsn: 4200000001 }, sub: 2, data: AS_TRANS.toString(16) },
      { name: 'My AS disagrees with the 4-octet AS', open: liar, cfg: { peerAsn: 4200000001 }, sub: 2 },
      { name: 'BGP identifier 0.0.0.0', open: peerOpen({ bgpId: '0.0.0.0' }), sub: 3 },
      { name: 'iBGP peer with our identifier', open: peerOpen({ asn: 64512, bgpId: '198.51.100.11' }), cfg: { peerAsn: 64512 }, sub: 3 },
      { name: 'unknown optional parameter', open: raw, sub: 4 },
      { name: 'no family in common', open: v6only, cfg: { capabilities: [MP_IPV4_UNICAST] }, sub: 7, data: '010400010001' },
    ];
    for (const c of cases) {
      const h = new Harness(c.cfg);
      h.fire({ type: 'start' });
      h.fire({ type: 'tcp-connected', conn: { id: 1, direction: 'outgoing' } });
      assert.equal(h.fire({ type: 'message', conn: 1, message: c.open }), 'open-rejected', c.name);
      const n = h.lastSent();
      assert.deepEqual(notificationOf(n), [2, c.sub], c.name);
      if (c.data !== undefined && n?.type === 'notification') assert.equal(n.data.toString('hex'), c.data.padStart(4, '0'), c.name);
      assert.deepEqual([h.state, h.closed], ['Idle', [1]], c.name);
    }
    // eBGP peers may share our identifier (RFC 6286 §2.2).
    assert.ok(checkOpen(peerOpen({ bgpId: '198.51.100.11' }), CFG, 1).ok);
    // A peer without multiprotocol capabilities speaks IPv4 unicast (RFC 4760 §8).
    const plain: OpenMessage = { type: 'open', version: 4, myAsn: 64501, holdTime: 90, bgpId: '198.51.100.2', parameters: [] };
    const r = checkOpen(plain, CFG, 1);
    assert.ok(r.ok && r.session.families.length === 1 && !r.session.fourOctetAs);
  });

  // BGPPeer dynamicASN: the peer's AS is learnt from its OPEN, within a rule (MetalLB v0.14+).
  describe('dynamicASN: the peer AS learnt from the OPEN', () => {
    const cases: { name: string; rule: 'internal' | 'external'; asn: number; ok: boolean; ibgp?: boolean; why?: RegExp }[] = [
      { name: 'internal accepts our own AS, as iBGP', rule: 'internal', asn: 64512, ok: true, ibgp: true },
      { name: 'internal refuses another AS', rule: 'internal', asn: 64501, ok: false, why: /AS 64501; dynamicASN internal wants our own AS 64512/ },
      { name: 'external accepts another AS, as eBGP', rule: 'external', asn: 64501, ok: true, ibgp: false },
      { name: 'external accepts a 4-octet AS', rule: 'external', asn: 4200000001, ok: true, ibgp: false },
      { name: 'external refuses our own AS', rule: 'external', asn: 64512, ok: false, why: /AS 64512, our own; dynamicASN external wants another AS/ },
    ];
    for (const c of cases) {
      it(c.name, () => {
        const cfg: PeerConfig = { ...CFG, peerAsn: c.rule };
        const r = checkOpen(peerOpen({ asn: c.asn }), cfg, 1);
        if (c.ok) {
          assert.ok(r.ok, c.name);
          assert.deepEqual([r.session.peerAsn, r.session.ibgp], [c.asn, c.ibgp]);
          return;
        }
        assert.ok(!r.ok);
        assert.match(r.why, c.why!);
        // OPEN Message Error / Bad Peer AS with the 2-octet My AS field as data (RFC 4271 §6.2).
        assert.deepEqual([r.notification.code, r.notification.subcode, r.notification.data.toString('hex')], [2, 2, c.asn.toString(16).padStart(4, '0')]);
        // Through the state machine: the NOTIFICATION goes out, the connection closes, the reason says why.
        const h = new Harness(cfg);
        h.fire({ type: 'start' });
        h.fire({ type: 'tcp-connected', conn: { id: 1, direction: 'outgoing' } });
        const r2 = step(h.s, { type: 'message', conn: 1, message: peerOpen({ asn: c.asn }) }, cfg);
        assert.equal(r2.reason, 'open-rejected');
        assert.match(r2.detail ?? '', c.why!, 'the step says why, for the Warning on the BGPPeer');
        const sent = r2.actions.find((a) => a.type === 'send');
        assert.deepEqual(notificationOf(sent?.type === 'send' ? sent.message : undefined), [2, 2]);
        assert.deepEqual([r2.state.state, r2.actions.filter((a) => a.type === 'close').map((a) => a.type === 'close' && a.conn)], ['Idle', [1]]);
      });
    }

    it('internal with our identifier is refused as iBGP is (RFC 6286 §2.2); external with it is fine', () => {
      assert.ok(!checkOpen(peerOpen({ asn: 64512, bgpId: CFG.bgpId }), { ...CFG, peerAsn: 'internal' }, 1).ok);
      assert.ok(checkOpen(peerOpen({ asn: 64501, bgpId: CFG.bgpId }), { ...CFG, peerAsn: 'external' }, 1).ok);
    });

    it('a session established with a learnt AS reports it', () => {
      const h = new Harness({ peerAsn: 'external' });
      h.establish(peerOpen({ asn: 64777 }));
      assert.equal(h.s.negotiated?.peerAsn, 64777);
      assert.equal(h.s.negotiated?.ibgp, false);
    });
  });

  it('a passive peer listens in Active and never connects', () => {
    const h = new Harness({ passive: true });
    assert.equal(h.fire({ type: 'start' }), 'started-passive');
    assert.equal(h.state, 'Active');
    h.clock.advance(60_000);
    assert.deepEqual([h.state, h.connects], ['Active', 0]);
    assert.equal(h.reasons.at(-1), 'listening');
    h.fire({ type: 'tcp-connected', conn: { id: 7, direction: 'incoming' } });
    assert.equal(h.state, 'OpenSent');
    assert.deepEqual(h.sentTypes(7), ['open']);
  });

  it('retries the connection with backoff: 5, 10, 20, 40, 60, 60 seconds', () => {
    const h = new Harness();
    h.fire({ type: 'start' });
    const waits: number[] = [h.started.at(-1)!.seconds];
    for (let i = 0; i < 5; i++) {
      h.fire({ type: 'tcp-failed', conn: 0 });
      assert.equal(h.state, 'Active');
      const wait = h.started.at(-1)!.seconds;
      waits.push(wait);
      h.clock.advance(wait * 1000);
      assert.equal(h.state, 'Connect');
    }
    assert.deepEqual(waits, [5, 10, 20, 40, 60, 60]);
    assert.equal(h.connects, 6);
    assert.equal(backoff(CFG, 100), 60);
  });

  it('a connect attempt that hangs is abandoned when the connect-retry timer fires', () => {
    const h = new Harness();
    h.fire({ type: 'start' });
    h.s = { ...h.s, conn: { id: 3, direction: 'outgoing' } };
    h.clock.advance(5000);
    assert.deepEqual([h.state, h.connects, h.reasons.at(-1)], ['Connect', 2, 'connect-retry']);
    assert.deepEqual(h.closed, [3]);
  });

  it('in Connect, a connection from the peer is taken and the pending attempt dropped', () => {
    const h = new Harness();
    h.fire({ type: 'start' });
    h.s = { ...h.s, conn: { id: 3, direction: 'outgoing' } };
    h.fire({ type: 'tcp-connected', conn: { id: 4, direction: 'incoming' } });
    assert.deepEqual([h.state, h.closed, h.s.conn?.id], ['OpenSent', [3], 4]);
  });

  it('Active goes back to Connect when the connect-retry timer fires, and to Idle when a connection fails', () => {
    const h = new Harness();
    h.fire({ type: 'start' });
    h.fire({ type: 'tcp-failed', conn: 0 });
    assert.equal(h.state, 'Active');
    assert.equal(h.fire({ type: 'tcp-failed', conn: 0 }), 'tcp-failed');
    assert.equal(h.state, 'Idle');
    assert.equal(h.s.connectRetryCounter, 2);
  });

  it('the idle hold grows with each failure and resets once Established', () => {
    const h = new Harness();
    h.fire({ type: 'start' });
    const holds: number[] = [];
    for (let i = 0; i < 4; i++) {
      h.fire({ type: 'tcp-connected', conn: { id: 10 + i, direction: 'outgoing' } });
      h.fire({ type: 'message', conn: 10 + i, message: peerOpen({ asn: 1 }) });
      assert.equal(h.state, 'Idle');
      holds.push(h.started.at(-1)!.seconds);
      h.clock.advance(h.started.at(-1)!.seconds * 1000);
      assert.equal(h.state, 'Connect');
    }
    assert.deepEqual(holds, [5, 10, 20, 40]);
    h.fire({ type: 'tcp-connected', conn: { id: 20, direction: 'outgoing' } });
    h.fire({ type: 'message', conn: 20, message: peerOpen() });
    h.fire({ type: 'message', conn: 20, message: { type: 'keepalive' } });
    assert.equal(h.s.connectRetryCounter, 0);
  });

  it('OpenSent: no OPEN within 240 s is a hold timer expiry; a lost connection goes back to Active', () => {
    const h = new Harness();
    h.fire({ type: 'start' });
    h.fire({ type: 'tcp-connected', conn: { id: 1, direction: 'outgoing' } });
    h.clock.advance(239_000);
    assert.equal(h.state, 'OpenSent');
    h.clock.advance(1000);
    assert.deepEqual([h.state, notificationOf(h.lastSent())], ['Idle', [4, 0]]);

    const g = new Harness();
    g.fire({ type: 'start' });
    g.fire({ type: 'tcp-connected', conn: { id: 1, direction: 'outgoing' } });
    g.fire({ type: 'tcp-failed', conn: 1 });
    assert.deepEqual([g.state, g.timers.running('connect-retry'), g.timers.running('hold')], ['Active', true, false]);
  });

  it('OpenConfirm keeps sending KEEPALIVEs and expires without the peer\'s', () => {
    const h = new Harness();
    h.fire({ type: 'start' });
    h.fire({ type: 'tcp-connected', conn: { id: 1, direction: 'outgoing' } });
    h.fire({ type: 'message', conn: 1, message: peerOpen() });
    h.clock.advance(8000);
    assert.equal(h.state, 'OpenConfirm');
    assert.deepEqual(h.sentTypes(), ['open', 'keepalive', 'keepalive', 'keepalive']);
    h.clock.advance(1000);
    assert.deepEqual([h.state, notificationOf(h.lastSent())], ['Idle', [4, 0]]);
  });

  it('messages out of order are FSM errors with the state in the subcode (RFC 6608)', () => {
    const up: BgpMessage = { type: 'update', withdrawn: [], attributes: [], nlri: [] };
    const toOpenSent = (h: Harness): void => { h.fire({ type: 'start' }); h.fire({ type: 'tcp-connected', conn: { id: 1, direction: 'outgoing' } }); };
    const a = new Harness();
    toOpenSent(a);
    a.fire({ type: 'message', conn: 1, message: { type: 'keepalive' } });
    assert.deepEqual([a.state, notificationOf(a.lastSent())], ['Idle', [5, 1]]);
    const b = new Harness();
    toOpenSent(b);
    b.fire({ type: 'message', conn: 1, message: peerOpen() });
    b.fire({ type: 'message', conn: 1, message: up });
    assert.deepEqual([b.state, notificationOf(b.lastSent())], ['Idle', [5, 2]]);
    const c = new Harness();
    c.establish();
    c.fire({ type: 'message', conn: 1, message: peerOpen() });
    assert.deepEqual([c.state, notificationOf(c.lastSent())], ['Idle', [5, 3]]);
    const d = new Harness();
    d.fire({ type: 'start' });
    assert.equal(d.fire({ type: 'message', conn: 1, message: up }), 'unexpected-message');
    assert.equal(d.state, 'Idle');
  });

  it('a NOTIFICATION from the peer ends the session and says why, in words', () => {
    const h = new Harness();
    h.establish();
    h.fire({ type: 'message', conn: 1, message: { type: 'notification', code: 6, subcode: 2, data: Buffer.from('0b6d61696e74656e616e6365', 'hex') } });
    const down = h.events.find((a) => a.type === 'down');
    assert.ok(down?.type === 'down');
    assert.deepEqual([h.state, down.reason, down.detail], ['Idle', 'notification-received', 'Cease / Administrative Shutdown: "maintenance"']);
    assert.equal(h.sent.at(-1)?.message.type, 'keepalive', 'no NOTIFICATION answers a NOTIFICATION');

    const o = new Harness();
    o.fire({ type: 'start' });
    o.fire({ type: 'tcp-connected', conn: { id: 1, direction: 'outgoing' } });
    assert.equal(o.fire({ type: 'message', conn: 1, message: { type: 'notification', code: 2, subcode: 2, data: Buffer.alloc(0) } }), 'notification-received');
    assert.equal(o.state, 'Idle');
  });

  it('decode errors: the NOTIFICATION from the error, except RFC 7606 errors that let the session live', () => {
    const header = assertCodecError(() => decodeMessage(Buffer.alloc(19)), 'zero marker');
    const h = new Harness();
    h.fire({ type: 'start' });
    h.fire({ type: 'tcp-connected', conn: { id: 1, direction: 'outgoing' } });
    h.fire({ type: 'decode-error', conn: 1, error: header });
    assert.deepEqual([h.state, notificationOf(h.lastSent())], ['Idle', [1, 1]]);

    const bad = encodeMessage({
      type: 'update', withdrawn: [], nlri: ['203.0.113.0/24'],
      attributes: [{ type: 'origin', origin: 'igp' }, { type: 'as-path', segments: [] }, { type: 'next-hop', nextHop: '198.51.100.2' }],
    });
    bad[19 + 2 + 2 + 3] = 3; // ORIGIN value 3 does not exist: treat-as-withdraw
    const withdraw = assertCodecError(() => decodeMessage(bad), 'origin 3');
    const e = new Harness();
    e.establish();
    assert.equal(e.fire({ type: 'decode-error', conn: 1, error: withdraw }), 'update-error-tolerated');
    assert.equal(e.state, 'Established');
    assert.equal(e.events.at(-1)?.type, 'update-error');
    e.fire({ type: 'decode-error', conn: 1, error: header });
    assert.deepEqual([e.state, notificationOf(e.lastSent())], ['Idle', [1, 1]]);
  });

  it('Established hands UPDATEs and ROUTE-REFRESH to the shell and refuses a second connection', () => {
    const h = new Harness();
    h.establish();
    h.fire({ type: 'message', conn: 1, message: { type: 'update', withdrawn: ['203.0.113.1/32'], attributes: [], nlri: [] } });
    h.fire({ type: 'message', conn: 1, message: { type: 'route-refresh', afi: 2, safi: 1, subtype: 0 } });
    assert.deepEqual(h.events.slice(-2).map((a) => a.type), ['update', 'route-refresh']);
    assert.equal(h.fire({ type: 'tcp-connected', conn: { id: 2, direction: 'incoming' } }), 'connection-refused');
    assert.deepEqual(notificationOf(h.sent.find((x) => x.conn === 2)?.message), [6, 5]);
    assert.deepEqual([h.state, h.closed], ['Established', [2]]);
    // Every message from the peer restarts the hold timer.
    for (let i = 0; i < 5; i++) {
      h.clock.advance(8000);
      h.fire({ type: 'message', conn: 1, message: { type: 'update', withdrawn: [], attributes: [], nlri: [] } });
    }
    assert.equal(h.state, 'Established');
  });

  it('a manual stop sends Cease with the shutdown message and does not restart', () => {
    const h = new Harness();
    h.establish();
    assert.equal(h.fire({ type: 'stop', message: 'node drained' }), 'stopped');
    const n = h.lastSent();
    assert.ok(n?.type === 'notification');
    assert.deepEqual([n.code, n.subcode, n.data.subarray(1).toString()], [6, 2, 'node drained']);
    assert.equal(h.clock.pending, 0);
    h.clock.advance(3_600_000);
    assert.equal(h.state, 'Idle');
    assert.ok(h.events.some((a) => a.type === 'down' && a.reason === 'stopped'));
    for (const s of ['Connect', 'Active', 'OpenSent', 'OpenConfirm'] as const) {
      const g = new Harness({ passive: s === 'Active' });
      g.fire({ type: 'start' });
      if (s === 'OpenSent' || s === 'OpenConfirm') g.fire({ type: 'tcp-connected', conn: { id: 1, direction: 'outgoing' } });
      if (s === 'OpenConfirm') g.fire({ type: 'message', conn: 1, message: peerOpen() });
      assert.equal(g.state, s);
      g.fire({ type: 'stop' });
      assert.deepEqual([g.state, g.clock.pending], ['Idle', 0], s);
    }
  });

  it('Idle refuses connections and ignores stale timers', () => {
    const h = new Harness();
    assert.equal(h.fire({ type: 'tcp-connected', conn: { id: 5, direction: 'incoming' } }), 'connection-refused');
    assert.deepEqual(h.closed, [5]);
    assert.equal(h.fire({ type: 'timer', timer: 'hold' }), 'stale-event');
    h.establish();
    assert.equal(h.fire({ type: 'timer', timer: 'connect-retry' }), 'stale-event');
    assert.equal(h.fire({ type: 'message', conn: 99, message: { type: 'keepalive' } }), 'stale-event');
  });

  describe('connection collision (RFC 4271 §6.8)', () => {
    const collide = (remoteId: string, inConfirm: boolean): Harness => {
      const h = new Harness();
      h.fire({ type: 'start' });
      h.fire({ type: 'tcp-connected', conn: { id: 1, direction: 'outgoing' } });
      if (inConfirm) h.fire({ type: 'message', conn: 1, message: peerOpen({ bgpId: remoteId }) });
      assert.equal(h.fire({ type: 'tcp-connected', conn: { id: 2, direction: 'incoming' } }), 'collision-pending');
      assert.deepEqual(h.sentTypes(2), ['open']);
      h.fire({ type: 'message', conn: 2, message: peerOpen({ bgpId: remoteId }) });
      return h;
    };
    for (const inConfirm of [false, true]) {
      const where = inConfirm ? 'OpenConfirm' : 'OpenSent';
      it(`${where}: a peer with the higher identifier keeps its own connection`, () => {
        const h = collide('198.51.100.200', inConfirm);
        assert.equal(h.reasons.at(-1), 'collision-took-new');
        assert.deepEqual(notificationOf(h.sent.find((x) => x.conn === 1 && x.message.type === 'notification')?.message), [6, 7]);
        assert.deepEqual([h.state, h.s.conn?.id, h.closed], ['OpenConfirm', 2, [1]]);
        assert.equal(h.sentTypes(2).at(-1), 'keepalive');
        h.fire({ type: 'message', conn: 2, message: { type: 'keepalive' } });
        assert.equal(h.state, 'Established');
      });
      it(`${where}: a peer with the lower identifier loses its connection`, () => {
        const h = collide('198.51.100.1', inConfirm);
        assert.equal(h.reasons.at(-1), 'collision-kept-existing');
        assert.deepEqual(notificationOf(h.sent.find((x) => x.conn === 2 && x.message.type === 'notification')?.message), [6, 7]);
        assert.deepEqual([h.state, h.s.conn?.id, h.closed], [where, 1, [2]]);
      });
    }
    it('the winner is the connection opened by the higher identifier', () => {
      const out = { id: 1, direction: 'outgoing' } as const;
      const inc = { id: 2, direction: 'incoming' } as const;
      assert.equal(collisionWinner('198.51.100.11', '198.51.100.2', inc, out), out);
      assert.equal(collisionWinner('198.51.100.11', '198.51.100.20', out, inc), inc);
      assert.equal(collisionWinner('198.51.100.11', '198.51.100.20', out, { id: 3, direction: 'outgoing' }), out);
    });
  });

});

describe('bgp fsm coverage', () => {
  it('every RFC 4271 state transition Portico uses was driven above', () => {
    const expected = [
      'Idle->Connect', 'Idle->Active', 'Idle->Idle',
      'Connect->Connect', 'Connect->Active', 'Connect->OpenSent', 'Connect->Idle',
      'Active->Active', 'Active->Connect', 'Active->OpenSent', 'Active->Idle',
      'OpenSent->OpenSent', 'OpenSent->OpenConfirm', 'OpenSent->Active', 'OpenSent->Idle',
      'OpenConfirm->OpenConfirm', 'OpenConfirm->Established', 'OpenConfirm->Idle',
      'Established->Established', 'Established->Idle',
    ];
    assert.deepEqual(expected.filter((t) => !seen.has(t)), []);
  });
});

