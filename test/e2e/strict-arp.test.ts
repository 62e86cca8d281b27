// Strict ARP without /proc/sys, end to end: the speakers run with
// --strict-arp=nftables (what --strict-arp=auto picks in a container, where
// /proc/sys is read-only), so no arp_ignore/arp_announce is written and each
// node keeps the table arp portico instead. The VIPs are then put on a local
// interface of every node that does not own them (as the IPVS dataplane's
// portico0 or kube-proxy's kube-ipvs0 do): their kernels would answer ARP for
// them; the capture on the client shows that only the owner does. A control
// run without the table on one node shows that node's kernel answering, so
// the capture could fail. NDP needs no table: the kernel answers a
// solicitation only for addresses of the interface it came in on.
import { strict as assert } from 'node:assert';
import type { Lab } from '../lab/index.ts';
import { captureAnswers, settled, startL2, type L2Env } from './l2-env.ts';
import { requireE2e, sharedLab } from './shared-lab.ts';

const DUMMY = 'sarp0';

describe('strict ARP through nftables (e2e, root): only the owner answers while the VIPs sit on other nodes\' own interfaces', function () {
  this.timeout(180_000);
  let env: L2Env | undefined;
  let lab: Lab;
  let owner = '';
  let others: string[] = [];

  before(async function () {
    requireE2e(this);
    this.timeout(300_000);
    lab = await sharedLab();
    // The shared lab's nodes may carry the sysctls an earlier suite's speaker
    // (--strict-arp=sysctl, or auto where /proc/sys is writable) wrote: put the
    // kernel defaults back, so the first test sees what this speaker did.
    for (const n of lab.nodes) {
      for (const k of ['all', 'eth0']) {
        await lab.exec(n.name, ['sysctl', '-qw', `net.ipv4.conf.${k}.arp_ignore=0`, `net.ipv4.conf.${k}.arp_announce=0`]);
      }
    }
    env = await startL2(lab, { speakerArgs: ['--strict-arp=nftables'] });
    owner = await settled(lab, env);
    others = lab.nodes.map((n) => n.name).filter((n) => n !== owner);
    for (const n of others) {
      // A veth pair inside the node (this kernel has no dummy links): a local interface that is not eth0.
      await lab.exec(n, ['ip', 'link', 'add', DUMMY, 'type', 'veth', 'peer', 'name', `${DUMMY}p`]);
      await lab.exec(n, ['ip', 'link', 'set', DUMMY, 'up']);
      await lab.exec(n, ['ip', 'link', 'set', `${DUMMY}p`, 'up']);
      await lab.exec(n, ['ip', 'addr', 'add', `${env.vip4}/32`, 'dev', DUMMY]);
      await lab.exec(n, ['ip', 'addr', 'add', `${env.vip6}/128`, 'dev', DUMMY, 'nodad']);
    }
  });

  after(async function () {
    this.timeout(120_000);
    for (const n of lab?.nodes ?? []) await lab.exec(n.name, ['ip', 'link', 'del', DUMMY], { allowFail: true });
    await env?.stop();
  });

  const ask = async (): Promise<void> => {
    await lab.exec('client', ['ip', 'neigh', 'flush', 'dev', 'eth0']);
    await lab.curl('client', `http://${env!.vip4}/`, { timeoutS: 2 });
    await lab.curl('client', `http://[${env!.vip6}]/`, { timeoutS: 2 });
  };
  const dropped = async (node: string): Promise<number> => {
    const r = await lab.exec(node, ['nft', 'list', 'chain', 'arp', 'portico', 'output'], { allowFail: true });
    return Number(/counter packets (\d+)/.exec(r.stdout)?.[1] ?? -1);
  };

  it('no sysctl was written: every node keeps the kernel\'s default arp_ignore=0, and holds table arp portico with the VIP', async () => {
    for (const n of lab.nodes) {
      for (const k of ['all', 'eth0']) {
        const v = (await lab.exec(n.name, ['cat', `/proc/sys/net/ipv4/conf/${k}/arp_ignore`])).stdout.trim();
        assert.equal(v, '0', `${n.name}: net.ipv4.conf.${k}.arp_ignore`);
      }
      const t = await lab.exec(n.name, ['nft', 'list', 'table', 'arp', 'portico']);
      assert.match(t.stdout, new RegExp(`elements = \\{ ${env!.vip4.replaceAll('.', '\\.')} \\}`), `${n.name}: ${t.stdout}`);
    }
  });

  it('with the VIPs on a local interface of the other nodes, only the owner answers ARP and NDP (capture on the client); the others\' kernels tried and were dropped', async () => {
    const before = await Promise.all(others.map(dropped));
    const cap = await captureAnswers(lab, env!.vip4, env!.vip6, ask);
    const mac = await env!.macOf(owner);
    assert.deepEqual([...cap.arp], [mac], `ARP answers:\n${cap.lines.join('\n')}`);
    assert.deepEqual([...cap.ndp], [mac], `NDP answers:\n${cap.lines.join('\n')}`);
    const after = await Promise.all(others.map(dropped));
    assert.ok(others.some((_, i) => after[i]! > before[i]!), `a non-owner's kernel reply was dropped (counters ${before.join(',')} -> ${after.join(',')})`);
  });

  it('control: without the table on one other node, that node\'s kernel answers ARP too (the capture above could fail)', async () => {
    const n = others[0]!;
    const saved = (await lab.exec(n, ['nft', 'list', 'table', 'arp', 'portico'])).stdout;
    await lab.exec(n, ['nft', 'delete', 'table', 'arp', 'portico']);
    try {
      const cap = await captureAnswers(lab, env!.vip4, env!.vip6, ask);
      const macs = [await env!.macOf(owner), await env!.macOf(n)].sort();
      assert.deepEqual([...cap.arp].sort(), macs, `ARP answers without the table on ${n}:\n${cap.lines.join('\n')}`);
    } finally {
      await lab.exec(n, ['nft', '-f', '-'], { input: saved });
    }
  });
});
