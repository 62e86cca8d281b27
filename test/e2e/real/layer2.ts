// What the real-node tests share about a Portico install: a web Deployment
// behind a layer-2 LoadBalancer Service, reached from the client; who answers
// ARP/NDP for a VIP (by capture); and what an uninstall must leave on a node
// (nothing: no portico0, no nftables table named portico in any family).
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { type Lab, repoRoot, waitFor, webDeployment } from '../../lab/index.ts';

export interface WebAnswer { pod: string; node: string; client: string }

export interface LayerTwoService { v4: string; v6: string | undefined; owner: string }

/**
 * The example pool and L2Advertisement, a web Deployment of `replicas` and a
 * LoadBalancer Service `name` in front of it (dual-stack when asked); resolves
 * with its addresses and the node the speakers elected, once assigned.
 */
export async function exposeWeb(lab: Lab, name: string, opts: { replicas?: number; dualStack?: boolean } = {}): Promise<LayerTwoService> {
  await lab.kubectl('apply', '-f', path.join(repoRoot, 'manifests', 'examples', 'layer2.yaml'));
  await lab.exec('client', ['ip', 'route', 'replace', '203.0.113.0/24', 'dev', 'eth0']);
  await lab.kubectlResult(['apply', '-f', '-'], webDeployment(name, opts.replicas ?? 3));
  await lab.kubectlResult(['apply', '-f', '-'], `apiVersion: v1
kind: Service
metadata: {name: ${name}}
spec:
  type: LoadBalancer
  ipFamilyPolicy: ${opts.dualStack ? 'RequireDualStack' : 'SingleStack'}
  selector: {app: ${name}}
  ports: [{port: 80, targetPort: 80}]
`);
  const core = lab.kc.makeApiClient(k8s.CoreV1Api);
  return waitFor(`external IPs and an owner for ${name}`, async () => {
    const svc = await core.readNamespacedService({ name, namespace: 'default' });
    const ips = (svc.status?.loadBalancer?.ingress ?? []).map((i) => i.ip ?? '');
    const owner = svc.metadata?.annotations?.['portico.dev/layer2-node'];
    const v4 = ips.find((i) => i.includes('.'));
    const v6 = ips.find((i) => i.includes(':'));
    return v4 && (v6 || !opts.dualStack) && owner ? { v4, v6, owner } : undefined;
  }, 60_000, 250);
}

/** The first good answer from `url` at the client (curl, a new connection each try). */
export function reach(lab: Lab, url: string, timeoutMs = 30_000): Promise<WebAnswer> {
  return waitFor(`an answer from ${url}`, async () => {
    const r = await lab.exec('client', ['curl', '-sS', '--max-time', '2', '-g', url], { allowFail: true });
    return r.code === 0 ? JSON.parse(r.stdout) as WebAnswer : undefined;
  }, timeoutMs, 250);
}

/** Who answered ARP (IPv4) or Neighbor Advertisements (IPv6) for `vip`, by source MAC, in a capture on the client. */
export async function answerers(lab: Lab, vip: string, trigger: () => Promise<unknown>): Promise<Set<string>> {
  const v6 = vip.includes(':');
  const filter = v6 ? 'icmp6 and ip6[40] == 136' : 'arp';
  const capture = lab.exec('client', ['timeout', '4', 'tcpdump', '-i', 'eth0', '-n', '-e', '-l', '-Q', 'in', filter], { allowFail: true, timeoutMs: 10_000 });
  await new Promise((r) => setTimeout(r, 700)); // tcpdump needs its socket open before the trigger
  await lab.exec('client', ['ip', 'neigh', 'flush', 'to', vip], { allowFail: true });
  await trigger();
  const out = (await capture).stdout;
  const macs = new Set<string>();
  for (const line of out.split('\n')) {
    const about = v6 ? line.includes(`tgt is ${vip}`) : line.includes(`Reply ${vip} is-at`);
    if (about) macs.add(line.split(' ')[1] ?? '?');
  }
  return macs;
}

export async function nodeMac(lab: Lab, node: string): Promise<string> {
  return (await lab.exec(node, ['cat', '/sys/class/net/eth0/address'])).stdout.trim();
}

/** What Portico left on a node: the link portico0 and nftables tables named portico (any family: inet, arp, ip, ip6). */
export async function porticoLeftovers(lab: Lab, node: string): Promise<string[]> {
  const links = (await lab.exec(node, ['ip', '-o', 'link', 'show'])).stdout;
  const tables = (await lab.exec(node, ['nft', 'list', 'tables'])).stdout;
  return [...links.matchAll(/\bportico0\b/g), ...tables.matchAll(/\btable \w+ portico\b/g)].map((m) => m[0]);
}

/** Waits until no node holds anything of Portico's (the speakers remove it as they stop on an uninstall). */
export async function waitNodesClean(lab: Lab, timeoutMs = 30_000): Promise<void> {
  for (const n of lab.nodes) {
    await waitFor(`${n.name} clean`, async () => {
      const left = await porticoLeftovers(lab, n.name);
      if (left.length) throw new Error(`still there: ${left.join(', ')}`);
      return true;
    }, timeoutMs, 250);
    // IPVS: this kernel has no ip_vs (LAB.md); test/vm proves the IPVS clean-up.
  }
}
