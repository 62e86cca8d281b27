// Layer 2 end to end: the controller and a speaker per node on the lab's real
// API server, a dual-stack LoadBalancer Service, and a client on the segment.
// The client's own kernel resolves the VIPs (ARP and NDP) and its HTTP
// requests must reach a pod; then the properties of DESIGN.md decision 9:
// a killed or disconnected owner is replaced within 1 s, an API outage and a
// speaker restart change nothing, and exactly one node answers.
//
// Forwarding: the dataplane has not landed, so every node gets a small nft
// rule (DNAT of VIP:80 to one pod, masquerade) installed by this test; the
// layer-2 announcer alone decides which node receives the traffic.
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { repoRoot, sleep, waitFor, type Lab } from '../lab/index.ts';
import type { ProbeResult } from './l2-probe.ts';
import { requireE2e, sharedLab } from './shared-lab.ts';

const NS = 'portico-system';
const APP = 'l2-e2e';
const SPEAKER = 'l2-speaker';
const CONTROLLER = 'l2-controller';
const POOL = 'l2-pool';
const TABLE = 'pl2_e2e';
const MAIN = path.join(repoRoot, 'packages', 'speaker', 'src', 'main.ts');
const CONTROLLER_MAIN = path.join(repoRoot, 'packages', 'controller', 'src', 'main.ts');
const PROBE = path.join(repoRoot, 'test', 'e2e', 'l2-probe.ts');
/** The e2e budget for an API outage (the issue asks for a minute; CI time is shared). */
const OUTAGE_MS = 25_000;

type Obj = Record<string, unknown>;

export interface L2Env {
  lab: Lab;
  vip4: string;
  vip6: string;
  owner(): Promise<string>;
  macOf(node: string): Promise<string>;
  /** DNAT rules on every node to a pod not on `avoid`. */
  forwardTo(avoid: string): Promise<string>;
  probe(durationMs: number, during: () => Promise<void>, opts?: { intervalMs?: number }): Promise<ProbeResult[]>;
  stop(): Promise<void>;
}

/** Brings up layer 2 on the shared lab: CRDs, key, pool, controller, speakers, a dual-stack Service with 3 pods. Used by this test and bench/l2-failover. */
export async function startL2(lab: Lab): Promise<L2Env> {
  const core = lab.kc.makeApiClient(k8s.CoreV1Api);
  const cleanups: (() => Promise<unknown>)[] = [];
  const stop = async (): Promise<void> => { for (const c of cleanups.reverse()) await c().catch(() => undefined); };
  try {
    await lab.kubectlResult(['create', 'namespace', NS]);
    await lab.kubectl('apply', '-f', path.join(repoRoot, 'manifests', 'crds'));
    await lab.kubectl('wait', '--for=condition=Established', '--timeout=60s', 'crd/ipaddresspools.portico.dev', 'crd/l2advertisements.portico.dev');
    // The controller creates the key when it is missing; creating it first keeps this run independent of that.
    await lab.kubectlResult(['create', 'secret', 'generic', 'portico-heartbeat', '-n', NS, `--from-literal=key=${randomBytes(32).toString('hex')}`]);
    const apply = async (...objs: Obj[]): Promise<void> => {
      const r = await lab.kubectlResult(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objs }));
      assert.equal(r.code, 0, r.stderr);
    };
    await apply(
      { apiVersion: 'portico.dev/v1beta1', kind: 'IPAddressPool', metadata: { name: POOL, namespace: NS }, spec: { addresses: ['198.51.100.160/28', '2001:db8:1::a0/124'], autoAssign: false } },
      { apiVersion: 'portico.dev/v1beta1', kind: 'L2Advertisement', metadata: { name: 'l2-adv', namespace: NS }, spec: { ipAddressPools: [POOL] } },
    );
    cleanups.push(() => lab.kubectlResult(['delete', 'l2advertisements', 'l2-adv', '-n', NS, '--ignore-not-found']));
    cleanups.push(() => lab.kubectlResult(['delete', 'ipaddresspools', POOL, '-n', NS, '--ignore-not-found']));
    lab.spawn(CONTROLLER, undefined, [process.execPath, CONTROLLER_MAIN, '--kubeconfig', lab.kubeconfig, '--identity', CONTROLLER, '--listen', '127.0.0.1:0',
      '--lease-duration', '4', '--renew-deadline', '3', '--retry-period', '0.5']);
    cleanups.push(() => lab.stopProcess(CONTROLLER));
    lab.startOnNodes({
      name: SPEAKER,
      argv: (n) => [process.execPath, MAIN, '--kubeconfig', lab.segmentKubeconfig, '--node-name', n.name,
        '--state-dir', path.join(lab.dir, `state-${SPEAKER}-${n.name}`), '--listen', '127.0.0.1:7473'],
    });
    cleanups.push(() => lab.stopOnNodes(SPEAKER));
    await lab.kubectlResult(['create', 'namespace', APP]);
    cleanups.push(() => lab.kubectlResult(['delete', 'namespace', APP, '--wait=false']));
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
 chain pre { type nat hook prerouting priority dstnat; ip daddr ${vip4} tcp dport 80 dnat ip to ${p4}:80; ip6 daddr ${vip6} tcp dport 80 dnat ip6 to [${p6}]:80; }
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
      const run = lab.exec('client', [process.execPath, PROBE, '--duration-ms', String(durationMs), '--interval-ms', String(opts.intervalMs ?? 10), '--timeout-ms', '150',
        `http://${vip4}/`, `http://[${vip6}]/`], { timeoutMs: durationMs + 30_000 });
      await sleep(Math.min(1000, durationMs / 4));
      await during();
      const r = await run;
      return JSON.parse(r.stdout.trim().split('\n').pop()!) as ProbeResult[];
    };
    return { lab, vip4, vip6, owner, macOf, forwardTo, probe, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** ARP replies and Neighbor Advertisements for `vip4`/`vip6` seen on the client while `during` runs: the answering MACs. */
async function captureAnswers(lab: Lab, vip4: string, vip6: string, during: () => Promise<void>): Promise<{ arp: Set<string>; ndp: Set<string>; lines: string[] }> {
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

async function neighbour(lab: Lab, ip: string): Promise<string> {
  const r = await lab.exec('client', ['ip', 'neigh', 'show', 'to', ip, 'dev', 'eth0'], { allowFail: true });
  return /lladdr (\S+)/.exec(r.stdout)?.[1] ?? '';
}

async function metric(lab: Lab, node: string, name: string): Promise<number> {
  const r = await lab.exec(node, ['curl', '-sS', '--max-time', '2', 'http://127.0.0.1:7473/metrics'], { allowFail: true });
  return r.stdout.split('\n').filter((l) => l.startsWith(name)).reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
}

/** Waits until the annotated owner answers for both VIPs, the others for none, and every speaker sees all three; then forgets the client's neighbours. */
export async function settled(lab: Lab, env: L2Env): Promise<string> {
  const owner = await waitFor('one owner for the VIPs, agreed by every speaker', async () => {
    const o = await env.owner();
    if (o === '') return undefined;
    const owned = await Promise.all(lab.nodes.map((n) => metric(lab, n.name, 'portico_l2_owned_addresses')));
    const live = await Promise.all(lab.nodes.map((n) => metric(lab, n.name, 'portico_membership_live_nodes_count')));
    return live.every((v) => v === 3) && lab.nodes.every((n, i) => owned[i] === (n.name === o ? 2 : 0)) ? o : undefined;
  }, 60_000, 200);
  await lab.exec('client', ['ip', 'neigh', 'flush', 'dev', 'eth0']);
  return owner;
}

describe('layer 2 (e2e, root): ARP/NDP ownership, failover and stability in the lab', function () {
  this.timeout(180_000);
  let env: L2Env;
  let lab: Lab;

  before(async function () {
    requireE2e(this);
    this.timeout(240_000);
    lab = await sharedLab();
    env = await startL2(lab);
    await settled(lab, env);
  });

  after(async function () {
    this.timeout(120_000);
    await env?.stop();
  });

  const assertFlows = (results: ProbeResult[], maxGapMs: number, what: string): void => {
    console.log(`      ${what}: longest silence ${results.map((r) => `${r.url} ${r.maxGapMs} ms (${r.failed} failed of ${r.ok + r.failed})`).join(', ')}`);
    for (const r of results) {
      assert.ok(r.ok > 0, `${what}: ${r.url} never answered (${r.lastError})`);
      assert.ok(r.maxGapMs <= maxGapMs, `${what}: ${r.url} went silent for ${r.maxGapMs} ms (${r.gapFromMs}-${r.gapToMs} ms into the probe; ok ${r.ok}, failed ${r.failed}, last error ${r.lastError})`);
    }
  };

  it('the client resolves both VIPs to the owner\'s MAC and HTTP reaches a pod over IPv4 and IPv6', async () => {
    const owner = await env.owner();
    const pod = await env.forwardTo(owner);
    for (const url of [`http://${env.vip4}/`, `http://[${env.vip6}]/`]) {
      const body = JSON.parse(await waitFor(`${url} to answer`, () => lab.curl('client', url, { timeoutS: 2 }).catch(() => undefined), 20_000, 200)) as { pod: string };
      assert.equal(body.pod, pod);
    }
    const mac = await env.macOf(owner);
    assert.equal(await neighbour(lab, env.vip4), mac, 'ARP resolved to the owner');
    assert.equal(await neighbour(lab, env.vip6), mac, 'NDP resolved to the owner');
    const events = await lab.kc.makeApiClient(k8s.CoreV1Api).listNamespacedEvent({ namespace: APP, fieldSelector: 'involvedObject.name=web' });
    assert.ok(events.items.some((e) => e.reason === 'nodeAssigned' && e.message?.includes(`node "${owner}"`) && e.message.includes('layer2')), 'a nodeAssigned Event names the owner');
    assert.equal(await metric(lab, owner, 'portico_l2_owned_addresses'), 2);
    assert.equal(await metric(lab, owner, 'portico_membership_live_nodes_count'), 3);
  });

  it('exactly one node answers ARP and NDP for the VIPs once settled (capture on the client)', async () => {
    const owner = await env.owner();
    const cap = await captureAnswers(lab, env.vip4, env.vip6, async () => {
      await lab.exec('client', ['ip', 'neigh', 'flush', 'dev', 'eth0']);
      await lab.curl('client', `http://${env.vip4}/`, { timeoutS: 2 });
      await lab.curl('client', `http://[${env.vip6}]/`, { timeoutS: 2 });
    });
    const mac = await env.macOf(owner);
    assert.deepEqual([...cap.arp], [mac], `ARP answers: ${cap.lines.join('\n')}`);
    assert.deepEqual([...cap.ndp], [mac], `NDP answers: ${cap.lines.join('\n')}`);
    for (const n of lab.nodes.filter((x) => x.name !== owner)) assert.equal(await metric(lab, n.name, 'portico_l2_owned_addresses'), 0, `${n.name} owns nothing`);
  });

  it('a speaker restart on the owner does not move the IPs and traffic keeps flowing', async () => {
    const owner = await env.owner();
    const mac = await env.macOf(owner);
    await env.forwardTo(owner);
    const others = await Promise.all(lab.nodes.filter((n) => n.name !== owner).map((n) => metric(lab, n.name, 'portico_l2_gratuitous_sent_total')));
    const results = await env.probe(6000, () => lab.restartOnNode(SPEAKER, owner), { intervalMs: 50 });
    assertFlows(results, 1000, 'speaker restart');
    assert.equal(await env.owner(), owner);
    await waitFor('the restarted speaker to answer again', async () => (await metric(lab, owner, 'portico_l2_owned_addresses')) === 2, 20_000, 200);
    const after = await Promise.all(lab.nodes.filter((n) => n.name !== owner).map((n) => metric(lab, n.name, 'portico_l2_gratuitous_sent_total')));
    assert.deepEqual(after, others, 'no other node announced the VIPs');
    assert.equal(await neighbour(lab, env.vip4), mac);
  });

  for (const how of ['killed', 'disconnected'] as const) {
    it(`the owner ${how}: another node answers and traffic flows again within 1 s (IPv4 and IPv6)`, async () => {
      const owner = await env.owner();
      await env.forwardTo(owner);
      let results: ProbeResult[];
      try {
        results = await env.probe(4000, () => (how === 'killed' ? lab.killNode(owner) : lab.disconnectNode(owner)));
        const heir = await waitFor('a new owner in the Service\'s annotations', async () => { const o = await env.owner(); return o !== owner && o !== '' ? o : undefined; }, 20_000, 200);
        assert.equal(await neighbour(lab, env.vip4), await env.macOf(heir), 'the client\'s ARP entry points at the new owner');
        assert.equal(await neighbour(lab, env.vip6), await env.macOf(heir), 'the client\'s NDP entry points at the new owner');
        if (how === 'disconnected') assert.equal(await metric(lab, owner, 'portico_l2_owned_addresses'), 0, 'the cut-off node claims nothing');
      } finally {
        if (how === 'killed') await lab.restartNode(owner);
        else await lab.reconnectNode(owner);
      }
      assertFlows(results, 1000, `owner ${how}`);
      // Settle again before the next test: the returning node takes back what the hash gives it.
      await settled(lab, env);
    });
  }

  it(`the API server stopped for ${OUTAGE_MS / 1000} s changes no announcement and traffic keeps flowing`, async () => {
    const owner = await env.owner();
    await env.forwardTo(owner);
    const before = await Promise.all(lab.nodes.map((n) => metric(lab, n.name, 'portico_l2_gratuitous_sent_total')));
    let results: ProbeResult[];
    try {
      results = await env.probe(OUTAGE_MS, async () => {
        await lab.stopApiServer();
        await sleep(OUTAGE_MS - 3000);
        assert.equal(await metric(lab, owner, 'portico_membership_live_nodes_count'), 3, 'membership unchanged without the API server');
      }, { intervalMs: 100 });
    } finally {
      await lab.startApiServer();
    }
    assertFlows(results, 1000, 'API outage');
    const after = await Promise.all(lab.nodes.map((n) => metric(lab, n.name, 'portico_l2_gratuitous_sent_total')));
    assert.deepEqual(after, before, 'no node sent an announcement');
    assert.equal(await env.owner(), owner);
    // Lab limitation (left as is, this test being last): after the outage
    // kube-controller-manager marks the pods NotReady (their nodes missed
    // heartbeats) and the lab kubelet re-reports readiness only when its own
    // probe changes, so the pods stay NotReady until deleted.
  });
});
