// What this node announces in layer 2, from one World and the live set: the
// election for every Service (with its reason), and the IPs this node must
// answer for on each interface. Pure: the announcer applies the result.
import { electOwner, type ElectionResult } from '../election/election.ts';
import type { World } from '../world/types.ts';

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
}

/** The interface that holds one of the node's addresses (its InternalIP): where layer 2 announces by default. */
export function defaultInterface(nodeAddresses: readonly string[], interfaces: ReadonlyMap<string, readonly string[]>): string | undefined {
  for (const a of nodeAddresses) {
    for (const [name, addrs] of interfaces) if (addrs.includes(a)) return name;
  }
  return undefined;
}

export function planLayer2({ world, live, interfaces }: PlanInput): Layer2Plan {
  const out: Layer2Plan = { services: [], owned: new Map(), problems: [] };
  const advertisements = world.config?.l2Advertisements ?? [];
  if (advertisements.length === 0) return out;
  const nodes = [...world.nodes.values()];
  const self = world.nodes.get(world.self);
  const fallback = self ? defaultInterface(self.addresses, interfaces) : undefined;
  const pools = new Map((world.config?.pools ?? []).map((p) => [p.name, p.labels]));
  for (const s of [...world.services.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))) {
    const election = electOwner({
      service: {
        key: s.key,
        ips: s.ips,
        pool: { name: s.pool ?? '', labels: pools.get(s.pool ?? '') ?? {} },
        externalTrafficPolicy: s.externalTrafficPolicy,
        readyEndpointNodes: new Set(s.endpoints.filter((e) => e.ready && e.node !== undefined).map((e) => e.node!)),
      },
      nodes,
      advertisements,
      live,
    });
    const mine = election.nodes.find((n) => n.node === world.self);
    let names: string[] = [];
    if (mine && mine.reason === 'eligible') {
      if (mine.interfaces.length === 0) {
        if (fallback) names = [fallback];
        else out.problems.push({ service: s.key, problem: 'no-default-interface', detail: `none of ${self?.addresses.join(', ') ?? 'no addresses'} is on an interface` });
      } else {
        for (const i of mine.interfaces) {
          if (interfaces.has(i)) names.push(i);
          else out.problems.push({ service: s.key, problem: 'missing-interface', detail: i });
        }
      }
    }
    out.services.push({ key: s.key, namespace: s.namespace, name: s.name, uid: s.uid, ips: s.ips, election, interfaces: names });
    if (election.owner !== world.self) continue;
    for (const i of names) {
      const set = out.owned.get(i) ?? new Set<string>();
      for (const ip of s.ips) set.add(ip);
      out.owned.set(i, set);
    }
  }
  return out;
}
