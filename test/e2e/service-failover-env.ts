// The failover a client of a Service feels, in the lab: Portico from the
// manifests with the speakers' nftables dataplane, a pod on every node (the
// node that will die included) and two dual-stack LoadBalancer Services over
// them, externalTrafficPolicy Cluster and Local. Nothing pins the traffic
// (unlike l2-env's forwardTo): the new owner's dataplane balances over every
// endpoint the EndpointSlices still list as ready, so a request reaches a pod
// on the dead node until Portico prunes it or Kubernetes marks it not ready.
// Shared by test/e2e/service-failover.test.ts and bench/service-failover.ts.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { PORTICO_NAMESPACE as NS, installPortico, repoRoot, sleep, waitFor, type Lab, type PorticoInstall } from '../lab/index.ts';
import { FAST_LEASE } from '../lab/portico.ts';
import { metric } from './l2-env.ts';
import { apply, l2Advertisement, pool, service } from './objects.ts';
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
export const POLICIES = ['Cluster', 'Local'] as const;
export type Policy = (typeof POLICIES)[number];

export interface FailoverEnv {
  lab: Lab;
  install: PorticoInstall;
  /** Each Service's VIPs, IPv4 first. */
  vips: Record<Policy, [string, string]>;
  owner(policy: Policy): Promise<string>;
  /** The ready pods by node (IPv4 and IPv6 addresses). */
  podsByNode(): Promise<Map<string, string[]>>;
  /** Waits until every speaker sees three nodes, each Service has one agreed owner and every node's table lists every pod; returns the owners. */
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

export async function startFailover(lab: Lab, opts: { speakerArgs?: readonly string[] } = {}): Promise<FailoverEnv> {
  const core = lab.kc.makeApiClient(k8s.CoreV1Api);
  const cleanups: (() => Promise<unknown>)[] = [];
  const stop = async (): Promise<void> => { for (const c of cleanups.reverse()) await c().catch(() => undefined); };
  try {
    await lab.kubectlResult(['create', 'namespace', NS]);
    await lab.kubectlResult(['create', 'secret', 'generic', 'portico-heartbeat', '-n', NS, `--from-literal=key=${randomBytes(32).toString('hex')}`]);
    const install = await installPortico(lab, {
      replicas: 1, controllerArgs: FAST_LEASE, stateDir: path.join(lab.dir, 'portico-svc-failover'),
      speakerArgs: opts.speakerArgs ?? ['--dataplane=nftables'],
    });
    cleanups.push(() => install.stop());
    await apply(lab,
      pool(POOL, { addresses: ['198.51.100.176/28', '2001:db8:1::b0/124'], autoAssign: false }),
      l2Advertisement('svc-failover-adv', { ipAddressPools: [POOL] }),
    );
    cleanups.push(() => lab.kubectlResult(['delete', 'l2advertisements', 'svc-failover-adv', '-n', NS, '--ignore-not-found']));
    cleanups.push(() => lab.kubectlResult(['delete', 'ipaddresspools', POOL, '-n', NS, '--ignore-not-found']));
    await lab.kubectlResult(['create', 'namespace', FO_APP]);
    cleanups.push(() => lab.kubectlResult(['delete', 'namespace', FO_APP, '--wait=false']));
    const nodes = lab.nodes.length;
    await apply(lab, {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: FO_APP },
      spec: {
        replicas: nodes, selector: { matchLabels: { app: 'web' } },
        template: {
          metadata: { labels: { app: 'web' } },
          spec: {
            // One pod on every node: the dead node's pod is one the Services balance over.
            topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'DoNotSchedule', labelSelector: { matchLabels: { app: 'web' } } }],
            containers: [{ name: 'web', image: 'portico.dev/podserver', ports: [{ containerPort: 80 }] }],
          },
        },
      },
    });
    const dual = { ipFamilyPolicy: 'RequireDualStack', ipFamilies: ['IPv4', 'IPv6'], selector: { app: 'web' } };
    await apply(lab,
      service('web-cluster', FO_APP, { ...dual, externalTrafficPolicy: 'Cluster' }, { 'portico.dev/address-pool': POOL }),
      service('web-local', FO_APP, { ...dual, externalTrafficPolicy: 'Local' }, { 'portico.dev/address-pool': POOL }),
    );
    const name = (p: Policy): string => (p === 'Cluster' ? 'web-cluster' : 'web-local');
    const ipsOf = async (p: Policy): Promise<[string, string]> => waitFor(`${name(p)} to get two IPs`, async () => {
      const s = await core.readNamespacedService({ name: name(p), namespace: FO_APP });
      const ips = (s.status?.loadBalancer?.ingress ?? []).map((i) => i.ip ?? '');
      const v4 = ips.find((ip) => !ip.includes(':'));
      const v6 = ips.find((ip) => ip.includes(':'));
      return v4 && v6 ? [v4, v6] as [string, string] : undefined;
    }, 60_000, 200);
    const vips: Record<Policy, [string, string]> = { Cluster: await ipsOf('Cluster'), Local: await ipsOf('Local') };

    const owner = async (p: Policy): Promise<string> => {
      const s = await core.readNamespacedService({ name: name(p), namespace: FO_APP });
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
      const addrs = [...pods.values()].flat();
      for (const n of lab.nodes) {
        const t = await lab.exec(n.name, ['nft', 'list', 'table', 'inet', 'portico'], { allowFail: true });
        if (!addrs.every((a) => t.stdout.includes(a))) return undefined;
      }
      return JSON.stringify(owners);
    };
    const settle = async (): Promise<Record<Policy, string>> => {
      let last: string | undefined;
      const v = await waitFor('one agreed owner per Service, a ready pod on every node in every table', async () => {
        const now = await verdict();
        const stable = now !== undefined && now === last;
        last = now;
        return stable ? now : undefined;
      }, 90_000, 500);
      await lab.exec('client', ['ip', 'neigh', 'flush', 'dev', 'eth0']);
      return JSON.parse(v) as Record<Policy, string>;
    };
    const probe: FailoverEnv['probe'] = (urls, durationMs, breakIt, popts = {}) => probeFrom(lab, 'client', urls, durationMs, breakIt, popts);
    return { lab, install, vips, owner, podsByNode, settle, probe, stop };
  } catch (err) {
    await stop();
    throw err;
  }
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
  return { from, samples, figures: samples.map((s) => figures(s, from)) };
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
