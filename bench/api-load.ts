// api-load: what the speakers write to the API server in the steady state,
// with 10 and with 5,000 announced Services. Layer 2 keeps one Lease per node
// and writes per Service only when its owner changes, so the two figures
// should be equal within noise. Measured twice per size over a quiet window
// after every Service is announced: the speakers' own count of their writes
// (portico_l2_api_writes_total, all nodes) and every write the API server
// served (apiserver_request_total for POST/PUT/PATCH/DELETE: kubelets,
// kube-controller-manager and Portico's controller included). Beside them, per
// window: the speakers' event-loop stalls (5 s windows whose largest delay
// passed 100 / 400 ms, from portico_speaker_event_loop_max_delay_seconds),
// the largest delay seen, membership changes (with the heartbeats sent or
// received late and lost, which say whether a change came from a starved
// sender, a starved receiver or the network) and ownership changes.
// Measured at 10 Services, at each step below the target, then at the target,
// so a run cut short still gives its largest size.
// Usage: npm run bench -- api-load [services=5000] [window_s=30] [steps=1000,2500]   (root)
import { readFileSync } from 'node:fs';
import { Lab, sleep, waitFor } from '@portico/lab';
import { APP, metric, settled, startL2 } from '../test/e2e/l2-env.ts';
import { report } from './stats.ts';

const many = Number(process.argv[2] ?? 5000);
const windowS = Number(process.argv[3] ?? 30);
const steps = (process.argv[4] ?? '1000,2500').split(',').map(Number).filter((n) => n > 10 && n < many);
const started = performance.now();
const elapsed = (): string => `${Math.round((performance.now() - started) / 1000)} s`;
const NS = 'portico-system';
const lab = await Lab.start({ prefix: process.env.PORTICO_LAB_PREFIX ?? 'pl2api', nodes: 3, clients: ['client'] });

async function apiserverWrites(): Promise<number> {
  const r = await lab.apiGet('/metrics', 10_000);
  let sum = 0;
  for (const line of r.body.split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    if (/verb="(POST|PUT|PATCH|DELETE|APPLY)"/.test(line)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

async function speakerWrites(): Promise<number> {
  const v = await Promise.all(lab.nodes.map((n) => metric(lab, n.name, 'portico_l2_api_writes_total')));
  return v.reduce((a, b) => a + b, 0);
}

async function scrape(node: string): Promise<string> {
  const r = await lab.exec(node, ['curl', '-sS', '--max-time', '5', 'http://127.0.0.1:7473/metrics'], { allowFail: true });
  return r.stdout;
}

/** Sum over the nodes of the metric lines starting with `prefix` (name plus labels). */
function sum(texts: string[], prefix: string): number {
  let total = 0;
  for (const t of texts) for (const l of t.split('\n')) if (l.startsWith(prefix)) total += Number(l.slice(l.lastIndexOf(' ') + 1)) || 0;
  return total;
}

interface LoopSample { windows: number; under100: number; under400: number; ownership: number; membership: number; lateSent: number; lateReceived: number; lost: number; dropped: number }
async function loopSample(): Promise<LoopSample & { texts: string[] }> {
  const texts = await Promise.all(lab.nodes.map((n) => scrape(n.name)));
  const h = 'portico_speaker_event_loop_max_delay_seconds';
  return {
    texts,
    windows: sum(texts, `${h}_count`),
    under100: sum(texts, `${h}_bucket{le="0.1"}`),
    under400: sum(texts, `${h}_bucket{le="0.4"}`),
    ownership: sum(texts, 'portico_l2_ownership_changes_total'),
    membership: sum(texts, 'portico_membership_changes_total'),
    lateSent: sum(texts, 'portico_membership_heartbeats_late_total{direction="sent"}'),
    lateReceived: sum(texts, 'portico_membership_heartbeats_late_total{direction="received"}'),
    lost: sum(texts, 'portico_membership_heartbeats_lost_total'),
    dropped: sum(texts, 'portico_membership_heartbeats_dropped_total'),
  };
}

async function announced(): Promise<number> {
  const out = await lab.kubectl('get', 'services', '-n', APP, '-o', 'jsonpath={range .items[*]}{.metadata.annotations.portico\\.dev/layer2-node}{"\\n"}{end}');
  return out.split('\n').filter((l) => l.trim() !== '').length;
}

async function measure(services: number): Promise<void> {
  await sleep(10_000); // let the announcement burst and its Events finish
  const s0 = await speakerWrites();
  const a0 = await apiserverWrites();
  const l0 = await loopSample();
  const t0 = performance.now();
  // The largest delay of each 5 s window, polled so that none is missed.
  let maxDelay = 0;
  while (performance.now() - t0 < windowS * 1000) {
    await sleep(Math.min(4000, windowS * 1000 - (performance.now() - t0)));
    const texts = await Promise.all(lab.nodes.map((n) => scrape(n.name)));
    for (const t of texts) for (const l of t.split('\n')) if (l.startsWith('portico_speaker_event_loop_delay_seconds{quantile="1"}')) maxDelay = Math.max(maxDelay, Number(l.slice(l.lastIndexOf(' ') + 1)) || 0);
  }
  const s1 = await speakerWrites();
  const a1 = await apiserverWrites();
  const l1 = await loopSample();
  const seconds = (performance.now() - t0) / 1000;
  const windows = l1.windows - l0.windows;
  report('api-load', {
    services, speaker_writes_per_s: Number(((s1 - s0) / seconds).toFixed(3)), apiserver_writes_per_s: Number(((a1 - a0) / seconds).toFixed(2)),
    loop_windows: windows, loop_windows_over_100ms: windows - (l1.under100 - l0.under100), loop_windows_over_400ms: windows - (l1.under400 - l0.under400),
    loop_max_delay_ms: Math.round(maxDelay * 1000), ownership_changes: l1.ownership - l0.ownership,
    membership_changes: l1.membership - l0.membership, membership_changes_since_start: l1.membership, heartbeats_late_sent: l1.lateSent - l0.lateSent, heartbeats_late_received: l1.lateReceived - l0.lateReceived, heartbeats_lost: l1.lost - l0.lost, heartbeats_dropped: l1.dropped - l0.dropped,
    window_s: Math.round(seconds), nodes: lab.nodes.length, loadavg: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
  });
}

const service = (i: number): object => ({
  apiVersion: 'v1', kind: 'Service', metadata: { name: `load-${i}`, namespace: APP, annotations: { 'portico.dev/address-pool': 'l2-many' } },
  spec: { type: 'LoadBalancer', allocateLoadBalancerNodePorts: false, ipFamilyPolicy: 'SingleStack', ipFamilies: ['IPv6'], ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 80 }], selector: { app: 'web' } },
});

try {
  const env = await startL2(lab);
  try {
    await settled(lab, env);
    // Server-side apply is idempotent: a batch cut off by the timeout (a busy machine) is applied again.
    const apply = async (objs: object[]): Promise<void> => {
      for (let attempt = 1; ; attempt++) {
        const r = await lab.kubectlResult(['apply', '--server-side', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objs }), { timeoutMs: 600_000 });
        if (r.code === 0) return;
        if (attempt === 3) throw new Error(`kubectl apply of ${objs.length} objects: exit ${r.code}: ${r.stderr || r.stdout.slice(-500)}`);
        process.stderr.write(`kubectl apply of ${objs.length} objects: exit ${r.code}; again\n`);
      }
    };
    await apply([
      { apiVersion: 'portico.dev/v1beta1', kind: 'IPAddressPool', metadata: { name: 'l2-many', namespace: NS }, spec: { addresses: ['2001:db8:1:2::/112'], autoAssign: false } },
      { apiVersion: 'portico.dev/v1beta1', kind: 'L2Advertisement', metadata: { name: 'l2-many', namespace: NS }, spec: { ipAddressPools: ['l2-many'] } },
    ]);
    let made = 0;
    for (const target of [10, ...steps, many]) {
      while (made + 1 < target) {
        // Two kubectl processes at a time: one alone leaves the API server idle between its requests.
        const batches = [0, 1].map((b) => {
          const from = made + b * 100;
          return Array.from({ length: Math.max(0, Math.min(100, target - 1 - from)) }, (_, k) => service(from + k));
        }).filter((b) => b.length > 0);
        await Promise.all(batches.map(apply));
        made += batches.reduce((n, b) => n + b.length, 0);
        process.stderr.write(`${made + 1} Services (${elapsed()})\n`);
      }
      const t = performance.now();
      await waitFor(`${target} Services announced`, async () => (await announced()) >= target || undefined, 1_800_000, 2000);
      process.stderr.write(`${target} Services announced (${Math.round(performance.now() - t)} ms after the last apply; ${elapsed()})\n`);
      await measure(target);
    }
  } finally {
    await lab.kubectlResult(['delete', 'namespace', APP, '--wait=false']);
    await env.stop();
  }
} finally {
  await lab.stop();
}
