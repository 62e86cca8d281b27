// Who answers ARP/NDP for a Service's IPs: one pure function every speaker
// evaluates on the same inputs and so agrees on without talking. Eligibility
// first (each node with the reason it can or cannot announce), then the owner:
// the live eligible node with the highest rendezvous hash of (node, first IP).
import { createHash } from 'node:crypto';
import { LABELS, type L2Adv, type LabelSelector } from '@portico/shared';

export interface ElectionNode {
  name: string;
  labels: Readonly<Record<string, string>>;
  /** The node's NetworkUnavailable condition is True. */
  networkUnavailable: boolean;
}

export interface ElectionService {
  /** namespace/name, for messages. */
  key: string;
  /** status.loadBalancer.ingress IPs in the order the API server holds them; the first keys the hash. */
  ips: readonly string[];
  pool: { name: string; labels: Readonly<Record<string, string>> };
  /** The Service's labels, for advertisements with serviceSelectors (none: no labels). */
  labels?: Readonly<Record<string, string>>;
  externalTrafficPolicy: 'Cluster' | 'Local';
  /** Nodes with at least one ready endpoint of the Service (EndpointSlices, `nodeName`). */
  readyEndpointNodes: ReadonlySet<string>;
}

export type Eligibility =
  | 'eligible'
  | 'excluded-by-label'
  | 'network-unavailable'
  /** No L2Advertisement selects both this Service's pool and this node. */
  | 'no-advertisement'
  /** externalTrafficPolicy: Local and no ready endpoint on this node. */
  | 'no-local-endpoint';

export interface NodeEligibility {
  node: string;
  reason: Eligibility;
  /** Interfaces to announce on (union over the matching advertisements); empty = every interface. */
  interfaces: string[];
  live: boolean;
  /** Sum of the weights of the matching advertisements' preferredNodeSelectors this node matches (0: none). */
  preference?: number;
}

export type ElectionReason =
  | 'elected'
  /** The Service has no ready endpoint anywhere: announcing would blackhole traffic. */
  | 'no-ready-endpoints'
  | 'no-ip'
  | 'no-eligible-node'
  /** Eligible nodes exist but none is live (lease or heartbeats lost). */
  | 'no-live-eligible-node';

export interface ElectionResult {
  owner: string | null;
  reason: ElectionReason;
  /** The IP that keyed the hash (the Service's first IP); null without IPs. */
  key: string | null;
  /** Every node, sorted by name, with why it is or is not eligible. */
  nodes: NodeEligibility[];
}

export interface ElectionInput {
  service: ElectionService;
  nodes: readonly ElectionNode[];
  advertisements: readonly (Pick<L2Adv, 'name' | 'pools' | 'poolSelectors' | 'nodeSelectors' | 'interfaces'> & Partial<Pick<L2Adv, 'serviceSelectors' | 'preferredNodeSelectors'>>)[];
  /** Nodes whose speaker is alive (node Lease held and heartbeats arriving). */
  live: ReadonlySet<string>;
}

/** metav1.LabelSelector semantics; kept here so the hot path has no dependency beyond types. */
export function labelsMatch(selector: LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const req of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, req.key);
    const values = req.values ?? [];
    switch (req.operator) {
      case 'In': if (!has || !values.includes(labels[req.key]!)) return false; break;
      case 'NotIn': if (has && values.includes(labels[req.key]!)) return false; break;
      case 'Exists': if (!has) return false; break;
      case 'DoesNotExist': if (has) return false; break;
    }
  }
  return true;
}

/** An advertisement with neither pools nor poolSelectors covers every pool; likewise nodes (MetalLB's semantics). */
function selectsPool(adv: ElectionInput['advertisements'][number], pool: ElectionService['pool']): boolean {
  if (adv.pools.length === 0 && adv.poolSelectors.length === 0) return true;
  return adv.pools.includes(pool.name) || adv.poolSelectors.some((s) => labelsMatch(s, pool.labels));
}

/** An advertisement with serviceSelectors covers only the Services one of them selects. */
function selectsService(adv: ElectionInput['advertisements'][number], labels: Readonly<Record<string, string>>): boolean {
  const sel = adv.serviceSelectors ?? [];
  return sel.length === 0 || sel.some((s) => labelsMatch(s, labels));
}

/** True when the advertisements' eligibility depends on the Service's labels (callers must not share it across Services). */
export function dependsOnServiceLabels(advs: ElectionInput['advertisements']): boolean {
  return advs.some((a) => (a.serviceSelectors?.length ?? 0) > 0);
}

function selectsNode(adv: ElectionInput['advertisements'][number], node: ElectionNode): boolean {
  return adv.nodeSelectors.length === 0 || adv.nodeSelectors.some((s) => labelsMatch(s, node.labels));
}

/**
 * Rendezvous (highest random weight) score of a node for a key: the first 8
 * bytes of SHA-256(node NUL key). Each node's score is independent of the
 * others, so adding or removing a node moves only the keys it wins or held.
 */
export function rendezvousScore(node: string, key: string): bigint {
  const memo = `${node}\0${key}`;
  let score = scores.get(memo);
  if (score === undefined) {
    // A speaker re-elects every Service when a node dies: remembering the
    // scores makes that a few map reads per Service instead of hashes.
    if (scores.size >= MAX_SCORES) scores.clear();
    score = createHash('sha256').update(node).update('\0').update(key).digest().readBigUInt64BE(0);
    scores.set(memo, score);
  }
  return score;
}

const MAX_SCORES = 200_000;
const scores = new Map<string, bigint>();

/** Eligibility of each node for a Service, sorted by node name. */
export function eligibility(input: ElectionInput): NodeEligibility[] {
  const { service } = input;
  const advs = input.advertisements.filter((a) => selectsPool(a, service.pool) && selectsService(a, service.labels ?? {}));
  return [...input.nodes]
    .sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0))
    .map((node): NodeEligibility => {
      const live = input.live.has(node.name);
      const base = { node: node.name, live, interfaces: [] as string[] };
      if (Object.hasOwn(node.labels, LABELS.excludeFromLoadBalancers)) return { ...base, reason: 'excluded-by-label' };
      if (node.networkUnavailable) return { ...base, reason: 'network-unavailable' };
      const matching = advs.filter((a) => selectsNode(a, node));
      if (matching.length === 0) return { ...base, reason: 'no-advertisement' };
      if (service.externalTrafficPolicy === 'Local' && !service.readyEndpointNodes.has(node.name)) return { ...base, reason: 'no-local-endpoint' };
      // An advertisement without interfaces allows them all, which wins the union.
      const interfaces = matching.some((a) => a.interfaces.length === 0) ? [] : [...new Set(matching.flatMap((a) => a.interfaces))].sort();
      let preference = 0;
      for (const a of matching) for (const p of a.preferredNodeSelectors ?? []) if (labelsMatch(p.preference, node.labels)) preference += p.weight;
      return { ...base, reason: 'eligible', interfaces, ...(preference > 0 ? { preference } : {}) };
    });
}

/** The layer-2 owner of a Service's IPs (all families together), and why. */
export function electOwner(input: ElectionInput): ElectionResult {
  return ownerAmong(eligibility(input), input.service);
}

/**
 * The owner among nodes whose eligibility is known (electOwner's second half):
 * callers electing many Services of one pool with externalTrafficPolicy
 * Cluster compute the eligibility once, as it does not depend on the Service.
 */
export function ownerAmong(nodes: NodeEligibility[], service: Pick<ElectionService, 'ips' | 'readyEndpointNodes'>): ElectionResult {
  const key = service.ips[0] ?? null;
  const result = (owner: string | null, reason: ElectionReason): ElectionResult => ({ owner, reason, key, nodes });
  if (key === null) return result(null, 'no-ip');
  if (service.readyEndpointNodes.size === 0) return result(null, 'no-ready-endpoints');
  const eligible = nodes.filter((n) => n.reason === 'eligible');
  if (eligible.length === 0) return result(null, 'no-eligible-node');
  let best: { node: string; preference: number; score: bigint } | null = null;
  for (const n of eligible) {
    if (!n.live) continue;
    // The preferred nodes first (highest weight sum), then the hash among equals.
    const preference = n.preference ?? 0;
    if (best && preference < best.preference) continue;
    const score = rendezvousScore(n.node, key);
    // Ties (astronomically unlikely) go to the smaller name so every speaker agrees.
    if (!best || preference > best.preference || score > best.score || (score === best.score && n.node < best.node)) best = { node: n.node, preference, score };
  }
  return best ? result(best.node, 'elected') : result(null, 'no-live-eligible-node');
}
