// `npm run lab`: brings up the lab (control plane, 3 nodes, a client), deploys
// a web app behind a LoadBalancer Service, shows what happened and how to use
// the lab, and leaves it running. `npm run lab -- down` removes it;
// `npm run lab -- status` tells whether one is running. `npm run lab -- --real-nodes`
// runs real nodes (containerd, runc, kubelet, kube-proxy) and installs Portico's
// image with `kubectl apply -f manifests/portico.yaml`.
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { Lab, repoRoot, waitFor, type LabOptions } from './lab.ts';
import { installPortico } from './portico.ts';
import { installPorticoReal } from './realnode-portico.ts';
import { webDeployment } from './realnode-images.ts';
import { LabPreflightError } from './preflight.ts';
import { LabBusyError, clearPrefix, readState, stateInUse } from './state.ts';

const explicitPrefix = process.env.PORTICO_LAB_PREFIX;
let prefix = explicitPrefix ?? 'plab';
const args = process.argv.slice(2);
const realNodes = args.includes('--real-nodes');
const kubeProxyArg = args.find((a) => a.startsWith('--kube-proxy='))?.slice('--kube-proxy='.length);
const cmd = args.find((a) => !a.startsWith('--')) ?? 'up';
const say = (msg: string): void => { process.stdout.write(`${msg}\n`); };

async function up(): Promise<void> {
  const t0 = Date.now();
  const secs = (): string => `${((Date.now() - t0) / 1000).toFixed(1)}s`;
  const step = (msg: string): void => say(`  [${secs()}] ${msg}`);
  const kubeProxy = kubeProxyArg === 'iptables' || kubeProxyArg === 'none' ? kubeProxyArg : 'nftables';
  say(`starting the Portico lab '${prefix}' (control plane + 3 ${realNodes ? `real nodes: containerd, runc, kubelet${kubeProxy === 'none' ? '' : `, kube-proxy (${kubeProxy})`}` : 'nodes'} + a client)...`);
  const lab = await startOnFreePrefix(step, { realNodes, kubeProxy });

  if (realNodes) {
    step('installing Portico as a user does: kubectl apply -f manifests/portico.yaml, its image built here and loaded into each node\'s containerd');
    const inst = await installPorticoReal(lab, { log: step });
    step(`Portico runs as pods from ${inst.image.name}: ${(await lab.kubectl('get', 'pods', '-n', 'portico-system', '-o', 'custom-columns=POD:.metadata.name,NODE:.spec.nodeName,READY:.status.containerStatuses[0].ready', '--no-headers')).trim().split('\n').map((l) => l.trim().replace(/\s+/g, ' ')).join('; ')}`);
  } else {
    step('installing Portico: kubectl apply -f manifests/portico.yaml (CRDs, RBAC, controller, speakers); each component runs with its own ServiceAccount');
    await installPortico(lab);
  }
  step('applying manifests/examples/layer2.yaml: pool 203.0.113.10-40 + 2001:db8:1::ff:0/120, announced over ARP/NDP');
  await lab.kubectl('apply', '-f', path.join(repoRoot, 'manifests', 'examples', 'layer2.yaml'));
  // The pool's IPv4 range is not the segment's subnet: the client's LAN treats it as on-link (a connected
  // secondary subnet), so the client ARPs for the VIPs. The IPv6 range lies inside the segment's /64.
  await lab.exec('client', ['ip', 'route', 'replace', '203.0.113.0/24', 'dev', 'eth0']);
  step('the client has 203.0.113.0/24 on-link, as a LAN that carries the pool would');

  step('creating Deployment web (3 replicas) and Service web (type LoadBalancer, port 80)');
  if (realNodes) await lab.kubectlResult(['apply', '-f', '-'], webDeployment('web', 3));
  else await lab.kubectl('create', 'deployment', 'web', '--image=portico.dev/lab-web', '--replicas=3', '--port=80');
  await lab.kubectl('expose', 'deployment', 'web', '--type=LoadBalancer', '--port=80');
  const ready = await waitFor('3 ready endpoints', async () => {
    const eps = (await lab.endpoints('web')).filter((e) => e.family === 'IPv4' && e.ready);
    return eps.length === 3 ? eps : undefined;
  }, 60_000, 200);
  step(`3 pods ready: ${ready.map((e) => `${e.pod} ${e.ip} on ${e.node}`).join(', ')}`);

  const core = lab.kc.makeApiClient(k8s.CoreV1Api);
  const got = await waitFor('an external IP and its layer-2 owner for Service web', async () => {
    const svc = await core.readNamespacedService({ name: 'web', namespace: 'default' });
    const ip = svc.status?.loadBalancer?.ingress?.[0]?.ip;
    const a = svc.metadata?.annotations ?? {};
    const owner = a['portico.dev/layer2-node'];
    return ip && owner ? { ip, owner, pool: a['portico.dev/ip-allocated-from-pool'] ?? '?' } : undefined;
  }, 30_000, 200).catch(() => undefined);
  const client = lab.clients[0]!;
  if (!got) {
    step(`Service web has no external IP or no owner yet; see ${lab.logDir}`);
  } else {
    step(`the controller gave Service web ${got.ip} from pool ${got.pool}; ${got.owner} answers for it`);
    const answer = await waitFor('an answer from the VIP', async () => (await lab.exec('client', ['curl', '-sS', '--max-time', '2', `http://${got.ip}/`], { allowFail: true })).stdout.trim() || undefined, 15_000, 250)
      .catch(() => undefined);
    const neigh = (await lab.exec('client', ['ip', 'neigh', 'show', got.ip], { allowFail: true })).stdout.trim();
    const ownerMac = (await lab.exec(got.owner, ['cat', '/sys/class/net/eth0/address'], { allowFail: true })).stdout.trim();
    step(`the client resolved ${got.ip} to ${neigh.split(' ')[4] ?? '?'} (${got.owner}'s eth0 is ${ownerMac})`);
    step(answer ? `curl http://${got.ip}/ from the client: ${answer}` : `the client got no answer from ${got.ip}; see ${lab.logDir}`);
  }
  say(`
The lab is up and stays running.
  kubeconfig:   export KUBECONFIG=${lab.kubeconfig}
  kubectl:      ${lab.describe().kubectl}
  try:          ${lab.describe().kubectl} --kubeconfig=${lab.kubeconfig} get nodes,pods,svc -o wide
                bin/portico status --kubeconfig=${lab.kubeconfig}
  client:       ip netns exec ${client.ns} curl http://${got?.ip ?? '<external-ip>'}/     (client ${client.ipv4} / ${client.ipv6})
  kill a node:  the owner's namespace is ${got ? lab.node(got.owner).ns : '<node>'}; watch another node take the IP over
  logs:         ${lab.logDir}
  stop it:      ${prefix === 'plab' ? '' : `PORTICO_LAB_PREFIX=${prefix} `}npm run lab -- down`);
}

/**
 * Starts the lab under `prefix`; without PORTICO_LAB_PREFIX, a prefix already
 * in use (a lab left running, another checkout's start) moves this one to the
 * next free name, plab2 … plab9, and says how to remove it.
 */
async function startOnFreePrefix(step: (msg: string) => void, opts: Pick<LabOptions, 'realNodes' | 'kubeProxy'>): Promise<Lab> {
  for (let n = 2; ; n++) {
    try {
      return await Lab.start({ prefix, keep: true, nodes: 3, clients: ['client'], log: step, ...opts });
    } catch (err) {
      if (!(err instanceof LabBusyError) || explicitPrefix !== undefined || n > 9) throw err;
      const next = `plab${n}`;
      step(`${err.message.split('. ')[0]}: starting this lab as '${next}' instead (remove it with PORTICO_LAB_PREFIX=${next} npm run lab -- down)`);
      prefix = next;
    }
  }
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
      process.stderr.write(`usage: npm run lab [-- up|down|status] [--real-nodes [--kube-proxy=nftables|iptables|none]]\n`);
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
