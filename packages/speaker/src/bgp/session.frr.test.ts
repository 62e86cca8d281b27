// Portico's BGP session against a real FRR in network namespaces: routes
// appear in FRR's RIB with the right attributes, leave it when withdrawn, and
// survive a speaker crash as stale routes under graceful restart.
import { strict as assert } from 'node:assert';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const NS_FRR = 'pbgpcap-ifrr';
const NS_SPK = 'pbgpcap-ispk';
const root = process.getuid?.() === 0;
const haveFrr = existsSync('/usr/lib/frr/bgpd');

const sh = (cmd: string, args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const FRR_CONF = `frr defaults traditional
hostname pbgpcap-ifrr
router bgp 64501
 bgp router-id 198.51.100.2
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 bgp graceful-restart
 timers bgp 3 9
 neighbor 198.51.100.11 remote-as 64512
 neighbor 198.51.100.11 timers connect 1
 address-family ipv4 unicast
  neighbor 198.51.100.11 activate
 exit-address-family
 address-family ipv6 unicast
  neighbor 198.51.100.11 activate
 exit-address-family
`;

/** The parts of FRR's `show bgp ... PREFIX json` path objects the test reads. */
interface FrrPath {
  aspath?: { string?: string };
  community?: { string?: string };
  largeCommunity?: { string?: string };
  nexthops?: { ip?: string }[];
  stale?: boolean;
}

describe('bgp session against FRR (needs root and FRR)', function () {
  this.timeout(60_000);
  let work = '';
  const procs: ChildProcess[] = [];
  let hadVarTmpFrr = true;
  let vtyDir = '';

  const vtysh = (cmd: string): unknown => JSON.parse(sh('ip', ['netns', 'exec', NS_FRR, 'vtysh', '--vty_socket', vtyDir, '-c', cmd]) || '{}');
  const path = (prefix: string): FrrPath | undefined => {
    const afi = prefix.includes(':') ? 'ipv6' : 'ipv4';
    const r = vtysh(`show bgp ${afi} unicast ${prefix} json`) as { paths?: FrrPath[] };
    return r.paths?.[0];
  };
  async function until<T>(fn: () => T | undefined, what: string, ms = 10_000): Promise<T> {
    const end = Date.now() + ms;
    for (;;) {
      const v = fn();
      if (v) return v;
      if (Date.now() > end) throw new Error(`timed out: ${what}`);
      await sleep(100);
    }
  }

  function speaker(restarting: boolean): { proc: ChildProcess; send: (o: unknown) => void; events: Record<string, unknown>[] } {
    const opts = {
      localAsn: 64512, peerAsn: 64501, bgpId: '198.51.100.11', holdTime: 9, connectRetryTime: 1, passive: false,
      peerAddress: '198.51.100.2', sourceAddress: '198.51.100.11', nextHop: { ipv6: '2001:db8:cb::11' },
      gracefulRestart: { restartTime: 120, restarting },
    };
    const proc = spawn('ip', ['netns', 'exec', NS_SPK, process.execPath, join(HERE, 'testdata', 'session-peer.ts'), JSON.stringify(opts)], { stdio: ['pipe', 'pipe', 'inherit'] });
    procs.push(proc);
    const events: Record<string, unknown>[] = [];
    let buf = '';
    proc.stdout.on('data', (c: Buffer) => {
      buf += c.toString();
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) { events.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>); buf = buf.slice(i + 1); }
    });
    return { proc, events, send: (o) => proc.stdin.write(`${JSON.stringify(o)}\n`) };
  }

  before(function () {
    if (!root || !haveFrr) {
      console.log(`      skipped: ${!root ? 'needs root (network namespaces)' : 'needs FRR (apt-get install frr)'}`);
      this.skip();
    }
    hadVarTmpFrr = existsSync('/var/tmp/frr');
    work = mkdtempSync(join(tmpdir(), 'pbgpcap-i-'));
    chmodSync(work, 0o755);
    for (const ns of [NS_FRR, NS_SPK]) { sh('ip', ['netns', 'add', ns]); sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']); }
    sh('ip', ['link', 'add', 'eth0', 'netns', NS_FRR, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NS_SPK]);
    for (const [ns, n] of [[NS_FRR, 2], [NS_SPK, 11]] as const) {
      sh('ip', ['-n', ns, 'addr', 'add', `198.51.100.${n}/24`, 'dev', 'eth0']);
      sh('ip', ['-n', ns, 'addr', 'add', `2001:db8:cb::${n}/64`, 'dev', 'eth0', 'nodad']);
      sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    }
    const dir = join(work, 'frr');
    vtyDir = join(dir, 'run');
    mkdirSync(vtyDir, { recursive: true });
    writeFileSync(join(dir, 'zebra.conf'), 'hostname pbgpcap-ifrr\n');
    writeFileSync(join(dir, 'bgpd.conf'), FRR_CONF);
    const uid = Number(sh('id', ['-u', 'frr']));
    const gid = Number(sh('id', ['-g', 'frr']));
    for (const p of [dir, vtyDir, join(dir, 'zebra.conf'), join(dir, 'bgpd.conf')]) chownSync(p, uid, gid);
    chmodSync(dir, 0o770);
    chmodSync(vtyDir, 0o770);
    const common = ['-N', NS_FRR, '--vty_socket', vtyDir, '-z', join(vtyDir, 'zserv.api'), '-A', '127.0.0.1'];
    procs.push(spawn('ip', ['netns', 'exec', NS_FRR, '/usr/lib/frr/zebra', ...common, '-f', join(dir, 'zebra.conf'), '-i', join(vtyDir, 'zebra.pid')], { stdio: 'ignore' }));
    execFileSync('sleep', ['0.7']);
    procs.push(spawn('ip', ['netns', 'exec', NS_FRR, '/usr/lib/frr/bgpd', ...common, '-f', join(dir, 'bgpd.conf'), '-i', join(vtyDir, 'bgpd.pid')], { stdio: 'ignore' }));
  });

  after(async () => {
    for (const p of procs) if (p.pid !== undefined && p.exitCode === null && p.signalCode === null) { try { process.kill(p.pid, 'SIGTERM'); } catch { /* gone */ } }
    // FRR writes /var/tmp/frr while it shuts down: wait for every exit (bounded) before cleaning up.
    const alive = (): ChildProcess[] => procs.filter((p) => p.pid !== undefined && p.exitCode === null && p.signalCode === null);
    for (let i = 0; i < 30 && alive().length; i++) await sleep(100);
    for (const p of alive()) { try { process.kill(p.pid!, 'SIGKILL'); } catch { /* gone */ } }
    for (let i = 0; i < 20 && alive().length; i++) await sleep(100);
    for (const ns of [NS_FRR, NS_SPK]) { try { sh('ip', ['netns', 'del', ns]); } catch { /* not made */ } }
    rmSync(`/run/frr/${NS_FRR}`, { recursive: true, force: true });
    if (!hadVarTmpFrr) rmSync('/var/tmp/frr', { recursive: true, force: true });
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const ads = [
    { prefix: '203.0.113.10/32', communities: ['64512:100'], largeCommunities: ['64512:1:2'] },
    { prefix: '2001:db8:ff::10/128', communities: ['64512:100'] },
  ];

  it('announces a /32 and a /128 that FRR installs with next hop, AS path and communities, and withdraws them', async () => {
    const s = speaker(false);
    await until(() => s.events.find((e) => e.event === 'established'), 'session Established with FRR');
    s.send({ set: ads });
    const p4 = await until(() => path('203.0.113.10/32'), '203.0.113.10/32 in FRR');
    assert.equal(p4.aspath?.string, '64512');
    assert.equal(p4.community?.string, '64512:100');
    assert.equal(p4.largeCommunity?.string, '64512:1:2');
    assert.equal(p4.nexthops?.[0]?.ip, '198.51.100.11');
    const p6 = await until(() => path('2001:db8:ff::10/128'), '2001:db8:ff::10/128 in FRR');
    assert.equal(p6.nexthops?.[0]?.ip, '2001:db8:cb::11');
    s.send({ set: ads.slice(1) });
    await until(() => (path('203.0.113.10/32') ? undefined : true), 'withdrawal of 203.0.113.10/32');
    assert.ok(path('2001:db8:ff::10/128'), 'the /128 stays');
    s.send({ set: ads });
    await until(() => path('203.0.113.10/32'), '203.0.113.10/32 back');
    // Crash: no NOTIFICATION. FRR keeps the routes, stale, under graceful restart (RFC 4724 §4.2).
    process.kill(s.proc.pid!, 'SIGKILL');
    const stale = await until(() => { const p = path('203.0.113.10/32'); return p?.stale ? p : undefined; }, 'the route marked stale');
    assert.equal(stale.nexthops?.[0]?.ip, '198.51.100.11');
    // The restarted speaker (R bit) sends its routes and End-of-RIB; the route is fresh again.
    const t = speaker(true);
    await until(() => t.events.find((e) => e.event === 'established'), 'session Established after restart', 20_000);
    t.send({ set: ads });
    await until(() => { const p = path('203.0.113.10/32'); return p && !p.stale ? p : undefined; }, 'the route refreshed, not stale');
    await until(() => { const p = path('2001:db8:ff::10/128'); return p && !p.stale ? p : undefined; }, 'the /128 refreshed');
    t.send({ stop: 'test done' });
    await until(() => (path('203.0.113.10/32') ? undefined : true), 'routes gone after an administrative stop');
  });
});
