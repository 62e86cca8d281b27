import { strict as assert } from 'node:assert';
import { sealHeartbeat } from './heartbeat.ts';
import { Membership, silenceMs, starvedDeadAfter, type HeartbeatTransport, type MembershipClock, type SilentVerdict } from './membership.ts';

/** A clock whose time moves only when the test says so; timers fire in order. */
class FakeClock implements MembershipClock {
  t = 1_000;
  wall = 1_700_000_000_000;
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private nextId = 1;
  /** Datagrams "queued in the socket" while the process stalls; afterIO runs once they are delivered. */
  pendingIO: (() => void)[] = [];
  now(): number { return this.t; }
  afterIO(fn: () => void): void { if (this.stallIO) this.pendingIO.push(fn); else fn(); }
  flushIO(): void { const q = this.pendingIO; this.pendingIO = []; for (const f of q) f(); }
  wallNow(): number { return this.wall + this.t; }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.push({ at: this.t + ms, fn, id });
    return id;
  }
  clearTimeout(h: unknown): void { this.timers = this.timers.filter((x) => x.id !== h); }
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at);
      const next = this.timers[0];
      if (!next || next.at > end) break;
      this.timers.shift();
      // An overdue timer (after `t += ms`, a stall) runs late, at the present time.
      this.t = Math.max(this.t, next.at);
      next.fn();
    }
    this.t = end;
  }
  stallIO = false;
}

/** Datagrams between speakers by address; a cut address neither sends nor receives; a held address gets its datagrams later (a stalled process). */
class Bus {
  readonly handlers = new Map<string, (d: Buffer, from: string) => void>();
  readonly cut = new Set<string>();
  readonly held = new Map<string, (() => void)[]>();
  transport(address: string): HeartbeatTransport {
    return {
      send: (d, to) => {
        if (this.cut.has(address) || this.cut.has(to)) return;
        const deliver = (): void => this.handlers.get(to)?.(Buffer.from(d), address);
        const queue = this.held.get(to);
        if (queue) queue.push(deliver);
        else deliver();
      },
      onMessage: (h) => { this.handlers.set(address, h); },
      close: async () => { this.handlers.delete(address); },
    };
  }
}

const KEY = Buffer.from('portico test key');
const ADDR: Record<string, string> = { 'node-1': '198.51.100.11', 'node-2': '198.51.100.12', 'node-3': '198.51.100.13' };
const peersOf = (): Map<string, string[]> => new Map(Object.entries(ADDR).map(([n, a]) => [n, [a]]));

function cluster(clock: FakeClock, bus: Bus, names = Object.keys(ADDR), keys: () => Uint8Array[] = () => [KEY]) {
  const changes = new Map<string, string[][]>();
  const ms = new Map(names.map((n) => {
    changes.set(n, []);
    const m = new Membership({ self: n, transport: bus.transport(ADDR[n]!), keys, clock, onChange: (live) => changes.get(n)!.push([...live].sort()) });
    m.setPeers(peersOf());
    return [n, m] as const;
  }));
  for (const m of ms.values()) m.start();
  return { ms, changes };
}

const liveOf = (m: Membership): string[] => [...m.live()].sort();

describe('membership: heartbeats and liveness', () => {
  it('three speakers see each other within one interval and are settled after dead-after', () => {
    const clock = new FakeClock();
    const { ms } = cluster(clock, new Bus());
    assert.equal(ms.get('node-1')!.settled(), false);
    clock.advance(100);
    for (const m of ms.values()) assert.deepEqual(liveOf(m), ['node-1', 'node-2', 'node-3']);
    clock.advance(300);
    assert.equal(ms.get('node-1')!.settled(), true);
    assert.deepEqual([...ms.get('node-1')!.reasons()], [['node-1', 'self'], ['node-2', 'alive'], ['node-3', 'alive']]);
  });

  it('a crashed peer is dead after 4 missed intervals, not before, and the change is reported at once', () => {
    const clock = new FakeClock();
    const { ms, changes } = cluster(clock, new Bus());
    clock.advance(1000);
    changes.get('node-1')!.length = 0;
    void ms.get('node-3')!.stop('silent');
    clock.advance(300);
    assert.deepEqual(liveOf(ms.get('node-1')!), ['node-1', 'node-2', 'node-3'], 'still live after 3 missed heartbeats');
    clock.advance(200);
    assert.deepEqual(liveOf(ms.get('node-1')!), ['node-1', 'node-2']);
    assert.equal(ms.get('node-1')!.reasons().get('node-3'), 'silent');
    assert.deepEqual(changes.get('node-1'), [['node-1', 'node-2']]);
  });

  it('counts heartbeats it sent late (its own thread stalled) and heartbeats that arrived late (old timestamp)', () => {
    const clock = new FakeClock();
    const bus = new Bus();
    const { ms } = cluster(clock, bus, ['node-1']);
    const m = ms.get('node-1')!;
    clock.advance(1000);
    assert.equal(m.counters.lateSent, 0);
    let stall = 0;
    const now = clock.now.bind(clock);
    clock.now = () => now() + stall;
    stall = 350; // the next timer runs 350 ms after it was due
    clock.advance(100);
    assert.equal(m.counters.lateSent, 1);
    clock.advance(1000);
    assert.equal(m.counters.lateSent, 1, 'on time again');
    const deliver = bus.handlers.get(ADDR['node-1']!)!;
    deliver(sealHeartbeat({ node: 'node-2', incarnation: 1, sequence: 1, timestamp: clock.wallNow() - 50, leaving: false }, KEY), ADDR['node-2']!);
    deliver(sealHeartbeat({ node: 'node-2', incarnation: 1, sequence: 2, timestamp: clock.wallNow() - 300, leaving: false }, KEY), ADDR['node-2']!);
    assert.equal(m.counters.accepted, 2);
    assert.equal(m.counters.lateReceived, 1);
  });

  it('a speaker that stalled (heartbeats queued in its socket) reads them before judging: no false death', () => {
    const clock = new FakeClock();
    const bus = new Bus();
    const { ms, changes } = cluster(clock, bus, ['node-1']);
    const m = ms.get('node-1')!;
    const deliver = bus.handlers.get(ADDR['node-1']!)!;
    let seq = 0;
    const beat = (node: string): void => deliver(sealHeartbeat({ node, incarnation: 1, sequence: ++seq, timestamp: clock.wallNow(), leaving: false }, KEY), ADDR[node]!);
    clock.advance(500);
    beat('node-2');
    beat('node-3');
    assert.deepEqual(liveOf(m), ['node-1', 'node-2', 'node-3']);
    changes.get('node-1')!.length = 0;
    // node-1's loop is blocked for 600 ms (no timer runs); the peers' heartbeats wait in its socket.
    clock.t += 600;
    clock.stallIO = true;
    clock.advance(0); // the loop resumes: the overdue tick runs first ...
    beat('node-2'); // ... then the queued datagrams are read ...
    beat('node-3');
    clock.flushIO(); // ... then the deferred judgement.
    clock.stallIO = false;
    assert.deepEqual(liveOf(m), ['node-1', 'node-2', 'node-3']);
    assert.deepEqual(changes.get('node-1'), [], 'never reported a peer dead');
  });

  it('a node cut off the segment sees itself alone and the others drop it; reconnected, all agree again', () => {
    const clock = new FakeClock();
    const bus = new Bus();
    const { ms } = cluster(clock, bus);
    clock.advance(1000);
    bus.cut.add(ADDR['node-2']!);
    clock.advance(500);
    assert.deepEqual(liveOf(ms.get('node-2')!), ['node-2']);
    assert.deepEqual(liveOf(ms.get('node-1')!), ['node-1', 'node-3']);
    bus.cut.clear();
    clock.advance(100);
    for (const m of ms.values()) assert.deepEqual(liveOf(m), ['node-1', 'node-2', 'node-3']);
  });

  it('a graceful leave drops the node at once; a planned restart holds it for restartHoldMs', async () => {
    const clock = new FakeClock();
    const { ms } = cluster(clock, new Bus());
    clock.advance(1000);
    await ms.get('node-3')!.stop('leave');
    assert.equal(ms.get('node-1')!.reasons().get('node-3'), 'left');
    assert.deepEqual(liveOf(ms.get('node-1')!), ['node-1', 'node-2']);
    await ms.get('node-2')!.stop('restart');
    assert.equal(ms.get('node-1')!.reasons().get('node-2'), 'restarting');
    clock.advance(14_900);
    assert.deepEqual(liveOf(ms.get('node-1')!), ['node-1', 'node-2']);
    clock.advance(200);
    assert.deepEqual(liveOf(ms.get('node-1')!), ['node-1']);
  });

  it('a restarted speaker (new incarnation, sequence from 1) is accepted again', async () => {
    const clock = new FakeClock();
    const bus = new Bus();
    const { ms } = cluster(clock, bus);
    clock.advance(1000);
    await ms.get('node-2')!.stop('restart');
    clock.advance(2000);
    const again = new Membership({ self: 'node-2', transport: bus.transport(ADDR['node-2']!), keys: () => [KEY], clock });
    again.setPeers(peersOf());
    again.start();
    clock.advance(100);
    assert.equal(ms.get('node-1')!.reasons().get('node-2'), 'alive');
    assert.deepEqual(liveOf(again), ['node-1', 'node-2', 'node-3']);
  });

  it('drops and counts malformed, forged, replayed, stale and unknown heartbeats without changing liveness', () => {
    const clock = new FakeClock();
    const bus = new Bus();
    const { ms } = cluster(clock, bus, ['node-1']);
    const m = ms.get('node-1')!;
    clock.advance(500);
    const deliver = bus.handlers.get(ADDR['node-1']!)!;
    const hb = (over: Partial<Parameters<typeof sealHeartbeat>[0]> = {}, key: Uint8Array = KEY): Buffer =>
      sealHeartbeat({ node: 'node-2', incarnation: 5, sequence: 1, timestamp: clock.wallNow(), leaving: false, ...over }, key);
    deliver(Buffer.from('not a heartbeat'), '203.0.113.66');
    deliver(hb({}, Buffer.from('wrong key')), '203.0.113.66');
    deliver(hb({ timestamp: clock.wallNow() - 60_000 }), '203.0.113.66');
    deliver(hb({ node: 'node-9' }), '203.0.113.66');
    deliver(hb({ node: 'node-1' }), '203.0.113.66');
    assert.deepEqual(liveOf(m), ['node-1']);
    const good = hb({ sequence: 7 });
    deliver(good, ADDR['node-2']!);
    assert.deepEqual(liveOf(m), ['node-1', 'node-2']);
    deliver(good, ADDR['node-2']!);
    deliver(hb({ sequence: 10 }), ADDR['node-2']!);
    assert.deepEqual(m.counters.dropped, { malformed: 1, 'bad-mac': 1, stale: 1, 'unknown-node': 1, self: 1, replay: 1, 'no-key': 0 });
    assert.equal(m.counters.accepted, 2);
    assert.equal(m.counters.lost, 2, 'sequence 7 -> 10 lost two heartbeats');
  });

  it('without a key it sends nothing and accepts nothing', () => {
    const clock = new FakeClock();
    const { ms } = cluster(clock, new Bus(), ['node-1', 'node-2'], () => []);
    clock.advance(1000);
    assert.deepEqual(liveOf(ms.get('node-1')!), ['node-1']);
    assert.equal(ms.get('node-1')!.counters.sent, 0);
  });

  it('liveness needs no API server: with Nodes from the last World only, heartbeats keep every node live for minutes', () => {
    const clock = new FakeClock();
    const { ms, changes } = cluster(clock, new Bus());
    clock.advance(1000);
    changes.get('node-1')!.length = 0;
    clock.advance(60_000);
    assert.deepEqual(liveOf(ms.get('node-1')!), ['node-1', 'node-2', 'node-3']);
    assert.deepEqual(changes.get('node-1'), []);
  });

  it('a node removed from the World is forgotten; one added starts as never-heard', () => {
    const clock = new FakeClock();
    const { ms } = cluster(clock, new Bus());
    clock.advance(500);
    const m = ms.get('node-1')!;
    m.setPeers(new Map([['node-1', ['198.51.100.11']], ['node-2', ['198.51.100.12']], ['node-4', ['198.51.100.14']]]));
    assert.deepEqual([...m.reasons()], [['node-1', 'self'], ['node-2', 'alive'], ['node-4', 'joining']]);
    assert.ok(m.live().has('node-4'), 'a node just learnt of counts as live until it had time to be heard');
    clock.advance(400);
    assert.deepEqual([...m.reasons()], [['node-1', 'self'], ['node-2', 'alive'], ['node-4', 'never-heard']]);
    assert.ok(!m.live().has('node-4'));
    m.setPeers(new Map([['node-1', ['198.51.100.11']], ['node-5', []]]));
    assert.deepEqual([...m.reasons()], [['node-1', 'self'], ['node-5', 'no-address']]);
  });

  it('a speaker that learns its peers late (World after start) does not see itself alone: its first view holds every peer live', () => {
    const clock = new FakeClock();
    const bus = new Bus();
    const { ms } = cluster(clock, bus, ['node-1', 'node-3']);
    clock.advance(1000);
    const late = new Membership({ self: 'node-2', transport: bus.transport(ADDR['node-2']!), keys: () => [KEY], clock });
    late.start();
    clock.advance(2000);
    assert.equal(late.settled(), true);
    late.setPeers(peersOf());
    assert.deepEqual(liveOf(late), ['node-1', 'node-2', 'node-3']);
    clock.advance(100);
    assert.deepEqual([...late.reasons()], [['node-1', 'alive'], ['node-2', 'self'], ['node-3', 'alive']]);
    assert.ok(ms.get('node-1')!.live().has('node-2'));
  });
});

describe('membership: a starved sender is told from a crashed one by its own heartbeats', () => {
  const rule = { intervalMs: 100, deadAfterMs: 400, maxDeadAfterMs: 1600, lateMemoryMs: 60_000 };
  const table: { name: string; late: { at: number; gapMs: number }[]; now: number; want: number }[] = [
    { name: 'never late: the plain dead-after', late: [], now: 10_000, want: 400 },
    { name: 'sent 900 ms late a while ago: that gap and an interval', late: [{ at: 5_000, gapMs: 900 }], now: 10_000, want: 1000 },
    { name: 'the worst recent gap counts', late: [{ at: 5_000, gapMs: 600 }, { at: 6_000, gapMs: 800 }, { at: 7_000, gapMs: 300 }], now: 10_000, want: 900 },
    { name: 'a 3 s stall: capped at max-dead-after', late: [{ at: 5_000, gapMs: 3_000 }], now: 10_000, want: 1600 },
    { name: 'a small late send never shortens dead-after', late: [{ at: 5_000, gapMs: 200 }], now: 10_000, want: 400 },
    { name: 'late more than lateMemoryMs ago: forgotten', late: [{ at: 5_000, gapMs: 900 }], now: 65_001, want: 400 },
  ];
  for (const t of table) it(`${t.name}: ${t.want} ms`, () => assert.equal(starvedDeadAfter(t.late, t.now, rule), t.want));

  /** node-1 alone, hearing node-2 through `beat` (node-2's sequence and its own clock at sending). */
  function listener() {
    const clock = new FakeClock();
    const bus = new Bus();
    const { ms } = cluster(clock, bus, ['node-1']);
    const m = ms.get('node-1')!;
    const deliver = bus.handlers.get(ADDR['node-1']!)!;
    let seq = 0;
    let incarnation = 7;
    const beat = (skip = 0): void => { seq += 1 + skip; deliver(sealHeartbeat({ node: 'node-2', incarnation, sequence: seq, timestamp: clock.wallNow(), leaving: false }, KEY), ADDR['node-2']!); };
    const restart = (): void => { incarnation++; seq = 0; };
    /** node-2 sends every interval for ms. */
    const steady = (ms: number): void => { for (let t = 0; t < ms; t += 100) { beat(); clock.advance(100); } };
    return { clock, m, beat, steady, restart, reason: () => m.reasons().get('node-2') };
  }

  it('scenario: a starved peer is taken for dead once; starved again within the memory it stays alive; its crash is then found within its worst gap plus an interval', () => {
    const { clock, m, beat, steady, reason } = listener();
    steady(1000);
    assert.equal(reason(), 'alive');
    clock.advance(900); // node-2's heartbeat thread waits 900 ms for a CPU: nothing is sent
    assert.equal(reason(), 'silent', 'the first starvation looks like a crash (nothing tells them apart yet)');
    beat(); // its next heartbeat: consecutive sequence, sent 1 s after the previous on its own clock
    assert.equal(reason(), 'alive');
    assert.equal(m.counters.starvedPeer, 1);
    steady(2000);
    clock.advance(900); // starved again
    assert.equal(reason(), 'alive', 'a peer seen starving gets its worst gap as grace');
    beat();
    steady(1000);
    // Now it crashes (its last heartbeat went out 100 ms ago): its worst gap was 1000 ms, plus an interval.
    clock.advance(999);
    assert.equal(reason(), 'alive');
    clock.advance(2);
    assert.equal(reason(), 'silent');
  });

  it('scenario: lost heartbeats (gaps in the sequence) are the network, not the sender: the crash of a lossy peer is found at dead-after', () => {
    const { clock, m, beat, steady, reason } = listener();
    steady(1000);
    for (let i = 0; i < 5; i++) { clock.advance(300); beat(2); } // two of every three lost
    assert.equal(m.counters.starvedPeer, 0);
    assert.ok(m.counters.lost >= 10);
    clock.advance(399);
    assert.equal(reason(), 'alive');
    clock.advance(2);
    assert.equal(reason(), 'silent', 'no longer grace for a lossy peer');
  });

  it('scenario: a restarted peer (new incarnation) starts with no grace: its crash is found at dead-after', () => {
    const { clock, m, beat, steady, restart, reason } = listener();
    steady(1000);
    clock.advance(900);
    beat();
    assert.equal(m.counters.starvedPeer, 1);
    restart();
    steady(1000);
    clock.advance(299); // 100 ms since its last heartbeat already: 399 in all
    assert.equal(reason(), 'alive');
    clock.advance(2);
    assert.equal(reason(), 'silent', 'what was learnt of the old incarnation went with it');
  });
});

describe('membership: the time this speaker itself stalled is not the peers\' silence', () => {
  const table: { name: string; heardAt: number; now: number; stalls: { at: number; ms: number }[]; want: number }[] = [
    { name: 'no stall: the plain time since heard', heardAt: 1_000, now: 1_500, stalls: [], want: 500 },
    { name: 'a stall inside the silence is not counted', heardAt: 1_000, now: 2_000, stalls: [{ at: 1_900, ms: 800 }], want: 200 },
    { name: 'a stall that began before the heartbeat counts from the heartbeat on', heardAt: 1_000, now: 1_500, stalls: [{ at: 1_100, ms: 600 }], want: 400 },
    { name: 'a stall before the heartbeat does not count', heardAt: 1_000, now: 1_500, stalls: [{ at: 900, ms: 600 }], want: 500 },
    { name: 'several stalls add up', heardAt: 1_000, now: 2_000, stalls: [{ at: 1_300, ms: 200 }, { at: 1_800, ms: 300 }], want: 500 },
    { name: 'an ongoing stall (ending now) is not counted', heardAt: 1_000, now: 1_700, stalls: [{ at: 1_700, ms: 650 }], want: 50 },
  ];
  for (const t of table) it(`${t.name}: ${t.want} ms`, () => assert.equal(silenceMs(t.heardAt, t.now, t.stalls), t.want));

  /** node-1 alone, hearing node-2 through `beat`; its silent verdicts recorded. */
  function listener() {
    const clock = new FakeClock();
    const bus = new Bus();
    const verdicts: SilentVerdict[] = [];
    const m = new Membership({ self: 'node-1', transport: bus.transport(ADDR['node-1']!), keys: () => [KEY], clock, onSilent: (v) => verdicts.push(v) });
    m.setPeers(peersOf());
    m.start();
    const deliver = bus.handlers.get(ADDR['node-1']!)!;
    let seq = 0;
    const beat = (): void => { deliver(sealHeartbeat({ node: 'node-2', incarnation: 3, sequence: ++seq, timestamp: clock.wallNow(), leaving: false }, KEY), ADDR['node-2']!); };
    const steady = (ms: number): void => { for (let t = 0; t < ms; t += 100) { beat(); clock.advance(100); } };
    return { clock, m, beat, steady, verdicts, reason: () => m.reasons().get('node-2') };
  }

  it('scenario: the whole machine stalls 900 ms (sender and listener alike): the peer stays alive, its overdue heartbeat arrives after the listener woke', () => {
    const { clock, m, beat, steady, verdicts, reason } = listener();
    steady(1000);
    clock.t += 900; // nobody runs: no timer fires, nothing is sent
    clock.advance(0); // the listener wakes first: its overdue tick judges ...
    assert.equal(reason(), 'alive', 'its own 900 ms stall is not the peer\'s silence');
    clock.advance(30);
    beat(); // ... the peer wakes 30 ms later and sends its overdue heartbeat
    clock.advance(100);
    assert.equal(reason(), 'alive');
    assert.deepEqual(verdicts, []);
    assert.ok(m.counters.selfStalls >= 1);
  });

  it('scenario: a crash is still found after dead-after of the listener\'s own running time, with the stall reported', () => {
    const { clock, beat, steady, verdicts, reason } = listener();
    steady(1000);
    beat(); // the last heartbeat, then node-2 crashes
    clock.advance(200);
    clock.t += 700; // the listener stalls: its tick due 100 ms after the last runs 600 ms late
    clock.advance(0);
    assert.equal(reason(), 'alive', '300 ms of running time: not yet');
    clock.advance(90);
    assert.equal(reason(), 'alive', '390 ms');
    clock.advance(20); // 410 ms of running time since the last heartbeat
    assert.equal(reason(), 'silent');
    assert.deepEqual(verdicts, [{ node: 'node-2', sinceHeardMs: 1000, selfStalledMs: 600, allowedMs: 400, worstLateMs: 0 }]);
  });

  it('scenario: a peer that crashes while the listener runs on time is silent after 400 ms, as before', () => {
    const { clock, beat, steady, reason } = listener();
    steady(1000);
    beat();
    clock.advance(399);
    assert.equal(reason(), 'alive');
    clock.advance(2);
    assert.equal(reason(), 'silent');
  });

  it('scenario: a World that arrives right after a stall is judged only once the queued heartbeats are read', () => {
    const { clock, m, beat, steady, verdicts } = listener();
    steady(1000);
    clock.t += 600;
    clock.stallIO = true;
    m.setPeers(peersOf()); // the peers' message is handled before the socket is read
    assert.equal(m.verdict().get('node-2'), 'alive', 'not judged yet');
    beat();
    clock.flushIO();
    clock.stallIO = false;
    assert.equal(m.verdict().get('node-2'), 'alive');
    assert.deepEqual(verdicts, []);
  });
});

