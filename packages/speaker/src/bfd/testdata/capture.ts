// Captures real BFD Control packets from FRR's bfdd and BIRD for the codec's
// test vectors. Run as root: `node packages/speaker/src/bfd/testdata/capture.ts`.
// Two namespaces (pbfdcap-frr, pbfdcap-bird) joined by a veth run bfdd and
// BIRD's BFD against each other: single hop over IPv4 and IPv6 and a multihop
// session between loopback addresses. tcpdump on FRR's side records the
// session coming up, FRR changing its timers (a Poll Sequence) and FRR's
// administrative shutdown. The first packet of each kind (sender, path, state,
// P/F bits) is written as <daemon>-<version>-<path>-<kind>.bin, and
// capture.json records where each came from (addresses, ports, TTL).
// BIRD sends multihop packets with TTL 64, so FRR's multihop peer accepts TTL >= 64
// (its default floor, 254, would keep the session down).
// Everything it started is stopped by PID and removed, also when it fails.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeControl } from '../packet.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const NS = { frr: 'pbfdcap-frr', bird: 'pbfdcap-bird' } as const;
const A = {
  frr4: '198.51.100.2', bird4: '198.51.100.3', frr6: '2001:db8:cb::2', bird6: '2001:db8:cb::3',
  frrLo: '198.51.100.102', birdLo: '198.51.100.103',
} as const;

const sh = (argv: string[]): string => execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const inNs = (ns: string, argv: string[]): string => sh(['ip', 'netns', 'exec', ns, ...argv]);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function versions(): { frr: string; bird: string } {
  const v = (pkg: string): string => sh(['dpkg-query', '-W', '-f', '${Version}', pkg]).replace(/^(\d+\.\d+).*$/, '$1');
  return { frr: `frr-${v('frr')}`, bird: `bird-${v('bird2')}` };
}

function cleanup(children: ChildProcess[], dir: string): void {
  for (const c of children) if (c.pid && c.exitCode === null) { try { process.kill(c.pid, 'SIGTERM'); } catch { /* gone */ } }
  for (const ns of Object.values(NS)) { try { sh(['ip', 'netns', 'del', ns]); } catch { /* not there */ } }
  rmSync(dir, { recursive: true, force: true });
  rmSync(`/run/frr/${NS.frr}`, { recursive: true, force: true });
}

function network(): void {
  for (const ns of Object.values(NS)) { sh(['ip', 'netns', 'add', ns]); inNs(ns, ['ip', 'link', 'set', 'lo', 'up']); }
  sh(['ip', 'link', 'add', 'eth0', 'netns', NS.frr, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NS.bird]);
  const addrs: [string, string, string, string, string][] = [[NS.frr, A.frr4, A.frr6, A.frrLo, A.birdLo], [NS.bird, A.bird4, A.bird6, A.birdLo, A.frrLo]];
  for (const [ns, v4, v6, lo, otherLo] of addrs) {
    inNs(ns, ['ip', 'addr', 'add', `${v4}/24`, 'dev', 'eth0']);
    inNs(ns, ['ip', 'addr', 'add', `${v6}/64`, 'dev', 'eth0', 'nodad']);
    inNs(ns, ['ip', 'addr', 'add', `${lo}/32`, 'dev', 'lo']);
    inNs(ns, ['ip', 'link', 'set', 'eth0', 'up']);
    inNs(ns, ['ip', 'route', 'add', `${otherLo}/32`, 'via', v4 === A.frr4 ? A.bird4 : A.frr4, 'src', lo]);
  }
}

const FRR_CONF = `hostname pbfdcap-frr
bfd
 profile fast
  transmit-interval 100
  receive-interval 100
  detect-multiplier 3
 !
 peer ${A.bird4} local-address ${A.frr4} interface eth0
  profile fast
 !
 peer ${A.bird6} local-address ${A.frr6} interface eth0
  profile fast
 !
 peer ${A.birdLo} multihop local-address ${A.frrLo}
  profile fast
  minimum-ttl 64
 !
!
`;

const BIRD_CONF = `router id ${A.bird4};
protocol device {}
protocol bfd pbfdcap {
  interface "eth0" { min rx interval 100 ms; min tx interval 100 ms; idle tx interval 1000 ms; multiplier 3; };
  multihop { min rx interval 100 ms; min tx interval 100 ms; idle tx interval 1000 ms; multiplier 3; };
  neighbor ${A.frr4} dev "eth0";
  neighbor ${A.frr6} dev "eth0";
  neighbor ${A.frrLo} local ${A.birdLo} multihop;
}
`;

interface Captured { src: string; dst: string; srcPort: number; dstPort: number; ttl: number; payload: Buffer }

/** Reads a pcap file (Ethernet link type) and returns the UDP datagrams to or from ports 3784/4784. */
function readPcap(file: string): Captured[] {
  const b = readFileSync(file);
  if (b.length < 24) return [];
  const le = b.readUInt32LE(0) === 0xa1b2c3d4;
  const u32 = (at: number): number => (le ? b.readUInt32LE(at) : b.readUInt32BE(at));
  const out: Captured[] = [];
  for (let at = 24; at + 16 <= b.length;) {
    const incl = u32(at + 8);
    const frame = b.subarray(at + 16, at + 16 + incl);
    at += 16 + incl;
    const etherType = frame.readUInt16BE(12);
    let ip = frame.subarray(14);
    let src: string; let dst: string; let ttl: number;
    if (etherType === 0x0800 && ip[9] === 17) {
      const ihl = (ip[0]! & 0x0f) * 4;
      ttl = ip[8]!;
      src = [...ip.subarray(12, 16)].join('.'); dst = [...ip.subarray(16, 20)].join('.');
      ip = ip.subarray(ihl);
    } else if (etherType === 0x86dd && ip[6] === 17) {
      ttl = ip[7]!;
      const six = (x: Buffer): string => Array.from({ length: 8 }, (_, i) => x.readUInt16BE(i * 2).toString(16)).join(':');
      src = six(ip.subarray(8, 24)); dst = six(ip.subarray(24, 40));
      ip = ip.subarray(40);
    } else continue;
    const srcPort = ip.readUInt16BE(0); const dstPort = ip.readUInt16BE(2); const len = ip.readUInt16BE(4);
    if (dstPort !== 3784 && dstPort !== 4784) continue;
    out.push({ src, dst, srcPort, dstPort, ttl, payload: Buffer.from(ip.subarray(8, len)) });
  }
  return out;
}

async function main(): Promise<void> {
  const ver = versions();
  const dir = mkdtempSync(join(tmpdir(), 'pbfdcap-'));
  const children: ChildProcess[] = [];
  cleanup([], '/nonexistent');
  try {
    network();
    const run = join(dir, 'run');
    sh(['mkdir', '-p', run]);
    writeFileSync(join(dir, 'zebra.conf'), 'hostname pbfdcap-frr\n');
    writeFileSync(join(dir, 'bfdd.conf'), FRR_CONF);
    writeFileSync(join(dir, 'bird.conf'), BIRD_CONF);
    sh(['chown', '-R', 'frr:frr', dir]);
    chmodSync(dir, 0o770);
    const pcap = join(dir, 'bfd.pcap');
    const spawnIn = (ns: string, argv: string[]): ChildProcess => {
      const c = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: 'ignore' });
      children.push(c);
      return c;
    };
    spawnIn(NS.frr, ['tcpdump', '-i', 'eth0', '-U', '-w', pcap, 'udp port 3784 or udp port 4784']);
    const common = ['-N', NS.frr, '--vty_socket', run, '-z', join(run, 'zserv.api'), '-A', '127.0.0.1'];
    spawnIn(NS.frr, ['/usr/lib/frr/zebra', ...common, '-f', join(dir, 'zebra.conf'), '-i', join(run, 'zebra.pid')]);
    await sleep(1000);
    spawnIn(NS.frr, ['/usr/lib/frr/bfdd', ...common, '--bfdctl', join(run, 'bfdd.sock'), '-f', join(dir, 'bfdd.conf'), '-i', join(run, 'bfdd.pid')]);
    spawnIn(NS.bird, ['bird', '-f', '-c', join(dir, 'bird.conf'), '-s', join(run, 'bird.ctl'), '-P', join(run, 'bird.pid')]);
    const vtysh = (...cmds: string[]): string => inNs(NS.frr, ['vtysh', '--vty_socket', run, ...cmds.flatMap((c) => ['-c', c])]);
    // Up within a few seconds (bounded wait).
    for (let i = 0; i < 40; i++) {
      await sleep(250);
      let peers: { status?: string }[] = [];
      try { peers = JSON.parse(vtysh('show bfd peers json')) as { status?: string }[]; } catch { /* not answering yet */ }
      if (peers.length === 3 && peers.every((p) => p.status === 'up')) break;
    }
    console.log(vtysh('show bfd peers brief'));
    await sleep(1000);
    // A router-side timer change: FRR starts a Poll Sequence, BIRD answers with Final.
    vtysh('configure terminal', 'bfd', 'profile fast', 'transmit-interval 300', 'receive-interval 300');
    await sleep(2000);
    // A router-side administrative shutdown of every peer.
    vtysh('configure terminal', 'bfd', 'profile fast', 'shutdown');
    await sleep(1500);
    // BIRD's side: a new config changes its timers (Poll from BIRD), then BIRD stops the protocol.
    vtysh('configure terminal', 'bfd', 'profile fast', 'no shutdown');
    await sleep(2500);
    writeFileSync(join(dir, 'bird.conf'), BIRD_CONF.replaceAll('100 ms', '200 ms'));
    inNs(NS.bird, ['birdc', '-s', join(run, 'bird.ctl'), 'configure']);
    await sleep(2000);
    inNs(NS.bird, ['birdc', '-s', join(run, 'bird.ctl'), 'disable', 'pbfdcap']);
    await sleep(1000);
    for (const c of children) if (c.pid) { try { process.kill(c.pid, 'SIGTERM'); } catch { /* gone */ } }
    await sleep(500);

    const pathOf = (c: Captured): string => (c.dstPort === 4784 ? 'multihop' : c.src.includes(':') ? 'ipv6' : 'ipv4');
    const seen = new Map<string, Captured>();
    for (const c of readPcap(pcap)) {
      const daemon = [A.frr4, A.frrLo].includes(c.src as never) || c.src.endsWith(':2') ? ver.frr : ver.bird;
      const p = decodeControl(c.payload);
      const kind = `${p.state.toLowerCase()}${p.poll ? '-poll' : ''}${p.final ? '-final' : ''}`;
      const name = `${daemon}-${pathOf(c)}-${kind}.bin`;
      if (!seen.has(name)) seen.set(name, c);
    }
    for (const f of readdirSync(HERE)) if (f.endsWith('.bin')) rmSync(join(HERE, f));
    const meta: Record<string, { src: string; dst: string; srcPort: number; dstPort: number; ttl: number }> = {};
    for (const [name, c] of [...seen].sort()) {
      writeFileSync(join(HERE, name), c.payload);
      meta[name] = { src: c.src, dst: c.dst, srcPort: c.srcPort, dstPort: c.dstPort, ttl: c.ttl };
    }
    writeFileSync(join(HERE, 'capture.json'), `${JSON.stringify(meta, null, 2)}\n`);
    console.log(`wrote ${seen.size} vectors: ${[...seen.keys()].sort().join(' ')}`);
  } finally {
    cleanup(children, dir);
  }
}

await main();
