// The responder against real kernels (root): it runs in namespace a on the
// native AF_PACKET socket and owns two VIPs; namespace b is a client whose own
// kernel resolves them with ARP and NDP. What counts is b's neighbour table.
import { strict as assert } from 'node:assert';
import { type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { nativeAvailable } from '../native/index.ts';
import { gratuitousArpReply, gratuitousArpRequest } from './announce.ts';
import { arp } from './arp.ts';
import { ethernet } from './ethernet.ts';
import { VethPair, whyNoNetns } from './testdata/netns.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const VIP4 = '203.0.113.10';
const VIP6 = '2001:db8:4::10';

interface Event { event: string; [k: string]: unknown }

/** An Ethernet/IPv4 ARP frame from `source`. */
function arpFrame(f: { destination: string; source: string; operation: number; senderIp: string; targetMac: string; targetIp: string }): Buffer {
  return ethernet.encode({
    destination: f.destination, source: f.source, tags: [], etherType: 0x0806,
    payload: arp.encode({ kind: 'ethernet-ipv4', operation: f.operation, senderMac: f.source, senderIp: f.senderIp, targetMac: f.targetMac, targetIp: f.targetIp }),
  });
}

/** The responder child's JSON lines, with waiting on a predicate. */
class Events {
  readonly all: Event[] = [];
  private waiters: Array<{ pred: (e: Event) => boolean; resolve: (e: Event) => void }> = [];
  constructor(child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const e = JSON.parse(line) as Event;
      this.all.push(e);
      this.waiters = this.waiters.filter((w) => (w.pred(e) ? (w.resolve(e), false) : true));
    });
  }
  wait(pred: (e: Event) => boolean, what: string, ms = 10_000): Promise<Event> {
    const seen = this.all.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out waiting for ${what}; events: ${JSON.stringify(this.all.slice(-10))}`)), ms);
      this.waiters.push({ pred, resolve: (e) => { clearTimeout(t); resolve(e); } });
    });
  }
}

describe('ARP/NDP responder in two namespaces (root)', function () {
  this.timeout(60_000);
  let net: VethPair | undefined;
  let child: ChildProcess;
  let events: Events;

  before(async function () {
    const why = whyNoNetns() ?? (nativeAvailable() ? null : 'needs the native addon (run pnpm install)');
    if (why) {
      console.log(`      skipped: ${why}`);
      this.skip();
    }
    net = new VethPair('rsp');
    const { a, b } = net;
    for (const side of [a, b]) {
      net.sysctl(side, 'net.ipv6.conf.all.accept_dad', 0);
      net.sysctl(side, 'net.ipv6.conf.default.accept_dad', 0);
      net.sysctl(side, 'net.ipv6.conf.eth0.accept_dad', 0);
    }
    net.ip(a, 'addr', 'add', '198.51.100.1/24', 'dev', 'eth0');
    net.ip(a, 'addr', 'add', '2001:db8:4::1/64', 'dev', 'eth0', 'nodad');
    net.ip(b, 'addr', 'add', '198.51.100.2/24', 'dev', 'eth0');
    net.ip(b, 'addr', 'add', '2001:db8:4::2/64', 'dev', 'eth0', 'nodad');
    for (const side of [a, b]) net.ip(side, 'link', 'set', 'eth0', 'up');
    // The client reaches the VIP range on the link, as it would behind a router's connected route.
    net.ip(b, 'route', 'add', '203.0.113.0/24', 'dev', 'eth0');
    child = net.spawn(a, process.execPath, [path.join(here, 'testdata', 'responder-child.ts'), 'eth0', VIP4, VIP6], { stdio: ['pipe', 'pipe', 'inherit'] });
    events = new Events(child);
    const ready = await events.wait((e) => e.event === 'ready', 'the responder to start', 10_000);
    assert.equal(ready.mac, a.mac);
  });

  after(() => {
    net?.dispose();
  });

  /**
   * Runs `poke` (a one-shot ping from b) every second until the responder reports the
   * decision: one ping can fall between the kernel's resolution retries on a loaded machine.
   */
  const until = async (poke: () => void, pred: (e: Event) => boolean, what: string): Promise<Event> => {
    const deadline = Date.now() + 15_000;
    for (;;) {
      poke();
      try {
        return await events.wait(pred, what, 1000);
      } catch (err) {
        if (Date.now() > deadline) throw err;
      }
    }
  };
  const ping = (ip: string) => (): void => {
    net!.exec(net!.b, 'ping', [ip.includes(':') ? '-6' : '-4', '-c', '1', '-W', '1', ip], { allowFail: true }); // nobody answers the echo: only ARP/NDP matters
  };

  const neigh = (ip: string): string => net!.ip(net!.b, 'neigh', 'show', ip, 'dev', 'eth0').trim();
  const counters = async (): Promise<Record<string, unknown> & { byReason: Record<string, number>; replies: number }> => {
    const n = events.all.length;
    child.stdin!.write('counters\n');
    const e = await events.wait((x) => x.event === 'counters' && events.all.indexOf(x) >= n, 'counters');
    return e.counters as Record<string, unknown> & { byReason: Record<string, number>; replies: number };
  };

  it('the client kernel resolves the IPv4 VIP to the responder MAC (ARP)', async () => {
    await until(ping(VIP4), (e) => e.event === 'decision' && e.reason === 'reply' && e.ip === VIP4, 'an ARP reply decision');
    assert.match(neigh(VIP4), new RegExp(`lladdr ${net!.a.mac} .*(REACHABLE|STALE|DELAY|PROBE)`));
  });

  it('the client kernel resolves the IPv6 VIP to the responder MAC (NDP)', async () => {
    await until(ping(VIP6), (e) => e.event === 'decision' && e.reason === 'reply' && e.ip === VIP6, 'an NA decision');
    assert.match(neigh(VIP6), new RegExp(`lladdr ${net!.a.mac} .*(REACHABLE|STALE|DELAY|PROBE)`));
  });

  it('an IP it does not own stays unresolved', async () => {
    await until(ping('203.0.113.11'), (e) => e.event === 'decision' && e.reason === 'not-owner' && e.ip === '203.0.113.11', 'a not-owner decision');
    assert.doesNotMatch(neigh('203.0.113.11'), /lladdr/);
  });

  it('ignores a gratuitous request for its own VIP from another node', async () => {
    const before = await counters();
    net!.exec(net!.b, process.execPath, [path.join(here, 'testdata', 'send-frame.ts'), 'eth0', gratuitousArpRequest(net!.b.mac, VIP4).toString('hex')]);
    await events.wait((e) => e.event === 'decision' && e.reason === 'gratuitous' && e.ip === VIP4, 'a gratuitous decision');
    const after = await counters();
    assert.equal(after.replies, before.replies, 'no reply to a gratuitous request');
  });

  it('announcing moves a stale client entry to the responder MAC (gratuitous ARP, unsolicited NA)', async () => {
    const { b } = net!;
    net!.ip(b, 'neigh', 'replace', VIP4, 'lladdr', '02:00:5e:00:53:99', 'dev', 'eth0', 'nud', 'stale');
    net!.ip(b, 'neigh', 'replace', VIP6, 'lladdr', '02:00:5e:00:53:99', 'dev', 'eth0', 'nud', 'stale');
    // ARP updates inside `locktime` (1 s) of the last one are ignored by the receiver.
    await new Promise((r) => setTimeout(r, 1100));
    child.stdin!.write(`announce ${VIP4}\nannounce ${VIP6}\n`);
    await events.wait((e) => e.event === 'announced' && e.ip === VIP6, 'the announcements');
    const deadline = Date.now() + 2000;
    while (Date.now() < deadline && !(neigh(VIP4).includes(net!.a.mac) && neigh(VIP6).includes(net!.a.mac))) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(neigh(VIP4), new RegExp(`lladdr ${net!.a.mac}`));
    assert.match(neigh(VIP6), new RegExp(`lladdr ${net!.a.mac}`));
  });

  it('the kernel drops ARP replies before the responder sees them; a request sent after them still arrives', async () => {
    const { b } = net!;
    // Unicast to a: a reply to an earlier question, and a gratuitous reply; then a gratuitous
    // request as a marker. Frames on one socket arrive in order, so once the marker is seen
    // the replies would have been seen too had the filter let them through.
    const reply = arpFrame({ destination: net!.a.mac, source: b.mac, operation: 2, senderIp: '198.51.100.2', targetMac: net!.a.mac, targetIp: '198.51.100.1' });
    const marker = gratuitousArpRequest(b.mac, '203.0.113.99');
    const n = events.all.length;
    net!.exec(b, process.execPath, [path.join(here, 'testdata', 'send-frame.ts'), 'eth0', reply.toString('hex'), gratuitousArpReply(b.mac, VIP4).toString('hex'), marker.toString('hex')]);
    await events.wait((e) => e.event === 'decision' && e.reason === 'gratuitous' && e.ip === '203.0.113.99', 'the marker request');
    const seen = events.all.slice(n).filter((e) => e.event === 'decision' && (e.reason === 'not-a-request' || e.reason === 'gratuitous'));
    assert.deepEqual(seen.map((e) => `${String(e.reason)} ${String(e.ip)}`), ['gratuitous 203.0.113.99'], 'of the three frames only the request reached the responder');
  });

  it('the kernel filter passed only ARP requests and NS, and none of its own frames came back', async () => {
    const c = await counters();
    assert.ok(c.byReason.reply! >= 2);
    assert.equal(c.byReason['not-arp-or-ndp'], 0, 'echo requests and MLD were filtered out in the kernel');
    const notRequests = events.all.filter((e) => e.event === 'decision' && e.reason === 'not-a-request');
    assert.equal(c.byReason['not-a-request'], 0, `no NA or ARP reply reached the responder: ${JSON.stringify(notRequests)}`);
    assert.equal(c.byReason['own-frame'], 0, 'PACKET_IGNORE_OUTGOING kept our own replies out');
  });

  it('stops answering at once when the IP is no longer owned', async () => {
    child.stdin!.write('own 2001:db8:4::10\n');
    await events.wait((e) => e.event === 'owned', 'the new owned set');
    net!.ip(net!.b, 'neigh', 'flush', 'dev', 'eth0');
    await until(ping(VIP4), (e) => e.event === 'decision' && e.reason === 'not-owner' && e.ip === VIP4, 'a not-owner decision for the dropped VIP');
    assert.doesNotMatch(neigh(VIP4), /lladdr/);
  });
});
