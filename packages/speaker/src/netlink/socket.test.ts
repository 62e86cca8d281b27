// The netlink client against this machine's kernel, in a network namespace of
// the test's own (needs root). The machines here have no dummy driver and no
// ip_vs, so this checks the refusals and puts the VIPs on the namespace's lo;
// test/vm/vm.test.ts runs the same probe where portico0 and IPVS exist.
import { strict as assert } from 'node:assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { nativeAvailable } from '../native/index.ts';

const PROBE = new URL('./probe.ts', import.meta.url).pathname;
const NS = `pnlcap-${process.pid}`;

function probe(phase: string): Record<string, unknown> {
  const r = spawnSync('ip', ['netns', 'exec', NS, process.execPath, PROBE, phase], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, `probe ${phase}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
}

function kernelAddrs(): string[] {
  const out = execFileSync('ip', ['-n', NS, '-j', 'addr', 'show', 'dev', 'lo'], { encoding: 'utf8' });
  const links = JSON.parse(out) as Array<{ addr_info: Array<{ local: string; prefixlen: number }> }>;
  return links.flatMap((l) => l.addr_info.map((a) => `${a.local}/${a.prefixlen}`)).sort();
}

describe('netlink socket in a namespace (needs root)', function () {
  this.timeout(60_000);
  before(function () {
    const why = process.platform !== 'linux' ? 'needs Linux' : process.getuid?.() !== 0 ? 'needs root for a network namespace' : !nativeAvailable() ? 'the native addon is not built' : null;
    if (why) {
      console.log(`    skipped: ${why}`);
      this.skip();
    }
    execFileSync('ip', ['netns', 'add', NS]);
    execFileSync('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
  });
  after(() => {
    spawnSync('ip', ['netns', 'del', NS]);
  });

  it('adds VIPs (IPv4 /32, IPv6 /128 nodad) that the kernel then holds, reports refusals by errno name and kernel text, and removes them', () => {
    const up = probe('route-setup');
    const create = up.create as { ok?: true; error?: { errno: string; message: string } };
    const hasDummy = 'ok' in create;
    if (!hasDummy) assert.deepEqual(create.error, { errno: 'EOPNOTSUPP', message: 'Unknown device type' }, 'no dummy driver here');
    else assert.deepEqual(up.createAgain, { error: { errno: 'EEXIST', message: null } });
    assert.deepEqual(up.addAgain, { error: { errno: 'EEXIST', message: 'ipv4: Address already assigned' } });
    assert.ok((up.addrs as string[]).includes('203.0.113.20/32') && (up.addrs as string[]).includes('2001:db8::20/128'), JSON.stringify(up.addrs));
    if (!hasDummy) {
      assert.deepEqual(kernelAddrs(), ['127.0.0.1/8', '2001:db8::20/128', '203.0.113.20/32', '::1/128'].sort(), 'ip addr agrees');
      const v6 = execFileSync('ip', ['-n', NS, '-6', 'addr', 'show', 'dev', 'lo'], { encoding: 'utf8' });
      assert.match(v6, /2001:db8::20\/128 scope global nodad/);
    }
    const down = probe('route-teardown');
    assert.deepEqual(down.deleteMissing, { error: { errno: 'ENODEV', message: null } });
    if (!hasDummy) assert.deepEqual(kernelAddrs(), ['127.0.0.1/8', '::1/128'].sort());
  });

  it('resolving the IPVS family fails with ENOENT where the kernel has no ip_vs', function () {
    if (spawnSync('sh', ['-c', 'grep -q ip_vs /proc/modules || test -d /proc/net/ip_vs'], { stdio: 'ignore' }).status === 0) {
      console.log('      skipped: this kernel has ip_vs (the VM test covers it)');
      this.skip();
    }
    assert.deepEqual(probe('ipvs-setup').family, { error: { errno: 'ENOENT', message: null } });
  });
});
