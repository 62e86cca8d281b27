// Captures the layer-2 test vectors from the real kernel: two namespaces on a
// veth pair exchange ARP and NDP (ping, a MAC change, DAD), tcpdump
// records it on one side, and each interesting frame is written to a .bin file
// named after where it came from. Run as root:
//   node packages/speaker/src/l2/testdata/capture.ts
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { VethPair, whyNoNetns } from './netns.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Frames from a classic pcap file (microsecond or nanosecond, either byte order). */
export function pcapFrames(file: Buffer): Buffer[] {
  const magic = file.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!le && file.readUInt32BE(0) !== 0xa1b2c3d4 && file.readUInt32BE(0) !== 0xa1b23c4d) throw new Error('not a pcap file');
  const u32 = (off: number): number => (le ? file.readUInt32LE(off) : file.readUInt32BE(off));
  if (u32(20) !== 1) throw new Error(`pcap link type ${u32(20)} is not Ethernet`);
  const frames: Buffer[] = [];
  for (let off = 24; off + 16 <= file.length;) {
    const len = u32(off + 8);
    frames.push(Buffer.from(file.subarray(off + 16, off + 16 + len)));
    off += 16 + len;
  }
  return frames;
}

/** Names a frame by what it is, or null for frames we do not keep. */
function classify(f: Buffer, macA: string, macB: string): string | null {
  const mac = (o: number): string => [...f.subarray(o, o + 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
  let off = 12;
  let vlan = '';
  if (f.readUInt16BE(off) === 0x8100) {
    vlan = `-vlan${f.readUInt16BE(off + 2) & 0xfff}`;
    off += 4;
  }
  const type = f.readUInt16BE(off);
  const p = off + 2;
  const who = mac(6) === macA ? 'a' : mac(6) === macB ? 'b' : '?';
  if (type === 0x0806) {
    const op = f.readUInt16BE(p + 6);
    const spa = f.subarray(p + 14, p + 18).toString('hex');
    const tpa = f.subarray(p + 24, p + 28).toString('hex');
    if (op === 1 && spa === tpa) return `kernel-arp-gratuitous-request${vlan}`;
    if (op === 2 && spa === tpa) return `kernel-arp-gratuitous-reply${vlan}`;
    if (op === 1) return `kernel-arp-request${vlan}`;
    if (op === 2) return `kernel-arp-reply${vlan}`;
    return null;
  }
  if (type !== 0x86dd) return null;
  const next = f[p + 6]!;
  const src = f.subarray(p + 8, p + 24).toString('hex');
  const dst = f.subarray(p + 24, p + 40);
  if (next === 0) return `kernel-mld-report${vlan}`; // hop-by-hop + router alert: MLDv2
  if (next !== 58) return null;
  const icmpType = f[p + 40]!;
  if (icmpType === 128) return `kernel-icmpv6-echo-request${vlan}`;
  if (icmpType === 135) {
    if (/^0+$/.test(src)) return `kernel-ndp-ns-dad${vlan}`;
    return dst[0] === 0xff ? `kernel-ndp-ns-multicast${vlan}` : `kernel-ndp-ns-unicast${vlan}`;
  }
  if (icmpType === 136) {
    const solicited = (f[p + 44]! & 0x40) !== 0;
    return solicited ? `kernel-ndp-na-solicited${vlan}` : `kernel-ndp-na-unsolicited${vlan}`;
  }
  void who;
  return null;
}

async function main(): Promise<void> {
  const why = whyNoNetns();
  if (why) throw new Error(`capture ${why}`);
  const net = new VethPair('cap');
  try {
    const { a, b } = net;
    for (const side of [a, b]) {
      net.sysctl(side, 'net.ipv6.conf.all.accept_dad', 0);
      net.sysctl(side, 'net.ipv6.conf.default.accept_dad', 0);
      net.sysctl(side, 'net.ipv6.conf.eth0.accept_dad', 0);
      net.sysctl(side, 'net.ipv4.conf.all.arp_notify', 1);
      net.sysctl(side, 'net.ipv4.conf.eth0.arp_notify', 1);
      net.sysctl(side, 'net.ipv6.conf.eth0.ndisc_notify', 1);
    }
    net.ip(a, 'addr', 'add', '198.51.100.1/24', 'dev', 'eth0');
    net.ip(a, 'addr', 'add', '2001:db8:4::1/64', 'dev', 'eth0', 'nodad');
    net.ip(b, 'addr', 'add', '198.51.100.2/24', 'dev', 'eth0');
    net.ip(b, 'addr', 'add', '2001:db8:4::2/64', 'dev', 'eth0', 'nodad');
    net.ip(a, 'link', 'set', 'eth0', 'up');

    const pcap = path.join('/tmp', `pl2cap-${process.pid}.pcap`);
    const tcpdump = net.spawn(a, 'tcpdump', ['-i', 'eth0', '-nn', '-U', '-s', '0', '-w', pcap, 'arp or ip6']);
    await new Promise<void>((resolve, reject) => {
      tcpdump.stderr!.on('data', (d: Buffer) => { if (d.toString().includes('listening on')) resolve(); });
      tcpdump.once('exit', (code) => reject(new Error(`tcpdump exited ${code}`)));
    });

    // b comes up: with arp_notify and ndisc_notify it announces itself (gratuitous ARP, unsolicited NA).
    net.ip(b, 'link', 'set', 'eth0', 'up');
    await sleep(500);
    net.exec(a, 'ping', ['-c', '1', '-W', '2', '198.51.100.2']);
    net.exec(a, 'ping', ['-6', '-c', '1', '-W', '2', '2001:db8:4::2']);
    // A MAC change on b makes the kernel announce again; a gratuitous reply is
    // what `arping -A` sends, the kernel sends the request form.
    net.ip(b, 'link', 'set', 'eth0', 'address', '02:00:5e:10:00:02');
    await sleep(200);
    // DAD on a new address: a Neighbor Solicitation from the unspecified address.
    net.sysctl(b, 'net.ipv6.conf.eth0.accept_dad', 1);
    net.ip(b, 'addr', 'add', '2001:db8:4::3/64', 'dev', 'eth0');
    await sleep(1500);
    // (No VLAN vectors: the kernels here lack 8021q; tagged frames are tested with hand-written bytes.)
    process.kill(tcpdump.pid!, 'SIGINT');
    if (tcpdump.exitCode === null) await once(tcpdump, 'exit');
    const { readFileSync, rmSync } = await import('node:fs');
    const frames = pcapFrames(readFileSync(pcap));
    rmSync(pcap, { force: true });

    const macsB = [b.mac, '02:00:5e:10:00:02'];
    const kept = new Map<string, Buffer>();
    for (const f of frames) {
      const src = [...f.subarray(6, 12)].map((x) => x.toString(16).padStart(2, '0')).join(':');
      const name = classify(f, a.mac, macsB.includes(src) ? src : b.mac);
      if (name && !kept.has(name)) kept.set(name, f);
    }
    for (const [name, f] of kept) {
      writeFileSync(path.join(here, `${name}.bin`), f);
      console.log(`${name}.bin  ${f.length} bytes`);
    }
    console.log(`${frames.length} frames captured, ${kept.size} kept`);
  } finally {
    net.dispose();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
