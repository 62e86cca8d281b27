// service-failover: what a client of a Service feels when the node that owns
// its VIP dies with a pod on it. Three nodes, a pod on every node, a
// dual-stack Service per externalTrafficPolicy (Cluster, Local), nothing
// pinning the traffic. Per trial: settle, kill the owner of one policy's
// Service (SIGKILL of everything on it, link down) while the client opens a
// new connection every 10 ms to both of its VIPs (IPv4 and IPv6; 300 ms
// timeout), then bring the node back. Figures per policy and family, over the
// trials: the time from the kill to the last failed request (the issue's "all
// succeed again"), the failed requests, the longest gap between good answers;
// p50/p99/max. Target: last failure <= 1000 ms p99 with Portico's dataplane.
//
// Usage: npm run bench -- service-failover [trials-per-policy=20] [--target=lab|real] [--dataplane=...]
//   (root; lab prefix $PORTICO_LAB_PREFIX or psfo, with an "r" appended for real nodes)
// Targets (each a FailoverTarget: VIPs, settle, kill, restore, a client):
// - 'lab': the process lab, --dataplane=nftables (ipvs needs the VM);
// - 'real': real kubelets + containerd + kube-proxy (nftables mode), Portico
//   from manifests/portico.yaml; --dataplane=nftables (Portico forwards, the
//   Services left to it by kube-proxy's service-proxy-name label) or
//   --dataplane=none (kube-proxy forwards: the row every other load balancer
//   gives; it keeps the dead node's endpoints until the node-monitor grace,
//   node_grace_s in the row, has passed).
import { execSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { Lab } from '@portico/lab';
import { porticoImage } from '../test/lab/realnode-portico.ts';
import { POLICIES, startFailover, startRealFailover, urlsOf, type FailoverEnv, type Policy } from '../test/e2e/service-failover-env.ts';
import type { FailoverFigures } from '../test/e2e/service-failover-probe.ts';
import { report, summary } from './stats.ts';

/** What the bench needs from a cluster: VIPs and owners, a settled state, a kill and a return, and a client. */
interface FailoverTarget {
  name: string;
  dataplane: string;
  /** kube-controller-manager's node-monitor grace period, s: when Kubernetes marks a dead node's pods not ready. */
  nodeGraceSeconds: number;
  /** How long the client probes per trial (the kill lands under a second in): long enough to see the last failure. */
  probeMs: number;
  vips: FailoverEnv['vips'];
  settle(): Promise<Record<Policy, string>>;
  kill(node: string): Promise<void>;
  restore(node: string): Promise<void>;
  probe: FailoverEnv['probe'];
  stop(): Promise<void>;
}

const NODE_GRACE_S = 5;

async function labTarget(dataplane: string): Promise<FailoverTarget> {
  const lab = await Lab.start({ prefix: process.env.PORTICO_LAB_PREFIX ?? 'psfo', nodes: 3, clients: ['client'], nodeGraceSeconds: NODE_GRACE_S });
  try {
    const env = await startFailover(lab, { speakerArgs: [`--dataplane=${dataplane}`] });
    return {
      name: 'lab', dataplane, nodeGraceSeconds: NODE_GRACE_S, probeMs: 3500, vips: env.vips, settle: () => env.settle(), probe: (...a) => env.probe(...a),
      kill: (n) => lab.killNode(n), restore: (n) => lab.restartNode(n),
      stop: async () => { await env.stop(); await lab.stop(); },
    };
  } catch (err) {
    await lab.stop();
    throw err;
  }
}

async function realTarget(dataplane: string): Promise<FailoverTarget> {
  if (dataplane !== 'nftables' && dataplane !== 'none') throw new Error(`--dataplane=${dataplane}: the real-node target runs nftables or none (ipvs: this kernel has no ip_vs)`);
  const image = await porticoImage((m) => process.stderr.write(`${m}\n`));
  const lab = await Lab.start({ prefix: `${process.env.PORTICO_LAB_PREFIX ?? 'psfo'}r`, nodes: 3, clients: ['client'], realNodes: true, nodeGraceSeconds: NODE_GRACE_S });
  try {
    const env = await startRealFailover(lab, { image, dataplane });
    return {
      name: 'real', dataplane, nodeGraceSeconds: NODE_GRACE_S,
      // kube-proxy keeps the dead node's endpoints until the grace has passed: watch past it.
      probeMs: dataplane === 'none' ? (NODE_GRACE_S + 5) * 1000 : 3500, vips: env.vips, settle: () => env.settle(), probe: (...a) => env.probe(...a),
      kill: (n) => lab.killNode(n), restore: (n) => lab.restartNode(n),
      stop: async () => { await env.stop(); await lab.stop(); },
    };
  } catch (err) {
    await lab.stop();
    throw err;
  }
}

const { values, positionals } = parseArgs({ allowPositionals: true, options: { dataplane: { type: 'string', default: 'nftables' }, target: { type: 'string', default: 'lab' } } });
const trials = Number(positionals[0] ?? 20);
if (values.target !== 'lab' && values.target !== 'real') throw new Error(`--target=${values.target}: lab or real`);
const load = (): number => Number(/load average: ([\d.]+)/.exec(execSync('uptime').toString())?.[1] ?? NaN);

const t = values.target === 'real' ? await realTarget(values.dataplane) : await labTarget(values.dataplane);
const results: Record<Policy, FailoverFigures[][]> = { Cluster: [], Local: [] };
const loads: number[] = [];
try {
  for (let i = 0; i < trials; i++) {
    for (const policy of POLICIES) {
      const owner = (await t.settle())[policy];
      let r: Awaited<ReturnType<FailoverTarget['probe']>>;
      try {
        r = await t.probe(urlsOf(t.vips[policy]), t.probeMs, () => t.kill(owner));
      } finally {
        await t.restore(owner);
      }
      results[policy].push(r.figures);
      loads.push(load());
      process.stderr.write(`trial ${i + 1}/${trials} ${policy}: killed ${owner}; ${r.figures.map((f) => `${f.url.includes('[') ? 'IPv6' : 'IPv4'} last failure +${f.lastFailureMs} ms, ${f.failed} failed, gap ${f.maxGapMs} ms${f.failedBefore ? `, ${f.failedBefore} failed before the kill` : ''}${f.skipped ? `, ${f.skipped} starts skipped` : ''}`).join('; ')}\n`);
      // A late failure (after the first second) says more with its neighbours: when each failed, and how.
      for (const s of r.samples) {
        const late = s.at.map((at, k) => (s.ok[k] ? undefined : Math.round(at - r.from))).filter((x): x is number => x !== undefined && x > 1000);
        if (late.length > 0) process.stderr.write(`  ${s.url}: failures after +1 s at ${late.join(',')} ms; errors ${JSON.stringify(s.errors)}\n`);
      }
    }
  }
} finally {
  await t.stop();
}
const avgLoad = Math.round((loads.reduce((a, b) => a + b, 0) / Math.max(1, loads.length)) * 10) / 10;
for (const policy of POLICIES) {
  for (const [fi, family] of (['IPv4', 'IPv6'] as const).entries()) {
    const f = results[policy].map((x) => x[fi]!);
    const last = summary(f.map((x) => x.lastFailureMs));
    const failed = summary(f.map((x) => x.failed));
    const gap = summary(f.map((x) => x.maxGapMs));
    report('service-failover', {
      target: t.name, dataplane: t.dataplane, node_grace_s: t.nodeGraceSeconds, policy, family,
      p50_ms: last.p50, p99_ms: last.p99, max_ms: last.max,
      failed_p50: failed.p50, failed_p99: failed.p99, failed_max: failed.max,
      gap_p50_ms: gap.p50, gap_p99_ms: gap.p99, gap_max_ms: gap.max,
      failed_before_kill: f.reduce((a, x) => a + x.failedBefore, 0), skipped_starts: f.reduce((a, x) => a + x.skipped, 0),
      runs: f.length, load: avgLoad,
    });
  }
}
