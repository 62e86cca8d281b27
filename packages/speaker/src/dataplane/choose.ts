// Which dataplane the speaker runs when none is asked for (--dataplane=auto):
// what the node shows (kube-proxy's own rules or endpoints, ip_vs) goes into
// a pure decision with a reason for the log.
//
// kube-proxy, in each of its modes, forwards the IPs of status.loadBalancer
// of every LoadBalancer Service itself (nftables: the service-ips map of
// table ip kube-proxy; iptables: a KUBE-SERVICES rule; ipvs: a virtual
// service and the address on kube-ipvs0). A second forwarder next to it
// (Portico's IPVS or nftables dataplane) would race it for the same packets,
// so `auto` runs none where kube-proxy is seen: Portico then only announces
// (ARP/NDP, BGP) and kube-proxy forwards. Where kube-proxy is not seen, the
// speaker forwards: IPVS where the kernel has (or loads) ip_vs, else nftables.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import http from 'node:http';
import { openIpvsClient } from '../netlink/socket.ts';

export const DATAPLANE_MODES = ['ipvs', 'nftables', 'none'] as const;
export type DataplaneMode = (typeof DATAPLANE_MODES)[number];

export type KubeProxyMode = 'nftables' | 'iptables' | 'ipvs' | 'unknown';

/** kube-proxy as the node shows it, with what gave it away (for the log). */
export interface KubeProxySeen {
  mode: KubeProxyMode;
  evidence: string;
}

/** What the decision needs to know about the node. */
export interface NodeFacts {
  /** kube-proxy on this node, if seen. */
  kubeProxy: KubeProxySeen | undefined;
  /** ip_vs: there already, loaded just now by the kernel on request, or missing (with the kernel's answer); undefined: not looked at. */
  ipvs?: { state: 'present' } | { state: 'loaded' } | { state: 'missing'; detail: string };
}

export interface DataplaneChoice {
  mode: DataplaneMode;
  why: string;
  kubeProxy?: KubeProxyMode;
}

/** The decision: pure, one line of reason per outcome. */
export function decideDataplane(asked: DataplaneMode | 'auto', facts: NodeFacts): DataplaneChoice {
  const kp = facts.kubeProxy ? { kubeProxy: facts.kubeProxy.mode } : {};
  if (asked !== 'auto') {
    const twice = facts.kubeProxy && asked !== 'none' ? `; kube-proxy (${facts.kubeProxy.mode} mode) also forwards LoadBalancer IPs here (${facts.kubeProxy.evidence})` : '';
    return { mode: asked, why: `--dataplane=${asked}${twice}`, ...kp };
  }
  if (facts.kubeProxy) {
    return { mode: 'none', why: `kube-proxy (${facts.kubeProxy.mode} mode) forwards LoadBalancer IPs on this node (${facts.kubeProxy.evidence}); Portico only announces them`, ...kp };
  }
  switch (facts.ipvs?.state ?? 'unknown') {
    case 'present': return { mode: 'ipvs', why: 'no kube-proxy seen; the kernel has ip_vs' };
    case 'loaded': return { mode: 'ipvs', why: 'no kube-proxy seen; the kernel loaded ip_vs on request' };
    case 'missing': return { mode: 'nftables', why: `no kube-proxy seen; the kernel has no ip_vs (${facts.ipvs && 'detail' in facts.ipvs ? facts.ipvs.detail : ''})` };
    default: return { mode: 'nftables', why: 'no kube-proxy seen; ip_vs not looked at' };
  }
}

/** What the node probe reads; each part injectable for tests. */
export interface NodeProbe {
  /** `family name` of every nftables table, or undefined when nft cannot run. */
  nftTables(): Promise<string[] | undefined>;
  /** Whether an nftables chain exists (iptables-nft keeps KUBE-SERVICES in table ip nat). */
  nftChainExists(family: string, table: string, chain: string): Promise<boolean>;
  /** Whether a network interface exists (kube-proxy's ipvs mode keeps kube-ipvs0). */
  linkExists(name: string): boolean;
  /** The body of GET http://127.0.0.1:port/path, or undefined when nothing answers in time. */
  httpGet(port: number, path: string): Promise<string | undefined>;
  /** Whether ip_vs is loaded (or built in). */
  hasIpvs(): boolean;
  /**
   * Asks the kernel for the IPVS generic netlink family: a kernel with ip_vs
   * as a module loads it on this request (its alias names the family), with
   * no modprobe in the image and no CAP_SYS_MODULE. The error text, or undefined.
   */
  requestIpvs(): Promise<string | undefined>;
}

/** kube-proxy's metrics port (metricsBindAddress, /proxyMode) and health port (healthzBindAddress), their defaults. */
export const KUBE_PROXY_METRICS_PORT = 10249;
export const KUBE_PROXY_HEALTH_PORT = 10256;

/** Looks for kube-proxy on this node: its nftables table, its iptables chain, its ipvs link, then its own endpoints. */
export async function findKubeProxy(p: NodeProbe): Promise<KubeProxySeen | undefined> {
  const tables = await p.nftTables();
  if (tables) {
    const kp = tables.filter((t) => / kube-proxy$/.test(t));
    if (kp.length) return { mode: 'nftables', evidence: kp.map((t) => `table ${t}`).join(', ') };
    for (const family of ['ip', 'ip6']) {
      if (tables.includes(`${family} nat`) && await p.nftChainExists(family, 'nat', 'KUBE-SERVICES')) {
        return { mode: 'iptables', evidence: `chain KUBE-SERVICES in table ${family} nat` };
      }
    }
  }
  if (p.linkExists('kube-ipvs0')) return { mode: 'ipvs', evidence: 'link kube-ipvs0' };
  const mode = (await p.httpGet(KUBE_PROXY_METRICS_PORT, '/proxyMode'))?.trim();
  if (mode !== undefined) {
    const known = mode === 'nftables' || mode === 'iptables' || mode === 'ipvs' ? mode : 'unknown';
    return { mode: known, evidence: `127.0.0.1:${KUBE_PROXY_METRICS_PORT}/proxyMode says ${JSON.stringify(mode.slice(0, 40))}` };
  }
  if (await p.httpGet(KUBE_PROXY_HEALTH_PORT, '/healthz') !== undefined) {
    return { mode: 'unknown', evidence: `kube-proxy's health port 127.0.0.1:${KUBE_PROXY_HEALTH_PORT} answers` };
  }
  return undefined;
}

/** The facts for `asked`: kube-proxy always (it is logged even when a mode was asked for), ip_vs only when auto may pick it. */
export async function nodeFacts(asked: DataplaneMode | 'auto', p: NodeProbe): Promise<NodeFacts> {
  const kubeProxy = await findKubeProxy(p);
  if (asked !== 'auto' || kubeProxy) return { kubeProxy };
  if (p.hasIpvs()) return { kubeProxy, ipvs: { state: 'present' } };
  const err = await p.requestIpvs();
  if (p.hasIpvs()) return { kubeProxy, ipvs: { state: 'loaded' } };
  return { kubeProxy, ipvs: { state: 'missing', detail: `asking the kernel for the IPVS family: ${err ?? 'answered, but /proc/net/ip_vs is missing'}` } };
}

function run(cmd: string, args: string[], timeoutMs = 5000): Promise<{ code: number | null; stdout: string } | undefined> {
  return new Promise((resolve) => {
    let p;
    try {
      p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'ignore'], timeout: timeoutMs });
    } catch {
      resolve(undefined);
      return;
    }
    let stdout = '';
    p.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    p.on('error', () => resolve(undefined));
    p.on('close', (code) => resolve({ code, stdout }));
  });
}

/** The node as this process sees it (the speaker runs in the host's network namespace). */
export const hostNodeProbe: NodeProbe = {
  async nftTables() {
    const r = await run('nft', ['list', 'tables']);
    if (!r || r.code !== 0) return undefined;
    return r.stdout.split('\n').map((l) => /^table (\S+) (\S+)/.exec(l.trim())).filter((m) => m !== null).map((m) => `${m[1]} ${m[2]}`);
  },
  async nftChainExists(family, table, chain) {
    const r = await run('nft', ['list', 'chain', family, table, chain]);
    return r?.code === 0;
  },
  linkExists: (name) => existsSync(`/sys/class/net/${name}`),
  httpGet: (port, path) => new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, timeout: 1000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { if (body.length < 4096) body += d; });
      res.on('end', () => resolve(res.statusCode === 200 ? body : undefined));
      res.on('error', () => resolve(undefined));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
  }),
  hasIpvs: () => existsSync('/proc/net/ip_vs'),
  async requestIpvs() {
    try {
      const { client } = await openIpvsClient({ timeoutMs: 10_000 });
      client.close();
      return undefined;
    } catch (err) {
      return err instanceof Error ? err.message : String(err);
    }
  },
};
