// `npm run lab`: brings up the lab (control plane, 3 nodes, a client), deploys
// a web app behind a LoadBalancer Service, shows what happened and how to use
// the lab, and leaves it running. `npm run lab -- down` removes it;
// `npm run lab -- status` tells whether one is running.
import * as k8s from '@kubernetes/client-node';
import { Lab, waitFor } from './lab.ts';
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
  const svc = await lab.kc.makeApiClient(k8s.CoreV1Api).readNamespacedService({ name: 'web', namespace: 'default' });
  const ingress = svc.status?.loadBalancer?.ingress?.map((i) => i.ip).filter(Boolean) ?? [];
  say(ingress.length
    ? `  [${secs()}] Service web has external IP ${ingress.join(', ')}`
    : `  [${secs()}] Service web: external IP pending (Portico's controller is not running in the lab yet)`);
  const client = lab.clients[0]!;
  say(`
The lab is up and stays running.
  kubeconfig:   export KUBECONFIG=${lab.kubeconfig}
  kubectl:      ${lab.describe().kubectl}
  try:          ${lab.describe().kubectl} --kubeconfig=${lab.kubeconfig} get nodes,pods,svc,endpointslices -o wide
  client:       ip netns exec ${client.ns} curl http://${first}/     (client ${client.ipv4} / ${client.ipv6})
  a node:       ip netns exec ${lab.nodes[0]!.ns} ip addr
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
