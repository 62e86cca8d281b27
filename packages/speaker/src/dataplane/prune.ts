// Pruning: the endpoints of a node that Portico's membership saw die leave
// the dataplane at once, long before Kubernetes marks them not ready (after
// the node-monitor-grace-period: 40-50 s on a default cluster). A pure
// decision per endpoint node with an enumerated reason, applied to the
// desired state; Pruner is the thin stateful edge that logs and counts it.
import type { Logger } from '@portico/shared';
import type { NodeLiveness } from '../membership/membership.ts';
import type { LivenessFeed, LivenessSnapshot } from '../membership/liveness.ts';
import type { DesiredState, VirtualService } from './desired.ts';
import type { DataplaneMetrics } from './metrics.ts';

export type PruneVerdict =
  /** Kept: the endpoint runs on this node. */
  | 'self'
  /** Kept: the node's speaker is heard (or joining, or holding its IPs for a planned restart). */
  | 'node-alive'
  /** Pruned: the node's speaker was heard, then went silent for the dead-after time. */
  | 'node-dead'
  /** Kept: membership does not know the node or never heard it, so it may run no speaker: Kubernetes decides. */
  | 'node-unknown'
  /** Kept: the node's speaker stopped gracefully; the node itself may well run on. */
  | 'node-left'
  /** Kept: membership has no address to hear the node on. */
  | 'no-address'
  /** Kept: the endpoint names no node. */
  | 'no-node'
  /** Kept: membership has not settled (no key yet, or peers not yet given time to be heard). */
  | 'not-settled';

export const PRUNE_VERDICTS: readonly PruneVerdict[] = ['self', 'node-alive', 'node-dead', 'node-unknown', 'node-left', 'no-address', 'no-node', 'not-settled'];

const BY_LIVENESS: Record<NodeLiveness, PruneVerdict> = {
  self: 'self',
  alive: 'node-alive',
  joining: 'node-alive',
  restarting: 'node-alive',
  silent: 'node-dead',
  'never-heard': 'node-unknown',
  left: 'node-left',
  'no-address': 'no-address',
};

/** Whether endpoints on `node` take new connections, and why. Pure. */
export function pruneVerdict(node: string | undefined, liveness: LivenessSnapshot): PruneVerdict {
  if (node === undefined) return 'no-node';
  if (!liveness.settled) return 'not-settled';
  const r = liveness.reasons.get(node);
  return r === undefined ? 'node-unknown' : BY_LIVENESS[r];
}

/** The nodes whose endpoints are pruned now (verdict node-dead). */
export function deadNodes(liveness: LivenessSnapshot): Set<string> {
  const out = new Set<string>();
  if (!liveness.settled) return out;
  for (const [node, r] of liveness.reasons) if (BY_LIVENESS[r] === 'node-dead') out.add(node);
  return out;
}

export interface PruneResult {
  /** The desired state without the dead nodes' endpoints (the same object when nothing was pruned). */
  state: DesiredState;
  /** Real servers taken out. */
  pruned: number;
  /**
   * Virtual services whose every endpoint is on a dead node: kept whole, since
   * pruning leaves nothing better to send to, and this node may be the one
   * cut off rather than all of them.
   */
  keptWhole: string[];
}

/** `state` without the real servers on `dead` nodes. Pure; costs one pass over the services while some node is dead, nothing otherwise. */
export function pruneDesired(state: DesiredState, dead: ReadonlySet<string>): PruneResult {
  if (dead.size === 0) return { state, pruned: 0, keptWhole: [] };
  let services: Map<string, VirtualService> | undefined;
  let pruned = 0;
  const keptWhole: string[] = [];
  for (const [key, vs] of state.services) {
    if (!vs.reals.some((r) => r.node !== undefined && dead.has(r.node))) continue;
    const reals = vs.reals.filter((r) => r.node === undefined || !dead.has(r.node));
    if (reals.length === 0) { keptWhole.push(key); continue; }
    services ??= new Map(state.services);
    services.set(key, { ...vs, reals });
    pruned += vs.reals.length - reals.length;
  }
  return { state: services ? { ...state, services } : state, pruned, keptWhole };
}

export interface PrunerOptions {
  feed: LivenessFeed | undefined;
  dataplane: 'ipvs' | 'nftables';
  log: Logger;
  metrics: DataplaneMetrics | undefined;
  /** Called when the set of dead nodes changed: the dataplane programs again. */
  onChange: () => void;
}

/** The dataplane's edge of pruning: follows the liveness feed, applies pruneDesired, logs and counts each change. */
export class Pruner {
  readonly #o: PrunerOptions;
  #dead = new Set<string>();
  readonly #unsubscribe: () => void;

  constructor(o: PrunerOptions) {
    this.#o = o;
    this.#unsubscribe = o.feed?.subscribe(() => this.#check()) ?? (() => undefined);
    this.#check();
  }

  /** Nodes whose endpoints are pruned now. */
  get dead(): ReadonlySet<string> {
    return this.#dead;
  }

  #check(): void {
    const liveness = this.#o.feed?.current();
    if (!liveness) return;
    const next = deadNodes(liveness);
    if (next.size === this.#dead.size && [...next].every((n) => this.#dead.has(n))) return;
    const { log, metrics, dataplane } = this.#o;
    for (const node of next) {
      if (this.#dead.has(node)) continue;
      log.info('endpoints of a dead node pruned', { dataplane, node, reason: 'node-dead' });
      metrics?.pruneChanges.inc({ dataplane, reason: 'node-dead' });
    }
    for (const node of this.#dead) {
      if (next.has(node)) continue;
      const reason = pruneVerdict(node, liveness);
      log.info('endpoints of a node restored', { dataplane, node, reason });
      metrics?.pruneChanges.inc({ dataplane, reason });
    }
    this.#dead = next;
    metrics?.prunedNodes.set({ dataplane }, next.size);
    this.#o.onChange();
  }

  /** The desired state to program: `state` without the dead nodes' endpoints. */
  apply(state: DesiredState): DesiredState {
    const r = pruneDesired(state, this.#dead);
    const m = this.#o.metrics;
    if (m) {
      m.prunedReals.set({ dataplane: this.#o.dataplane }, r.pruned);
      m.prunedKeptWhole.set({ dataplane: this.#o.dataplane }, r.keptWhole.length);
    }
    return r.state;
  }

  stop(): void {
    this.#unsubscribe();
  }
}
