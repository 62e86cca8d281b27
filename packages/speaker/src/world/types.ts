// What a speaker knows of the cluster, as plain domain values: one immutable
// snapshot (World) that every announcer (layer 2, BGP) and the dataplane
// receive whole, and turn into the announcements and rules they should have.
import type { Config } from '@portico/shared';

export type IPFamily = 'IPv4' | 'IPv6';

export interface ServicePort {
  name: string;
  protocol: 'TCP' | 'UDP' | 'SCTP';
  port: number;
  /** Resolved per endpoint when the Service names a container port; see EndpointState.ports. */
  targetPort: number | string;
  nodePort: number | undefined;
}

export interface EndpointState {
  /** Endpoint address (one per family: EndpointSlices are per family). */
  ip: string;
  family: IPFamily;
  node: string | undefined;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
  /** Port name -> port number on this endpoint, from the EndpointSlice. */
  ports: Readonly<Record<string, { port: number; protocol: 'TCP' | 'UDP' | 'SCTP' }>>;
  pod: string | undefined;
}

export interface ServiceState {
  /** namespace/name */
  key: string;
  namespace: string;
  name: string;
  uid: string;
  labels: Readonly<Record<string, string>>;
  annotations: Readonly<Record<string, string>>;
  /**
   * The IPs to announce: status.loadBalancer.ingress in the controller's order
   * (the first decides ownership), then the externalIPs the controller accepted
   * (annotation portico.dev/external-ips, only those still in spec.externalIPs).
   */
  ips: readonly string[];
  /** The pool the controller allocated from (annotation portico.dev/ip-allocated-from-pool). */
  pool: string | undefined;
  externalTrafficPolicy: 'Cluster' | 'Local';
  sessionAffinity: { clientIP: boolean; timeoutSeconds: number };
  ports: readonly ServicePort[];
  endpoints: readonly EndpointState[];
}

export interface NodeState {
  name: string;
  labels: Readonly<Record<string, string>>;
  ready: boolean;
  networkUnavailable: boolean;
  /** Labelled node.kubernetes.io/exclude-from-external-load-balancers. */
  excluded: boolean;
  addresses: readonly string[];
}

export interface World {
  /** This speaker's node. */
  self: string;
  /** The last good configuration (undefined until one has been read). */
  config: Config | undefined;
  /** Services with something to announce, by key: LoadBalancer Services of Portico's class with IPs, and Services with accepted externalIPs. */
  services: ReadonlyMap<string, ServiceState>;
  nodes: ReadonlyMap<string, NodeState>;
  /** Numbers the snapshots of one watcher, in order (absent in hand-built Worlds). */
  generation?: number;
  /**
   * The Services (keys) that may differ from the snapshot numbered `from`,
   * added and removed ones included; every other Service is the same
   * ServiceState object as there. Lets a consumer that saw that snapshot do
   * work in proportion to the change. Absent: any Service may have changed.
   */
  changed?: { from: number; services: ReadonlySet<string> };
}

/**
 * The Services that changed between the snapshot a consumer last saw (its
 * generation) and `world`, when the World says so; undefined when it cannot
 * tell (the consumer compares every Service then).
 */
export function changedSince(world: Pick<World, 'changed'>, seen: number | undefined): ReadonlySet<string> | undefined {
  return seen !== undefined && world.changed?.from === seen ? world.changed.services : undefined;
}

/**
 * Why the speaker stops. 'restart': a speaker follows on this node (a rolling
 * update, a deleted pod, a probe), so what it needs at once stays in the
 * kernel and peers hold this node's IPs. 'leave': none follows (Portico is
 * being uninstalled, uninstall/), so everything this speaker put on the node
 * goes and peers take over at once.
 */
export type StopReason = 'restart' | 'leave';

/**
 * Something that turns the World into announcements or rules: the layer-2
 * responder, the BGP speaker, a dataplane. update() gets every new snapshot
 * (level-based: compute the desired state, apply the difference).
 */
export interface Announcer {
  readonly name: string;
  update(world: World): void | Promise<void>;
  /** Default 'restart'. */
  stop(reason?: StopReason): Promise<void>;
  /**
   * How long (ms) to wait after an update that took `seconds` before the next
   * one starts; snapshots arriving meanwhile are coalesced. For announcers
   * whose every update costs in proportion to the whole World.
   */
  restAfter?(seconds: number): number;
}
