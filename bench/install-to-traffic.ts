// install-to-traffic: a real-node cluster without Portico -> `kubectl apply`
// of manifests/portico.yaml, a pool with its L2Advertisement and a
// LoadBalancer Service -> the first good answer from a pod at a client on the
// segment. The clock starts just before `kubectl apply` of the manifest; the
// Service is applied at once after it, the pool as soon as the API server
// takes it (its CRD established, as `kubectl wait` would tell a user). A
// prober in the client's namespace requests the address from before the
// start (a new connection every 10 ms, 200 ms timeout; the Service asks for
// it with portico.dev/loadBalancerIPs). Not timed, as on a cluster that
// pulled the image before: the image loaded into each node's containerd, the
// pods behind the Service ready. Between runs Portico is uninstalled
// (`kubectl delete` of what was applied, every pod gone) on the same cluster:
// the first run is on a cluster that never had Portico, the others after an
// uninstall (the nodes keep the strict-ARP table, see docs/install.md). The
// real nodes run kube-proxy in nftables mode (the speakers choose none).
// One JSON line: p50/p99 over the runs, the first run alone, the time until
// the apply returned and until the pool was taken, the load at start and end.
// Target: p50 <= 20 s.
// Usage: npm run bench -- install-to-traffic [runs=5]   (root; lab prefix $PORTICO_LAB_PREFIX or pi2t, plus "r")
import { Lab, waitFor, webDeployment } from '../test/lab/index.ts';
import { PORTICO_NAMESPACE } from '../test/lab/portico.ts';
import { porticoApplyArgs, porticoImage } from '../test/lab/realnode-portico.ts';
import { load1, startProber } from './_traffic.ts';
import { report, summary } from './stats.ts';

const VIP = '203.0.113.130';
const POOL = '203.0.113.128/28';
const runs = Number(process.argv[2] ?? 5);

const POOL_YAML = `apiVersion: portico.dev/v1beta1
kind: IPAddressPool
metadata: {name: i2t, namespace: ${PORTICO_NAMESPACE}}
spec: {addresses: ["${POOL}"]}
---
apiVersion: portico.dev/v1beta1
kind: L2Advertisement
metadata: {name: i2t, namespace: ${PORTICO_NAMESPACE}}
spec: {ipAddressPools: [i2t]}
`;
const SERVICE_YAML = `apiVersion: v1
kind: Service
metadata: {name: i2t, annotations: {portico.dev/loadBalancerIPs: "${VIP}"}}
spec:
  type: LoadBalancer
  selector: {app: i2t-web}
  ports: [{port: 80, targetPort: 80}]
`;

const lab = await Lab.start({ prefix: `${process.env.PORTICO_LAB_PREFIX ?? 'pi2t'}r`, nodes: 3, clients: ['client'], realNodes: true });
try {
  const image = await porticoImage((m) => process.stderr.write(`${m}\n`));
  await lab.loadImage(image);
  const applyArgs = porticoApplyArgs(lab, image);
  const web = await lab.kubectlResult(['apply', '-f', '-'], webDeployment('i2t-web', 3));
  if (web.code !== 0) throw new Error(web.stderr);
  await lab.kubectl('rollout', 'status', 'deployment/i2t-web', '--timeout=180s');
  await lab.exec('client', ['ip', 'route', 'replace', POOL, 'dev', 'eth0']);
  const client = lab.clients.find((c) => c.name === 'client')!;
  const total: number[] = [];
  const applied: number[] = [];
  const pooled: number[] = [];
  const loadStart = load1();
  for (let i = 0; i < runs; i++) {
    await lab.exec('client', ['ip', 'neigh', 'flush', 'to', POOL], { allowFail: true });
    const prober = await startProber(client.ns, `http://${VIP}/`, 180_000);
    const t0 = Date.now();
    const r = await lab.kubectlResult(['apply', ...applyArgs]);
    if (r.code !== 0) throw new Error(`kubectl apply ${applyArgs.join(' ')}: ${r.stderr}`);
    applied.push(Date.now() - t0);
    const svc = await lab.kubectlResult(['apply', '-f', '-'], SERVICE_YAML);
    if (svc.code !== 0) throw new Error(svc.stderr);
    await waitFor('the pool taken by the API server', async () => (await lab.kubectlResult(['apply', '-f', '-'], POOL_YAML)).code === 0, 120_000, 100);
    pooled.push(Date.now() - t0);
    const a = await prober.answer;
    total.push(a.at - t0);
    process.stderr.write(`run ${i + 1}/${runs}: applied +${applied.at(-1)} ms, pool taken +${pooled.at(-1)} ms, ${VIP} answered by ${a.pod} +${a.at - t0} ms; load ${load1()}\n`);
    await lab.kubectlResult(['delete', 'service/i2t', '--ignore-not-found', '--wait=true']);
    await lab.kubectlResult(['delete', '--ignore-not-found', '--wait=true', '--timeout=120s', ...applyArgs], undefined, { timeoutMs: 150_000 });
    await waitFor('every Portico pod gone', async () => {
      const out = await lab.kubectlResult(['get', 'pods', '-n', PORTICO_NAMESPACE, '-o', 'name']);
      return out.code !== 0 || out.stdout.trim() === '';
    }, 120_000, 250);
  }
  const t = summary(total);
  report('install-to-traffic', {
    target: 'real-nodes', kube_proxy: lab.kubeProxyMode, path: 'layer 2, IPv4; image preloaded in containerd, pods ready',
    p50_ms: t.p50, p99_ms: t.p99, min_ms: t.min, max_ms: t.max, first_run_ms: total[0]!,
    apply_p50_ms: summary(applied).p50, pool_taken_p50_ms: summary(pooled).p50, runs, load_start: loadStart, load_end: load1(),
  });
} finally {
  await lab.stop();
}
