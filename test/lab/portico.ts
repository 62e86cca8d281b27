// Installs Portico in the lab the way a user installs it on a real cluster:
// `kubectl apply -f manifests/portico.yaml`, then the controller and the
// speakers run with the command lines, arguments and environment of the
// Deployment and the DaemonSet in that file, each authenticated as its own
// ServiceAccount (a TokenRequest token), so the API server's RBAC and the
// Lease policy apply to them for real.
//
// The lab has no container runtime: processes stand in for the pods. The
// Deployment is scaled to 0 and the DaemonSet gets a node selector no node has,
// so the lab kubelet does not start look-alike pods for them; everything else
// (accounts, roles, policy, CRDs) is exactly what was applied.
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { Lab, LabNode } from './lab.ts';
import { repoRoot } from './lab.ts';
import { startTicks, waitFor } from './sh.ts';

export const PORTICO_NAMESPACE = 'portico-system';
export const PORTICO_MANIFEST = path.join(repoRoot, 'manifests', 'portico.yaml');
/** Where the image puts the repository (Dockerfile WORKDIR); mapped to the checkout here. */
export const IMAGE_ROOT = '/app';
/** Label the DaemonSet is pinned to in the lab, so no lab kubelet runs a look-alike pod. */
export const LAB_PIN = { key: 'portico.dev/lab-runs-processes-instead', value: 'true' } as const;

export interface InstallOptions {
  /** Run a speaker on every node (default true). */
  speakers?: boolean;
  /** Run the controller (default true). */
  controller?: boolean;
  /** Controller replicas (default: the Deployment's, 2). */
  replicas?: 1 | 2;
  /**
   * Flags appended to the controller's command line from the manifest (e.g.
   * shorter lease timings for a test). They may change timings or modes; the
   * identity (the ServiceAccount token) stays the manifest's.
   */
  controllerArgs?: readonly string[];
  /** Flags appended to every speaker's command line (e.g. `--dataplane=nftables`). */
  speakerArgs?: readonly string[];
  /**
   * Where each node's hostPath volumes live (default <lab dir>/portico), so a
   * suite can start from empty speaker state without inheriting another's.
   */
  stateDir?: string;
}

/**
 * Shorter leader-election timings than the controller's defaults (15/10/2 s),
 * appended by tests that kill or restart a leader so the standby takes over
 * within their patience.
 */
export const FAST_LEASE = ['--lease-duration=4', '--renew-deadline=3', '--retry-period=0.5'] as const;

/** The lab.startOnNodes name of the speakers installPortico runs (process keys `portico-speaker-<node>`). */
export const SPEAKER_PROCESS = 'portico-speaker';

/** One controller replica: a process standing in for one pod of the Deployment. */
export interface ControllerReplica {
  /** lab process key (its log is <logDir>/<key>.log). */
  key: string;
  /** The lab namespace it runs in, like a pod's network namespace. */
  host: string;
  /** Its leader-election identity ($(POD_NAME)). */
  identity: string;
  /** The manifest's monitoring endpoint (/metrics, /readyz), reachable from `host`. */
  monitoringUrl: string;
  /** Starts it again with the same command line and token; resolves once its readiness probe passes. */
  start(): Promise<void>;
  /** SIGTERM (it releases the Lease on its way out). */
  stop(): Promise<void>;
  /** SIGKILL: gone without releasing anything, as when a node dies. */
  kill(): Promise<void>;
  /** Whether its process runs (or is about to be restarted after it exited on its own). */
  running(): boolean;
  /** How often it exited on its own and was started again, as a kubelet restarts a container. */
  restarts(): number;
  /** Its process id now (undefined when stopped). */
  pid(): number | undefined;
  /** The body of its /metrics, '' when it does not answer. */
  metrics(): Promise<string>;
}

export interface PorticoInstall {
  /** Process keys of the controller replicas (lab.stopProcess). */
  controllers: string[];
  /** The replicas, to stop, kill and restart one by one. */
  replicas: ControllerReplica[];
  /** Namespaces (lab short names) the controller replicas run in, one per replica, like pods. */
  controllerHosts: string[];
  /** lab.startOnNodes name of the speakers, or undefined when not started. */
  speakers: string | undefined;
  /** Kubeconfigs with each ServiceAccount's token ('segment' address). */
  controllerKubeconfig: string;
  speakerKubeconfig: string;
  /** The argv each component was started with, by process key. */
  argv: Map<string, string[]>;
  /**
   * Refusals by the API server that the components logged since this install
   * started and that the manifests do not explain away: every admission policy
   * refusal, and every RBAC refusal ("cannot <verb> resource") of something the
   * account may not do according to `kubectl auth can-i` now. An RBAC refusal of
   * a right the account holds is the API server's authorizer catching up after a
   * restart (the layer-2 outage test restarts it), not a missing rule.
   */
  refusals(): Promise<string[]>;
  /** Stops the processes (the applied objects stay). */
  stop(): Promise<void>;
}

type Env = { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } };
type Container = { command?: string[]; args?: string[]; env?: Env[]; volumeMounts?: { name: string; mountPath: string }[]; readinessProbe?: { httpGet?: { path: string; port: string | number } }; ports?: { name?: string; containerPort: number }[] };
type Workload = { kind: string; metadata: { name: string }; spec: { replicas?: number; template: { spec: { serviceAccountName: string; containers: Container[]; volumes?: { name: string; hostPath?: { path: string } }[] } } } };

/** The Deployment or DaemonSet of that name in manifests/portico.yaml. */
export function manifestWorkload(kind: 'Deployment' | 'DaemonSet', name: string, file = PORTICO_MANIFEST): Workload {
  for (const d of parseAllDocuments(readFileSync(file, 'utf8'))) {
    const o = d.toJS() as Workload | null;
    if (o?.kind === kind && o.metadata.name === name) return o;
  }
  throw new Error(`${kind}/${name} is not in ${file}`);
}

/** What the pod's environment would hold: literal values and the downward API fields the lab can answer. */
function podEnv(c: Container, fields: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.fieldRef) {
      const v = fields[e.valueFrom.fieldRef.fieldPath];
      if (v === undefined) throw new Error(`the lab cannot provide ${e.valueFrom.fieldRef.fieldPath} for $${e.name}`);
      env[e.name] = v;
    } else throw new Error(`the lab cannot provide $${e.name} (only value and fieldRef are supported)`);
  }
  return env;
}

/**
 * The container's command line as the kubelet would run it ($(VAR) expanded
 * from the container's env), with the image's paths mapped onto this machine:
 * `node` is this Node, /app the checkout, and each volume's mountPath the
 * directory `mounts` gives for it.
 */
export function commandLine(c: Container, env: Record<string, string>, mounts: Record<string, string>): string[] {
  const expand = (s: string): string => s.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, v: string) => env[v] ?? m);
  const map = (s: string): string => {
    let out = s.replaceAll(`${IMAGE_ROOT}/`, `${repoRoot}/`);
    for (const [from, to] of Object.entries(mounts)) out = out.replace(new RegExp(`(^|=)${from.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?=/|$)`), `$1${to}`);
    return out;
  };
  const argv = [...(c.command ?? []), ...(c.args ?? [])].map(expand).map(map);
  if (argv[0] !== 'node') throw new Error(`the container runs ${argv[0]}, expected node`);
  return [process.execPath, ...argv.slice(1)];
}

function containerOf(w: Workload): Container {
  const c = w.spec.template.spec.containers[0];
  if (!c) throw new Error(`${w.kind}/${w.metadata.name} has no container`);
  return c;
}

function probePort(c: Container): { path: string; port: number } | undefined {
  const g = c.readinessProbe?.httpGet;
  if (!g) return undefined;
  const port = typeof g.port === 'number' ? g.port : c.ports?.find((p) => p.name === g.port)?.containerPort;
  return port === undefined ? undefined : { path: g.path, port };
}

/** Applies manifests/portico.yaml and waits until the CRDs are Established. */
export async function applyPorticoManifest(lab: Lab): Promise<void> {
  const r = await lab.kubectlResult(['apply', '-f', PORTICO_MANIFEST]);
  if (r.code !== 0) throw new Error(`kubectl apply -f manifests/portico.yaml failed: ${r.stderr}`);
  await lab.kubectl('wait', '--for=condition=Established', '--timeout=60s', 'crd', '-l', 'app.kubernetes.io/part-of=portico');
}

async function probeOk(lab: Lab, ns: string, url: string): Promise<boolean> {
  const r = await lab.exec(ns, ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '2', url], { allowFail: true });
  return r.stdout.trim() === '200';
}

/** An API server refusal in a component's log; a 403 for a terminating namespace is not a missing right. */
export const REFUSAL = /cannot [a-z]+ resource|ValidatingAdmissionPolicy/i;

/** The request an RBAC refusal names: `<resource> "<name>" is forbidden: User "<user>" cannot <verb> resource "<resource>" in API group "<group>" [in the namespace "<ns>"]`. */
export function refusedRequest(line: string): { user: string; verb: string; resource: string; subresource?: string; name?: string; namespace?: string } | undefined {
  const text = line.replace(/\\+"/g, '"');
  const m = /(?:"([^"]+)" is forbidden: )?User "([^"]+)" cannot ([a-z]+) resource "([^"]+)" in API group "([^"]*)"(?: in the namespace "([^"]+)")?/.exec(text);
  if (!m) return undefined;
  const [, name, user, verb, resource, group, namespace] = m;
  const [res, sub] = resource!.split('/');
  const r: { user: string; verb: string; resource: string; subresource?: string; name?: string; namespace?: string } = { user: user!, verb: verb!, resource: group ? `${res!}.${group}` : res! };
  if (sub) r.subresource = sub;
  if (name) r.name = name;
  if (namespace) r.namespace = namespace;
  return r;
}

export async function installPortico(lab: Lab, opts: InstallOptions = {}): Promise<PorticoInstall> {
  await applyPorticoManifest(lab);
  // Processes stand in for the pods (see the top of this file).
  await lab.kubectl('-n', PORTICO_NAMESPACE, 'scale', 'deployment/portico-controller', '--replicas=0');
  await lab.kubectl('-n', PORTICO_NAMESPACE, 'patch', 'daemonset/portico-speaker', '--type=merge', '-p',
    JSON.stringify({ spec: { template: { spec: { nodeSelector: { [LAB_PIN.key]: LAB_PIN.value } } } } }));

  const deployment = manifestWorkload('Deployment', 'portico-controller');
  const daemonSet = manifestWorkload('DaemonSet', 'portico-speaker');
  const controllerKubeconfig = await lab.serviceAccountKubeconfig(PORTICO_NAMESPACE, deployment.spec.template.spec.serviceAccountName, 'segment');
  const speakerKubeconfig = await lab.serviceAccountKubeconfig(PORTICO_NAMESPACE, daemonSet.spec.template.spec.serviceAccountName, 'segment');
  const argvs = new Map<string, string[]>();
  const controllers: string[] = [];
  const controllerHosts: string[] = [];
  const probes: { ns: string; url: string; what: string }[] = [];

  // Logs are appended to across suites: refusals() reads only what this install's processes wrote.
  const logStart = new Map<string, number>();
  const markLog = (key: string): void => {
    const file = path.join(lab.logDir, `${key}.log`);
    logStart.set(key, existsSync(file) ? statSync(file).size : 0);
  };
  const replicaList: ControllerReplica[] = [];
  const watchdogs: Array<() => void> = [];
  if (opts.controller ?? true) {
    const c = containerOf(deployment);
    const replicas = opts.replicas ?? deployment.spec.replicas ?? 1;
    const p = probePort(c);
    for (let i = 1; i <= replicas; i++) {
      // Each replica in its own namespace on the segment, as a pod would be, so
      // both can listen on the manifest's port.
      const host = `portico-controller-${i}`;
      const h = lab.clients.find((x) => x.name === host) ?? await lab.addClient(host);
      const podName = `portico-controller-lab-${i}`;
      const env = podEnv(c, { 'metadata.name': podName, 'metadata.namespace': PORTICO_NAMESPACE });
      const argv = [...commandLine(c, env, {}), `--kubeconfig=${controllerKubeconfig}`, ...(opts.controllerArgs ?? [])];
      const key = `portico-controller-${i}`;
      await lab.stopProcess(key);
      markLog(key);
      let pid: number | undefined;
      let ticks: number | undefined;
      let restarts = 0;
      let backoffMs = 1000;
      let restartTimer: NodeJS.Timeout | undefined;
      const spawn = (): void => {
        const rec = lab.spawn(key, host, argv, env);
        pid = rec.pid;
        ticks = rec.startTicks;
      };
      spawn();
      // A replica that exits on its own (a leader that lost its Lease exits by design) is started
      // again, as the kubelet restarts a Deployment's container, with a growing wait (1 s, doubling to 10 s).
      watchdogs.push(() => {
        if (pid === undefined || restartTimer !== undefined) return;
        const t = startTicks(pid);
        if (t !== undefined && t === ticks) return;
        process.stderr.write(`lab: controller replica ${i} exited on its own; starting it again in ${backoffMs} ms, as the kubelet would\n`);
        restartTimer = setTimeout(() => {
          restartTimer = undefined;
          if (pid === undefined) return; // stopped meanwhile
          restarts++;
          spawn();
        }, backoffMs);
        backoffMs = Math.min(backoffMs * 2, 10_000);
      });
      const halt = (): void => { clearTimeout(restartTimer); restartTimer = undefined; pid = undefined; };
      argvs.set(key, argv);
      controllers.push(key);
      controllerHosts.push(host);
      const port = c.ports?.find((x) => x.name === 'monitoring')?.containerPort ?? p?.port;
      const monitoringUrl = port === undefined ? '' : `http://${h.ipv4}:${port}`;
      const ready = p ? `http://${h.ipv4}:${p.port}${p.path}` : undefined;
      if (ready) probes.push({ ns: host, url: ready, what: `controller replica ${i} ready` });
      replicaList.push({
        key, host, identity: podName, monitoringUrl,
        async start() {
          if (pid !== undefined) return;
          spawn();
          if (ready) await waitFor(`controller replica ${i} ready`, () => probeOk(lab, host, ready), 60_000, 250);
        },
        async stop() {
          if (pid === undefined) return;
          halt();
          await lab.stopProcess(key);
        },
        async kill() {
          if (pid === undefined) return;
          const victim = pid;
          halt();
          try { process.kill(victim, 'SIGKILL'); } catch { /* already gone */ }
          await lab.stopProcess(key);
        },
        running: () => pid !== undefined,
        restarts: () => restarts,
        pid: () => pid,
        async metrics() {
          if (!monitoringUrl) return '';
          const r = await lab.exec(host, ['curl', '-sS', '--max-time', '2', `${monitoringUrl}/metrics`], { allowFail: true });
          return r.code === 0 ? r.stdout : '';
        },
      });
    }
  }

  let speakers: string | undefined;
  if (opts.speakers ?? true) {
    const c = containerOf(daemonSet);
    const volumes = daemonSet.spec.template.spec.volumes ?? [];
    const mountsFor = (n: LabNode): Record<string, string> => {
      const m: Record<string, string> = {};
      for (const vm of c.volumeMounts ?? []) {
        if (!volumes.find((v) => v.name === vm.name)?.hostPath) continue;
        // A hostPath is per node: every lab node gets its own directory.
        const dir = path.join(opts.stateDir ?? path.join(lab.dir, 'portico'), n.name, vm.name);
        mkdirSync(dir, { recursive: true });
        m[vm.mountPath] = dir;
      }
      return m;
    };
    const envFor = (n: LabNode): Record<string, string> => podEnv(c, { 'spec.nodeName': n.name, 'metadata.name': `portico-speaker-${n.name}`, 'metadata.namespace': PORTICO_NAMESPACE, 'status.hostIP': n.ipv4 });
    const argvFor = (n: LabNode): string[] => [...commandLine(c, envFor(n), mountsFor(n)), `--kubeconfig=${speakerKubeconfig}`, ...(opts.speakerArgs ?? [])];
    speakers = SPEAKER_PROCESS;
    await lab.stopOnNodes(speakers);
    for (const n of lab.nodes) markLog(`${speakers}-${n.name}`);
    lab.startOnNodes({ name: speakers, argv: argvFor, env: envFor });
    for (const n of lab.nodes) {
      argvs.set(`${speakers}-${n.name}`, argvFor(n));
      const p = probePort(c);
      if (p) probes.push({ ns: n.name, url: `http://${n.ipv4}:${p.port}${p.path}`, what: `speaker on ${n.name} ready` });
    }
  }

  // The readiness probes of the manifests, asked where the kubelet would ask them.
  await Promise.all(probes.map((p) => waitFor(p.what, () => probeOk(lab, p.ns, p.url), 60_000, 250)));

  const stopSpeakers = speakers;
  const watchdog = setInterval(() => { for (const w of watchdogs) w(); }, 500);
  watchdog.unref();
  lab.onStop(async () => { clearInterval(watchdog); });
  return {
    controllers, replicas: replicaList, controllerHosts, speakers, controllerKubeconfig, speakerKubeconfig, argv: argvs,
    async refusals() {
      const out: string[] = [];
      for (const [key, from] of logStart) {
        const file = path.join(lab.logDir, `${key}.log`);
        if (!existsSync(file)) continue;
        const text = readFileSync(file).subarray(from).toString('utf8');
        for (const line of text.split('\n')) {
          if (!REFUSAL.test(line)) continue;
          const req = refusedRequest(line);
          if (req) {
            const target = req.name ? `${req.resource}/${req.name}` : req.resource;
            const r = await lab.kubectlResult(['auth', 'can-i', req.verb, target, `--as=${req.user}`,
              ...(req.subresource ? [`--subresource=${req.subresource}`] : []), ...(req.namespace ? ['-n', req.namespace] : [])]);
            if (r.stdout.trim() === 'yes') continue;
          }
          out.push(`${key}: ${line.slice(0, 400)}`);
        }
      }
      return out;
    },
    async stop() {
      clearInterval(watchdog);
      for (const r of replicaList) await r.stop();
      if (stopSpeakers) await lab.stopOnNodes(stopSpeakers);
    },
  };
}
