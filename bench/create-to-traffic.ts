// create-to-traffic: Portico running, a LoadBalancer Service created -> the
// first good answer from one of its pods at a client on the segment (layer 2,
// IPv4). Per run: a prober in the client's namespace already requests the
// address (a new connection every 10 ms, 200 ms timeout; the Service asks for
// that address with portico.dev/loadBalancerIPs so the client knows it in
// advance), the clock starts just before the create request, and stops at
// the prober's first answer; then the Service is deleted and the client's
// neighbour entries for the pool flushed. The pods are ready before the
// clock starts (the bench times Portico, not the scheduler).
// Two targets in one run, one JSON line each, p50/p99 over the runs, the
// machine's load at the start and end of each:
// - real-nodes: Portico installed from manifests/portico.yaml as real pods on
//   real kubelets next to kube-proxy (nftables mode; the speakers choose
//   dataplane none and kube-proxy forwards);
// - process-lab: the manifests' command lines as host processes on lab
//   nodes (no kube-proxy; the speakers' nftables dataplane forwards).
// Target: p50 <= 500 ms, p99 <= 1 s.
// Usage: npm run bench -- create-to-traffic [runs=20] [--target=both|real|lab]
//   (root; lab prefix $PORTICO_LAB_PREFIX or pc2t; the real-node lab appends "r")
import { parseArgs } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { Lab, installPortico, waitFor, webDeployment } from '../test/lab/index.ts';
import { PORTICO_NAMESPACE } from '../test/lab/portico.ts';
import { installPorticoReal } from '../test/lab/realnode-portico.ts';
import { load1, startProber } from './_traffic.ts';
import { report, summary } from './stats.ts';

const POOL = { first: '203.0.113.113', cidr: '203.0.113.112/28', size: 14 };

const { values, positionals } = parseArgs({ allowPositionals: true, options: { target: { type: 'string', default: 'both' } } });
const runs = Number(positionals[0] ?? 20);
const prefix = process.env.PORTICO_LAB_PREFIX ?? 'pc2t';

function vip(i: number): string {
  const base = Number(POOL.first.split('.')[3]);
  return `203.0.113.${base + (i % POOL.size)}`;
}

/** The pool, its L2Advertisement and ready pods behind the Services; the client routes the pool to the segment. */
async function prepare(lab: Lab): Promise<void> {
  const r = await lab.kubectlResult(['apply', '-f', '-'], `apiVersion: portico.dev/v1beta1
kind: IPAddressPool
metadata: {name: c2t, namespace: ${PORTICO_NAMESPACE}}
spec: {addresses: ["${POOL.cidr}"], autoAssign: false}
---
apiVersion: portico.dev/v1beta1
kind: L2Advertisement
metadata: {name: c2t, namespace: ${PORTICO_NAMESPACE}}
spec: {ipAddressPools: [c2t]}
---
${webDeployment('c2t-web', 3)}
`);
  if (r.code !== 0) throw new Error(`cannot apply the pool and the pods: ${r.stderr}`);
  await lab.kubectl('rollout', 'status', 'deployment/c2t-web', '--timeout=180s');
  await lab.exec('client', ['ip', 'route', 'replace', POOL.cidr, 'dev', 'eth0']);
}

function service(ip: string): k8s.V1Service {
  return {
    metadata: { name: 'c2t', annotations: { 'portico.dev/address-pool': 'c2t', 'portico.dev/loadBalancerIPs': ip } },
    spec: { type: 'LoadBalancer', selector: { app: 'c2t-web' }, ports: [{ port: 80, targetPort: 80 }] },
  };
}

async function measure(lab: Lab, target: string, what: Record<string, string>): Promise<void> {
  const core = lab.kc.makeApiClient(k8s.CoreV1Api);
  const client = lab.clients.find((c) => c.name === 'client')!;
  const took: number[] = [];
  const loadStart = load1();
  for (let i = 0; i < runs; i++) {
    const ip = vip(i);
    await lab.exec('client', ['ip', 'neigh', 'flush', 'to', POOL.cidr], { allowFail: true });
    const prober = await startProber(client.ns, `http://${ip}/`, 30_000);
    const t0 = Date.now();
    await core.createNamespacedService({ namespace: 'default', body: service(ip) });
    const a = await prober.answer;
    took.push(a.at - t0);
    process.stderr.write(`${target} run ${i + 1}/${runs}: ${ip} answered by ${a.pod} after ${a.at - t0} ms (${a.tries} tries), load ${load1()}\n`);
    await core.deleteNamespacedService({ name: 'c2t', namespace: 'default' });
    await waitFor('the Service gone', async () => {
      try { await core.readNamespacedService({ name: 'c2t', namespace: 'default' }); return false; } catch { return true; }
    }, 30_000, 100);
    await new Promise((r) => setTimeout(r, 1000)); // the speakers withdraw the old address
  }
  const s = summary(took);
  report('create-to-traffic', { target, ...what, p50_ms: s.p50, p99_ms: s.p99, min_ms: s.min, max_ms: s.max, runs, load_start: loadStart, load_end: load1() });
}

async function realNodes(): Promise<void> {
  const lab = await Lab.start({ prefix: `${prefix}r`, nodes: 3, clients: ['client'], realNodes: true });
  try {
    await installPorticoReal(lab);
    await prepare(lab);
    await measure(lab, 'real-nodes', { kube_proxy: lab.kubeProxyMode, dataplane: 'auto (none beside kube-proxy)', path: 'layer 2, IPv4, Cluster policy' });
  } finally {
    await lab.stop();
  }
}

async function processLab(): Promise<void> {
  const lab = await Lab.start({ prefix, nodes: 3, clients: ['client'] });
  try {
    const install = await installPortico(lab);
    try {
      await prepare(lab);
      await measure(lab, 'process-lab', { kube_proxy: 'none', dataplane: 'auto (nftables: no ip_vs)', path: 'layer 2, IPv4, Cluster policy' });
    } finally {
      await install.stop();
    }
  } finally {
    await lab.stop();
  }
}

if (values.target === 'both' || values.target === 'real') await realNodes();
if (values.target === 'both' || values.target === 'lab') await processLab();
