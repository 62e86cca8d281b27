// BFD transport: classify() as a table (GTSM, demultiplexing, §6.8.6 drops),
// then real UDP sockets on the loopback interface: the kernel's TTL / hop
// limit reaches classify(), a TTL-254 sender is refused, and two managers
// bring a session Up and take it Down. Ports are random high ones (not
// 3784/4784), so nothing else on the machine is disturbed.
import { strict as assert } from 'node:assert';
import { systemClock } from '../bgp/clock.ts';
import { loadNative, nativeAvailable } from '../native/index.ts';
import type { BfdConfig } from './fsm.ts';
import { BfdManager } from './manager.ts';
import { encodeControl, type ControlPacket } from './packet.ts';
import { canonicalAddress, classify, MULTIHOP_PORT, SINGLE_HOP_PORT, UdpEndpoint, type BfdPath, type Received, type SessionLookup } from './transport.ts';

const pkt = (extra: Partial<ControlPacket> = {}): ControlPacket => ({
  diag: 0, state: 'Up', poll: false, final: false, controlPlaneIndependent: false, demand: false, multipoint: false,
  detectMult: 3, myDiscriminator: 99, yourDiscriminator: 7, desiredMinTxInterval: 50_000, requiredMinRxInterval: 50_000, requiredMinEchoRxInterval: 0, ...extra,
});

const single: BfdPath = { peer: '198.51.100.9', multihop: false };
const multi: BfdPath = { peer: '203.0.113.9', local: '198.51.100.1', multihop: true, minimumTtl: 250 };
const lookup: SessionLookup<string> = {
  byDiscriminator: (d) => (d === 7 ? { session: 'single', path: single } : d === 8 ? { session: 'multi', path: multi } : undefined),
  byPath: (mh, src, dst) => (!mh && src === single.peer ? { session: 'single', path: single }
    : mh && src === multi.peer && dst === multi.local ? { session: 'multi', path: multi } : undefined),
};
const rx = (p: ControlPacket | Uint8Array, extra: Partial<Received> = {}): Received => ({
  data: p instanceof Uint8Array ? p : encodeControl(p), port: SINGLE_HOP_PORT, src: single.peer, srcPort: 49152, dst: '198.51.100.1', ttl: 255, ...extra,
});

describe('bfd transport: classify (RFC 5881/5883 demultiplexing and GTSM)', () => {
  const cases: [string, Received, string][] = [
    ['single hop by discriminator', rx(pkt()), 'single'],
    ['single hop first packet by source address', rx(pkt({ state: 'Down', yourDiscriminator: 0 })), 'single'],
    ['single hop with TTL 254 is dropped (GTSM)', rx(pkt(), { ttl: 254 }), 'ttl-too-low'],
    ['no TTL from the kernel is dropped', rx(pkt(), { ttl: -1 }), 'ttl-unknown'],
    ['a known discriminator from the wrong source', rx(pkt(), { src: '198.51.100.66' }), 'wrong-source'],
    ['an unknown discriminator', rx(pkt({ yourDiscriminator: 1234 })), 'unknown-discriminator'],
    ['a first packet from nobody we know', rx(pkt({ state: 'Down', yourDiscriminator: 0 }), { src: '198.51.100.66' }), 'no-session'],
    ['a single-hop session addressed on the multihop port', rx(pkt(), { port: MULTIHOP_PORT }), 'wrong-port'],
    ['multihop at TTL 251 passes a floor of 250', rx(pkt({ yourDiscriminator: 8 }), { port: MULTIHOP_PORT, src: multi.peer, ttl: 251 }), 'multi'],
    ['multihop at TTL 249 is below the floor', rx(pkt({ yourDiscriminator: 8 }), { port: MULTIHOP_PORT, src: multi.peer, ttl: 249 }), 'ttl-too-low'],
    ['multihop first packet needs our address to match', rx(pkt({ state: 'Down', yourDiscriminator: 0 }), { port: MULTIHOP_PORT, src: multi.peer, dst: '198.51.100.1', ttl: 255 }), 'multi'],
    ['multihop first packet to another of our addresses', rx(pkt({ state: 'Down', yourDiscriminator: 0 }), { port: MULTIHOP_PORT, src: multi.peer, dst: '198.51.100.2', ttl: 255 }), 'no-session'],
    ['Detect Mult 0 (§6.8.6)', rx(pkt({ detectMult: 0 })), 'detect-mult-zero'],
    ['Your Discriminator 0 while Up (§6.8.6)', rx(pkt({ yourDiscriminator: 0 })), 'your-discriminator-zero'],
    ['garbage', rx(Buffer.from('hello')), 'decode-error'],
  ];
  for (const [name, r, want] of cases) {
    it(name, () => {
      const c = classify(r, lookup);
      assert.equal(c.ok ? c.session : c.reason, want);
    });
  }

  it('canonical addresses', () => {
    assert.equal(canonicalAddress('2001:DB8:0::01'), '2001:db8::1');
    assert.equal(canonicalAddress('::ffff:198.51.100.1'), '198.51.100.1');
    assert.equal(canonicalAddress('fe80::1%eth0'), 'fe80::1%eth0');
  });
});

describe('bfd transport: real UDP sockets on loopback', function () {
  this.timeout(20_000);
  if (!nativeAvailable()) {
    it('needs the native addon (pnpm install builds it)', function () { this.skip(); });
    return;
  }
  const port = (): number => 20_000 + Math.floor(Math.random() * 20_000);

  it('reports the TTL / hop limit the kernel saw; GTSM refuses TTL 254 (IPv4 and IPv6)', async () => {
    const native = loadNative();
    for (const [family, addr] of [[4, '127.0.0.1'], [6, '::1']] as const) {
      const p = port();
      const ep = new UdpEndpoint({ singleHopPort: p, multihopPort: p + 1, bind: { [family]: addr } });
      const got: Received[] = [];
      ep.listen(family, (r) => got.push({ ...r, data: Buffer.from(r.data) }));
      const sender = ep.openSender({ peer: addr, multihop: false });
      const low = native.udpSocket(family);
      try {
        native.setIntOption(low, family === 4 ? native.constants.IPPROTO_IP : native.constants.IPPROTO_IPV6, family === 4 ? native.constants.IP_TTL : native.constants.IPV6_UNICAST_HOPS, 254);
        sender.send(encodeControl(pkt({ state: 'Down', yourDiscriminator: 0, myDiscriminator: 1 })));
        native.udpSendTo(low, encodeControl(pkt({ state: 'Down', yourDiscriminator: 0, myDiscriminator: 2 })), addr, p);
        const deadline = Date.now() + 5000;
        while (got.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
        assert.equal(got.length, 2, `${family}: both datagrams arrived`);
        const byDiscr = new Map(got.map((g) => [Buffer.from(g.data).readUInt32BE(4), g]));
        assert.equal(byDiscr.get(1)?.ttl, 255);
        assert.equal(byDiscr.get(2)?.ttl, 254);
        assert.ok(byDiscr.get(1)!.srcPort >= 49152, 'source port in 49152-65535 (RFC 5881 §4)');
        assert.equal(byDiscr.get(1)?.src, addr);
        assert.equal(byDiscr.get(1)?.dst, addr);
        const look: SessionLookup<string> = { byDiscriminator: () => undefined, byPath: () => ({ session: 's', path: { peer: addr, multihop: false } }) };
        assert.deepEqual(classify(byDiscr.get(1)!, look).ok, true);
        assert.equal((classify(byDiscr.get(2)!, look) as { reason: string }).reason, 'ttl-too-low');
      } finally {
        native.close(low);
        sender.close();
        ep.close();
      }
    }
  });

  it('two managers bring a session Up over 127.0.0.1/127.0.0.2 and see it go Down when one stops', async () => {
    const p = port();
    const cfg: BfdConfig = { desiredMinTxUs: 20_000, requiredMinRxUs: 20_000, detectMult: 3, passive: false };
    const events: string[] = [];
    const mk = (self: string): BfdManager => new BfdManager({
      network: new UdpEndpoint({ singleHopPort: p, multihopPort: p + 1, bind: { 4: self } }), clock: systemClock,
      onStateChange: (key, c) => events.push(`${self}:${c.to}`),
    });
    const a = mk('127.0.0.1');
    const b = mk('127.0.0.2');
    try {
      a.set([{ key: 'p', path: { peer: '127.0.0.2', local: '127.0.0.1', multihop: false }, config: cfg }]);
      b.set([{ key: 'p', path: { peer: '127.0.0.1', local: '127.0.0.2', multihop: false }, config: cfg }]);
      const until = async (what: string, ok: () => boolean): Promise<void> => {
        const deadline = Date.now() + 10_000;
        while (!ok()) {
          if (Date.now() > deadline) assert.fail(`${what}; events ${events.join(' ')}`);
          await new Promise((r) => setTimeout(r, 10));
        }
      };
      await until('both Up', () => a.snapshot('p')?.state === 'Up' && b.snapshot('p')?.state === 'Up');
      await until('the poll leaving the slow rate ends', () => a.snapshot('p')!.transmitIntervalMs === 20);
      b.close();
      const t0 = Date.now();
      await until('a Down after b vanished', () => a.snapshot('p')?.state === 'Down');
      const took = Date.now() - t0;
      assert.ok(took >= 30, `detected after ${took} ms (detection time 60 ms, minus jitter of the last packet)`);
      assert.equal(a.snapshot('p')?.localDiag, 1, 'control detection time expired');
      assert.equal(a.snapshot('p')?.flaps, 1);
      assert.deepEqual([...a.drops.keys()], [], 'nothing dropped');
    } finally {
      a.close();
      b.close();
    }
  });

  it('removing a peer tells the other side with AdminDown: Down with diag 3 at once', async () => {
    const p = port();
    const cfg: BfdConfig = { desiredMinTxUs: 300_000, requiredMinRxUs: 300_000, detectMult: 3, passive: false };
    const downs: string[] = [];
    const a = new BfdManager({ network: new UdpEndpoint({ singleHopPort: p, multihopPort: p + 1, bind: { 4: '127.0.0.1' } }), clock: systemClock,
      onStateChange: (_k, c) => { if (c.to === 'Down') downs.push(c.reason); } });
    const b = new BfdManager({ network: new UdpEndpoint({ singleHopPort: p, multihopPort: p + 1, bind: { 4: '127.0.0.2' } }), clock: systemClock });
    try {
      a.set([{ key: 'p', path: { peer: '127.0.0.2', local: '127.0.0.1', multihop: false }, config: cfg }]);
      b.set([{ key: 'p', path: { peer: '127.0.0.1', local: '127.0.0.2', multihop: false }, config: cfg }]);
      const until = async (ok: () => boolean): Promise<void> => {
        const deadline = Date.now() + 10_000;
        while (!ok() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      };
      await until(() => a.snapshot('p')?.state === 'Up');
      assert.equal(a.snapshot('p')?.state, 'Up');
      b.set([]);
      const t0 = Date.now();
      await until(() => a.snapshot('p')?.state === 'Down');
      assert.deepEqual(downs, ['remote-admin-down']);
      assert.ok(Date.now() - t0 < 900, 'well inside the 900 ms detection time');
      assert.equal(a.snapshot('p')?.localDiag, 3);
    } finally {
      a.close();
      b.close();
    }
  });
});
