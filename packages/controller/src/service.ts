// Service objects at the edge: which Services are Portico's, and the
// allocator request a Service makes. Pure functions of the object.
import { ANNOTATIONS, METALLB_ANNOTATIONS, canonicalLabels, parseIP, type Family, type IP } from '@portico/shared';
import type { FamilyPolicy, ServiceRequest } from './allocator.ts';

/** The parts of a core/v1 Service the controller reads (plain JSON). */
export interface ServiceObject {
  metadata?: { name?: string; namespace?: string; uid?: string; labels?: Record<string, string>; annotations?: Record<string, string>; creationTimestamp?: string };
  spec?: {
    type?: string;
    loadBalancerClass?: string;
    loadBalancerIP?: string;
    ipFamilies?: string[];
    ipFamilyPolicy?: string;
    externalTrafficPolicy?: string;
    selector?: Record<string, string>;
    ports?: { port?: number; protocol?: string }[];
    externalIPs?: string[];
  };
  status?: { loadBalancer?: { ingress?: { ip?: string; hostname?: string; ipMode?: string }[] } };
}

export const serviceKey = (svc: ServiceObject): string => `${svc.metadata?.namespace ?? ''}/${svc.metadata?.name ?? ''}`;

/** IPs in status.loadBalancer.ingress (hostnames and junk ignored). */
export function statusIPs(svc: ServiceObject): IP[] {
  const out: IP[] = [];
  for (const i of svc.status?.loadBalancer?.ingress ?? []) {
    if (!i.ip) continue;
    try { out.push(parseIP(i.ip)); } catch { /* not ours to judge */ }
  }
  return out;
}

const asFamily = (f: string): Family | undefined => (f === 'IPv4' || f === 'IPv6' ? f : undefined);
const asPolicy = (p: string | undefined): FamilyPolicy => (p === 'PreferDualStack' || p === 'RequireDualStack' ? p : 'SingleStack');

type Aliased = 'loadBalancerIPs' | 'addressPool' | 'allowSharedIP';

/** A request annotation: Portico's when set (not empty), else MetalLB's of the same meaning. */
function requestAnnotation(ann: Readonly<Record<string, string>>, which: Aliased): { value: string; name: string } | undefined {
  for (const name of [ANNOTATIONS[which], METALLB_ANNOTATIONS[which]]) {
    const v = ann[name];
    if (v !== undefined && v.trim() !== '') return { value: v.trim(), name };
  }
  return undefined;
}

const ipList = (text: string): string[] => text.split(',').map((x) => x.trim()).filter((x) => x !== '');

/**
 * Parts of a Service's request that lose to another part: spec.loadBalancerIP
 * when a loadBalancerIPs annotation disagrees, a metallb.io annotation when the
 * portico.dev one of the same meaning differs. Each becomes a Warning Event.
 */
export function ignoredRequests(svc: ServiceObject): string[] {
  const ann = svc.metadata?.annotations ?? {};
  const out: string[] = [];
  for (const which of ['loadBalancerIPs', 'addressPool', 'allowSharedIP'] as const) {
    const ours = ann[ANNOTATIONS[which]];
    const theirs = ann[METALLB_ANNOTATIONS[which]];
    if (ours !== undefined && ours.trim() !== '' && theirs !== undefined && theirs.trim() !== '' && ours.trim() !== theirs.trim()) {
      out.push(`annotation ${METALLB_ANNOTATIONS[which]} ("${theirs.trim()}") is ignored: ${ANNOTATIONS[which]} ("${ours.trim()}") wins`);
    }
  }
  const list = requestAnnotation(ann, 'loadBalancerIPs');
  const single = svc.spec?.loadBalancerIP;
  if (list && single) {
    const listed = ipList(list.value);
    if (listed.length !== 1 || listed[0] !== single.trim()) out.push(`spec.loadBalancerIP ${single} is ignored: the annotation ${list.name} (${listed.join(',')}) wins`);
  }
  return out;
}

/** The pool annotation a previous allocator wrote: Portico's, or MetalLB's for a Service being adopted. */
export function recordedPool(svc: ServiceObject): string | undefined {
  const ann = svc.metadata?.annotations ?? {};
  return ann[ANNOTATIONS.allocatedFromPool] ?? ann[METALLB_ANNOTATIONS.allocatedFromPool];
}

/** The allocator request for a Service; throws PORTICO_INVALID_ADDRESS when a requested IP is malformed. */
export function toRequest(svc: ServiceObject, namespaceLabels: Readonly<Record<string, string>>): ServiceRequest {
  const ann = svc.metadata?.annotations ?? {};
  const requested: IP[] = [];
  const list = requestAnnotation(ann, 'loadBalancerIPs');
  if (list) {
    for (const s of ipList(list.value)) requested.push(parseIP(s));
  } else if (svc.spec?.loadBalancerIP) {
    requested.push(parseIP(svc.spec.loadBalancerIP));
  }
  const local = svc.spec?.externalTrafficPolicy === 'Local';
  const pool = requestAnnotation(ann, 'addressPool')?.value;
  const sharingKey = requestAnnotation(ann, 'allowSharedIP')?.value;
  return {
    key: serviceKey(svc),
    namespace: svc.metadata?.namespace ?? '',
    labels: svc.metadata?.labels ?? {},
    namespaceLabels,
    families: (svc.spec?.ipFamilies ?? []).map(asFamily).filter((f): f is Family => f !== undefined),
    policy: asPolicy(svc.spec?.ipFamilyPolicy),
    requestedIPs: requested,
    pool: pool === undefined || pool === '' ? undefined : pool,
    sharingKey: sharingKey === undefined || sharingKey === '' ? undefined : sharingKey,
    // With Local, traffic only goes to local pods: Services sharing an IP must
    // reach the same pods or the IP's owner node could be wrong for one of them.
    backendKey: local ? `local:${canonicalLabels(svc.spec?.selector)}` : '',
    ports: (svc.spec?.ports ?? []).map((p) => `${p.protocol ?? 'TCP'}/${p.port ?? 0}`),
  };
}

type Loose = Record<string, unknown>;
const pick = (o: unknown, keys: readonly string[]): Loose | undefined => {
  if (o === null || typeof o !== 'object') return undefined;
  const out: Loose = {};
  for (const k of keys) if ((o as Loose)[k] !== undefined) out[k] = (o as Loose)[k];
  return out;
};
const META = ['name', 'namespace', 'uid', 'resourceVersion', 'labels', 'annotations', 'creationTimestamp'] as const;
const SPEC = ['type', 'loadBalancerClass', 'loadBalancerIP', 'ipFamilies', 'ipFamilyPolicy', 'externalTrafficPolicy', 'selector', 'ports', 'externalIPs'] as const;
// kubectl's copy of the whole object it applied: never read here, often the largest annotation.
const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

/**
 * Keeps, in place, only what ServiceObject declares (plus resourceVersion,
 * which the informer compares): managedFields, clusterIPs, node ports and the
 * rest of a Service are most of its size and the controller reads none of it.
 */
export function trimService(obj: Loose): void {
  const meta = pick(obj.metadata, META) ?? {};
  if (meta.annotations && typeof meta.annotations === 'object' && LAST_APPLIED in meta.annotations) {
    const { [LAST_APPLIED]: _drop, ...rest } = meta.annotations as Record<string, string>;
    meta.annotations = rest;
  }
  const spec = pick(obj.spec, SPEC);
  if (spec && Array.isArray(spec.ports)) spec.ports = (spec.ports as Loose[]).map((p) => pick(p, ['port', 'protocol']) ?? {});
  const ingress = ((obj.status as ServiceObject['status'])?.loadBalancer?.ingress ?? []).map((i) => pick(i, ['ip', 'hostname', 'ipMode']) ?? {});
  for (const k of Object.keys(obj)) if (k !== 'metadata' && k !== 'spec' && k !== 'status') delete obj[k];
  obj.metadata = meta;
  if (spec) obj.spec = spec; else delete obj.spec;
  obj.status = ingress.length > 0 ? { loadBalancer: { ingress } } : {};
}

/** Namespaces: the controller reads their names and labels only. */
export function trimNamespace(obj: Loose): void {
  const meta = pick(obj.metadata, ['name', 'uid', 'resourceVersion', 'labels']) ?? {};
  for (const k of Object.keys(obj)) delete obj[k];
  obj.metadata = meta;
}
