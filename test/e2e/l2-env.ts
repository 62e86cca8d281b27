// Layer 2 in the lab, shared by the end-to-end tests (l2.test.ts,
// external-ips.test.ts) and bench/l2-failover and bench/api-load: Portico
// installed from manifests/portico.yaml (the controller and a speaker per node,
// each as its ServiceAccount), a dual-stack LoadBalancer Service with three
// pods, and helpers to read who owns the VIPs and what the client sees.
//
// Forwarding: the speakers' nftables dataplane (table inet portico) balances
// VIP traffic over every ready pod, including, for a few seconds, the pods of
// a node that just died (until its endpoints turn NotReady). To measure the
// layer-2 failover alone, forwardTo() pins VIP:80 to one pod away from the
// owner with a small nft table of this test that runs just before the
// dataplane's (DNAT, masquerade); the layer-2 announcer alone still decides
// which node receives the traffic.
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { PORTICO_NAMESPACE as NS, installPortico, repoRoot, sleep, waitFor, type Lab, type PorticoInstall } from '../lab/index.ts';
import { FAST_LEASE, SPEAKER_PROCESS } from '../lab/portico.ts';
import type { ProbeResult } from './l2-probe.ts';
import { apply as applyTo, layer2Space, runCleanups, type Cleanups, type Obj } from './objects.ts';
export type { ProbeResult };

export const APP = 'l2-e2e';
/** The lab.startOnNodes name of the speakers (for lab.restartOnNode). */
export const SPEAKER = SPEAKER_PROCESS;
const POOL = 'l2-pool';
const TABLE = 'pl2_e2e';
const PROBE = path.join(repoRoot, 'test', 'e2e', 'l2-probe.ts');

export interface L2Env {
  lab: Lab;
  /** The installed controller and speakers. */
  install: PorticoInstall;
  vip4: string;
  vip6: string;
  owner(): Promise<string>;
  macOf(node: string): Promise<string>;
  /** Pins VIP:80 on every node to one pod not on `avoid` (DNAT ahead of the dataplane's). */
  forwardTo(avoid: string): Promise<string>;
  probe(durationMs: number, during: () => Promise<void>, opts?: { intervalMs?: number }): Promise<ProbeResult[]>;
  stop(): Promise<void>;
}

/**
 * Brings up layer 2 on the shared lab: Portico from the manifests (one
 * controller replica with short lease timings, a speaker per node), a pool and
 * an L2Advertisement, a dual-stack Service with 3 pods. Used by the layer-2
 * and externalIPs tests and bench/l2-failover, bench/api-load.
 */
export async function startL2(lab: Lab, opts: { speakerArgs?: readonly string[] } = {}): Promise<L2Env> {
  const core = lab.kc.makeApiClient(k8s.CoreV1Api);
  const cleanups: Cleanups = [];
  const stop = (): Promise<void> => runCleanups(cleanups);
  try {
    // The controller creates the key when it is missing; creating it first keeps this run independent of that.
    await lab.kubectlResult(['create', 'namespace', NS]);
    await lab.kubectlResult(['create', 'secret', 'generic', 'portico-heartbeat', '-n', NS, `--from-literal=key=${randomBytes(32).toString('hex')}`]);
    const install = await installPortico(lab, {
      replicas: 1, controllerArgs: FAST_LEASE, stateDir: path.join(lab.dir, 'portico-l2'), ...(opts.speakerArgs ? { speakerArgs: opts.speakerArgs } : {}),
    });
    cleanups.push(() => install.stop());
    const apply = (...objs: Obj[]): Promise<void> => applyTo(lab, ...objs);
    await layer2Space(lab, cleanups, { pool: POOL, addresses: ['198.51.100.160/28', '2001:db8:1::a0/124'], advertisement: 'l2-adv', app: APP });
    await lab.kubectl('create', 'deployment', 'web', '-n', APP, '--image=portico.dev/podserver', '--replicas=3', '--port=80');
    await apply({
      apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: APP, annotations: { 'portico.dev/address-pool': POOL } },
      spec: { type: 'LoadBalancer', ipFamilyPolicy: 'RequireDualStack', ipFamilies: ['IPv4', 'IPv6'], ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 80 }], selector: { app: 'web' } },
    });
    const [vip4, vip6] = await waitFor('the Service to get two IPs', async () => {
      const s = await core.readNamespacedService({ name: 'web', namespace: APP });
      const ips = (s.status?.loadBalancer?.ingress ?? []).map((i) => i.ip ?? '');
      return ips.length === 2 ? ips : undefined;
    }, 60_000, 200) as [string, string];
    cleanups.push(async () => { for (const n of lab.nodes) await lab.exec(n.name, ['nft', 'delete', 'table', 'inet', TABLE], { allowFail: true }); });

    const owner = async (): Promise<string> => {
      const s = await core.readNamespacedService({ name: 'web', namespace: APP });
      return s.metadata?.annotations?.['portico.dev/layer2-node'] ?? '';
    };
    const macOf = async (node: string): Promise<string> => {
      const r = await lab.exec(node, ['cat', '/sys/class/net/eth0/address']);
      return r.stdout.trim();
    };
    const forwardTo = async (avoid: string): Promise<string> => {
      const pods = await waitFor('a ready pod away from the owner', async () => {
        const list = await core.listNamespacedPod({ namespace: APP, labelSelector: 'app=web' });
        const ready = list.items.filter((p) => p.spec?.nodeName !== avoid && p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
        return ready.length ? ready : undefined;
      }, 30_000, 200);
      const pod = pods[0]!;
      const ips = (pod.status?.podIPs ?? []).map((p) => p.ip);
      const p4 = ips.find((ip) => !ip.includes(':'));
      const p6 = ips.find((ip) => ip.includes(':'));
      assert.ok(p4 && p6, `pod ${pod.metadata?.name} has ${ips.join(', ')}`);
      const rules = `table inet ${TABLE} {
 chain pre { type nat hook prerouting priority dstnat - 10; ip daddr ${vip4} tcp dport 80 dnat ip to ${p4}:80; ip6 daddr ${vip6} tcp dport 80 dnat ip6 to [${p6}]:80; }
 chain post { type nat hook postrouting priority srcnat; ct status dnat masquerade; }
}
`;
      for (const n of lab.nodes) {
        await lab.exec(n.name, ['nft', 'delete', 'table', 'inet', TABLE], { allowFail: true });
        await lab.exec(n.name, ['nft', '-f', '-'], { input: rules });
      }
      return pod.metadata?.name ?? '';
    };
    const probe = async (durationMs: number, during: () => Promise<void>, opts: { intervalMs?: number } = {}): Promise<ProbeResult[]> => {
      const ready = path.join(lab.dir, `l2-probe-${process.pid}-${Date.now()}.ready`);
      const run = lab.exec('client', [process.execPath, PROBE, '--duration-ms', String(durationMs), '--interval-ms', String(opts.intervalMs ?? 10), '--timeout-ms', '150',
        '--ready-file', ready, `http://${vip4}/`, `http://[${vip6}]/`], { timeoutMs: durationMs + 40_000 });
      // Node takes a while to start on a busy machine: break things only once the probe measures.
      await waitFor('the probe to start measuring', () => existsSync(ready) || undefined, 20_000, 20);
      rmSync(ready, { force: true });
      await sleep(Math.min(1000, durationMs / 4));
      await during();
      const r = await run;
      return JSON.parse(r.stdout.trim().split('\n').pop()!) as ProbeResult[];
    };
    return { lab, install, vip4, vip6, owner, macOf, forwardTo, probe, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** ARP replies and Neighbor Advertisements for `vip4`/`vip6` seen on the client while `during` runs: the answering MACs. */
export async function captureAnswers(lab: Lab, vip4: string, vip6: string, during: () => Promise<void>): Promise<{ arp: Set<string>; ndp: Set<string>; lines: string[] }> {
  const file = `/tmp/pl2-capture-${process.pid}.txt`;
  const cap = lab.exec('client', ['sh', '-c', `timeout 4 tcpdump -l -n -e -i eth0 'arp or icmp6' > ${file} 2>/dev/null; cat ${file}; rm -f ${file}`], { allowFail: true, timeoutMs: 15_000 });
  await sleep(500);
  await during();
  const out = (await cap).stdout;
  const lines = out.split('\n').filter(Boolean);
  const arp = new Set<string>();
  const ndp = new Set<string>();
  for (const l of lines) {
    const src = l.split(' ')[1] ?? '';
    if (l.includes(`Reply ${vip4} is-at`)) arp.add(src);
    if (l.includes('neighbor advertisement') && l.includes(`tgt is ${vip6}`)) ndp.add(src);
  }
  return { arp, ndp, lines };
}

export async function neighbour(lab: Lab, ip: string): Promise<string> {
  const r = await lab.exec('client', ['ip', 'neigh', 'show', 'to', ip, 'dev', 'eth0'], { allowFail: true });
  return /lladdr (\S+)/.exec(r.stdout)?.[1] ?? '';
}

export async function metric(lab: Lab, node: string, name: string): Promise<number> {
  const r = await lab.exec(node, ['curl', '-sS', '--max-time', '2', 'http://127.0.0.1:7473/metrics'], { allowFail: true });
  return r.stdout.split('\n').filter((l) => l.startsWith(name)).reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
}

/** Waits until the annotated owner answers for both VIPs, the others for none, and every speaker sees all three; then forgets the client's neighbours. */
export async function settled(lab: Lab, env: L2Env): Promise<string> {
  // The metrics of three processes cannot be read at one instant: the same
  // verdict twice, half a second apart, rules out a reading caught mid-change.
  const verdict = async (): Promise<string | undefined> => {
    const live = await Promise.all(lab.nodes.map((n) => metric(lab, n.name, 'portico_membership_live_nodes_count')));
    const o = await env.owner();
    const owned = await Promise.all(lab.nodes.map((n) => metric(lab, n.name, 'portico_l2_owned_addresses')));
    return o !== '' && live.every((v) => v === 3) && lab.nodes.every((n, i) => owned[i] === (n.name === o ? 2 : 0)) ? o : undefined;
  };
  let last: string | undefined;
  const owner = await waitFor('one owner for the VIPs, agreed by every speaker', async () => {
    const v = await verdict();
    const stable = v !== undefined && v === last;
    last = v;
    return stable ? v : undefined;
  }, 60_000, 500);
  await lab.exec('client', ['ip', 'neigh', 'flush', 'dev', 'eth0']);
  return owner;
}
