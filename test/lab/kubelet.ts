// The lab kubelet: registers its Node, keeps the node Lease and Ready condition
// fresh, runs each Pod bound to the node as an HTTP server in its own network
// namespace (wired to the node, pod network 100.64.0.0/16), reports pod IPs
// and readiness from a probe, and removes pods when they go away.
//
// Runs inside the node's network namespace but in the root mount namespace
// (started with nsenter --net), so the pod namespaces it makes are visible to
// `ip netns` everywhere and the lab can always clean them up.
import { readFileSync, openSync, closeSync } from 'node:fs';
import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { createHash } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import { run } from './sh.ts';
import { destroyNetns, listNetns } from './netns.ts';
import type { KubeletConfig as Config } from './kubelet-config.ts';


const arg = (name: string): string | undefined => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const cfg = JSON.parse(readFileSync(arg('config') ?? '', 'utf8')) as Config;
const kc = new k8s.KubeConfig();
kc.loadFromFile(cfg.kubeconfig);
const core = kc.makeApiClient(k8s.CoreV1Api);
const coord = kc.makeApiClient(k8s.CoordinationV1Api);
const mergePatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
const log = (msg: string, fields: Record<string, unknown> = {}): void => {
  process.stdout.write(`${new Date().toISOString()} ${msg} ${JSON.stringify(fields)}\n`);
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const v4Base = cfg.podCidrV4.split('/')[0]!.split('.').slice(0, 3).join('.');
const v6Base = cfg.podCidrV6.split('::')[0]!;
const gatewayV4 = `${v4Base}.1`;

// ---- node registration and heartbeats ---------------------------------------

function nodeConditions(ready: boolean): k8s.V1NodeCondition[] {
  const now = new Date();
  const c = (type: string, status: string, reason: string, message: string): k8s.V1NodeCondition =>
    ({ type, status, reason, message, lastHeartbeatTime: now, lastTransitionTime: now });
  return [
    c('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'lab kubelet'),
    c('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'lab kubelet'),
    c('PIDPressure', 'False', 'KubeletHasSufficientPID', 'lab kubelet'),
    c('Ready', ready ? 'True' : 'False', ready ? 'KubeletReady' : 'KubeletNotReady', 'lab kubelet is posting ready status'),
  ];
}

function nodeStatus(): k8s.V1NodeStatus {
  const resources = { cpu: '8', memory: '16Gi', pods: '110', 'ephemeral-storage': '100Gi' };
  return {
    addresses: [
      { type: 'InternalIP', address: cfg.ipv4 },
      { type: 'InternalIP', address: cfg.ipv6 },
      { type: 'Hostname', address: cfg.node },
    ],
    capacity: resources,
    allocatable: resources,
    conditions: nodeConditions(true),
    daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
    nodeInfo: {
      architecture: 'amd64', bootID: cfg.tag, containerRuntimeVersion: 'portico-lab://1', kernelVersion: '',
      kubeProxyVersion: '', kubeletVersion: 'v1.36.3', machineID: cfg.node, operatingSystem: 'linux',
      osImage: 'Portico lab node', systemUUID: cfg.node,
    },
  };
}

async function registerNode(): Promise<void> {
  const body: k8s.V1Node = {
    apiVersion: 'v1', kind: 'Node',
    metadata: { name: cfg.node, labels: { 'kubernetes.io/hostname': cfg.node, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', 'portico.dev/lab': cfg.tag } },
    spec: { podCIDR: cfg.podCidrV4, podCIDRs: [cfg.podCidrV4, cfg.podCidrV6] },
    status: nodeStatus(),
  };
  for (let attempt = 0; ; attempt++) {
    try {
      await core.createNode({ body }).catch(async (err: unknown) => {
        if ((err as { code?: number }).code !== 409) throw err;
      });
      await core.patchNodeStatus({ name: cfg.node, body: { status: nodeStatus() } }, mergePatch);
      log('node registered', { node: cfg.node });
      return;
    } catch (err) {
      if (attempt % 10 === 0) log('node registration failed, retrying', { error: String(err) });
      await sleep(500);
    }
  }
}

async function renewLease(): Promise<void> {
  const name = cfg.node;
  const namespace = 'kube-node-lease';
  const spec: k8s.V1LeaseSpec = { holderIdentity: name, leaseDurationSeconds: 40, renewTime: new k8s.V1MicroTime() };
  try {
    const cur = await coord.readNamespacedLease({ name, namespace });
    cur.spec = spec;
    await coord.replaceNamespacedLease({ name, namespace, body: cur });
  } catch (err) {
    if ((err as { code?: number }).code !== 404) throw err;
    await coord.createNamespacedLease({ namespace, body: { metadata: { name, namespace }, spec } });
  }
}

async function heartbeats(): Promise<void> {
  let lastStatus = 0;
  for (;;) {
    try {
      await renewLease();
      if (Date.now() - lastStatus > 10_000) {
        await core.patchNodeStatus({ name: cfg.node, body: { status: { conditions: nodeConditions(true) } } }, mergePatch);
        lastStatus = Date.now();
      }
    } catch (err) {
      log('heartbeat failed', { error: String(err) });
    }
    await sleep(cfg.heartbeatMs);
  }
}

// ---- pods ----------------------------------------------------------------------

interface PodRuntime {
  uid: string;
  name: string;
  namespace: string;
  netns: string;
  host: number;
  ipv4: string;
  ipv6: string;
  pid?: number;
  ports: number[];
  probe: { kind: 'http'; port: number; path: string } | { kind: 'tcp'; port: number } | { kind: 'none' };
  ready: boolean | undefined;
  startedAt: Date;
  lastPod: k8s.V1Pod;
}

const pods = new Map<string, PodRuntime>();
const queues = new Map<string, Promise<void>>();

function serialize(uid: string, fn: () => Promise<void>): void {
  const prev = queues.get(uid) ?? Promise.resolve();
  const next = prev.then(fn).catch((err: unknown) => log('pod handling failed', { uid, error: String(err) }));
  queues.set(uid, next);
}

function takeHost(preferred: string | undefined): number {
  const used = new Set([...pods.values()].map((p) => p.host));
  const fromStatus = preferred?.startsWith(`${v4Base}.`) ? Number(preferred.split('.')[3]) : NaN;
  if (Number.isInteger(fromStatus) && fromStatus >= 10 && !used.has(fromStatus)) return fromStatus;
  for (let h = 10; h < 255; h++) if (!used.has(h)) return h;
  throw new Error('pod network of this node is full');
}

function portNumber(p: k8s.IntOrString | undefined, ports: number[]): number {
  if (typeof p === 'number') return p;
  const n = Number(p);
  return Number.isInteger(n) && n > 0 ? n : (ports[0] ?? 80);
}

function describePod(pod: k8s.V1Pod): Pick<PodRuntime, 'ports' | 'probe'> {
  const containers = pod.spec?.containers ?? [];
  const ports = [...new Set(containers.flatMap((c) => (c.ports ?? []).filter((p) => (p.protocol ?? 'TCP') === 'TCP').map((p) => p.containerPort)))];
  if (!ports.includes(80)) ports.push(80);
  const rp = containers.find((c) => c.readinessProbe)?.readinessProbe;
  let probe: PodRuntime['probe'] = { kind: 'tcp', port: ports[0] ?? 80 };
  if (rp?.httpGet) probe = { kind: 'http', port: portNumber(rp.httpGet.port, ports), path: rp.httpGet.path ?? '/' };
  else if (rp?.tcpSocket) probe = { kind: 'tcp', port: portNumber(rp.tcpSocket.port, ports) };
  else if (rp) probe = { kind: 'none' };
  return { ports, probe };
}

async function startPod(pod: k8s.V1Pod): Promise<void> {
  const uid = pod.metadata!.uid!;
  const name = pod.metadata!.name!;
  const namespace = pod.metadata!.namespace!;
  const id = createHash('sha256').update(uid).digest('hex').slice(0, 8);
  const netns = `${cfg.podNsPrefix}${id}`;
  const host = takeHost(pod.status?.podIP);
  const rt: PodRuntime = {
    uid, name, namespace, netns, host, ipv4: `${v4Base}.${host}`, ipv6: `${v6Base}::${host.toString(16)}`,
    ...describePod(pod), ready: undefined, startedAt: new Date(), lastPod: pod,
  };
  pods.set(uid, rt);
  const veth = `vp${id}`;
  await run(['ip', 'netns', 'delete', netns], { allowFail: true });
  await run(['ip', 'link', 'delete', veth], { allowFail: true });
  await run(['ip', 'netns', 'add', netns]);
  await run(['sysctl', '-q', '-w', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0'], { netns });
  await run(['ip', 'link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
  await run(['ip', '-batch', '-'], {
    input: [
      `link set ${veth} up`,
      `addr add fe80::1/64 dev ${veth} nodad`,
      // replace, not add: a route left by an earlier pod on this address must not fail this one.
      `route replace ${rt.ipv4}/32 dev ${veth}`,
      `route replace ${rt.ipv6}/128 dev ${veth}`,
    ].join('\n') + '\n',
  });
  await run(['ip', '-n', netns, '-batch', '-'], {
    input: [
      'link set lo up',
      `addr add ${rt.ipv4}/32 dev eth0`,
      `addr add ${rt.ipv6}/128 dev eth0 nodad`,
      'link set eth0 up',
      `route add ${gatewayV4} dev eth0 scope link`,
      `route add default via ${gatewayV4} dev eth0`,
      'route add ::/0 via fe80::1 dev eth0',
    ].join('\n') + '\n',
  });
  const logFile = `${cfg.logDir}/pod-${cfg.node}-${namespace}-${name}.log`;
  const fd = openSync(logFile, 'a');
  try {
    const child = spawn('ip', ['netns', 'exec', netns, process.execPath, cfg.podserver,
      `--lab=${cfg.tag}`, `--pod=${name}`, `--namespace=${namespace}`, `--node=${cfg.node}`, `--ports=${rt.ports.join(',')}`],
    { detached: true, stdio: ['ignore', fd, fd] });
    child.unref();
    if (child.pid !== undefined) rt.pid = child.pid;
  } finally {
    closeSync(fd);
  }
  log('pod started', { pod: `${namespace}/${name}`, ip: rt.ipv4, ipv6: rt.ipv6, netns });
  await reportStatus(rt, false);
}

async function stopPod(uid: string): Promise<void> {
  const rt = pods.get(uid);
  if (!rt) return;
  if (rt.pid) {
    try { process.kill(rt.pid, 'SIGKILL'); } catch { /* already gone */ }
  }
  await run(['ip', 'netns', 'delete', rt.netns], { allowFail: true });
  pods.delete(uid);
  log('pod stopped', { pod: `${rt.namespace}/${rt.name}` });
}

async function reportStatus(rt: PodRuntime, ready: boolean): Promise<void> {
  const now = new Date();
  const cond = (type: string, ok: boolean): k8s.V1PodCondition => ({ type, status: ok ? 'True' : 'False', lastTransitionTime: now });
  const containers = rt.lastPod.spec?.containers ?? [];
  const status: k8s.V1PodStatus = {
    phase: 'Running',
    hostIP: cfg.ipv4,
    hostIPs: [{ ip: cfg.ipv4 }, { ip: cfg.ipv6 }],
    podIP: rt.ipv4,
    podIPs: [{ ip: rt.ipv4 }, { ip: rt.ipv6 }],
    startTime: rt.startedAt,
    conditions: [cond('PodReadyToStartContainers', true), cond('Initialized', true), cond('PodScheduled', true), cond('ContainersReady', ready), cond('Ready', ready)],
    containerStatuses: containers.map((c) => ({
      name: c.name, image: c.image ?? 'lab', imageID: 'portico-lab://podserver', containerID: `portico-lab://${rt.uid}-${c.name}`,
      ready, restartCount: 0, started: true, state: { running: { startedAt: rt.startedAt } },
    })),
  };
  await core.patchNamespacedPodStatus({ name: rt.name, namespace: rt.namespace, body: { status } }, mergePatch);
  rt.ready = ready;
}

function probeOnce(rt: PodRuntime): Promise<boolean> {
  const p = rt.probe;
  if (p.kind === 'none') return Promise.resolve(rt.pid !== undefined);
  if (p.kind === 'tcp') {
    return new Promise((resolve) => {
      const s = net.connect({ host: rt.ipv4, port: p.port, timeout: 500 });
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
      s.once('timeout', () => { s.destroy(); resolve(false); });
    });
  }
  return new Promise((resolve) => {
    const req = http.get({ host: rt.ipv4, port: p.port, path: p.path, timeout: 500, agent: false }, (res) => {
      res.resume();
      const code = res.statusCode ?? 0;
      resolve(code >= 200 && code < 400);
    });
    req.once('error', () => resolve(false));
    req.once('timeout', () => { req.destroy(); resolve(false); });
  });
}

async function probes(): Promise<void> {
  for (;;) {
    await Promise.all([...pods.values()].map(async (rt) => {
      const ok = await probeOnce(rt);
      // Report when the probe changed, and also when the API server holds
      // something else: kube-controller-manager marks pods not ready when it
      // loses the node, and only the kubelet sets them ready again.
      const inApi = rt.lastPod.status?.conditions?.find((c) => c.type === 'Ready')?.status;
      const apiDisagrees = rt.ready !== undefined && inApi !== undefined && (inApi === 'True') !== ok;
      if (ok !== rt.ready || apiDisagrees) {
        serialize(rt.uid, async () => {
          if (!pods.has(rt.uid)) return;
          await reportStatus(rt, ok);
          log('pod readiness changed', { pod: `${rt.namespace}/${rt.name}`, ready: ok });
        });
      }
    }));
    await sleep(300);
  }
}

function handlePod(pod: k8s.V1Pod, gone: boolean): void {
  const uid = pod.metadata?.uid;
  if (!uid) return;
  serialize(uid, async () => {
    const rt = pods.get(uid);
    if (gone) {
      await stopPod(uid);
      return;
    }
    if (pod.metadata?.deletionTimestamp) {
      await stopPod(uid);
      await core.deleteNamespacedPod({ name: pod.metadata.name!, namespace: pod.metadata.namespace!, gracePeriodSeconds: 0, body: { gracePeriodSeconds: 0, preconditions: { uid } } })
        .catch((err: unknown) => { if ((err as { code?: number }).code !== 404 && (err as { code?: number }).code !== 409) throw err; });
      return;
    }
    if (pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') return;
    if (!rt) await startPod(pod);
    else rt.lastPod = pod;
  });
}

async function watchPods(): Promise<void> {
  const fieldSelector = `spec.nodeName=${cfg.node}`;
  const watch = new k8s.Watch(kc);
  for (;;) {
    try {
      const list = await core.listPodForAllNamespaces({ fieldSelector });
      const seen = new Set<string>();
      for (const p of list.items) { seen.add(p.metadata!.uid!); handlePod(p, false); }
      for (const [uid, rt] of pods) if (!seen.has(uid)) handlePod(rt.lastPod, true);
      await new Promise<void>((resolve) => {
        void watch.watch('/api/v1/pods', { fieldSelector, resourceVersion: list.metadata?.resourceVersion, allowWatchBookmarks: true },
          (type: string, obj: k8s.V1Pod) => {
            if (type === 'ADDED' || type === 'MODIFIED') handlePod(obj, false);
            else if (type === 'DELETED') handlePod(obj, true);
          },
          (err: unknown) => { if (err) log('pod watch ended', { error: err instanceof Error ? err.message : JSON.stringify(err) }); resolve(); })
          .catch((err: unknown) => { log('pod watch failed', { error: String(err) }); resolve(); });
      });
    } catch (err) {
      log('pod list failed', { error: String(err) });
    }
    await sleep(300);
  }
}

process.on('SIGTERM', () => {
  for (const rt of pods.values()) if (rt.pid) { try { process.kill(rt.pid, 'SIGKILL'); } catch { /* gone */ } }
  process.exit(0);
});

// Pods of an earlier kubelet on this node (killed with the node) left their
// namespaces, veths and routes behind; a pod deleted from the API meanwhile
// would never be stopped, and its route would hold its address. Start clean:
// the pods still bound here are started again from the API.
for (const ns of listNetns()) if (ns.startsWith(cfg.podNsPrefix)) destroyNetns(ns);

// The node's own pod gateway: pods route everything through it, and the kernel
// answers ARP for it on every pod veth.
await run(['ip', 'addr', 'replace', `${gatewayV4}/32`, 'dev', 'lo']);
await registerNode();
void heartbeats();
void probes();
await watchPods();
