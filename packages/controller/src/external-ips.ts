// Opt-in spec.externalIPs: which of a Service's externalIPs Portico records for
// the speakers, and why the others are ignored. Pure: pools and the current
// holders of each address come in, one decision per address goes out.
import { formatIP, rangeContains, tryParseIP, type IP, type Pool } from '@portico/shared';
import { poolAdmits, type ServiceRequest } from './allocator.ts';

export type ExternalIPReason = 'accepted' | 'no-pool-allows' | 'namespace-not-admitted' | 'in-use' | 'invalid';

export interface ExternalIPDecision {
  /** The address as written in spec.externalIPs, canonical when it parses. */
  readonly ip: string;
  readonly parsed: IP | undefined;
  readonly reason: ExternalIPReason;
  /** The pool holding the address, when one does. */
  readonly pool: string | undefined;
  readonly message: string;
}

/** Who holds an address now: a LoadBalancer allocation or another Service's accepted externalIP. */
export interface Holder { readonly kind: 'load-balancer' | 'external-ip'; readonly services: readonly string[] }

export type ExternalIPService = Pick<ServiceRequest, 'key' | 'namespace' | 'labels' | 'namespaceLabels'>;

/**
 * Decides each of a Service's externalIPs, in spec order (duplicates count
 * once). An address is accepted only inside a pool with allowExternalIPs that
 * admits the Service (the same namespace and label rules as allocation), and
 * only when no LoadBalancer allocation and no other Service's externalIP holds
 * it. The Service's own earlier acceptance does not count as a holder, so a
 * decision is stable from one reconcile to the next.
 */
export function judgeExternalIPs(
  svc: ExternalIPService,
  externalIPs: readonly string[],
  pools: readonly Pool[],
  holderOf: (ip: IP) => Holder | undefined,
): ExternalIPDecision[] {
  const out: ExternalIPDecision[] = [];
  const seen = new Set<string>();
  for (const raw of externalIPs) {
    const parsed = tryParseIP(raw.trim());
    if (!parsed) {
      if (seen.has(raw)) continue;
      seen.add(raw);
      out.push({ ip: raw, parsed: undefined, reason: 'invalid', pool: undefined, message: `${JSON.stringify(raw)} is not an IP address` });
      continue;
    }
    const ip = formatIP(parsed);
    if (seen.has(ip)) continue;
    seen.add(ip);
    const decide = (reason: ExternalIPReason, pool: string | undefined, message: string): void => {
      out.push({ ip, parsed, reason, pool, message });
    };
    const holding = pools.filter((p) => p.ranges.some((r) => rangeContains(r, parsed)));
    // Pools never overlap in an applied configuration; prefer one that allows externalIPs all the same.
    const pool = holding.find((p) => p.allowExternalIPs) ?? holding[0];
    if (!pool) { decide('no-pool-allows', undefined, `${ip} is in no address pool; externalIPs must be inside a pool with allowExternalIPs: true`); continue; }
    if (!pool.allowExternalIPs) { decide('no-pool-allows', pool.name, `${ip} is in pool "${pool.name}", which does not set allowExternalIPs: true`); continue; }
    if (!poolAdmits(pool, svc)) { decide('namespace-not-admitted', pool.name, `pool "${pool.name}" does not admit Services of namespace ${svc.namespace} with these labels`); continue; }
    const h = holderOf(parsed);
    if (h && h.kind === 'load-balancer') { decide('in-use', pool.name, `${ip} is the LoadBalancer IP of ${h.services.join(', ')}`); continue; }
    if (h && !h.services.includes(svc.key)) { decide('in-use', pool.name, `${ip} is already an accepted externalIP of ${h.services.join(', ')}`); continue; }
    decide('accepted', pool.name, `${ip} accepted from pool "${pool.name}"`);
  }
  return out;
}

/** Parses the portico.dev/external-ips annotation (what the controller accepted), skipping junk. */
export function parseRecorded(text: string | undefined): IP[] {
  if (text === undefined) return [];
  return text.split(',').map((s) => tryParseIP(s.trim())).filter((ip): ip is IP => ip !== undefined);
}
