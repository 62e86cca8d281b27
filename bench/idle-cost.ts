// idle-cost: what Portico costs a cluster at rest. 3 nodes, 100 announced
// layer-2 Services, then windows of quiet (default 3 x 60 s): per process, the
// speakers' and the controller replicas' resident memory and CPU time, and the
// requests each component sent to the API server, read from the API server's
// own audit log (by the ServiceAccount that sent them, so nothing is counted
// from the components' side). Installed as the manifest installs it: the
// Deployment's two replicas with the manifest's Lease timings (no FAST_LEASE),
// one speaker per node, the manifest's flags.
// This is the process lab: the components run as host processes from the
// workspace, not from the image (RSS of a Node process is the same either way;
// the image's compile cache is not used, which costs memory at start only).
// Usage: npm run bench -- idle-cost [windows=3] [window_s=60] [services=100]   (root; prefix $PORTICO_LAB_PREFIX or pidle)
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync, openSync, readSync, closeSync } from 'node:fs';
import { Lab, installPortico, sleep, waitFor, PORTICO_NAMESPACE as NS } from '@portico/lab';
import { SPEAKER_PROCESS } from '../test/lab/portico.ts';
import { apply, l2Advertisement, pool } from '../test/e2e/objects.ts';
import { report, summary } from './stats.ts';

const windows = Number(process.argv[2] ?? 3);
const windowS = Number(process.argv[3] ?? 60);
const services = Number(process.argv[4] ?? 100);
const APP = 'idle';
const TICKS = 100; // USER_HZ on Linux
const load = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

const lab = await Lab.start({ prefix: process.env.PORTICO_LAB_PREFIX ?? 'pidle', nodes: 3, clients: [], audit: true });
try {
  await lab.kubectlResult(['create', 'namespace', NS]);
  await lab.kubectlResult(['create', 'secret', 'generic', 'portico-heartbeat', '-n', NS, `--from-literal=key=${randomBytes(32).toString('hex')}`]);
  const install = await installPortico(lab, {});
  await apply(lab, pool('idle', { addresses: ['203.0.113.0/25'] }), l2Advertisement('idle', { ipAddressPools: ['idle'] }));
  await lab.kubectlResult(['create', 'namespace', APP]);
  await lab.kubectl('create', 'deployment', 'web', '-n', APP, '--image=portico.dev/podserver', '--replicas=3', '--port=80');
  const svc = (i: number): object => ({
    apiVersion: 'v1', kind: 'Service', metadata: { name: `s${i}`, namespace: APP },
    spec: { type: 'LoadBalancer', ports: [{ port: 80, targetPort: 80, protocol: 'TCP' }], selector: { app: 'web' } },
  });
  await lab.kubectlResult(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: Array.from({ length: services }, (_, i) => svc(i)) }), { timeoutMs: 120_000 });
  await waitFor(`all ${services} Services announced`, async () => {
    const out = await lab.kubectl('get', 'services', '-n', APP, '-o', 'jsonpath={range .items[*]}{.metadata.annotations.portico\\.dev/layer2-node}{"\\n"}{end}');
    return out.split('\n').filter((l) => l.trim() !== '').length === services ? true : undefined;
  }, 180_000, 1000);

  const components = [
    ...install.replicas.map((r) => ({ name: `controller/${r.identity}`, key: r.key })),
    ...lab.nodes.map((n) => ({ name: `speaker/${n.name}`, key: `${SPEAKER_PROCESS}-${n.name}` })),
  ];
  const accounts: Record<string, string> = {
    'system:serviceaccount:portico-system:portico-controller': 'controller',
    'system:serviceaccount:portico-system:portico-speaker': 'speaker',
  };
  report('idle-cost', { phase: 'setup', services, nodes: lab.nodes.length, controllers: install.replicas.length, load: load(), note: 'process lab: components from the workspace, not the image' });
  await sleep(15_000); // the announcement burst, its Events and status writes settle

  const perComponent = new Map<string, { rss: number[]; cpu: number[] }>();
  const perAccount = new Map<string, { writes: number[]; reads: number[]; byWrite: Map<string, number> }>();
  for (let w = 0; w < windows; w++) {
    const loadStart = load();
    const cpu0 = new Map(components.map((c) => [c.name, cpuTicks(lab.pidOf(c.key))]));
    const audit0 = statSync(lab.auditLog).size;
    const t0 = Date.now();
    const rssMax = new Map<string, number>();
    while (Date.now() - t0 < windowS * 1000) {
      await sleep(Math.min(5000, windowS * 1000 - (Date.now() - t0)));
      for (const c of components) rssMax.set(c.name, Math.max(rssMax.get(c.name) ?? 0, rssBytes(lab.pidOf(c.key))));
    }
    const seconds = (Date.now() - t0) / 1000;
    for (const c of components) {
      const cpuS = (cpuTicks(lab.pidOf(c.key)) - cpu0.get(c.name)!) / TICKS;
      const e = perComponent.get(c.name) ?? { rss: [], cpu: [] };
      e.rss.push(rssMax.get(c.name)! / 2 ** 20);
      e.cpu.push((cpuS / seconds) * 60);
      perComponent.set(c.name, e);
    }
    const counts = auditCounts(lab.auditLog, audit0, t0, t0 + seconds * 1000);
    for (const [user, name] of Object.entries(accounts)) {
      const c = counts.get(user) ?? { writes: 0, reads: 0, byWrite: new Map<string, number>() };
      const e = perAccount.get(name) ?? { writes: [], reads: [], byWrite: new Map<string, number>() };
      e.writes.push(c.writes / seconds);
      e.reads.push(c.reads / seconds);
      for (const [k, v] of c.byWrite) e.byWrite.set(k, (e.byWrite.get(k) ?? 0) + v / seconds / windows);
      perAccount.set(name, e);
    }
    report('idle-cost', { phase: 'window', window: w + 1, seconds: Math.round(seconds), load_start: loadStart, load_end: load() });
  }
  for (const [name, e] of perComponent) {
    const rss = summary(e.rss);
    const cpu = summary(e.cpu);
    report('idle-cost', { component: name, windows, rss_mb_p50: round(rss.p50), rss_mb_max: round(rss.max), cpu_s_per_min_p50: round(cpu.p50, 3), cpu_s_per_min_max: round(cpu.max, 3) });
  }
  for (const [name, e] of perAccount) {
    const wr = summary(e.writes);
    const rd = summary(e.reads);
    const top = [...e.byWrite].sort((a, b) => b[1] - a[1]).slice(0, 6).map(([k, v]) => `${k} ${v.toFixed(2)}/s`).join(', ');
    report('idle-cost', { account: name, windows, writes_per_s_p50: round(wr.p50, 3), writes_per_s_max: round(wr.max, 3), reads_per_s_p50: round(rd.p50, 3), writes: top || 'none' });
  }
  report('idle-cost', { phase: 'done', load: load() });
} finally {
  await lab.stop();
}

function round(x: number, digits = 1): number {
  return Number(x.toFixed(digits));
}

/** utime + stime of a process and its children still running (ticks); 0 if it is gone. */
function cpuTicks(pid: number | undefined): number {
  if (pid === undefined) return 0;
  let total = 0;
  for (const p of tree(pid)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      total += Number(f[11]) + Number(f[12]); // fields 14 and 15: utime, stime
    } catch { /* exited meanwhile */ }
  }
  return total;
}

/** Resident memory of the largest process in the tree (the Node process, not its launcher). */
function rssBytes(pid: number | undefined): number {
  if (pid === undefined) return 0;
  let max = 0;
  for (const p of tree(pid)) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m) max = Math.max(max, Number(m[1]) * 1024);
    } catch { /* exited meanwhile */ }
  }
  return max;
}

function tree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    try {
      for (const t of readFileSync(`/proc/${out[i]}/task/${out[i]}/children`, 'utf8').trim().split(/\s+/)) if (t) out.push(Number(t));
    } catch { /* gone */ }
  }
  return out;
}

/** Audit events from byte `from` of the log whose stage ended in [t0, t1), per user. */
function auditCounts(file: string, from: number, t0: number, t1: number): Map<string, { writes: number; reads: number; byWrite: Map<string, number> }> {
  const size = statSync(file).size;
  const buf = Buffer.alloc(size - from);
  const fd = openSync(file, 'r');
  try { readSync(fd, buf, 0, buf.length, from); } finally { closeSync(fd); }
  const out = new Map<string, { writes: number; reads: number; byWrite: Map<string, number> }>();
  for (const line of buf.toString('utf8').split('\n')) {
    if (!line) continue;
    let e: { stage?: string; verb?: string; user?: { username?: string }; objectRef?: { resource?: string; subresource?: string }; stageTimestamp?: string };
    try { e = JSON.parse(line) as typeof e; } catch { continue; }
    if (e.stage !== 'ResponseComplete' && !(e.verb === 'watch' && e.stage === 'ResponseStarted')) continue;
    const at = Date.parse(e.stageTimestamp ?? '');
    if (!(at >= t0 && at < t1)) continue;
    const user = e.user?.username ?? '?';
    const c = out.get(user) ?? { writes: 0, reads: 0, byWrite: new Map<string, number>() };
    if (['create', 'update', 'patch', 'delete', 'deletecollection'].includes(e.verb ?? '')) {
      c.writes++;
      const what = `${e.verb} ${e.objectRef?.resource ?? '?'}${e.objectRef?.subresource ? `/${e.objectRef.subresource}` : ''}`;
      c.byWrite.set(what, (c.byWrite.get(what) ?? 0) + 1);
    } else if (e.stage === 'ResponseComplete' && e.verb !== 'watch') {
      c.reads++;
    }
    out.set(user, c);
  }
  return out;
}
