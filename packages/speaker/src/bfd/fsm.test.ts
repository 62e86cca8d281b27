// The BFD state machine: single steps as a table (RFC 5880 §6.8.6 transitions,
// §6.8.3 timer rules), then two sessions joined by a fake link on a fake clock
// (coming Up, detection time, a Poll Sequence for a timer change, admin down,
// passive role). No sleeps: time moves only through FakeClock.advance().
import { strict as assert } from 'node:assert';
import { FakeClock } from '../bgp/clock.ts';
import { detectionTime, initialVars, jittered, step, transmitInterval, SLOW_TX_US, type BfdAction, type BfdConfig, type BfdEvent, type BfdVars } from './fsm.ts';
import { checkReceived, decodeControl, Diag, type BfdState, type ControlPacket } from './packet.ts';
import { BfdSession, type StateChange } from './session.ts';

const FAST: BfdConfig = { desiredMinTxUs: 50_000, requiredMinRxUs: 50_000, detectMult: 3, passive: false };
const noJitter = (): number => 0;

const peer = (state: BfdState, extra: Partial<ControlPacket> = {}): ControlPacket => ({
  diag: 0, state, poll: false, final: false, controlPlaneIndependent: false, demand: false, multipoint: false,
  detectMult: 3, myDiscriminator: 0xbeef, yourDiscriminator: 7, desiredMinTxInterval: 300_000, requiredMinRxInterval: 300_000,
  requiredMinEchoRxInterval: 0, ...extra,
});

const sends = (a: BfdAction[]): ControlPacket[] => a.flatMap((x) => (x.type === 'send' ? [x.packet] : []));
const states = (a: BfdAction[]): string[] => a.flatMap((x) => (x.type === 'state' ? [`${x.from}->${x.to}`] : []));

describe('bfd state machine: single steps (RFC 5880 §6.8.6)', () => {
  const base = initialVars(FAST, 7);
  const inState = (state: BfdState, extra: Partial<BfdVars> = {}): BfdVars => ({ ...base, state, remoteDiscr: 0xbeef, ...extra });
  const cases: { name: string; vars: BfdVars; event: BfdEvent; state: BfdState; reason: string; diag?: number; check?: (a: BfdAction[], v: BfdVars) => void }[] = [
    { name: 'Down + remote Down -> Init', vars: base, event: { type: 'packet', packet: peer('Down', { yourDiscriminator: 0 }) }, state: 'Init', reason: 'remote-down' },
    { name: 'Down + remote Init -> Up, poll to leave the slow rate', vars: base, event: { type: 'packet', packet: peer('Init') }, state: 'Up', reason: 'remote-init',
      check: (a, v) => { assert.equal(v.polling, true); assert.equal(sends(a).at(-1)?.poll, true); assert.equal(sends(a).at(-1)?.desiredMinTxInterval, 50_000); } },
    { name: 'Down + remote Up stays Down', vars: base, event: { type: 'packet', packet: peer('Up') }, state: 'Down', reason: 'packet-received' },
    { name: 'Init + remote Up -> Up', vars: inState('Init'), event: { type: 'packet', packet: peer('Up') }, state: 'Up', reason: 'remote-up' },
    { name: 'Init + remote Init -> Up', vars: inState('Init'), event: { type: 'packet', packet: peer('Init') }, state: 'Up', reason: 'remote-init' },
    { name: 'Init + remote Down stays Init', vars: inState('Init'), event: { type: 'packet', packet: peer('Down') }, state: 'Init', reason: 'packet-received' },
    { name: 'Up + remote Down -> Down, diag 3', vars: inState('Up'), event: { type: 'packet', packet: peer('Down') }, state: 'Down', reason: 'remote-down', diag: Diag.neighborSignaledDown,
      check: (_a, v) => assert.equal(v.desiredMinTxUs, SLOW_TX_US) },
    { name: 'Up + remote AdminDown -> Down, diag 3', vars: inState('Up'), event: { type: 'packet', packet: peer('AdminDown') }, state: 'Down', reason: 'remote-admin-down', diag: Diag.neighborSignaledDown },
    { name: 'Down + remote AdminDown stays Down, sends nothing extra', vars: base, event: { type: 'packet', packet: peer('AdminDown') }, state: 'Down', reason: 'packet-received',
      check: (a) => assert.deepEqual(states(a), []) },
    { name: 'AdminDown discards every packet', vars: inState('AdminDown'), event: { type: 'packet', packet: peer('Init') }, state: 'AdminDown', reason: 'discarded-admin-down',
      check: (a) => assert.deepEqual(a, []) },
    { name: 'a Poll is answered at once with F and without P', vars: inState('Up', { polling: true, desiredMinTxUs: 50_000 }), event: { type: 'packet', packet: peer('Up', { poll: true }) }, state: 'Up', reason: 'poll-answered',
      check: (a) => { const p = sends(a); assert.equal(p.length, 1); assert.equal(p[0]!.final, true); assert.equal(p[0]!.poll, false); } },
    { name: 'F ends our Poll Sequence and applies the held intervals', vars: inState('Up', { polling: true, txInUseUs: 10_000, desiredMinTxUs: 50_000, rxInUseUs: 900_000 }), event: { type: 'packet', packet: peer('Up', { final: true }) }, state: 'Up', reason: 'poll-finished',
      check: (_a, v) => { assert.equal(v.polling, false); assert.equal(v.txInUseUs, 50_000); assert.equal(v.rxInUseUs, 50_000); } },
    { name: 'detection timer in Up -> Down, diag 1, remote forgotten', vars: inState('Up'), event: { type: 'detect-timer' }, state: 'Down', reason: 'detection-time-expired', diag: Diag.controlDetectionTimeExpired,
      check: (a, v) => { assert.equal(v.remoteDiscr, 0); assert.equal(sends(a)[0]?.yourDiscriminator, 0); assert.equal(sends(a)[0]?.diag, 1); } },
    { name: 'detection timer in Down only forgets the remote', vars: inState('Down'), event: { type: 'detect-timer' }, state: 'Down', reason: 'detection-time-expired-while-down' },
    { name: 'admin down: diag 7, told to the peer', vars: inState('Up'), event: { type: 'admin-down' }, state: 'AdminDown', reason: 'admin-down', diag: Diag.administrativelyDown,
      check: (a) => assert.equal(sends(a)[0]?.state, 'AdminDown') },
    { name: 'admin up -> Down', vars: inState('AdminDown'), event: { type: 'admin-up' }, state: 'Down', reason: 'admin-up' },
    { name: 'passive: start sends nothing', vars: initialVars({ ...FAST, passive: true }, 7), event: { type: 'start' }, state: 'Down', reason: 'passive-waiting',
      check: (a) => assert.deepEqual(a, []) },
    { name: 'passive: the first packet starts transmission', vars: initialVars({ ...FAST, passive: true }, 7), event: { type: 'packet', packet: peer('Up') }, state: 'Down', reason: 'packet-received',
      check: (a) => assert.equal(sends(a).length, 1) },
    { name: 'Required Min RX 0 from the remote: no periodic packets', vars: inState('Up', { remoteMinRxUs: 0 }), event: { type: 'tx-timer' }, state: 'Up', reason: 'remote-wants-no-packets', check: (a) => assert.deepEqual(sends(a), []) },
    { name: 'timer change while Up: Poll, a faster TX at once, a shorter RX only after F', vars: inState('Up', { desiredMinTxUs: 50_000, txInUseUs: 50_000 }), event: { type: 'configure', config: { ...FAST, desiredMinTxUs: 10_000, requiredMinRxUs: 10_000 } }, state: 'Up', reason: 'poll-started',
      check: (a, v) => { assert.equal(sends(a)[0]?.poll, true); assert.equal(sends(a)[0]?.requiredMinRxInterval, 10_000); assert.equal(v.txInUseUs, 10_000); assert.equal(v.rxInUseUs, 50_000); } },
    { name: 'timer change while Up: a slower TX waits for F', vars: inState('Up', { desiredMinTxUs: 50_000, txInUseUs: 50_000 }), event: { type: 'configure', config: { ...FAST, desiredMinTxUs: 300_000, requiredMinRxUs: 300_000 } }, state: 'Up', reason: 'poll-started',
      check: (_a, v) => { assert.equal(v.txInUseUs, 50_000); assert.equal(v.rxInUseUs, 300_000); assert.equal(v.desiredMinTxUs, 300_000); } },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const before = structuredClone(c.vars);
      const r = step(c.vars, c.event, noJitter);
      assert.deepEqual(c.vars, before, 'step() must not modify its input');
      assert.equal(r.vars.state, c.state);
      assert.equal(r.reason, c.reason);
      if (c.diag !== undefined) assert.equal(r.vars.localDiag, c.diag);
      for (const p of sends(r.actions)) assert.ok(!(p.poll && p.final), 'never P and F together');
      c.check?.(r.actions, r.vars);
    });
  }

  it('detection time is the remote multiplier x max(our RX, their TX); the TX interval max(our TX, their RX)', () => {
    const v = { ...initialVars(FAST, 7), state: 'Up' as const, desiredMinTxUs: 50_000, txInUseUs: 50_000, remoteDetectMult: 5, remoteDesiredMinTxUs: 300_000, remoteMinRxUs: 200_000 };
    assert.equal(detectionTime(v), 1_500_000);
    assert.equal(detectionTime({ ...v, remoteDesiredMinTxUs: 10_000 }), 250_000);
    assert.equal(transmitInterval(v), 200_000);
    assert.equal(transmitInterval({ ...v, remoteMinRxUs: 1 }), 50_000);
  });

  it('jitter: 0-25% shorter, 10-25% with Detect Mult 1 (RFC 5880 §6.8.7)', () => {
    assert.equal(jittered(100_000, 3, () => 0), 100_000);
    assert.equal(jittered(100_000, 3, () => 0.999_999), 75_000);
    assert.equal(jittered(100_000, 1, () => 0), 90_000);
    assert.equal(jittered(100_000, 1, () => 0.999_999), 75_000);
  });
});

/** Two sessions joined by a link with a 1 ms delay, on one fake clock. */
function pair(a: BfdConfig, b: BfdConfig) {
  const clock = new FakeClock();
  const link = { up: true };
  const changes: Record<'a' | 'b', StateChange[]> = { a: [], b: [] };
  const wire: Record<'a' | 'b', ControlPacket[]> = { a: [], b: [] };
  const sessions = {} as Record<'a' | 'b', BfdSession>;
  const deliver = (to: 'a' | 'b', from: 'a' | 'b') => (bytes: Buffer): void => {
    const p = decodeControl(bytes);
    wire[from].push(p);
    if (!link.up) return;
    clock.setTimeout(() => { if (link.up && checkReceived(p) === undefined) sessions[to].receive(p); }, 1);
  };
  sessions.a = new BfdSession({ config: a, localDiscr: 0xa, clock, rng: noJitter, send: deliver('b', 'a'), onStateChange: (c) => changes.a.push(c) });
  sessions.b = new BfdSession({ config: b, localDiscr: 0xb, clock, rng: noJitter, send: deliver('a', 'b'), onStateChange: (c) => changes.b.push(c) });
  return { clock, link, changes, wire, ...sessions };
}

describe('bfd sessions on a fake link and clock', () => {
  it('come Up within two slow-rate intervals, then run at the agreed rates', () => {
    const s = pair(FAST, { ...FAST, desiredMinTxUs: 300_000, requiredMinRxUs: 300_000 });
    s.a.start(); s.b.start();
    s.clock.advance(20);
    assert.equal(s.a.state, 'Up');
    assert.equal(s.b.state, 'Up');
    assert.deepEqual(s.changes.a.map((c) => c.to), ['Init', 'Up']);
    s.clock.advance(2000);
    // a sends at max(50 ms, b's 300 ms RX); b at max(300, 50); detection = 3 x max(own RX, remote TX).
    assert.deepEqual([s.a.snapshot().transmitIntervalMs, s.b.snapshot().transmitIntervalMs], [300, 300]);
    assert.deepEqual([s.a.snapshot().detectionTimeMs, s.b.snapshot().detectionTimeMs], [900, 900]);
    assert.equal(s.a.vars.polling, false, 'the poll leaving the slow rate was answered');
    const sent = s.a.snapshot().packetsSent;
    s.clock.advance(3000);
    const rate = s.a.snapshot().packetsSent - sent;
    assert.ok(rate >= 9 && rate <= 11, `a sent ${rate} packets in 3 s at 300 ms`);
  });

  it('a cut link takes both Down with diag 1 after the detection time, not before', () => {
    const s = pair(FAST, FAST);
    s.a.start(); s.b.start();
    s.clock.advance(2000);
    assert.equal(s.a.state, 'Up');
    assert.equal(s.a.snapshot().detectionTimeMs, 150);
    const cut = s.clock.now();
    s.link.up = false;
    s.clock.advance(100);
    assert.equal(s.a.state, 'Up', 'still Up before the detection time');
    s.clock.advance(60);
    assert.equal(s.a.state, 'Down');
    const down = s.changes.a.at(-1)!;
    assert.equal(down.reason, 'detection-time-expired');
    assert.equal(down.diag, Diag.controlDetectionTimeExpired);
    assert.ok(down.at - cut <= 150 && down.at - cut > 100, `down ${down.at - cut} ms after the cut`);
    assert.equal(s.a.snapshot().flaps, 1);
    assert.equal(s.a.snapshot().upSince, undefined);
    // The link heals: Up again from scratch.
    s.link.up = true;
    s.clock.advance(4000);
    assert.equal(s.a.state, 'Up');
    assert.equal(s.b.state, 'Up');
  });

  it('a timer change on one side runs a Poll Sequence and keeps the session Up', () => {
    const s = pair(FAST, FAST);
    s.a.start(); s.b.start();
    s.clock.advance(2000);
    const from = s.wire.b.length;
    s.b.configure({ ...FAST, desiredMinTxUs: 300_000, requiredMinRxUs: 300_000 });
    s.clock.advance(10);
    const afterB = s.wire.b.slice(from);
    assert.ok(afterB[0]?.poll && afterB[0].desiredMinTxInterval === 300_000, 'b polls with its new values');
    assert.ok(s.wire.a.some((p) => p.final), 'a answers with F');
    assert.equal(s.b.vars.polling, false);
    s.clock.advance(2000);
    assert.deepEqual(s.changes.a.map((c) => c.to), ['Init', 'Up'], 'no flap');
    assert.equal(s.a.snapshot().detectionTimeMs, 900);
    assert.equal(s.b.snapshot().transmitIntervalMs, 300);
  });

  it('admin down on one side: the other goes Down with diag 3 and stays Down until admin up', () => {
    const s = pair(FAST, FAST);
    s.a.start(); s.b.start();
    s.clock.advance(2000);
    s.b.adminDown();
    s.clock.advance(5);
    assert.equal(s.a.state, 'Down');
    assert.equal(s.changes.a.at(-1)?.reason, 'remote-admin-down');
    assert.equal(s.a.vars.localDiag, Diag.neighborSignaledDown);
    s.clock.advance(5000);
    assert.equal(s.a.state, 'Down', 'stays Down while the peer is AdminDown');
    assert.equal(s.b.state, 'AdminDown');
    s.b.adminUp();
    s.clock.advance(3000);
    assert.equal(s.a.state, 'Up');
    assert.equal(s.b.state, 'Up');
  });

  it('a passive session is silent until the active one speaks', () => {
    const s = pair(FAST, { ...FAST, passive: true });
    s.b.start();
    s.clock.advance(5000);
    assert.equal(s.wire.b.length, 0);
    s.a.start();
    s.clock.advance(2000);
    assert.equal(s.b.state, 'Up');
    assert.ok(s.wire.b.length > 0);
  });

  it('stop() cancels every timer', () => {
    const s = pair(FAST, FAST);
    s.a.start(); s.b.start();
    s.clock.advance(1000);
    s.a.stop(); s.b.stop();
    s.clock.advance(10);
    assert.equal(s.clock.pending, 0);
  });
});
