// api-load: what the speakers write to the API server in the steady state,
// with 10 and with 5,000 announced Services. Layer 2 keeps one Lease per node
// and writes per Service only when its owner changes, so the two figures
// should be equal within noise. Measured twice per size over a quiet window
// after every Service is announced: the speakers' own count of their writes
// (portico_l2_api_writes_total, all nodes) and every write the API server
// served (apiserver_request_total for POST/PUT/PATCH/DELETE: kubelets,
// kube-controller-manager and Portico's controller included).
// Usage: npm run bench -- api-load [services=5000] [window_s=30]   (root)
import { Lab, sleep, waitFor } from '@portico/lab';
import { APP, metric, settled, startL2 } from '../test/e2e/l2-env.ts';
import { report } from './stats.ts';

const many = Number(process.argv[2] ?? 5000);
const windowS = Number(process.argv[3] ?? 30);
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

async function announced(): Promise<number> {
  const out = await lab.kubectl('get', 'services', '-n', APP, '-o', 'jsonpath={range .items[*]}{.metadata.annotations.portico\\.dev/layer2-node}{"\\n"}{end}');
  return out.split('\n').filter((l) => l.trim() !== '').length;
}

async function measure(services: number): Promise<void> {
  await sleep(10_000); // let the announcement burst and its Events finish
  const s0 = await speakerWrites();
  const a0 = await apiserverWrites();
  const t0 = performance.now();
  await sleep(windowS * 1000);
  const s1 = await speakerWrites();
  const a1 = await apiserverWrites();
  const seconds = (performance.now() - t0) / 1000;
  report('api-load', { services, speaker_writes_per_s: Number(((s1 - s0) / seconds).toFixed(3)), apiserver_writes_per_s: Number(((a1 - a0) / seconds).toFixed(2)), window_s: Math.round(seconds), nodes: lab.nodes.length });
}

const service = (i: number): object => ({
  apiVersion: 'v1', kind: 'Service', metadata: { name: `load-${i}`, namespace: APP, annotations: { 'portico.dev/address-pool': 'l2-many' } },
  spec: { type: 'LoadBalancer', allocateLoadBalancerNodePorts: false, ipFamilyPolicy: 'SingleStack', ipFamilies: ['IPv6'], ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 80 }], selector: { app: 'web' } },
});

try {
  const env = await startL2(lab);
  try {
    await settled(lab, env);
    const apply = async (objs: object[]): Promise<void> => {
      const r = await lab.kubectlResult(['apply', '--server-side', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objs }));
      if (r.code !== 0) throw new Error(`kubectl apply of ${objs.length} objects: exit ${r.code}: ${r.stderr || r.stdout.slice(-500)}`);
    };
    await apply([
      { apiVersion: 'portico.dev/v1beta1', kind: 'IPAddressPool', metadata: { name: 'l2-many', namespace: NS }, spec: { addresses: ['2001:db8:1:2::/112'], autoAssign: false } },
      { apiVersion: 'portico.dev/v1beta1', kind: 'L2Advertisement', metadata: { name: 'l2-many', namespace: NS }, spec: { ipAddressPools: ['l2-many'] } },
    ]);
    let made = 0;
    for (const target of [10, many]) {
      while (made + 1 < target) {
        const batch = Array.from({ length: Math.min(200, target - 1 - made) }, (_, k) => service(made + k));
        await apply(batch);
        made += batch.length;
        process.stderr.write(`${made + 1} Services\n`);
      }
      const t = performance.now();
      await waitFor(`${target} Services announced`, async () => (await announced()) >= target || undefined, 1_800_000, 2000);
      process.stderr.write(`${target} Services announced (${Math.round(performance.now() - t)} ms after the last apply)\n`);
      await measure(target);
    }
  } finally {
    await lab.kubectlResult(['delete', 'namespace', APP, '--wait=false']);
    await env.stop();
  }
} finally {
  await lab.stop();
}
