import { strict as assert } from 'node:assert';
import { fuzzDecode } from '../codec/check.ts';
import { arp } from './arp.ts';
import { gratuitousArpReply, gratuitousArpRequest, unsolicitedNeighborAdvertisement } from './announce.ts';
import { decide, decideDecoded, type DecideContext, type Decision, type Reason } from './decide.ts';
import { ethernet } from './ethernet.ts';
import { arpRequestAndNeighborSolicitationProgram, assemble, runFilter } from './filter.ts';
import { checksumValid } from './icmpv6.ts';
import { ipv6 } from './ipv6.ts';
import { ndp } from './ndp.ts';
import { allVectors, vector } from './testdata/vectors.ts';

// In the captures, a (92:04:56:40:aa:f7) asked and b (9a:24:36:c8:aa:98) answered.
const A_MAC = '92:04:56:40:aa:f7';
const B_MAC = '9a:24:36:c8:aa:98';
const PORTICO_MAC = '02:00:5e:00:53:01';

const ctx = (owned: string[], mac = PORTICO_MAC, vlanTci?: number): DecideContext => ({ mac, owned: new Set(owned), vlanTci });

function mutate(name: string, f: (b: Buffer) => void): Buffer {
  const b = Buffer.from(vector(name));
  f(b);
  return b;
}

/** An ARP request frame from a with the given sender and target IPs. */
function arpRequest(senderIp: string, targetIp: string): Buffer {
  return ethernet.encode({
    destination: 'ff:ff:ff:ff:ff:ff', source: A_MAC, tags: [], etherType: 0x0806,
    payload: arp.encode({ kind: 'ethernet-ipv4', operation: 1, senderMac: A_MAC, senderIp, targetMac: '00:00:00:00:00:00', targetIp }),
  });
}

describe('responder decisions', () => {
  const table: Array<{ name: string; frame: () => Buffer; ctx: DecideContext; reason: Reason; ip?: string; detail?: RegExp }> = [
    { name: 'ARP request for an owned IP', frame: () => vector('kernel-arp-request'), ctx: ctx(['198.51.100.2']), reason: 'reply', ip: '198.51.100.2' },
    { name: 'ARP request for an IP owned elsewhere', frame: () => vector('kernel-arp-request'), ctx: ctx(['198.51.100.3']), reason: 'not-owner', ip: '198.51.100.2' },
    { name: 'gratuitous ARP request from another node', frame: () => vector('kernel-arp-gratuitous-request'), ctx: ctx(['198.51.100.2']), reason: 'gratuitous', ip: '198.51.100.2' },
    { name: 'gratuitous ARP reply from another node', frame: () => gratuitousArpReply(A_MAC, '203.0.113.10'), ctx: ctx(['203.0.113.10']), reason: 'gratuitous', ip: '203.0.113.10' },
    { name: 'ARP reply', frame: () => vector('kernel-arp-reply'), ctx: ctx(['198.51.100.1']), reason: 'not-a-request', detail: /operation 2/ },
    { name: 'ARP probe (RFC 5227) for an owned IP', frame: () => arpRequest('0.0.0.0', '203.0.113.10'), ctx: ctx(['203.0.113.10']), reason: 'reply-probe', ip: '203.0.113.10' },
    { name: 'ARP for a non-Ethernet/IPv4 pair', frame: () => mutate('kernel-arp-request', (b) => b.writeUInt16BE(6, 14)), ctx: ctx(['198.51.100.2']), reason: 'unsupported' },
    { name: 'ARP cut short', frame: () => vector('kernel-arp-request').subarray(0, 30), ctx: ctx(['198.51.100.2']), reason: 'malformed', detail: /ARP/ },
    { name: 'a frame shorter than an Ethernet header', frame: () => Buffer.alloc(10), ctx: ctx([]), reason: 'malformed' },
    { name: 'our own frame coming back', frame: () => vector('kernel-arp-request'), ctx: ctx(['198.51.100.2'], A_MAC), reason: 'own-frame' },
    { name: 'a VLAN-tagged frame (tag in auxdata)', frame: () => vector('kernel-arp-request'), ctx: ctx(['198.51.100.2'], PORTICO_MAC, 100), reason: 'tagged' },
    {
      name: 'a VLAN-tagged frame (tag in the bytes)',
      frame: () => { const f = ethernet.decode(vector('kernel-arp-request')); return ethernet.encode({ ...f, tags: [{ tpid: 0x8100, priority: 0, dropEligible: false, id: 7 }] }); },
      ctx: ctx(['198.51.100.2']), reason: 'tagged',
    },
    { name: 'IPv4 frame', frame: () => mutate('kernel-arp-request', (b) => b.writeUInt16BE(0x0800, 12)), ctx: ctx([]), reason: 'not-arp-or-ndp', detail: /0x0800/ },
    { name: 'NS for an owned IPv6', frame: () => vector('kernel-ndp-ns-multicast'), ctx: ctx(['2001:db8:4::2']), reason: 'reply', ip: '2001:db8:4::2' },
    { name: 'NS for an IPv6 owned elsewhere', frame: () => vector('kernel-ndp-ns-multicast'), ctx: ctx(['2001:db8:4::9']), reason: 'not-owner', ip: '2001:db8:4::2' },
    { name: 'DAD for an owned IPv6', frame: () => vector('kernel-ndp-ns-dad'), ctx: ctx(['2001:db8:4::3']), reason: 'reply-dad', ip: '2001:db8:4::3' },
    { name: 'solicited NA', frame: () => vector('kernel-ndp-na-solicited'), ctx: ctx(['2001:db8:4::2']), reason: 'not-a-request' },
    { name: 'unsolicited NA', frame: () => vector('kernel-ndp-na-unsolicited'), ctx: ctx(['2001:db8:4::2']), reason: 'not-a-request' },
    { name: 'ICMPv6 echo request', frame: () => vector('kernel-icmpv6-echo-request'), ctx: ctx(['2001:db8:4::2']), reason: 'not-a-request', detail: /type 128/ },
    { name: 'MLD report behind a hop-by-hop header', frame: () => vector('kernel-mld-report'), ctx: ctx([]), reason: 'not-arp-or-ndp', detail: /next header 0/ },
    { name: 'NS with hop limit 64 (forwarded: RFC 4861 §7.1.1)', frame: () => mutate('kernel-ndp-ns-multicast', (b) => { b[21] = 64; }), ctx: ctx(['2001:db8:4::2']), reason: 'invalid', detail: /hop limit 64/ },
    { name: 'NS with a bad checksum', frame: () => mutate('kernel-ndp-ns-multicast', (b) => { b[57] = b[57]! ^ 0xff; }), ctx: ctx(['2001:db8:4::2']), reason: 'invalid', detail: /checksum/ },
    { name: 'NS with code 1', frame: () => mutate('kernel-ndp-ns-multicast', (b) => { b[55] = 1; }), ctx: ctx(['2001:db8:4::2']), reason: 'invalid', detail: /code 1/ },
    { name: 'NS with a zero-length option', frame: () => mutate('kernel-ndp-ns-multicast', (b) => { b[79] = 0; }), ctx: ctx(['2001:db8:4::2']), reason: 'invalid', detail: /length 0/ },
    { name: 'NS cut inside its option', frame: () => mutate('kernel-ndp-ns-multicast', (b) => { b.writeUInt16BE(30, 18); }).subarray(0, 84), ctx: ctx(['2001:db8:4::2']), reason: 'malformed' },
  ];

  for (const t of table) {
    it(`${t.name} -> ${t.reason}`, () => {
      const d = decide(t.frame(), t.ctx);
      assert.equal(d.reason, t.reason, JSON.stringify({ ...d, frame: undefined }));
      if (t.ip !== undefined) assert.equal(d.ip, t.ip);
      if (t.detail) assert.match(d.action === 'ignore' ? d.detail ?? '' : '', t.detail);
      assert.equal(d.action, t.reason.startsWith('reply') ? 'reply' : 'ignore');
    });
  }

  it('answers an ARP request with exactly the bytes the kernel answered with', () => {
    const d = decide(vector('kernel-arp-request'), ctx(['198.51.100.2'], B_MAC));
    assert.equal(d.action, 'reply');
    if (d.action !== 'reply') return;
    assert.equal(d.requester, A_MAC);
    assert.equal(d.frame.toString('hex'), vector('kernel-arp-reply').toString('hex'));
  });

  it('answers a Neighbor Solicitation with exactly the bytes the kernel answered with (S, O, TLLAO, hop limit 255)', () => {
    const d = decide(vector('kernel-ndp-ns-multicast'), ctx(['2001:db8:4::2'], B_MAC));
    assert.equal(d.action, 'reply');
    if (d.action !== 'reply') return;
    assert.equal(d.frame.toString('hex'), vector('kernel-ndp-na-solicited').toString('hex'));
  });

  it('defends an IPv6 under DAD with an NA to all-nodes, S clear, O set', () => {
    const d = decide(vector('kernel-ndp-ns-dad'), ctx(['2001:db8:4::3']));
    assert.equal(d.action, 'reply');
    if (d.action !== 'reply') return;
    const eth = ethernet.decode(d.frame);
    assert.equal(eth.destination, '33:33:00:00:00:01');
    const ip = ipv6.decode(eth.payload);
    assert.deepEqual([ip.source, ip.destination, ip.hopLimit], ['2001:db8:4::3', 'ff02::1', 255]);
    assert.ok(checksumValid(ip.source, ip.destination, ip.payload));
    const na = ndp.decode(ip.payload);
    assert.ok(na.type === 'neighbor-advertisement' && !na.solicited && na.override && !na.router);
  });

  it('answers an ARP probe to the prober, target IP 0.0.0.0', () => {
    const d = decide(arpRequest('0.0.0.0', '203.0.113.10'), ctx(['203.0.113.10']));
    assert.equal(d.action, 'reply');
    if (d.action !== 'reply') return;
    const p = arp.decode(ethernet.decode(d.frame).payload);
    assert.deepEqual(p, { kind: 'ethernet-ipv4', operation: 2, senderMac: PORTICO_MAC, senderIp: '203.0.113.10', targetMac: A_MAC, targetIp: '0.0.0.0' });
  });

  it('never throws, whatever the frame (fuzzed from the captured vectors)', () => {
    const seeds = [...allVectors().values()];
    const owned = ctx(['198.51.100.1', '198.51.100.2', '2001:db8:4::1', '2001:db8:4::2', '2001:db8:4::3']);
    const counts = new Map<Reason, number>();
    fuzzDecode((buf): Decision => {
      const d = decide(buf, owned);
      counts.set(d.reason, (counts.get(d.reason) ?? 0) + 1);
      return d;
    }, seeds, { iterations: 20_000, seed: 4 });
    for (const r of ['reply', 'not-owner', 'malformed', 'invalid', 'gratuitous'] as const) assert.ok((counts.get(r) ?? 0) > 0, `fuzzing reached ${r}: ${JSON.stringify([...counts])}`);
  });
});

describe('announcements', () => {
  it('the gratuitous ARP request is the one the kernel sends (RFC 5227 §3)', () => {
    assert.equal(gratuitousArpRequest(B_MAC, '198.51.100.2').toString('hex'), vector('kernel-arp-gratuitous-request').toString('hex'));
  });

  it('the gratuitous ARP reply carries our MAC and IP as both sender and target', () => {
    const p = arp.decode(ethernet.decode(gratuitousArpReply(PORTICO_MAC, '203.0.113.10')).payload);
    assert.deepEqual(p, { kind: 'ethernet-ipv4', operation: 2, senderMac: PORTICO_MAC, senderIp: '203.0.113.10', targetMac: PORTICO_MAC, targetIp: '203.0.113.10' });
  });

  it('the unsolicited NA is the one the kernel sends (RFC 4861 §7.2.6)', () => {
    assert.equal(unsolicitedNeighborAdvertisement(B_MAC, '2001:db8:4::2').toString('hex'), vector('kernel-ndp-na-unsolicited').toString('hex'));
  });
});

describe('socket filter (classic BPF)', () => {
  const program = arpRequestAndNeighborSolicitationProgram();
  const expected: Record<string, boolean> = {
    'kernel-arp-request': true,
    'kernel-arp-reply': false,
    'kernel-arp-gratuitous-request': true,
    'kernel-ndp-ns-multicast': true,
    'kernel-ndp-ns-dad': true,
    'kernel-ndp-na-solicited': false,
    'kernel-ndp-na-unsolicited': false,
    'kernel-mld-report': false,
    'kernel-icmpv6-echo-request': false,
  };
  for (const [name, frame] of allVectors()) {
    it(`${name}: ${expected[name] ? 'accepted' : 'dropped'}`, () => {
      assert.ok(name in expected, `a new vector ${name}: add it to this table`);
      assert.equal(runFilter(program, frame) > 0, expected[name]);
    });
  }

  it('accepts ARP operation 1 only: replies, gratuitous replies and other operations are dropped', () => {
    for (let op = 0; op <= 10; op++) {
      const f = mutate('kernel-arp-request', (b) => b.writeUInt16BE(op, 20));
      assert.equal(runFilter(program, f) > 0, op === 1, `operation ${op}`);
    }
    assert.equal(runFilter(program, gratuitousArpReply(A_MAC, '198.51.100.2')), 0);
    assert.ok(runFilter(program, gratuitousArpRequest(A_MAC, '198.51.100.2')) > 0);
    assert.equal(runFilter(program, unsolicitedNeighborAdvertisement(A_MAC, '2001:db8::2')), 0);
  });

  it('drops a runt frame instead of reading past it, and assembles 8 bytes per instruction', () => {
    assert.equal(runFilter(program, Buffer.from([0xff, 0xff])), 0);
    assert.equal(runFilter(program, vector('kernel-arp-request').subarray(0, 21)), 0);
    assert.equal(runFilter(program, vector('kernel-ndp-ns-multicast').subarray(0, 40)), 0);
    const bytes = assemble(program);
    assert.equal(bytes.length, program.length * 8);
    assert.equal(bytes[8 + 2], program[1]!.jt);
  });
});

describe('decide: the ARP fast path agrees with the codecs', () => {
  it('gives the same Decision (reply bytes included) as decideDecoded for captured and mutated frames', () => {
    const owned = ['198.51.100.2', '203.0.113.7', '0.0.0.0'];
    const seeds = [...allVectors().values(), arpRequest('198.51.100.1', '198.51.100.2'), arpRequest('0.0.0.0', '203.0.113.7'), arpRequest('203.0.113.7', '203.0.113.7')];
    let seed = 12345;
    const rnd = (n: number): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
    let compared = 0;
    for (const base of seeds) {
      for (let i = 0; i < 400; i++) {
        const f = Buffer.from(base);
        // Mutate the bytes the fast path reads more often than the rest.
        for (let k = rnd(3); k >= 0; k--) f[rnd(2) ? 12 + rnd(30) : rnd(f.length)] = rnd(4) === 0 ? 0 : rnd(256);
        const frame = rnd(5) === 0 ? Buffer.concat([f, Buffer.alloc(rnd(20))]) : f;
        for (const c of [ctx(owned), ctx(owned, A_MAC), ctx(owned, PORTICO_MAC, 5)]) {
          assert.deepEqual(decide(frame, c), decideDecoded(frame, c), `frame ${frame.toString('hex')}`);
          compared++;
        }
      }
    }
    assert.ok(compared > 5000);
  });
});
