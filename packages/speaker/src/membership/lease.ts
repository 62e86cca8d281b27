// This node's Lease in the config namespace: one per node, renewed on a fixed
// period, so what the speakers write to the API server grows with the nodes
// and never with the Services. Liveness does not depend on it (heartbeats
// decide, and keep deciding during an API outage); the Lease makes the set of
// running speakers visible (`kubectl get leases`) and bounds how long a
// restarting speaker may ask its peers to hold its IPs.
import type { LeaseRecord, LeaseStore, Logger } from '@portico/shared';

export const nodeLeaseName = (node: string): string => `portico-speaker-${node}`;

export interface NodeLeaseOptions {
  node: string;
  store: LeaseStore;
  log: Logger;
  leaseDurationMs?: number;
  renewEveryMs?: number;
  now?: () => number;
  /** Called after each attempt (for metrics: writes and failures). */
  onRenew?: (ok: boolean) => void;
  /** Called before each write request (create or update). */
  onWrite?: () => void;
}

export class NodeLease {
  private readonly o: Required<Omit<NodeLeaseOptions, 'onRenew' | 'onWrite'>> & NodeLeaseOptions;
  private timer: NodeJS.Timeout | undefined;
  private failing = false;
  private stopped = false;
  lastRenewed: number | undefined;

  constructor(opts: NodeLeaseOptions) {
    this.o = { leaseDurationMs: 15_000, renewEveryMs: 5_000, now: () => Date.now(), ...opts };
  }

  start(): void {
    void this.loop();
  }

  /** One acquire-or-renew; never throws. The node's own speaker is the only writer, so a conflict just means "read again". */
  async renew(): Promise<boolean> {
    const { store, node, now } = this.o;
    const record = (prev?: LeaseRecord): LeaseRecord => ({
      holderIdentity: node,
      leaseDurationSeconds: Math.ceil(this.o.leaseDurationMs / 1000),
      acquireTime: prev?.holderIdentity === node && prev.acquireTime ? prev.acquireTime : new Date(now()),
      renewTime: new Date(now()),
      leaseTransitions: prev ? prev.leaseTransitions + (prev.holderIdentity === node ? 0 : 1) : 0,
    });
    try {
      const cur = await store.get();
      this.o.onWrite?.();
      const ok = cur ? await store.update(record(cur.record), cur.version) : await store.create(record());
      if (ok) {
        this.lastRenewed = now();
        if (this.failing) this.o.log.info('node lease renewed again', { lease: nodeLeaseName(node) });
        this.failing = false;
      }
      this.o.onRenew?.(ok);
      return ok;
    } catch (err) {
      // An API outage: logged once; liveness comes from heartbeats and is unaffected.
      if (!this.failing) this.o.log.error('node lease renewal failed', { lease: nodeLeaseName(node), err });
      this.failing = true;
      this.o.onRenew?.(false);
      return false;
    }
  }

  private async loop(): Promise<void> {
    if (this.stopped) return;
    await this.renew();
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.loop(), this.o.renewEveryMs);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}
