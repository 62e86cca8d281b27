// The IPVS VM harness: one boot for the whole run, scripts in, results out,
// and a real ip_vs kernel answering ipvsadm.
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { cpioNewc } from './cpio.ts';
import { kernelVersion } from './kernel.ts';
import { sharedVm, vmUnavailableReason, type Vm } from './vm.ts';

describe('VM harness pieces', () => {
  it('kernelVersion takes the release from the package name', () => {
    assert.equal(kernelVersion('linux-image-6.1.0-99-amd64'), '6.1.0-99-amd64');
    assert.throws(() => kernelVersion('linux-image-amd64'), /not a kernel image package/);
  });

  it('cpioNewc writes an archive that cpio(1) lists with the right types and sizes', function () {
    if (spawnSync('sh', ['-c', 'command -v cpio'], { stdio: 'ignore' }).status !== 0) {
      console.log('      skipped: cpio(1) is not installed (Debian package cpio)');
      this.skip();
    }
    const archive = cpioNewc([
      { kind: 'dir', path: 'bin' },
      { kind: 'file', path: 'bin/hello', data: Buffer.from('hello\n'), mode: 0o755 },
      { kind: 'symlink', path: 'bin/sh', target: 'hello' },
      { kind: 'chardev', path: 'console', major: 5, minor: 1 },
    ]);
    assert.equal(archive.length % 4, 0);
    const r = spawnSync('cpio', ['-itv', '--quiet'], { input: archive, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 4, r.stdout);
    assert.match(lines[0]!, /^drwxr-xr-x .* bin$/);
    assert.match(lines[1]!, /^-rwxr-xr-x .* 6 .* bin\/hello$/);
    assert.match(lines[2]!, /^lrwxrwxrwx .* bin\/sh -> hello$/);
    assert.match(lines[3]!, /^crw------- .* 5,\s+1 .* console$/);
  });
});

describe('IPVS VM (needs root and qemu)', function () {
  this.timeout(120_000);
  let vm: Vm;

  before(async function () {
    const reason = vmUnavailableReason();
    if (reason) {
      console.log(`    skipped: ${reason}`);
      this.skip();
    }
    // First run on a machine downloads and unpacks the kernel; then boot (about 7 s under TCG).
    this.timeout(600_000);
    vm = await sharedVm();
    console.log(`    VM ${vm.kernel.version} ready in ${vm.bootMs} ms`);
  });

  it('runs the Debian kernel named by apt, not the host kernel', async () => {
    const r = await vm.run('uname -r');
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(r.stdout.trim(), vm.kernel.version);
  });

  it('loads ip_vs; a virtual service added with ipvsadm shows in ipvsadm -Ln', async () => {
    const r = await vm.run(`
      set -e
      test -e /proc/net/ip_vs
      ipvsadm -A -t 203.0.113.10:80 -s rr
      ipvsadm -a -t 203.0.113.10:80 -r 198.51.100.21:8080 -m -w 2
      # mh is not preloaded: the kernel loads it through the VM's modprobe helper.
      ipvsadm -A -u [2001:db8::10]:53 -s mh
      ipvsadm -Ln
      ipvsadm -D -t 203.0.113.10:80
      ipvsadm -D -u [2001:db8::10]:53
      ipvsadm -Ln > after.txt
    `);
    assert.equal(r.exitCode, 0, r.stderr);
    const lines = r.stdout.split('\n').map((l) => l.trim().split(/\s+/).join(' '));
    assert.ok(lines.includes('TCP 203.0.113.10:80 rr'), r.stdout);
    assert.ok(lines.includes('-> 198.51.100.21:8080 Masq 2 0 0'), r.stdout);
    assert.ok(lines.includes('UDP [2001:db8::10]:53 mh'), r.stdout);
    const after = r.files['after.txt']?.toString() ?? '';
    assert.doesNotMatch(after, /203\.0\.113\.10|2001:db8::10/, 'the services were deleted again');
  });

  it('returns a failing script\'s exit code and output', async () => {
    const r = await vm.run('echo partial; echo "it broke" >&2; exit 3');
    assert.equal(r.exitCode, 3);
    assert.equal(r.stdout, 'partial\n');
    assert.equal(r.stderr, 'it broke\n');
    const missing = await vm.run('ipvsadm -D -t 203.0.113.99:81');
    assert.notEqual(missing.exitCode, 0, 'deleting a service that does not exist fails');
    assert.match(missing.stderr, /No such service/);
  });

  it('passes environment and input files in, and brings written files back', async () => {
    const r = await vm.run('cat "$PORTICO_IN/req.txt" > copy.txt; mkdir -p sub; printf "%s" "$GREETING" > sub/env.txt; pwd', {
      env: { GREETING: "it's here" },
      files: { 'req.txt': 'from the host\n' },
    });
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(r.files['copy.txt']?.toString(), 'from the host\n');
    assert.equal(r.files['sub/env.txt']?.toString(), "it's here");
  });

  it('stops a script at its timeout with exit code 124 and keeps serving', async () => {
    const r = await vm.run('echo started; sleep 60', { timeoutMs: 1000 });
    assert.equal(r.exitCode, 124);
    assert.equal(r.stdout, 'started\n');
    assert.ok(r.durationMs < 20_000, `took ${r.durationMs} ms`);
    const again = await vm.run('echo still here');
    assert.equal(again.stdout, 'still here\n');
  });

  it('Portico\'s netlink client creates portico0 with VIPs and programs IPVS; ip and ipvsadm agree', async () => {
    const probe = new URL('../../packages/speaker/src/netlink/probe.ts', import.meta.url).pathname;
    const node = process.execPath;
    const r = await vm.run(`
      set -e
      ip netns add pnlcap-vm
      ip -n pnlcap-vm link set lo up
      run() { ip netns exec pnlcap-vm "${node}" "${probe}" "$1" > "$1.json"; }
      run route-setup
      ip -n pnlcap-vm -d link show portico0 > link.txt
      ip -n pnlcap-vm addr show dev portico0 > addr.txt
      run route-teardown
      ip -n pnlcap-vm link show > links-after.txt
      # A foreign IPVS service (made by ipvsadm) must survive Portico's changes.
      ip netns exec pnlcap-vm ipvsadm -A -u 203.0.113.50:53 -s rr
      run ipvs-setup
      ip netns exec pnlcap-vm ipvsadm -Ln > ipvs.txt
      run ipvs-teardown
      ip netns exec pnlcap-vm ipvsadm -Ln > ipvs-after.txt
      ip netns del pnlcap-vm
    `, { timeoutMs: 90_000 });
    assert.equal(r.exitCode, 0, r.stderr);
    const json = (name: string): Record<string, unknown> => JSON.parse(r.files[name]!.toString()) as Record<string, unknown>;
    const up = json('route-setup.json');
    assert.deepEqual(up.create, { ok: true });
    assert.deepEqual(up.createAgain, { error: { errno: 'EEXIST', message: null } });
    // Setting portico0 up also gives it an IPv6 link-local address.
    assert.deepEqual((up.addrs as string[]).filter((a) => !a.startsWith('fe80:')).sort(), ['2001:db8::20/128', '203.0.113.20/32']);
    const link = r.files['link.txt']!.toString();
    assert.match(link, /portico0: <BROADCAST,NOARP,UP,LOWER_UP>/);
    assert.match(link, /\bdummy\b/);
    const addr = r.files['addr.txt']!.toString();
    assert.match(addr, /inet 203\.0\.113\.20\/32 scope global portico0/);
    assert.match(addr, /inet6 2001:db8::20\/128 scope global nodad/);
    assert.doesNotMatch(r.files['links-after.txt']!.toString(), /portico0/);
    assert.deepEqual(json('route-teardown.json').deleteMissing, { error: { errno: 'ENODEV', message: null } });

    const ipvs = json('ipvs-setup.json');
    assert.equal((ipvs.family as { name: string }).name, 'IPVS');
    assert.deepEqual(ipvs.addAgain, { error: { errno: 'EEXIST', message: null } });
    const table = r.files['ipvs.txt']!.toString().split('\n').map((l) => l.trim().split(/\s+/).join(' '));
    assert.ok(table.includes('TCP 203.0.113.10:80 rr'), table.join('\n'));
    assert.ok(table.includes('-> 198.51.100.21:8080 Masq 1 0 0'), table.join('\n'));
    assert.ok(table.includes('-> 198.51.100.22:8080 Masq 2 0 0'), table.join('\n'));
    assert.ok(table.includes('UDP 203.0.113.50:53 rr'), 'the foreign service is there');
    const dests = (ipvs.dests as Array<{ address: string; weight: number; forward: string }>).map((d) => `${d.address} ${d.forward} ${d.weight}`).sort();
    assert.deepEqual(dests, ['198.51.100.21 masq 1', '198.51.100.22 masq 2'], 'our dump reads back what we programmed');
    const down = json('ipvs-teardown.json');
    assert.deepEqual(down.deleteAgain, { error: { errno: 'ESRCH', message: null } });
    const after = r.files['ipvs-after.txt']!.toString();
    assert.doesNotMatch(after, /203\.0\.113\.10:80/);
    assert.match(after, /UDP\s+203\.0\.113\.50:53 rr/, 'the foreign service survived');
  });

  it('runs the host\'s Node 24 inside the VM', async () => {
    const r = await vm.run(`"${process.execPath}" -e 'console.log(process.versions.node)'`);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(r.stdout.trim(), process.versions.node);
  });
});
