// alloc-10k: N Services (default 10,000) created through the real API server;
// time until every one shows an IP, and the controller's CPU seconds and peak
// RSS. Targets: all allocated in <= 30 s, peak RSS <= 150 MB.
// Usage: npm run bench -- alloc-10k [count=10000]
// Environment:
//   PORTICO_LAB_PREFIX         lab prefix (default palloc)
//   PORTICO_BENCH_CREATE       how Services are created: http2 (default: concurrent
//                              POSTs over one HTTP/2 connection, as fast as the API
//                              server allows) or kubectl (Lists of 200, 4 at a time)
//   PORTICO_BENCH_NO_CONTROLLER=1  no controller: measures the creation floor only
//   PORTICO_BENCH_BACKLOG=1    create every Service first, then start the controller:
//                              the time is from the controller's start (its own
//                              throughput, apart from the API server's creation rate)
//   PORTICO_BENCH_NODE_FLAGS   V8/Node flags for the controller process (default: the
//                              manifest's, --optimize-for-size; '' for none)
//   PORTICO_BENCH_CPU_PROF=DIR writes a V8 CPU profile of the controller there
//   PORTICO_BENCH_CONTROLLER   the controller's main.ts to run (default: this
//                              checkout's), e.g. an older tree to compare with
//   PORTICO_BENCH_COMPILE_CACHE=0  run the controller without Node's compile cache;
//                              by default it gets one, warmed with `main.ts --help`
//                              first, as the image's build does (see Dockerfile)
// Services are IPv6 single-stack (the lab's IPv4 Service CIDR has 4,096 ClusterIPs)
// without node ports (the node-port range has 2,768).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import { Lab, repoRoot, waitFor } from '@portico/lab';
import { parseYAML } from '@portico/shared';
import { report } from './stats.ts';

const count = Number(process.argv[2] ?? 10_000);
const NS = 'portico-system';
const lab = await Lab.start({ prefix: process.env.PORTICO_LAB_PREFIX ?? 'palloc', nodes: 1, clients: [] });
let cacheDir: string | undefined;
try {
  await lab.kubectlResult(['create', 'namespace', NS]);
  await lab.kubectlResult(['create', 'namespace', 'bench']);
  await lab.kubectl('apply', '-f', path.join(repoRoot, 'manifests', 'crds'));
  await lab.kubectl('wait', '--for=condition=Established', '--timeout=60s', 'crd/ipaddresspools.portico.dev');
  const pool = { apiVersion: 'portico.dev/v1beta1', kind: 'IPAddressPool', metadata: { name: 'bench', namespace: NS }, spec: { addresses: ['2001:db8:30::/64'] } };
  await lab.kubectlResult(['apply', '-f', '-'], JSON.stringify(pool));
  const withController = process.env.PORTICO_BENCH_NO_CONTROLLER !== '1';
  const backlog = withController && process.env.PORTICO_BENCH_BACKLOG === '1';
  const mode = process.env.PORTICO_BENCH_CREATE ?? 'http2';
  if (mode !== 'http2' && mode !== 'kubectl') throw new Error(`PORTICO_BENCH_CREATE=${mode}: expected http2 or kubectl`);
  const prof = process.env.PORTICO_BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.PORTICO_BENCH_CPU_PROF}`] : [];
  const nodeFlags = (process.env.PORTICO_BENCH_NODE_FLAGS ?? '--optimize-for-size').split(' ').filter((f) => f !== '');
  let ctl: ReturnType<typeof lab.spawn> | undefined;
  let ctlStartedAt = 0;
  const main = process.env.PORTICO_BENCH_CONTROLLER ?? path.join(repoRoot, 'packages/controller/src/main.ts');
  // The image's compile cache, built the same way: stripped sources and V8 code from one `--help` start.
  cacheDir = process.env.PORTICO_BENCH_COMPILE_CACHE === '0' ? undefined : mkdtempSync(path.join(os.tmpdir(), 'portico-bench-ncc-'));
  const cacheEnv = cacheDir ? { NODE_COMPILE_CACHE: cacheDir } : {};
  if (cacheDir) {
    const warm = spawnSync(process.execPath, [...nodeFlags, main, '--help'], { env: { ...process.env, ...cacheEnv }, stdio: 'ignore' });
    if (warm.status !== 0) throw new Error(`warming the compile cache: ${main} --help exited ${warm.status}`);
  }
  const startController = async (): Promise<void> => {
    ctlStartedAt = performance.now();
    ctl = lab.spawn('controller', undefined, [process.execPath, ...nodeFlags, ...prof, main, '--kubeconfig', lab.kubeconfig, '--identity', 'bench', '--listen', '127.0.0.1:0'], cacheEnv);
    await waitFor('the controller to lead', async () => {
      const r = await lab.kubectlResult(['get', 'lease', 'portico-controller', '-n', NS, '-o', 'jsonpath={.spec.holderIdentity}']);
      return r.stdout === 'bench';
    }, 60_000, 200);
  };
  if (withController && !backlog) await startController();
  const cpu = (): number => {
    if (!ctl) return 0;
    const f = readFileSync(`/proc/${ctl.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime + stime in clock ticks (100 Hz)
  };
  const peakRssMb = (): number => (ctl ? Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${ctl.pid}/status`, 'utf8'))![1]) / 1024 : 0);
  const svc = (i: number): Record<string, unknown> => ({
    apiVersion: 'v1', kind: 'Service', metadata: { name: `s${i}`, namespace: 'bench' },
    spec: { type: 'LoadBalancer', allocateLoadBalancerNodePorts: false, ipFamilies: ['IPv6'], ipFamilyPolicy: 'SingleStack', ports: [{ port: 80, protocol: 'TCP' }], selector: { app: 'none' } },
  });
  const session = mode === 'http2' ? connect(lab.kubeconfig) : undefined;
  // Allocations are counted from a watch on the Services (a list of 10,000 every poll would load the API server being measured).
  const watcher = connect(lab.kubeconfig);
  const allocatedNames = watchAllocated(watcher);
  await allocatedNames.ready;
  let cpu0 = cpu();
  let t0 = performance.now();
  // Creation is timed too (it is part of "until all have an IP").
  if (session) {
    // Concurrent POSTs over one HTTP/2 connection: the API server is the limit, not the client.
    let next = 0;
    await Promise.all(Array.from({ length: 32 }, async () => {
      while (next < count) {
        const i = next++;
        const r = await request(session, 'POST', '/api/v1/namespaces/bench/services', svc(i));
        if (r.status !== 201) throw new Error(`create s${i}: HTTP ${r.status}: ${r.body.slice(0, 200)}`);
      }
    }));
  } else {
    // Lists of 200 through kubectl, 4 at a time.
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
  }
  let created = performance.now() - t0;
  process.stderr.write(`created ${count} Services in ${Math.round(created)} ms (${mode})\n`);
  if (backlog) {
    await startController().catch((err: unknown) => { process.stderr.write(`${String(err)}\n`); });
    // Timed from the controller's start: its process start, leader election and list included.
    t0 = ctlStartedAt;
    cpu0 = 0;
    created = 0;
  }
  let allocated = 0;
  if (ctl) {
    await waitFor(`${count} Services allocated`, () => {
      allocated = allocatedNames.names.size;
      return allocated === count;
    }, 900_000, 50).catch((err: unknown) => { process.stderr.write(`${String(err)} (${allocated} allocated)\n`); });
  }
  const took = (performance.now() - t0) / 1000;
  if (ctl) {
    // What the API server holds, read once at the end.
    const r = await request(watcher, 'GET', '/api/v1/namespaces/bench/services');
    const list = JSON.parse(r.body) as { items: { status?: { loadBalancer?: { ingress?: { ip?: string }[] } } }[] };
    const held = list.items.filter((x) => x.status?.loadBalancer?.ingress?.[0]?.ip).length;
    if (held !== allocated) process.stderr.write(`the watch counted ${allocated} allocated, the API server lists ${held}\n`);
    allocated = held;
  }
  allocatedNames.stop();
  watcher.close();
  const cpuUsed = Math.round((cpu() - cpu0) * 10) / 10;
  const peakRss = Math.round(peakRssMb());
  session?.close();
  if (ctl) {
    // Stop the controller ourselves so that it exits cleanly (and writes its profile).
    const { pid } = ctl;
    process.kill(pid, 'SIGTERM');
    await waitFor('the controller to exit', () => !existsSync(`/proc/${pid}/stat`) || readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z '), 15_000, 100).catch(() => undefined);
  }
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  report('alloc-10k', withController
    ? {
      services: count, create: mode, ...(backlog ? { backlog: 'yes' } : {}), allocated, all_allocated_s: Math.round(took * 10) / 10, create_s: Math.round(created / 100) / 10,
      beyond_create_s: Math.round(took * 10 - created / 100) / 10, controller_cpu_s: cpuUsed, controller_peak_rss_mb: peakRss, node_flags: nodeFlags.join(' '),
      compile_cache: cacheDir ? 'yes' : 'no', loadavg: load,
    }
    : { services: count, create: mode, controller: 'none', create_s: Math.round(created / 100) / 10, loadavg: load });
} finally {
  if (cacheDir) rmSync(cacheDir, { recursive: true, force: true });
  await lab.stop();
}

/** One HTTP/2 session to the lab's API server, with the admin client certificate of its kubeconfig. */
function connect(kubeconfig: string): http2.ClientHttp2Session {
  const kc = parseYAML(readFileSync(kubeconfig, 'utf8')) as {
    clusters: { cluster: { server: string; 'certificate-authority': string } }[];
    users: { user: { 'client-certificate': string; 'client-key': string } }[];
  };
  const cluster = kc.clusters[0]!.cluster;
  const user = kc.users[0]!.user;
  const session = http2.connect(cluster.server, {
    ca: readFileSync(cluster['certificate-authority']),
    cert: readFileSync(user['client-certificate']),
    key: readFileSync(user['client-key']),
    // Large flow-control windows: a watch that the API server cannot push into at once is one it closes as unresponsive.
    settings: { initialWindowSize: 16 << 20 },
  });
  session.on('connect', () => session.setLocalWindowSize(64 << 20));
  return session;
}

function request(session: http2.ClientHttp2Session, method: string, urlPath: string, body?: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': method, ':path': urlPath, 'content-type': 'application/json', accept: 'application/json' });
    let status = 0;
    const chunks: Buffer[] = [];
    req.on('response', (h) => { status = Number(h[':status']); });
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve({ status, body: Buffer.concat(chunks).toString('utf8') }));
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/**
 * The names of the Services in namespace bench that have an ingress IP, kept
 * up to date from a watch. The API server closes a watcher it finds slow (a
 * burst of 10,000 writes does that): the set is then listed again and the
 * watch resumed from the list.
 */
function watchAllocated(session: http2.ClientHttp2Session): { names: Set<string>; ready: Promise<void>; stop: () => void } {
  const names = new Set<string>();
  let stream: http2.ClientHttp2Stream | undefined;
  let stopped = false;
  const allocated = (o: { status?: { loadBalancer?: { ingress?: { ip?: string }[] } } }): boolean => Boolean(o.status?.loadBalancer?.ingress?.[0]?.ip);
  const sync = async (): Promise<void> => {
    const r = await request(session, 'GET', '/api/v1/namespaces/bench/services');
    const list = JSON.parse(r.body) as { metadata: { resourceVersion: string }; items: { metadata: { name: string }; status?: { loadBalancer?: { ingress?: { ip?: string }[] } } }[] };
    names.clear();
    for (const o of list.items) if (allocated(o)) names.add(o.metadata.name);
    if (stopped) return;
    const s = session.request({ ':method': 'GET', ':path': `/api/v1/namespaces/bench/services?watch=1&resourceVersion=${list.metadata.resourceVersion}&timeoutSeconds=3600`, accept: 'application/json' });
    stream = s;
    let buf = '';
    let failed = false;
    s.setEncoding('utf8');
    s.on('data', (chunk: string) => {
      buf += chunk;
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        nl = buf.indexOf('\n');
        if (!line.trim()) continue;
        const ev = JSON.parse(line) as { type: string; object: { metadata: { name: string }; status?: { loadBalancer?: { ingress?: { ip?: string }[] } } } };
        if (ev.type === 'ERROR') { failed = true; process.stderr.write(`watch: ${line.slice(0, 300)}; listing again\n`); s.close(); return; }
        if (ev.type !== 'DELETED' && allocated(ev.object)) names.add(ev.object.metadata.name);
        else names.delete(ev.object.metadata.name);
      }
    });
    s.on('error', (err) => process.stderr.write(`watch: ${String(err)}\n`));
    s.on('close', () => {
      if (stopped) return;
      if (!failed) process.stderr.write('watch: closed by the API server; listing again\n');
      void sync().catch((err: unknown) => process.stderr.write(`watch: list failed: ${String(err)}\n`));
    });
  };
  return { names, ready: sync(), stop: () => { stopped = true; stream?.close(); } };
}
