// Whether a stopping speaker is being uninstalled or restarted, from what it
// knows of its DaemonSet and its namespace. Pure: watch.ts gathers the facts.
//
// A restart (rolling update, deleted pod, failed probe, node shutdown) must
// keep what the next speaker needs at once (the table arp portico, the
// dataplane, the peers holding this node's IPs); an uninstall must leave
// nothing. Uninstalls show in one of two ways before the pods stop:
// - `kubectl delete -f manifests/portico.yaml` deletes the Namespace first,
//   and the namespace controller deletes the pods before anything else in it
//   (OrderedNamespaceDeletion), so the DaemonSet may still exist then;
// - `helm uninstall` and `kubectl delete daemonset` delete the DaemonSet,
//   and the garbage collector then deletes its pods.
// Anything the speaker cannot tell is taken for a restart: a restart that
// behaved as an uninstall would let other nodes' kernels answer ARP for a VIP.
import type { StopReason } from '../world/types.ts';

/** What is known of one object: there, marked for deletion, deleted, or not known (not yet read, or unreadable). */
export type ObjectState = 'present' | 'deleting' | 'gone' | 'unknown';

export interface InstallFacts {
  daemonSet: ObjectState;
  namespace: ObjectState;
}

export type StopCause =
  | 'namespace-deleting' | 'namespace-gone' | 'daemonset-deleting' | 'daemonset-gone'
  /** Both there and not being deleted: a speaker follows. */
  | 'installed'
  /** The speaker could not find out; it stops as for a restart. */
  | 'unknown'
  /** No DaemonSet to check (--daemonset=''): always a restart. */
  | 'not-checked';

export interface StopDecision {
  reason: StopReason;
  cause: StopCause;
}

/** The state of an object as read: undefined is gone (once the read is complete), a deletionTimestamp is deleting. */
export function objectState(obj: { metadata?: { deletionTimestamp?: unknown } } | undefined): ObjectState {
  if (obj === undefined) return 'gone';
  return obj.metadata?.deletionTimestamp ? 'deleting' : 'present';
}

/** A fresh read wins over the watch's cache, unless it failed (then the cache is all there is). */
export function fresher(watched: ObjectState, read: ObjectState): ObjectState {
  return read === 'unknown' ? watched : read;
}

/** The namespace first: its deletion is the uninstall that can leave the DaemonSet standing while the pods stop. */
export function decideStop(facts: InstallFacts): StopDecision {
  if (facts.namespace === 'deleting') return { reason: 'leave', cause: 'namespace-deleting' };
  if (facts.namespace === 'gone') return { reason: 'leave', cause: 'namespace-gone' };
  if (facts.daemonSet === 'deleting') return { reason: 'leave', cause: 'daemonset-deleting' };
  if (facts.daemonSet === 'gone') return { reason: 'leave', cause: 'daemonset-gone' };
  if (facts.daemonSet === 'present' && facts.namespace === 'present') return { reason: 'restart', cause: 'installed' };
  return { reason: 'restart', cause: 'unknown' };
}
