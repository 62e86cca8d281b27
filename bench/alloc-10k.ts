// alloc-10k: N Services (default 10,000) created through the real API server;
// time until every one shows an IP, and the controller's CPU seconds and peak
// RSS. Targets: all allocated in <= 30 s, peak RSS <= 150 MB.
// Usage: npm run bench -- alloc-10k [count=10000]
// Services are IPv6 single-stack (the lab's IPv4 Service CIDR has 4,096 ClusterIPs)
// without node ports (the node-port range has 2,768).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Lab, repoRoot, waitFor } from '@portico/lab';
import { report } from './stats.ts';

const count = Number(process.argv[2] ?? 10_000);
const NS = 'portico-system';
const lab = await Lab.start({ prefix: 'palloc', nodes: 1, clients: [] });
try {
  await lab.kubectlResult(['create', 'namespace', NS]);
  await lab.kubectlResult(['create', 'namespace', 'bench']);
  await lab.kubectl('apply', '-f', path.join(repoRoot, 'manifests', 'crds'));
  await lab.kubectl('wait', '--for=condition=Established', '--timeout=60s', 'crd/ipaddresspools.portico.dev');
  const pool = { apiVersion: 'portico.dev/v1beta1', kind: 'IPAddressPool', metadata: { name: 'bench', namespace: NS }, spec: { addresses: ['2001:db8:30::/64'] } };
  await lab.kubectlResult(['apply', '-f', '-'], JSON.stringify(pool));
  // PORTICO_BENCH_CPU_PROF=DIR writes a V8 CPU profile of the controller there.
  const prof = process.env.PORTICO_BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.PORTICO_BENCH_CPU_PROF}`] : [];
  const ctl = lab.spawn('controller', undefined, [process.execPath, ...prof, path.join(repoRoot, 'packages/controller/src/main.ts'), '--kubeconfig', lab.kubeconfig, '--identity', 'bench', '--listen', '127.0.0.1:0']);
  await waitFor('the controller to lead', async () => {
    const r = await lab.kubectlResult(['get', 'lease', 'portico-controller', '-n', NS, '-o', 'jsonpath={.spec.holderIdentity}']);
    return r.stdout === 'bench';
  }, 30_000, 200);
  const cpu = (): number => {
    const f = readFileSync(`/proc/${ctl.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime + stime in clock ticks (100 Hz)
  };
  const peakRssMb = (): number => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${ctl.pid}/status`, 'utf8'))![1]) / 1024;
  const cpu0 = cpu();
  const t0 = performance.now();
  // Creation is timed too (it is part of "until all have an IP"), in batches of 200 through kubectl, 4 at a time.
  const svc = (i: number): unknown => ({
    apiVersion: 'v1', kind: 'Service', metadata: { name: `s${i}`, namespace: 'bench' },
    spec: { type: 'LoadBalancer', allocateLoadBalancerNodePorts: false, ipFamilies: ['IPv6'], ipFamilyPolicy: 'SingleStack', ports: [{ port: 80, protocol: 'TCP' }], selector: { app: 'none' } },
  });
  let next = 0;
  await Promise.all(Array.from({ length: 4 }, async () => {
    while (next < count) {
      const from = next;
      next = Math.min(count, next + 200);
      const items = Array.from({ length: next - from }, (_, k) => svc(from + k));
      const r = await lab.kubectlResult(['create', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items }));
      if (r.code !== 0) throw new Error(`kubectl create exited ${r.code}: ${r.stderr.split('\n')[0]}`);
    }
  }));
  const created = performance.now() - t0;
  process.stderr.write(`created ${count} Services in ${Math.round(created)} ms\n`);
  let allocated = 0;
  await waitFor(`${count} Services allocated`, async () => {
    const r = await lab.kubectlResult(['get', 'services', '-n', 'bench', '-o', 'jsonpath={range .items[*]}{.status.loadBalancer.ingress[0].ip}{"\\n"}{end}']);
    allocated = r.stdout.split('\n').filter((l) => l !== '').length;
    return allocated === count;
  }, 600_000, 1000).catch((err: unknown) => { process.stderr.write(`${String(err)} (${allocated} allocated)\n`); });
  const took = (performance.now() - t0) / 1000;
  const cpuUsed = Math.round((cpu() - cpu0) * 10) / 10;
  const peakRss = Math.round(peakRssMb());
  // Stop the controller ourselves so that it exits cleanly (and writes its profile).
  process.kill(ctl.pid, 'SIGTERM');
  await waitFor('the controller to exit', () => !existsSync(`/proc/${ctl.pid}/stat`) || readFileSync(`/proc/${ctl.pid}/stat`, 'utf8').includes(') Z '), 15_000, 100).catch(() => undefined);
  report('alloc-10k', {
    services: count, allocated, all_allocated_s: Math.round(took * 10) / 10, create_s: Math.round(created / 100) / 10,
    controller_cpu_s: cpuUsed, controller_peak_rss_mb: peakRss,
  });
} finally {
  await lab.stop();
}
