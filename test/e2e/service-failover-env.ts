// The failover a client of a Service feels, in the lab: Portico with the
// speakers' nftables dataplane, a pod on every node (the node that will die
// included) and two dual-stack LoadBalancer Services over them,
// externalTrafficPolicy Cluster and Local. Nothing pins the traffic (unlike
// l2-env's forwardTo): the new owner's dataplane balances over every endpoint
// the EndpointSlices still list as ready, so a request reaches a pod on the
// dead node until Portico prunes it or Kubernetes marks it not ready.
// startFailover: the process lab (speakers as processes); startRealFailover:
// real nodes (the manifest's pods next to kube-proxy). Shared by
// test/e2e/service-failover.test.ts, test/e2e/real/service-failover.test.ts
// and bench/service-failover.ts.
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { PORTICO_NAMESPACE as NS, installPortico, repoRoot, sleep, waitFor, webContainer, type Lab, type LabImage, type PorticoInstall } from '../lab/index.ts';
import { FAST_LEASE } from '../lab/portico.ts';
import { installPorticoReal, type RealInstall } from '../lab/realnode-portico.ts';
import { metric } from './l2-env.ts';
import { apply, layer2Space, runCleanups, service, type Cleanups, type Obj } from './objects.ts';
import { figures, type FailoverFigures, type Samples } from './service-failover-probe.ts';

export const FO_APP = 'svc-failover';
const POOL = 'svc-failover-pool';
const PROBE = path.join(repoRoot, 'test', 'e2e', 'service-failover-probe.ts');
/**
 * Each request's timeout: below TCP's first SYN retransmission (1 s), so a
 * SYN lost to a dead node fails the request instead of being retried into a
 * success; above what a starved pod server takes on a loaded machine.
 */
export const PROBE_TIMEOUT_MS = 300;
/**
 * Kill to the last failed request. The target is 1 s; the assertion leaves
 * room for a loaded machine (load 10-20 here), and the tests print the figure.
 */
export const BOUND_MS = 2500;
export const POLICIES = ['Cluster', 'Local'] as const;
export type Policy = (typeof POLICIES)[number];
/** The endpoints a speaker's nftables dataplane pruned (node-dead) or restored (node-alive). */
export const PRUNED = (reason: 'node-dead' | 'node-alive'): string => `portico_dataplane_prune_changes_total{dataplane="nftables",reason="${reason}"}`;
/**
 * The Service label kube-proxy skips a Service for (it serves only Services
 * without it): on real nodes, it leaves these Services to Portico's dataplane
 * while kube-proxy forwards every other one.
 */
export const SERVICE_PROXY_NAME = 'service.kubernetes.io/service-proxy-name';

export interface FailoverEnv<I = PorticoInstall> {
  lab: Lab;
  install: I;
  /** Each Service's VIPs, IPv4 first. */
  vips: Record<Policy, [string, string]>;
  owner(policy: Policy): Promise<string>;
  /** The ready pods by node (IPv4 and IPv6 addresses). */
  podsByNode(): Promise<Map<string, string[]>>;
  /** Waits until every speaker sees three nodes, each Service has one agreed owner and (with Portico's dataplane) every node's table lists every pod; returns the owners. */
  settle(): Promise<Record<Policy, string>>;
  /**
   * Runs the probe on the client against `urls` for durationMs, calls
   * `breakIt` once it measures, and returns what the client felt after the
   * instant breakIt began.
   */
  probe(urls: readonly string[], durationMs: number, breakIt: () => Promise<void>, opts?: { timeoutMs?: number }): Promise<{ from: number; samples: Samples[]; figures: FailoverFigures[] }>;
  stop(): Promise<void>;
}

export const urlsOf = (vips: readonly [string, string]): [string, string] => [`http://${vips[0]}/`, `http://[${vips[1]}]/`];


/** The process lab: the speakers as processes on the nodes, from the manifests. */
export async function startFailover(lab: Lab, opts: { speakerArgs?: readonly string[] } = {}): Promise<FailoverEnv> {
  const cleanups: Cleanups = [];
  try {
    await lab.kubectlResult(['create', 'namespace', NS]);
    await lab.kubectlResult(['create', 'secret', 'generic', 'portico-heartbeat', '-n', NS, `--from-literal=key=${randomBytes(32).toString('hex')}`]);
    const install = await installPortico(lab, {
      replicas: 1, controllerArgs: FAST_LEASE, stateDir: path.join(lab.dir, 'portico-svc-failover'),
      speakerArgs: opts.speakerArgs ?? ['--dataplane=nftables'],
    });
    cleanups.push(() => install.stop());
    const w = await exposeFailover(lab, cleanups, {
      container: { name: 'web', image: 'portico.dev/podserver', ports: [{ containerPort: 80 }] },
      portico: (opts.speakerArgs ?? ['--dataplane=nftables']).includes('--dataplane=nftables'),
    });
    return { ...w, install, stop: () => runCleanups(cleanups) };
  } catch (err) {
    await runCleanups(cleanups);
    throw err;
  }
}

/**
 * Real nodes: Portico installed from manifests/portico.yaml with the
 * speakers' `--dataplane=<dataplane>`, next to kube-proxy in nftables mode.
 * 'nftables': the Services carry kube-proxy's service-proxy-name label, so
 * Portico's dataplane alone forwards their VIPs; 'none': kube-proxy forwards
 * them (the row every other load balancer gives).
 */
export async function startRealFailover(lab: Lab, opts: { image: LabImage; dataplane: 'nftables' | 'none' }): Promise<FailoverEnv<RealInstall>> {
  const cleanups: Cleanups = [];
  try {
    if (lab.kubeProxyMode !== 'nftables') await lab.setKubeProxy('nftables');
    const install = await installPorticoReal(lab, { image: opts.image, speakerArgs: [`--dataplane=${opts.dataplane}`] });
    cleanups.push(() => install.uninstall());
    const portico = opts.dataplane === 'nftables';
    const w = await exposeFailover(lab, cleanups, {
      container: webContainer(), portico, serviceLabels: portico ? { [SERVICE_PROXY_NAME]: 'portico' } : {},
    });
    return { ...w, install, stop: () => runCleanups(cleanups) };
  } catch (err) {
    await runCleanups(cleanups);
    throw err;
  }
}

/**
 * The pool, the web Deployment (a pod on every node) and the two Services,
 * with their clean-ups pushed on `cleanups`; `portico`: Portico's dataplane
 * forwards, so settle() also checks every node's table lists every pod.
 */
async function exposeFailover(lab: Lab, cleanups: Cleanups, opts: { container: Obj; portico: boolean; serviceLabels?: Record<string, string> }): Promise<Omit<FailoverEnv, 'install' | 'stop'>> {
  const core = lab.kc.makeApiClient(k8s.CoreV1Api);
  await layer2Space(lab, cleanups, { pool: POOL, addresses: ['198.51.100.176/28', '2001:db8:1::b0/124'], advertisement: 'svc-failover-adv', app: FO_APP });
  const nodes = lab.nodes.length;
  await apply(lab, {
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: FO_APP },
    spec: {
      replicas: nodes, selector: { matchLabels: { app: 'web' } },
      template: {
        metadata: { labels: { app: 'web' } },
        spec: {
          terminationGracePeriodSeconds: 1,
          // One pod on every node: the dead node's pod is one the Services balance over.
          topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'DoNotSchedule', labelSelector: { matchLabels: { app: 'web' } } }],
          containers: [opts.container],
        },
      },
    },
  });
  const dual = { ipFamilyPolicy: 'RequireDualStack', ipFamilies: ['IPv4', 'IPv6'], selector: { app: 'web' } };
  const labelled = (o: Obj): Obj => ({ ...o, metadata: { ...(o.metadata as Obj), labels: opts.serviceLabels ?? {} } });
  await apply(lab,
    labelled(service('web-cluster', FO_APP, { ...dual, externalTrafficPolicy: 'Cluster' }, { 'portico.dev/address-pool': POOL })),
    labelled(service('web-local', FO_APP, { ...dual, externalTrafficPolicy: 'Local' }, { 'portico.dev/address-pool': POOL })),
  );
  const ipsOf = async (p: Policy): Promise<[string, string]> => waitFor(`${serviceName(p)} to get two IPs`, async () => {
    const s = await core.readNamespacedService({ name: serviceName(p), namespace: FO_APP });
    const ips = (s.status?.loadBalancer?.ingress ?? []).map((i) => i.ip ?? '');
    const v4 = ips.find((ip) => !ip.includes(':'));
    const v6 = ips.find((ip) => ip.includes(':'));
    return v4 && v6 ? [v4, v6] as [string, string] : undefined;
  }, 60_000, 200);
  const vips: Record<Policy, [string, string]> = { Cluster: await ipsOf('Cluster'), Local: await ipsOf('Local') };

  const owner = async (p: Policy): Promise<string> => {
    const s = await core.readNamespacedService({ name: serviceName(p), namespace: FO_APP });
    return s.metadata?.annotations?.['portico.dev/layer2-node'] ?? '';
  };
  const podsByNode = async (): Promise<Map<string, string[]>> => {
    const list = await core.listNamespacedPod({ namespace: FO_APP, labelSelector: 'app=web' });
    const out = new Map<string, string[]>();
    for (const p of list.items) {
      if (!p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) continue;
      const node = p.spec?.nodeName ?? '';
      out.set(node, [...(out.get(node) ?? []), ...(p.status.podIPs ?? []).map((i) => i.ip)]);
    }
    return out;
  };
  const verdict = async (): Promise<string | undefined> => {
    const live = await Promise.all(lab.nodes.map((n) => metric(lab, n.name, 'portico_membership_live_nodes_count')));
    if (!live.every((v) => v === nodes)) return undefined;
    const owners = { Cluster: await owner('Cluster'), Local: await owner('Local') };
    if (!owners.Cluster || !owners.Local) return undefined;
    const owned = await Promise.all(lab.nodes.map((n) => metric(lab, n.name, 'portico_l2_owned_addresses')));
    if (!lab.nodes.every((n, i) => owned[i] === (owners.Cluster === n.name ? 2 : 0) + (owners.Local === n.name ? 2 : 0))) return undefined;
    // Every pod ready, and in every node's table: nothing is still pruned from an earlier kill.
    const pods = await podsByNode();
    if (lab.nodes.some((n) => (pods.get(n.name)?.length ?? 0) !== 2)) return undefined;
    if (opts.portico) {
      const addrs = [...pods.values()].flat();
      for (const n of lab.nodes) {
        const t = await lab.exec(n.name, ['nft', 'list', 'table', 'inet', 'portico'], { allowFail: true });
        if (!addrs.every((a) => t.stdout.includes(a))) return undefined;
      }
    }
    return JSON.stringify(owners);
  };
  const settle = async (): Promise<Record<Policy, string>> => {
    let last: string | undefined;
    const v = await waitFor(`one agreed owner per Service, a ready pod on every node${opts.portico ? ' in every table' : ''}`, async () => {
      const now = await verdict();
      const stable = now !== undefined && now === last;
      last = now;
      return stable ? now : undefined;
    }, 90_000, 500);
    await lab.exec('client', ['ip', 'neigh', 'flush', 'dev', 'eth0']);
    return JSON.parse(v) as Record<Policy, string>;
  };
  const probe: FailoverEnv['probe'] = (urls, durationMs, breakIt, popts = {}) => probeFrom(lab, 'client', urls, durationMs, breakIt, popts);
  return { lab, vips, owner, podsByNode, settle, probe };
}

export const serviceName = (p: Policy): string => (p === 'Cluster' ? 'web-cluster' : 'web-local');

/** One kill of a Service's owner, as the client, Kubernetes and the segment saw it. */
export interface OwnerKill {
  policy: Policy;
  /** The killed node (back up when killOwner returns). */
  owner: string;
  /** The Service's owner as annotated once the probe ended ('' for none). */
  heir: string;
  /** The dead node's pod IPs (IPv4 and IPv6). */
  deadPods: string[];
  /** When the EndpointSlices first showed a dead pod not ready (wall clock), if within the probe. */
  notReadyAt: number | undefined;
  result: Awaited<ReturnType<FailoverEnv['probe']>>;
  /** ARP replies and Neighbor Advertisements for the VIPs the client's segment carried. */
  answers: Answer[];
  /** Each node's eth0 MAC. */
  macs: Map<string, string>;
  /** The client's neighbour entries and the heir's layer-2 frame counters right after the probe: why a failure went on. */
  diagnosis: string;
  /** The `counters` metrics of each live node, read before the kill. */
  before: Map<string, Record<string, number>>;
}

/**
 * Settles, kills `policy`'s owner while the client probes both VIPs for
 * durationMs (a capture running), watches when Kubernetes marks the dead pods
 * not ready, reads the heir, and always restarts the owner's node.
 * `counters` are read on the live nodes before the kill.
 */
export async function killOwner(env: FailoverEnv<unknown>, policy: Policy, opts: { durationMs?: number; counters?: readonly string[] } = {}): Promise<OwnerKill> {
  const { lab } = env;
  const owner = (await env.settle())[policy];
  const deadPods = (await env.podsByNode()).get(owner) ?? [];
  const others = lab.nodes.filter((n) => n.name !== owner).map((n) => n.name);
  const before = new Map(await Promise.all(others.map(async (n) => [n, Object.fromEntries(await Promise.all((opts.counters ?? []).map(async (m) => [m, await metric(lab, n, m)] as const)))] as const)));
  const macs = new Map(await Promise.all(lab.nodes.map(async (n) => [n.name, (await lab.exec(n.name, ['cat', '/sys/class/net/eth0/address'])).stdout.trim()] as const)));
  // When Kubernetes marks the dead pods not ready (kube-controller-manager's node-monitor grace: 5 s in the lab).
  let notReadyAt: number | undefined;
  let watching = true;
  const watchSlices = (async () => {
    while (watching && notReadyAt === undefined) {
      const eps = await lab.endpoints(serviceName(policy), FO_APP).catch(() => []);
      if (eps.some((e) => deadPods.includes(e.ip) && !e.ready) || (eps.length > 0 && !deadPods.every((ip) => eps.some((e) => e.ip === ip)))) notReadyAt = Date.now();
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  let result: OwnerKill['result'] | undefined;
  let heir: string;
  let answers: Answer[];
  let diagnosis: string;
  try {
    answers = await captureAnswers(lab, env.vips[policy], async () => {
      result = await env.probe(urlsOf(env.vips[policy]), opts.durationMs ?? 3500, () => lab.killNode(owner));
    });
    heir = await env.owner(policy);
    const neigh = (await lab.exec('client', ['ip', 'neigh', 'show', 'dev', 'eth0'], { allowFail: true })).stdout.trim().replace(/\n/g, '; ');
    const frames = heir ? (await lab.exec(heir, ['curl', '-sS', '--max-time', '2', 'http://127.0.0.1:7473/metrics'], { allowFail: true })).stdout.split('\n').filter((l) => /^portico_l2_(frames|replies_sent|requests_received)/.test(l)).join('; ') : '';
    diagnosis = `client neighbours: ${neigh}; ${heir || 'no heir'}: ${frames}`;
  } finally {
    watching = false;
    await watchSlices;
    await lab.restartNode(owner);
  }
  return { policy, owner, heir, deadPods, notReadyAt, result: result!, answers, macs, before, diagnosis };
}

/** Prints what the client felt, per URL. */
export function showFigures(what: string, f: readonly FailoverFigures[]): void {
  console.log(`      ${what}: ${f.map((x) => `${x.url} last failure +${x.lastFailureMs} ms, ${x.failed} failed of ${x.requests}, longest gap ${x.maxGapMs} ms${x.skipped ? `, ${x.skipped} starts skipped (client starved)` : ''}`).join('; ')}`);
}

/**
 * What a kill from killOwner (its counters: PRUNED('node-dead') and
 * PRUNED('node-alive')) must show with Portico's nftables dataplane: every
 * request succeeded before it and again within boundMs after it, before
 * Kubernetes marked the dead pods not ready; Local answers from the heir's
 * own pod, Cluster from both live nodes' (the heir pruned the dead node's);
 * one ARP/NDP answerer at a time; once the node is back, its pods are in
 * every table again and the heir restored them.
 */
export async function expectFailover(env: FailoverEnv<unknown>, k: OwnerKill, boundMs: number): Promise<void> {
  const { lab } = env;
  const { policy } = k;
  const { owner, heir, notReadyAt, macs } = k;
  assert.equal(k.deadPods.length, 2, `${owner} runs a pod (IPv4 and IPv6)`);
  const r = k.result;
  const answers = k.answers;
  showFigures(`${policy}, owner ${owner} killed (heir ${heir}${notReadyAt ? `, pods not ready at +${notReadyAt - r.from} ms` : ', pods still ready'})`, r.figures);
  assert.ok(heir !== owner && heir !== '', `a new owner is annotated (got ${heir})`);
  const timeline = (url: string): string => {
    const x = r.samples.find((y) => y.url === url)!;
    return `failures at ${x.at.map((t, i) => (x.ok[i] ? undefined : Math.round(t - r.from))).filter((t) => t !== undefined).join(',')} ms from the kill; errors ${JSON.stringify(x.errors)}; answers ${JSON.stringify(k.answers.map((a) => ({ ms: Math.round(a.at - r.from), mac: a.mac, kind: a.kind })))}; ${k.diagnosis}`;
  };
  for (const f of r.figures) {
    assert.equal(f.failedBefore, 0, `${f.url}: every request succeeded before the kill (${timeline(f.url)})`);
    assert.ok(f.lastFailureMs <= boundMs, `${f.url}: requests still failed ${f.lastFailureMs} ms after the kill (${timeline(f.url)})`);
    if (notReadyAt !== undefined) assert.ok(r.from + f.lastFailureMs < notReadyAt, `${f.url}: the requests succeeded again before Kubernetes marked the pods not ready (last failure +${f.lastFailureMs} ms, not ready +${notReadyAt - r.from} ms)`);
    // A loaded machine starves the client too (it skips starts rather than bunching them): a few dozen good answers suffice.
    assert.ok(f.requests - f.failed >= 20, `${f.url}: requests succeeded after the kill (${f.requests - f.failed}; ${f.skipped} starts skipped)`);
    if (policy === 'Local') assert.equal(f.pods.length, 1, `${f.url}: Local: only the heir's own pod answers once recovered (${f.pods.join(', ')})`);
  }
  if (policy === 'Cluster') {
    // Pruning, not Kubernetes: the heir counted the dead node, and balanced over the two live nodes' pods.
    assert.ok(await metric(lab, heir, PRUNED('node-dead')) > k.before.get(heir)![PRUNED('node-dead')]!, `${heir} pruned ${owner}'s endpoints`);
    for (const f of r.figures) assert.ok(f.pods.length >= 2, `${f.url}: the pods of both live nodes answered once recovered (${f.pods.join(', ')})`);
  }
  // One answerer at a time: the owner until the kill, the heir after it, never the third node.
  const after = answers.filter((a) => a.at >= r.from + 50);
  assert.ok(after.some((a) => a.mac === macs.get(heir)), `the heir announced the VIPs (${JSON.stringify(answers)})`);
  assert.deepEqual([...new Set(after.map((a) => a.mac))], [macs.get(heir)], `after the kill only ${heir} answers (${JSON.stringify(after)})`);
  assert.ok(answers.every((a) => a.mac === macs.get(owner) || a.mac === macs.get(heir)), `no third node answered (${JSON.stringify(answers)})`);

  // The node is back: its pods return to every table (settle checks them) and the heir says why.
  await env.settle();
  assert.ok(await metric(lab, heir, PRUNED('node-alive')) > k.before.get(heir)![PRUNED('node-alive')]!, `${heir} restored ${owner}'s endpoints when it was heard again`);
}

/**
 * Runs the probe in the lab host `client` against `urls` for durationMs (a new
 * connection to each every 10 ms), calls `breakIt` once it measures, and
 * returns what the client felt after the instant breakIt began.
 */
export async function probeFrom(lab: Lab, client: string, urls: readonly string[], durationMs: number, breakIt: () => Promise<void>, opts: { timeoutMs?: number } = {}): Promise<{ from: number; samples: Samples[]; figures: FailoverFigures[] }> {
  const ready = path.join(lab.dir, `svc-failover-probe-${process.pid}-${Date.now()}.ready`);
  const run = lab.exec(client, [process.execPath, PROBE, '--duration-ms', String(durationMs), '--interval-ms', '10', '--timeout-ms', String(opts.timeoutMs ?? PROBE_TIMEOUT_MS),
    '--ready-file', ready, ...urls], { timeoutMs: durationMs + 40_000 });
  try {
    await waitFor('the probe to start measuring', () => existsSync(ready) || undefined, 20_000, 20);
  } finally {
    rmSync(ready, { force: true });
  }
  await sleep(Math.min(1000, durationMs / 4));
  const from = Date.now();
  await breakIt();
  const r = await run;
  const samples = JSON.parse(r.stdout.trim().split('\n').pop()!) as Samples[];
  return { from, samples, figures: samples.map((s) => figures(s, from, opts.timeoutMs ?? PROBE_TIMEOUT_MS)) };
}

export interface Answer {
  /** Wall clock, ms. */
  at: number;
  mac: string;
  kind: 'arp' | 'ndp';
}

/**
 * Every ARP reply and Neighbor Advertisement for `ips` the client's segment
 * carries while `during` runs (tcpdump in the client's namespace): who
 * answered, and when (to split before and after a kill).
 */
export async function captureAnswers(lab: Lab, ips: readonly string[], during: () => Promise<void>): Promise<Answer[]> {
  const base = path.join(lab.dir, `svc-failover-capture-${process.pid}-${Date.now()}`);
  // timeout(1) passes the SIGINT it gets on to tcpdump, which then flushes and exits; its pid is the only one signalled.
  const cap = lab.exec('client', ['sh', '-c', `echo $$ >${base}.pid; exec timeout -s INT 30 tcpdump -l -n -tt -e -i eth0 'arp or icmp6' >${base}.out 2>${base}.err`], { allowFail: true, timeoutMs: 40_000 });
  try {
    await waitFor('tcpdump to listen', () => (existsSync(`${base}.err`) && readFileSync(`${base}.err`, 'utf8').includes('listening on')) || undefined, 15_000, 20);
    await during();
    // The last answers reach the capture within a moment; tcpdump flushes each line (-l).
    await sleep(200);
  } finally {
    const pid = existsSync(`${base}.pid`) ? Number(readFileSync(`${base}.pid`, 'utf8').trim()) : 0;
    if (pid > 0) { try { process.kill(pid, 'SIGINT'); } catch { /* already gone */ } }
    await cap;
    rmSync(`${base}.pid`, { force: true });
  }
  const lines = existsSync(`${base}.out`) ? readFileSync(`${base}.out`, 'utf8').split('\n').filter(Boolean) : [];
  rmSync(`${base}.out`, { force: true });
  rmSync(`${base}.err`, { force: true });
  const out: Answer[] = [];
  for (const l of lines) {
    const [ts, mac] = l.split(' ');
    const at = Number(ts) * 1000;
    for (const ip of ips) {
      if (l.includes(`Reply ${ip} is-at`) || (l.includes('Request who-has') && l.includes(`who-has ${ip} tell ${ip},`))) out.push({ at, mac: mac ?? '', kind: 'arp' });
      if (l.includes('neighbor advertisement') && l.includes(`tgt is ${ip},`)) out.push({ at, mac: mac ?? '', kind: 'ndp' });
    }
  }
  return out;
}
