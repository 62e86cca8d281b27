// What membership concluded, for the parts of the speaker that act on it
// besides the layer-2 election: the dataplane prunes the endpoints of nodes
// it saw die (dataplane/prune.ts). The layer-2 factory publishes every change
// the heartbeat thread reports; subscribers read the latest snapshot.
import type { NodeLiveness } from './membership.ts';

export interface LivenessSnapshot {
  /** Each node membership knows (this one included) with its reason. */
  reasons: ReadonlyMap<string, NodeLiveness>;
  /**
   * Every peer had time to be heard and a heartbeat key is loaded: before
   * that, a silent peer says nothing about its health.
   */
  settled: boolean;
}

export const UNSETTLED: LivenessSnapshot = { reasons: new Map(), settled: false };

export class LivenessFeed {
  #snapshot: LivenessSnapshot = UNSETTLED;
  readonly #subscribers = new Set<() => void>();

  current(): LivenessSnapshot {
    return this.#snapshot;
  }

  publish(snapshot: LivenessSnapshot): void {
    this.#snapshot = snapshot;
    for (const fn of [...this.#subscribers]) fn();
  }

  /** Calls fn after every publish; returns the unsubscribe. */
  subscribe(fn: () => void): () => void {
    this.#subscribers.add(fn);
    return () => { this.#subscribers.delete(fn); };
  }
}
