// Captures real BGP messages from FRR, BIRD and GoBGP for the codec's test
// vectors. Run as root: `node packages/speaker/src/bgp/testdata/capture.ts`.
// It builds namespaces named pbgpcap-*, starts the three daemons peering with
// a recorder (this file in 'record' mode, in its own namespace) that speaks
// just enough BGP to get them to send OPEN, UPDATEs, End-of-RIB,
// ROUTE-REFRESH, withdrawals and a Cease, and writes the first message of each
// kind as <daemon>-<version>-<kind>.bin next to this file. Everything it
// started is stopped by PID and removed, also when it fails.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, chownSync, chmodSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageFramer } from '../framer.ts';
import {
  buildOpen, decodeMessage, encodeMessage, endOfRibFamily, KEEPALIVE, type BgpMessage, type MessageContext,
} from '../message.ts';
import { MP_IPV4_UNICAST, MP_IPV6_UNICAST, type Capability } from '../capabilities.ts';
import { capabilitiesOf } from '../message.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const NS = { sw: 'pbgpcap-sw', rec: 'pbgpcap-rec', frr: 'pbgpcap-frr', bird: 'pbgpcap-bird', gobgp: 'pbgpcap-gobgp' } as const;
const ADDR = { frr: 2, bird: 3, gobgp: 4 } as const;
/** Recorder addresses: each one gives the session a different character. */
const SESSIONS: Record<string, { tag: string; open: () => BgpMessage }> = {
  '198.51.100.10': { tag: '', open: () => buildOpen({ asn: 64512, holdTime: 9, bgpId: '198.51.100.10', capabilities: fullCaps() }) },
  '2001:db8:ca::10': { tag: 'v6session-', open: () => buildOpen({ asn: 64512, holdTime: 9, bgpId: '198.51.100.10', capabilities: fullCaps() }) },
  // No four-octet-as capability: the daemons must fall back to AS_TRANS and AS4_PATH (RFC 6793 §4.2.2).
  '198.51.100.20': {
    tag: 'as2-',
    open: () => ({ type: 'open', version: 4, myAsn: 64512, holdTime: 9, bgpId: '198.51.100.20', parameters: [{ type: 'capabilities', capabilities: [MP_IPV4_UNICAST, { type: 'route-refresh' }] }] }),
  },
  // The wrong AS: the daemons answer with OPEN Message Error / Bad Peer AS.
  '198.51.100.30': { tag: 'badas-', open: () => buildOpen({ asn: 64999, holdTime: 9, bgpId: '198.51.100.30', capabilities: fullCaps() }) },
};

function fullCaps(): Capability[] {
  return [MP_IPV4_UNICAST, MP_IPV6_UNICAST, { type: 'route-refresh' },
    { type: 'graceful-restart', restarting: false, notification: false, restartTime: 120, families: [{ afi: 1, safi: 1, forwarding: false }, { afi: 2, safi: 1, forwarding: false }] }];
}

function kindOf(m: BgpMessage): string {
  switch (m.type) {
    case 'open': case 'keepalive': return m.type;
    case 'notification': return `notification-${m.code}-${m.subcode}`;
    case 'route-refresh': return `route-refresh-${m.afi === 2 ? 'ipv6' : 'ipv4'}`;
    case 'update': {
      const eor = endOfRibFamily(m);
      if (eor) return `eor-${eor.afi === 2 ? 'ipv6' : 'ipv4'}`;
      const v6 = m.attributes.some((a) => a.type === 'mp-reach' || a.type === 'mp-unreach');
      const withdraw = m.withdrawn.length > 0 || m.attributes.some((a) => a.type === 'mp-unreach');
      const tagged = m.attributes.some((a) => a.type === 'communities' || a.type === 'large-communities');
      return `update-${withdraw ? 'withdraw-' : ''}${v6 ? 'ipv6' : 'ipv4'}${tagged ? '-communities' : ''}`;
    }
  }
}

/** Recorder mode: runs inside pbgpcap-rec, accepts the daemons' sessions and writes what they send. */
function record(outDir: string, names: Record<string, string>, seconds: number): void {
  const seen = new Set<string>();
  const server = createServer((sock: Socket) => {
    const local = (sock.localAddress ?? '').replace(/^::ffff:/, '');
    const remote = (sock.remoteAddress ?? '').replace(/^::ffff:/, '');
    const session = SESSIONS[local];
    const who = names[remote.split('.').pop()!.split(':').pop()!];
    if (!session || !who) { sock.destroy(); return; }
    const ours = session.open();
    let ctx: MessageContext = { fourOctetAs: false };
    const framer = new MessageFramer();
    sock.write(encodeMessage(ours, ctx));
    const timer = setInterval(() => sock.write(encodeMessage(KEEPALIVE)), 3000);
    sock.on('close', () => clearInterval(timer));
    sock.on('error', () => clearInterval(timer));
    sock.on('data', (chunk: Buffer) => {
      for (const frame of framer.push(chunk)) {
        let kind: string;
        try {
          const m = decodeMessage(frame, ctx);
          kind = kindOf(m);
          if (m.type === 'open') {
            const both = [m, ours].every((o) => o.type === 'open' && capabilitiesOf(o).some((c) => c.type === 'four-octet-as'));
            ctx = { fourOctetAs: both };
            sock.write(encodeMessage(KEEPALIVE));
          }
        } catch (err) {
          kind = `undecodable-${(err as Error).message.replace(/[^a-z0-9]+/gi, '-').slice(0, 40)}`;
        }
        // KEEPALIVEs are identical everywhere: keep the main session's only.
        if (kind === 'keepalive' && session.tag !== '') continue;
        const name = `${who}-${session.tag}${kind}.bin`;
        console.log(JSON.stringify({ from: remote, name }));
        if (!seen.has(name)) {
          seen.add(name);
          writeFileSync(join(outDir, name), frame);
        }
      }
    });
  });
  server.listen(179, '::');
  setTimeout(() => { server.close(); process.exit(0); }, seconds * 1000).unref();
  setTimeout(() => undefined, seconds * 1000 + 1000);
}

// ---- orchestration (root namespace: only namespaces and files it makes) ----

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}
function inNs(ns: string, cmd: string, args: string[]): string {
  return sh('ip', ['netns', 'exec', ns, cmd, ...args]);
}
function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function versions(): { frr: string; bird: string; gobgp: string } {
  const v = (pkg: string): string => /^(\d+\.\d+)/.exec(sh('dpkg-query', ['-W', '-f=${Version}', pkg]))?.[1] ?? 'unknown';
  return { frr: `frr-${v('frr')}`, bird: `bird-${v('bird2')}`, gobgp: `gobgp-${v('gobgpd')}` };
}

function buildNetwork(): void {
  sh('ip', ['netns', 'add', NS.sw]);
  sh('ip', ['-n', NS.sw, 'link', 'add', 'br0', 'type', 'bridge']);
  inNs(NS.sw, 'sh', ['-c', 'echo 0 > /sys/class/net/br0/bridge/forward_delay']);
  sh('ip', ['-n', NS.sw, 'link', 'set', 'br0', 'up']);
  const hosts: [string, string[]][] = [
    [NS.rec, ['198.51.100.10/24', '198.51.100.20/24', '198.51.100.30/24', '2001:db8:ca::10/64']],
    [NS.frr, [`198.51.100.${ADDR.frr}/24`, `2001:db8:ca::${ADDR.frr}/64`]],
    [NS.bird, [`198.51.100.${ADDR.bird}/24`, `2001:db8:ca::${ADDR.bird}/64`]],
    [NS.gobgp, [`198.51.100.${ADDR.gobgp}/24`, `2001:db8:ca::${ADDR.gobgp}/64`]],
  ];
  hosts.forEach(([ns, addrs], i) => {
    sh('ip', ['netns', 'add', ns]);
    sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    sh('ip', ['link', 'add', 'eth0', 'netns', ns, 'type', 'veth', 'peer', 'name', `p${i}`, 'netns', NS.sw]);
    sh('ip', ['-n', NS.sw, 'link', 'set', `p${i}`, 'master', 'br0', 'up']);
    for (const a of addrs) sh('ip', ['-n', ns, 'addr', 'add', a, 'dev', 'eth0', ...(a.includes(':') ? ['nodad'] : [])]);
    sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
  });
}

const FRR_CONF = `frr defaults traditional
hostname pbgpcap-frr
router bgp 4200000001
 bgp router-id 198.51.100.2
 no bgp ebgp-requires-policy
 no bgp network import-check
 no bgp default ipv4-unicast
 bgp graceful-restart
 timers bgp 3 9
 neighbor 198.51.100.10 remote-as 64512
 neighbor 198.51.100.10 timers connect 1
 neighbor 198.51.100.20 remote-as 64512
 neighbor 198.51.100.20 timers connect 1
 neighbor 198.51.100.30 remote-as 64512
 neighbor 198.51.100.30 timers connect 1
 neighbor 2001:db8:ca::10 remote-as 64512
 neighbor 2001:db8:ca::10 timers connect 1
 address-family ipv4 unicast
  network 203.0.113.0/24 route-map TAG
  network 203.0.113.1/32
  neighbor 198.51.100.10 activate
  neighbor 198.51.100.20 activate
  neighbor 198.51.100.30 activate
 exit-address-family
 address-family ipv6 unicast
  network 2001:db8:ff01::/48 route-map TAG
  network 2001:db8:ff01:1::/64
  neighbor 2001:db8:ca::10 activate
 exit-address-family
route-map TAG permit 10
 set community 64501:100 64501:200
 set large-community 4200000001:1:2
 set metric 50
`;

const BIRD_CONF = `router id 198.51.100.3;
protocol device {}
protocol static s4 { ipv4; route 203.0.113.32/27 blackhole; route 203.0.113.33/32 blackhole; }
protocol static s4w { ipv4; route 203.0.113.34/32 blackhole; }
protocol static s6 { ipv6; route 2001:db8:ff02::/48 blackhole; route 2001:db8:ff02:1::/64 blackhole; }
protocol static s6w { ipv6; route 2001:db8:ff02:2::/64 blackhole; }
filter add_tags { bgp_community.add((64502,100)); bgp_large_community.add((64502,1,2)); bgp_med = 70; accept; }
template bgp T { local as 64502; connect delay time 1; connect retry time 2; hold time 9; keepalive time 3; graceful restart on; }
protocol bgp a from T { neighbor 198.51.100.10 as 64512; ipv4 { import all; export filter add_tags; }; }
protocol bgp c from T { neighbor 198.51.100.20 as 64512; ipv4 { import all; export filter add_tags; }; }
protocol bgp d from T { neighbor 198.51.100.30 as 64512; ipv4 { import all; export all; }; }
protocol bgp b from T { neighbor 2001:db8:ca::10 as 64512; ipv6 { import all; export filter add_tags; }; }
`;

function gobgpNeighbor(addr: string, family: string): string {
  return `[[neighbors]]
  [neighbors.config]
    neighbor-address = "${addr}"
    peer-as = 64512
  [neighbors.timers.config]
    connect-retry = 1
    hold-time = 9
    keepalive-interval = 3
  [neighbors.graceful-restart.config]
    enabled = true
    restart-time = 120
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "${family}"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.mp-graceful-restart.config]
      enabled = true
    [neighbors.afi-safis.config]
      afi-safi-name = "${family}"
`;
}

const GOBGP_CONF = `[global.config]
  as = 4200000003
  router-id = "198.51.100.4"
  port = 179
${gobgpNeighbor('198.51.100.10', 'ipv4-unicast')}
${gobgpNeighbor('198.51.100.20', 'ipv4-unicast')}
${gobgpNeighbor('198.51.100.30', 'ipv4-unicast')}
${gobgpNeighbor('2001:db8:ca::10', 'ipv6-unicast')}
`;

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('capture.ts needs root (network namespaces, port 179)');
  const ver = versions();
  const work = mkdtempSync(join(tmpdir(), 'pbgpcap-'));
  const out = join(work, 'out');
  mkdirSync(out);
  const hadVarTmpFrr = existsSync('/var/tmp/frr');
  const procs: ChildProcess[] = [];
  const start = (ns: string, cmd: string, args: string[], log: string): ChildProcess => {
    const p = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    p.stdout?.on('data', (c: Buffer) => chunks.push(c));
    p.stderr?.on('data', (c: Buffer) => chunks.push(c));
    p.on('exit', () => writeFileSync(join(work, `${log}.log`), Buffer.concat(chunks)));
    procs.push(p);
    return p;
  };
  try {
    buildNetwork();
    const frrDir = join(work, 'frr');
    mkdirSync(join(frrDir, 'run'), { recursive: true });
    writeFileSync(join(frrDir, 'zebra.conf'), 'hostname pbgpcap-frr\n');
    writeFileSync(join(frrDir, 'bgpd.conf'), FRR_CONF);
    const frrUid = Number(sh('id', ['-u', 'frr']));
    const frrGid = Number(sh('id', ['-g', 'frr']));
    chmodSync(work, 0o755);
    for (const p of [frrDir, join(frrDir, 'run'), join(frrDir, 'zebra.conf'), join(frrDir, 'bgpd.conf')]) chownSync(p, frrUid, frrGid);
    chmodSync(frrDir, 0o770);
    chmodSync(join(frrDir, 'run'), 0o770);
    writeFileSync(join(work, 'bird.conf'), BIRD_CONF);
    writeFileSync(join(work, 'gobgpd.toml'), GOBGP_CONF);

    const names = { [ADDR.frr]: ver.frr, [ADDR.bird]: ver.bird, [ADDR.gobgp]: ver.gobgp };
    const rec = start(NS.rec, process.execPath, [fileURLToPath(import.meta.url), 'record', out, JSON.stringify(names), '40'], 'recorder');
    await sleep(500);
    const frrCommon = ['-N', 'pbgpcap-frr', '--vty_socket', join(frrDir, 'run'), '-z', join(frrDir, 'run', 'zserv.api')];
    start(NS.frr, '/usr/lib/frr/zebra', [...frrCommon, '-A', '127.0.0.1', '-f', join(frrDir, 'zebra.conf'), '-i', join(frrDir, 'run', 'zebra.pid')], 'zebra');
    await sleep(700);
    start(NS.frr, '/usr/lib/frr/bgpd', [...frrCommon, '-A', '127.0.0.1', '-f', join(frrDir, 'bgpd.conf'), '-i', join(frrDir, 'run', 'bgpd.pid')], 'bgpd');
    start(NS.bird, 'bird', ['-f', '-c', join(work, 'bird.conf'), '-s', join(work, 'bird.ctl'), '-P', join(work, 'bird.pid')], 'bird');
    start(NS.gobgp, 'gobgpd', ['-f', join(work, 'gobgpd.toml'), '-p', '--api-hosts', '127.0.0.1:50151'], 'gobgpd');
    await sleep(1500);
    const gobgp = (...args: string[]): string => inNs(NS.gobgp, 'gobgp', ['-p', '50151', ...args]);
    gobgp('global', 'rib', '-a', 'ipv4', 'add', '203.0.113.64/26', 'community', '65003:100', 'large-community', '4200000003:1:2', 'med', '80');
    gobgp('global', 'rib', '-a', 'ipv4', 'add', '203.0.113.65/32');
    gobgp('global', 'rib', '-a', 'ipv6', 'add', '2001:db8:ff03::/48', 'community', '65003:100', 'large-community', '4200000003:1:2');
    gobgp('global', 'rib', '-a', 'ipv6', 'add', '2001:db8:ff03:1::/64');

    // Wait for End-of-RIB from everyone on the main sessions (bounded).
    const want = [ver.frr, ver.bird, ver.gobgp].flatMap((d) => [`${d}-eor-ipv4.bin`, `${d}-v6session-eor-ipv6.bin`]);
    for (let i = 0; i < 60 && !want.every((f) => existsSync(join(out, f))); i++) await sleep(250);
    await sleep(1000);

    const vtysh = (...cmds: string[]): string => inNs(NS.frr, 'vtysh', ['--vty_socket', join(frrDir, 'run'), ...cmds.flatMap((c) => ['-c', c])]);
    const birdc = (...args: string[]): string => inNs(NS.bird, 'birdc', ['-s', join(work, 'bird.ctl'), ...args]);
    // Withdrawals.
    vtysh('configure terminal', 'router bgp 4200000001', 'address-family ipv4 unicast', 'no network 203.0.113.1/32', 'exit-address-family',
      'address-family ipv6 unicast', 'no network 2001:db8:ff01:1::/64');
    birdc('disable', 's4w');
    birdc('disable', 's6w');
    gobgp('global', 'rib', '-a', 'ipv4', 'del', '203.0.113.65/32');
    gobgp('global', 'rib', '-a', 'ipv6', 'del', '2001:db8:ff03:1::/64');
    await sleep(1500);
    // Route refresh requests.
    vtysh('clear bgp ipv4 unicast 198.51.100.10 soft in', 'clear bgp ipv6 unicast 2001:db8:ca::10 soft in');
    birdc('reload', 'in', 'a');
    birdc('reload', 'in', 'b');
    gobgp('neighbor', '198.51.100.10', 'softresetin');
    gobgp('neighbor', '2001:db8:ca::10', 'softresetin');
    await sleep(1500);
    // Administrative shutdown with a message (RFC 9003).
    vtysh('configure terminal', 'router bgp 4200000001', 'neighbor 198.51.100.10 shutdown message maintenance');
    birdc('disable', 'a', '"maintenance"');
    gobgp('neighbor', '198.51.100.10', 'disable', '--reason', 'maintenance');
    await sleep(1500);
    for (const f of readdirSync(out).sort()) console.log(f);
    for (const f of readdirSync(out)) writeFileSync(join(HERE, f), readFileSync(join(out, f)));
    rec.kill('SIGTERM');
  } finally {
    for (const p of procs) if (p.pid !== undefined && p.exitCode === null) { try { process.kill(p.pid, 'SIGTERM'); } catch { /* already gone */ } }
    // FRR writes /var/tmp/frr while it shuts down: wait for every exit (bounded) before cleaning up.
    const alive = (): ChildProcess[] => procs.filter((p) => p.pid !== undefined && p.exitCode === null && p.signalCode === null);
    for (let i = 0; i < 30 && alive().length; i++) await sleep(100);
    for (const p of alive()) { try { process.kill(p.pid!, 'SIGKILL'); } catch { /* gone */ } }
    for (let i = 0; i < 20 && alive().length; i++) await sleep(100);
    for (const ns of Object.values(NS)) { try { sh('ip', ['netns', 'del', ns]); } catch { /* not made */ } }
    rmSync('/run/frr/pbgpcap-frr', { recursive: true, force: true });
    if (!hadVarTmpFrr) rmSync('/var/tmp/frr', { recursive: true, force: true });
    if (process.env.PBGPCAP_KEEP) console.log(`logs kept in ${work}`); else rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[2] === 'record') {
  record(process.argv[3]!, JSON.parse(process.argv[4]!) as Record<string, string>, Number(process.argv[5]));
} else {
  await main();
}
