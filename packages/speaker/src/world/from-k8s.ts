// Kubernetes objects (plain JSON) -> the speaker's domain values. Pure: the
// watcher feeds it what the informers hold.
import { ANNOTATIONS, LABELS, acceptedExternalIPs, endpointReadiness, formatIP, handlesExternalIPs, isOurService, tryParseIP } from '@portico/shared';
import type { EndpointState, IPFamily, NodeState, ServicePort, ServiceState } from './types.ts';

type Protocol = 'TCP' | 'UDP' | 'SCTP';
const protocol = (p: unknown): Protocol => (p === 'UDP' || p === 'SCTP' ? p : 'TCP');

export interface ServiceObject {
  metadata?: { name?: string; namespace?: string; uid?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: {
    type?: string;
    loadBalancerClass?: string;
    externalTrafficPolicy?: string;
    sessionAffinity?: string;
    sessionAffinityConfig?: { clientIP?: { timeoutSeconds?: number } };
    ports?: { name?: string; protocol?: string; port: number; targetPort?: number | string; nodePort?: number }[];
    externalIPs?: string[];
  };
  status?: { loadBalancer?: { ingress?: { ip?: string; hostname?: string }[] } };
}

export interface EndpointSliceObject {
  metadata?: { name?: string; namespace?: string; labels?: Record<string, string> };
  addressType?: string;
  endpoints?: {
    addresses: string[];
    conditions?: { ready?: boolean; serving?: boolean; terminating?: boolean };
    nodeName?: string;
    targetRef?: { kind?: string; name?: string };
  }[];
  ports?: { name?: string; port?: number; protocol?: string }[];
}

export interface NodeObject {
  metadata?: { name?: string; labels?: Record<string, string> };
  status?: { conditions?: { type: string; status: string }[]; addresses?: { type: string; address: string }[] };
}


/** Why a Service is not part of the World, or 'included'. */
export type ServiceVerdict = 'included' | 'not-load-balancer' | 'other-class' | 'no-ip';

export function serviceVerdict(svc: ServiceObject, loadBalancerClass: string | undefined): ServiceVerdict {
  if (svc.spec?.type !== 'LoadBalancer') {
    // ClusterIP and NodePort Services have no class: the classless Portico speaks for their externalIPs.
    return handlesExternalIPs(svc, loadBalancerClass) && acceptedExternalIPs(svc).length > 0 ? 'included' : 'not-load-balancer';
  }
  if (!isOurService(svc, loadBalancerClass)) return 'other-class';
  if (!svc.status?.loadBalancer?.ingress?.some((i) => i.ip) && acceptedExternalIPs(svc).length === 0) return 'no-ip';
  return 'included';
}

export function endpointsOf(slices: readonly EndpointSliceObject[]): EndpointState[] {
  const out: EndpointState[] = [];
  for (const s of slices) {
    if (s.addressType !== 'IPv4' && s.addressType !== 'IPv6') continue;
    const family: IPFamily = s.addressType;
    const ports: Record<string, { port: number; protocol: Protocol }> = {};
    for (const p of s.ports ?? []) if (p.port !== undefined) ports[p.name ?? ''] = { port: p.port, protocol: protocol(p.protocol) };
    for (const e of s.endpoints ?? []) {
      const ip = e.addresses[0];
      if (!ip) continue;
      const { ready, serving, terminating } = endpointReadiness(e.conditions);
      out.push({
        ip, family, node: e.nodeName, ready, serving, terminating, ports,
        pod: e.targetRef?.kind === 'Pod' ? e.targetRef.name : undefined,
      });
    }
  }
  // Stable order, so equal inputs give equal snapshots.
  return out.sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : 0));
}

/** The Service as the speaker sees it, or undefined when Portico has nothing to announce for it. */
export function serviceState(svc: ServiceObject, slices: readonly EndpointSliceObject[], loadBalancerClass: string | undefined): ServiceState | undefined {
  if (serviceVerdict(svc, loadBalancerClass) !== 'included') return undefined;
  const namespace = svc.metadata?.namespace ?? 'default';
  const name = svc.metadata?.name ?? '';
  const ports: ServicePort[] = (svc.spec?.ports ?? []).map((p) => ({
    name: p.name ?? '', protocol: protocol(p.protocol), port: p.port, targetPort: p.targetPort ?? p.port, nodePort: p.nodePort,
  }));
  const clientIP = svc.spec?.sessionAffinity === 'ClientIP';
  return {
    key: `${namespace}/${name}`,
    namespace,
    name,
    uid: svc.metadata?.uid ?? '',
    labels: svc.metadata?.labels ?? {},
    annotations: svc.metadata?.annotations ?? {},
    ips: ipsOf(svc),
    pool: svc.metadata?.annotations?.[ANNOTATIONS.allocatedFromPool],
    externalTrafficPolicy: svc.spec?.externalTrafficPolicy === 'Local' ? 'Local' : 'Cluster',
    sessionAffinity: { clientIP, timeoutSeconds: clientIP ? (svc.spec?.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? 10800) : 0 },
    ports,
    endpoints: endpointsOf(slices),
  };
}

/** LoadBalancer IPs first, in status order (the first decides ownership), then accepted externalIPs not already among them. */
function ipsOf(svc: ServiceObject): string[] {
  const lb = svc.spec?.type === 'LoadBalancer' ? (svc.status?.loadBalancer?.ingress ?? []).flatMap((i) => (i.ip ? [i.ip] : [])) : [];
  const have = new Set(lb.map((ip) => { const p = tryParseIP(ip); return p ? formatIP(p) : ip; }));
  return [...lb, ...acceptedExternalIPs(svc).filter((ip) => !have.has(ip))];
}

export function nodeState(node: NodeObject): NodeState {
  const cond = (type: string): string | undefined => node.status?.conditions?.find((c) => c.type === type)?.status;
  const labels = node.metadata?.labels ?? {};
  return {
    name: node.metadata?.name ?? '',
    labels,
    ready: cond('Ready') === 'True',
    networkUnavailable: cond('NetworkUnavailable') === 'True',
    excluded: LABELS.excludeFromLoadBalancers in labels,
    addresses: (node.status?.addresses ?? []).filter((a) => a.type === 'InternalIP' || a.type === 'ExternalIP').map((a) => a.address),
  };
}
