// The rules every component applies to a core/v1 Service and its
// EndpointSlices, defined once: which Services are Portico's, which
// externalIPs the speakers may announce, when an endpoint is ready, and the
// names of the labels, annotations and Secrets that carry them. Pure
// functions of plain JSON; nothing here talks to the API server.
import { ANNOTATIONS, NAMESPACE } from './api/types.ts';
import { formatIP, tryParseIP } from './ip/ipmath.ts';

/** Well-known labels Portico reads or writes. */
export const LABELS = {
  /** On an EndpointSlice: the Service it belongs to (set by Kubernetes). */
  serviceName: 'kubernetes.io/service-name',
  /** On a Node: never announce from it (any value, even empty or "false"). */
  excludeFromLoadBalancers: 'node.kubernetes.io/exclude-from-external-load-balancers',
  /** Who manages an object (app.kubernetes.io convention). */
  managedBy: 'app.kubernetes.io/managed-by',
  partOf: 'app.kubernetes.io/part-of',
  /** On a ServiceBGPStatus: the node that reports it, and the Service it is about. */
  statusNode: 'portico.dev/node',
  statusServiceName: 'portico.dev/service-name',
  statusServiceNamespace: 'portico.dev/service-namespace',
} as const;

/** Annotations the speakers write or read, besides the controller's ANNOTATIONS. */
export const SPEAKER_ANNOTATIONS = {
  /** Written by the layer-2 owner: the node that answers ARP/NDP for the Service's IPs. */
  layer2Node: 'portico.dev/layer2-node',
  /** Written by the layer-2 owner: the interfaces it answers on. */
  layer2Interfaces: 'portico.dev/layer2-interfaces',
  /** Read by the IPVS dataplane: the scheduler and the forwarding method of a Service. */
  ipvsScheduler: 'portico.dev/ipvs-scheduler',
  ipvsForward: 'portico.dev/ipvs-forward',
} as const;

/** Secrets Portico owns, in its namespace. */
export const SECRETS = {
  /** The key the speakers' membership heartbeats are authenticated with; `key` is current, `previous` still accepted. */
  heartbeat: { namespace: NAMESPACE, name: 'portico-heartbeat', key: 'key', previousKey: 'previous' },
} as const;

/** The parts of a Service these rules read. */
export interface ServiceFacts {
  metadata?: { annotations?: Record<string, string> };
  spec?: { type?: string; loadBalancerClass?: string | null; externalIPs?: string[] };
}

/**
 * A Service's spec.loadBalancerClass, undefined when it has none. Kubernetes
 * defines the field as either unset (the cluster's default implementation
 * answers) or a label-style identifier, and its validation refuses an empty
 * string; so an empty (or null) value, which only a hand-built object can
 * carry, means "no class", the same as an absent one.
 */
export function serviceClass(svc: ServiceFacts): string | undefined {
  const cls = svc.spec?.loadBalancerClass;
  return cls === undefined || cls === null || cls === '' ? undefined : cls;
}

/** The class a component answers to, from its flag: an empty value is "no class", as on a Service. */
export function ourClass(flag: string | undefined): string | undefined {
  return flag === undefined || flag === '' ? undefined : flag;
}

export type Classification =
  | { readonly mine: true }
  | { readonly mine: false; readonly why: 'not-load-balancer' | 'other-class' };

/**
 * A Service is Portico's when it is type LoadBalancer and its class is ours:
 * a Portico without a class answers Services without one (it is the
 * cluster's default implementation); one with a class, only Services naming
 * exactly that class.
 */
export function classifyService(svc: ServiceFacts, cls: string | undefined): Classification {
  if (svc.spec?.type !== 'LoadBalancer') return { mine: false, why: 'not-load-balancer' };
  if (serviceClass(svc) !== ourClass(cls)) return { mine: false, why: 'other-class' };
  return { mine: true };
}

/** classifyService(), as a yes or no. */
export const isOurService = (svc: ServiceFacts, cls: string | undefined): boolean => classifyService(svc, cls).mine;

/**
 * Whether this Portico handles the Service's spec.externalIPs: a LoadBalancer
 * Service of its class, or a ClusterIP or NodePort Service when it answers
 * to Services without a class: those types carry no class, so exactly one
 * Portico, the classless one, speaks for them. ExternalName Services have no
 * addresses to announce.
 */
export function handlesExternalIPs(svc: ServiceFacts, cls: string | undefined): boolean {
  const c = classifyService(svc, cls);
  if (c.mine) return true;
  return c.why === 'not-load-balancer' && ourClass(cls) === undefined && svc.spec?.type !== 'ExternalName';
}

/** Canonical text of an address (RFC 5952 for IPv6), or undefined when it is not one. */
const canonical = (text: string): string | undefined => {
  const ip = tryParseIP(text.trim());
  return ip && formatIP(ip);
};

/**
 * The externalIPs the controller accepted (annotation portico.dev/external-ips)
 * that the Service still lists in spec.externalIPs, canonical, in the
 * annotation's order, once each: a stale or hand-written annotation alone
 * never makes a speaker announce an address.
 */
export function acceptedExternalIPs(svc: ServiceFacts): string[] {
  const recorded = svc.metadata?.annotations?.[ANNOTATIONS.externalIPs];
  if (!recorded) return [];
  const listed = new Set((svc.spec?.externalIPs ?? []).map(canonical));
  const out: string[] = [];
  for (const part of recorded.split(',')) {
    const ip = canonical(part);
    if (ip !== undefined && listed.has(ip) && !out.includes(ip)) out.push(ip);
  }
  return out;
}

/** An EndpointSlice endpoint's conditions, as the API writes them (each may be absent). */
export interface EndpointConditions { ready?: boolean | null; serving?: boolean | null; terminating?: boolean | null }

export interface EndpointReadiness { readonly ready: boolean; readonly serving: boolean; readonly terminating: boolean }

/**
 * What an endpoint's conditions mean (discovery.k8s.io/v1): an absent
 * `ready` means ready, an absent `terminating` not terminating, an absent
 * `serving` the same as `ready`; a terminating endpoint is never ready,
 * though it may still be serving (the traffic of last resort while it drains).
 */
export function endpointReadiness(c: EndpointConditions | undefined): EndpointReadiness {
  const terminating = c?.terminating === true;
  const ready = c?.ready !== false && !terminating;
  return { ready, serving: c?.serving ?? ready, terminating };
}
