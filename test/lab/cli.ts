// `npm run lab`: brings up the lab (control plane, 3 nodes, a client), deploys
// a web app behind a LoadBalancer Service, shows what happened and how to use
// the lab, and leaves it running. `npm run lab -- down` removes it;
// `npm run lab -- status` tells whether one is running.
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { Lab, repoRoot, waitFor } from './lab.ts';
import { LabPreflightError } from './preflight.ts';
import { LabBusyError, clearPrefix, readState, stateInUse } from './state.ts';

const prefix = process.env.PORTICO_LAB_PREFIX ?? 'plab';
const cmd = process.argv[2] ?? 'up';
const say = (msg: string): void => { process.stdout.write(`${msg}\n`); };

async function up(): Promise<void> {
  const t0 = Date.now();
  const secs = (): string => `${((Date.now() - t0) / 1000).toFixed(1)}s`;
  say(`starting the Portico lab '${prefix}' (control plane + 3 nodes + a client)...`);
  const lab = await Lab.start({ prefix, keep: true, nodes: 3, clients: ['client'], log: (m) => say(`  [${secs()}] ${m}`) });
  say(`  [${secs()}] installing Portico's CRDs and an address pool (203.0.113.10-40, 2001:db8:ff::/120); starting the controller`);
  await lab.kubectl('create', 'namespace', 'portico-system');
  await lab.kubectl('apply', '-f', path.join(repoRoot, 'manifests', 'crds'));
  await lab.kubectl('wait', '--for=condition=Established', '--timeout=30s', 'crd', '--all');
  await lab.kubectl('apply', '-f', path.join(repoRoot, 'test', 'lab', 'demo', 'pool.yaml'));
  // The controller runs where a Deployment's pod would reach the API server: on the segment.
  lab.spawn('portico-controller', 'cp', [process.execPath, path.join(repoRoot, 'packages', 'controller', 'src', 'main.ts'),
    '--kubeconfig', lab.segmentKubeconfig, '--identity', 'lab-controller', '--listen', '127.0.0.1:7472']);
  say(`  [${secs()}] creating Deployment web (3 replicas) and Service web (type LoadBalancer, port 80)`);
  await lab.kubectl('create', 'deployment', 'web', '--image=portico.dev/lab-web', '--replicas=3', '--port=80');
  await lab.kubectl('expose', 'deployment', 'web', '--type=LoadBalancer', '--port=80');
  const discovery = lab.kc.makeApiClient(k8s.DiscoveryV1Api);
  const ready = await waitFor('3 ready endpoints', async () => {
    const slices = await discovery.listNamespacedEndpointSlice({ namespace: 'default', labelSelector: 'kubernetes.io/service-name=web' });
    const eps = slices.items.filter((s) => s.addressType === 'IPv4').flatMap((s) => s.endpoints ?? []).filter((e) => e.conditions?.ready);
    return eps.length === 3 ? eps : undefined;
  }, 60_000, 200);
  say(`  [${secs()}] 3 pods ready: ${ready.map((e) => `${e.targetRef?.name} ${e.addresses[0]} on ${e.nodeName}`).join(', ')}`);
  const first = ready[0]!.addresses[0]!;
  const answer = await lab.curl('client', `http://${first}/`);
  say(`  [${secs()}] the client reaches a pod directly: ${answer.trim()}`);
  const core = lab.kc.makeApiClient(k8s.CoreV1Api);
  const ingress = await waitFor('an external IP for Service web', async () => {
    const svc = await core.readNamespacedService({ name: 'web', namespace: 'default' });
    const ips = svc.status?.loadBalancer?.ingress?.map((i) => i.ip).filter(Boolean) ?? [];
    return ips.length ? { ips, pool: svc.metadata?.annotations?.['portico.dev/ip-allocated-from-pool'] } : undefined;
  }, 30_000, 200).catch(() => undefined);
  say(ingress
    ? `  [${secs()}] Portico's controller gave Service web ${ingress.ips.join(', ')} from pool ${ingress.pool ?? '?'} (announcing it needs the speaker, which is not in the lab yet)`
    : `  [${secs()}] Service web: external IP still pending; see ${path.join(lab.logDir, 'portico-controller.log')}`);
  const client = lab.clients[0]!;
  say(`
The lab is up and stays running.
  kubeconfig:   export KUBECONFIG=${lab.kubeconfig}
  kubectl:      ${lab.describe().kubectl}
  try:          ${lab.describe().kubectl} --kubeconfig=${lab.kubeconfig} get nodes,pods,svc,endpointslices -o wide
  client:       ip netns exec ${client.ns} curl http://${first}/     (client ${client.ipv4} / ${client.ipv6})
  a node:       ip netns exec ${lab.nodes[0]!.ns} ip addr
  Portico:      kubectl get ipaddresspools -n portico-system; kubectl describe svc web
  logs:         ${lab.logDir}
  stop it:      npm run lab -- down`);
}

function down(): void {
  const state = readState(prefix);
  const r = clearPrefix(prefix);
  say(state ? `lab '${prefix}' (run ${state.runId}) removed: ${r.namespaces} namespaces, ${r.processes} processes` : `no lab '${prefix}' was running (${r.namespaces} stray namespaces removed)`);
}

function status(): void {
  const state = readState(prefix);
  if (!state) { say(`no lab '${prefix}' is running`); return; }
  say(`lab '${prefix}' run ${state.runId} started ${state.startedAt}: ${stateInUse(state) ? 'running' : 'not running (leftovers; `npm run lab -- down` removes them)'}`);
  say(`  kubeconfig: ${state.kubeconfig}`);
}

try {
  switch (cmd) {
    case 'up': await up(); break;
    case 'down': down(); break;
    case 'status': status(); break;
    default:
      process.stderr.write(`usage: npm run lab [-- up|down|status]\n`);
      process.exitCode = 2;
  }
} catch (err) {
  if (err instanceof LabPreflightError || err instanceof LabBusyError) {
    process.stderr.write(`lab: ${err.message}\n`);
    process.exitCode = 1;
  } else {
    process.stderr.write(`lab: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.stderr.write(`lab: the lab was removed again; logs stay in /run/portico-lab/${prefix} until the next start\n`);
    process.exitCode = 1;
  }
}
