// The two ends of bench/arp-rate, each run inside its own namespace:
//   node arp-bench.ts responder IFNAME IP      a Responder owning IP; prints {"event":"ready"},
//                                              then its counters on "counters" (stdin); exits on EOF
//   node arp-bench.ts load IFNAME TARGET COUNT WINDOW
//                                              sends COUNT ARP requests for TARGET keeping WINDOW
//                                              unanswered at most; prints one JSON line with the rate
//                                              and the reply latencies
// Each request has its own sender IP (100.64.x.y), so its reply names it.
import { createInterface } from 'node:readline';
import { openPacketSocket } from '../../native/index.ts';
import { BROADCAST_MAC, formatMac, ZERO_MAC } from '../address.ts';
import { arp, ARP_REPLY, ARP_REQUEST } from '../arp.ts';
import { ethernet, ETHERTYPE_ARP } from '../ethernet.ts';
import { arpRequestAndNeighborSolicitationProgram, assemble } from '../filter.ts';
import { openResponder } from '../responder.ts';

const [mode, ifname, ...rest] = process.argv.slice(2);
const out = (o: object): void => { process.stdout.write(JSON.stringify(o) + '\n'); };

if (mode === 'responder' && ifname && rest[0]) {
  const responder = openResponder(ifname);
  responder.setOwned([rest[0]]);
  out({ event: 'ready', mac: responder.mac });
  createInterface({ input: process.stdin }).on('line', (line) => {
    if (line.trim() === 'counters') out({ event: 'counters', counters: responder.counters });
  }).on('close', () => { responder.close(); process.exit(0); });
} else if (mode === 'load' && ifname && rest.length === 3) {
  const [target, countArg, windowArg] = rest as [string, string, string];
  const count = Number(countArg);
  const window = Number(windowArg);
  const sock = openPacketSocket(ifname, { filter: assemble(arpRequestAndNeighborSolicitationProgram()), ignoreOutgoing: true });
  const mac = formatMac(sock.mac);
  const slots = 65_536;
  const sentAt = new Array<bigint | undefined>(slots).fill(undefined);
  const frames = Array.from({ length: slots }, (_, i) => ethernet.encode({
    destination: BROADCAST_MAC, source: mac, tags: [], etherType: ETHERTYPE_ARP,
    payload: arp.encode({ kind: 'ethernet-ipv4', operation: ARP_REQUEST, senderMac: mac, senderIp: `100.64.${i >> 8}.${i & 255}`, targetMac: ZERO_MAC, targetIp: target }),
  }));
  const latenciesUs: number[] = [];
  let sent = 0;
  let answered = 0;
  let outstanding = 0;
  const t0 = process.hrtime.bigint();
  const sendNext = (): void => {
    while (outstanding < window && sent < count) {
      const slot = sent % slots;
      sentAt[slot] = process.hrtime.bigint();
      sock.send(frames[slot]!);
      sent++;
      outstanding++;
    }
  };
  let lastProgress = Date.now();
  let done = false;
  const finish = (): void => {
    if (done) return;
    done = true;
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    latenciesUs.sort((a, b) => a - b);
    const pct = (p: number): number => latenciesUs[Math.min(latenciesUs.length - 1, Math.max(0, Math.ceil((p / 100) * latenciesUs.length) - 1))] ?? NaN;
    out({ sent, answered, lost: sent - answered, seconds, per_s: Math.round(answered / seconds), p50_us: Math.round(pct(50)), p99_us: Math.round(pct(99)), max_us: Math.round(pct(100)) });
    sock.close();
    process.exit(0);
  };
  sock.onDatagram((d) => {
    let reply;
    try {
      const frame = ethernet.decode(d.data);
      if (frame.etherType !== ETHERTYPE_ARP) return;
      reply = arp.decode(frame.payload);
    } catch {
      return;
    }
    if (reply.kind !== 'ethernet-ipv4' || reply.operation !== ARP_REPLY || reply.senderIp !== target) return;
    const [, , x, y] = reply.targetIp.split('.').map(Number) as [number, number, number, number];
    const slot = (x << 8) | y;
    const at = sentAt[slot];
    if (at === undefined) return;
    sentAt[slot] = undefined;
    latenciesUs.push(Number(process.hrtime.bigint() - at) / 1000);
    answered++;
    outstanding--;
    lastProgress = Date.now();
    if (answered === count) finish();
    else sendNext();
  });
  // Requests lost in a full queue would stall a closed loop: after 200 ms without answers, refill the window.
  const watchdog = setInterval(() => {
    if (Date.now() - lastProgress > 200) {
      if (sent >= count) { clearInterval(watchdog); finish(); return; }
      outstanding = 0;
      lastProgress = Date.now();
      sendNext();
    }
  }, 50);
  sendNext();
} else {
  process.stderr.write('usage: arp-bench.ts responder IFNAME IP | load IFNAME TARGET COUNT WINDOW\n');
  process.exit(2);
}
