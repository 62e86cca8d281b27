// What this node announces in layer 2, from one World and the live set: the
// election for every Service (with its reason), and the IPs this node must
// answer for on each interface. Pure but for an optional cache (PlanCache):
// with it, a Service whose state object is the one of the last plan is not
// elected again unless something every election reads (configuration, Nodes,
// live set, interfaces) changed, so one changed Service costs one election,
// not one per Service. The announcer applies the result.
import { dependsOnServiceLabels, eligibility, ownerAmong, type ElectionResult, type ElectionService, type NodeEligibility } from '../election/election.ts';
import type { ServiceState, World } from '../world/types.ts';

export interface ServicePlan {
  key: string;
  namespace: string;
  name: string;
  uid: string;
  ips: readonly string[];
  election: ElectionResult;
  /** Where this node announces the Service's IPs when it is the owner (resolved interface names). */
  interfaces: string[];
}

export type InterfaceProblem =
  /** The node's InternalIP is on no interface here, so the default interface is unknown. */
  | 'no-default-interface'
  /** An advertisement names an interface this node does not have. */
  | 'missing-interface';

export interface Layer2Plan {
  services: ServicePlan[];
  /** Interface -> IPs this node answers for there. */
  owned: Map<string, Set<string>>;
  problems: { service: string; problem: InterfaceProblem; detail: string }[];
}

export interface PlanInput {
  world: World;
  live: ReadonlySet<string>;
  /** Interfaces of this node and their addresses (os.networkInterfaces() shape, names only matter). */
  interfaces: ReadonlyMap<string, readonly string[]>;
  /** Keeps the elections of unchanged Services between calls (see PlanCache). */
  cache?: PlanCache;
}

interface CachedPlan {
  state: ServiceState;
  plan: ServicePlan;
  problems: Layer2Plan['problems'];
}

/**
 * The last plan of each Service, valid while its ServiceState is the same
 * object (the World watcher replaces the object only when the Service or its
 * endpoints changed) and the shared inputs have the same signature.
 */
export class PlanCache {
  config: unknown;
  signature = '';
  readonly byKey = new Map<string, CachedPlan>();
  /** Services elected again in the last planLayer2 call (the rest came from the cache). */
  elected = 0;
}

/** Everything an election reads besides the Service itself, as one string (Node objects are rebuilt on every kubelet status write). */
function sharedSignature(world: World, live: ReadonlySet<string>, interfaces: ReadonlyMap<string, readonly string[]>): string {
  const nodes = [...world.nodes.values()].map((n) => [n.name, n.labels, n.networkUnavailable, n.excluded, n.addresses]);
  return JSON.stringify([world.self, nodes, [...live].sort(), [...interfaces]]);
}

/** The interface that holds one of the node's addresses (its InternalIP): where layer 2 announces by default. */
export function defaultInterface(nodeAddresses: readonly string[], interfaces: ReadonlyMap<string, readonly string[]>): string | undefined {
  for (const a of nodeAddresses) {
    for (const [name, addrs] of interfaces) if (addrs.includes(a)) return name;
  }
  return undefined;
}

export function planLayer2({ world, live, interfaces, cache }: PlanInput): Layer2Plan {
  const out: Layer2Plan = { services: [], owned: new Map(), problems: [] };
  const advertisements = world.config?.l2Advertisements ?? [];
  if (cache) {
    const signature = sharedSignature(world, live, interfaces);
    if (cache.config !== world.config || cache.signature !== signature) cache.byKey.clear();
    cache.config = world.config;
    cache.signature = signature;
    cache.elected = 0;
    for (const key of cache.byKey.keys()) if (!world.services.has(key)) cache.byKey.delete(key);
  }
  if (advertisements.length === 0) return out;
  const nodes = [...world.nodes.values()];
  const self = world.nodes.get(world.self);
  const fallback = self ? defaultInterface(self.addresses, interfaces) : undefined;
  const pools = new Map((world.config?.pools ?? []).map((p) => [p.name, p.labels]));
  const byPool = new Map<string, NodeEligibility[]>();
  const bySelectors = dependsOnServiceLabels(advertisements);
  const addOwned = (p: ServicePlan): void => {
    if (p.election.owner !== world.self) return;
    for (const i of p.interfaces) {
      const set = out.owned.get(i) ?? new Set<string>();
      for (const ip of p.ips) set.add(ip);
      out.owned.set(i, set);
    }
  };
  for (const s of [...world.services.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))) {
    const hit = cache?.byKey.get(s.key);
    if (hit && hit.state === s) {
      out.services.push(hit.plan);
      out.problems.push(...hit.problems);
      addOwned(hit.plan);
      continue;
    }
    const problems: Layer2Plan['problems'] = [];
    const service: ElectionService = {
      key: s.key,
      ips: s.ips,
      pool: { name: s.pool ?? '', labels: pools.get(s.pool ?? '') ?? {} },
      externalTrafficPolicy: s.externalTrafficPolicy,
      readyEndpointNodes: new Set(s.endpoints.filter((e) => e.ready && e.node !== undefined).map((e) => e.node!)),
      labels: s.labels,
    };
    // With policy Cluster and no serviceSelectors eligibility depends on the pool only: once per pool per plan.
    const shared = s.externalTrafficPolicy === 'Cluster' && !bySelectors;
    let eligible = shared ? byPool.get(service.pool.name) : undefined;
    if (!eligible) {
      eligible = eligibility({ service, nodes, advertisements, live });
      if (shared) byPool.set(service.pool.name, eligible);
    }
    const election = ownerAmong(eligible, service);
    const mine = election.nodes.find((n) => n.node === world.self);
    let names: string[] = [];
    if (mine && mine.reason === 'eligible') {
      if (mine.interfaces.length === 0) {
        if (fallback) names = [fallback];
        else problems.push({ service: s.key, problem: 'no-default-interface', detail: `none of ${self?.addresses.join(', ') ?? 'no addresses'} is on an interface` });
      } else {
        for (const i of mine.interfaces) {
          if (interfaces.has(i)) names.push(i);
          else problems.push({ service: s.key, problem: 'missing-interface', detail: i });
        }
      }
    }
    const plan: ServicePlan = { key: s.key, namespace: s.namespace, name: s.name, uid: s.uid, ips: s.ips, election, interfaces: names };
    if (cache) {
      cache.byKey.set(s.key, { state: s, plan, problems });
      cache.elected++;
    }
    out.services.push(plan);
    out.problems.push(...problems);
    addOwned(plan);
  }
  return out;
}
