// Lease-based leader election with client-go's semantics:
// - a candidate takes the Lease when it is free or when its holder has not
//   renewed it for leaseDuration, measured on the candidate's own clock from
//   the moment it last saw the record change (so clock skew does not matter);
// - the leader renews every retryPeriod and gives up leadership when it could
//   not renew for renewDeadline (< leaseDuration), so it stops writing before
//   anyone else may take over;
// - on shutdown the leader releases the Lease (empty holder, 1 s duration) so
//   a standby takes over at once.
import { strict as assert } from 'node:assert';
import type { Logger } from '../log.ts';
import { nullLogger } from '../log.ts';
import type { SharedMetrics } from '../metrics.ts';
import type { KubeSource } from './connection.ts';
import { isConflict, isNotFound } from './errors.ts';
import { kubeRequest } from './rest.ts';

export interface LeaseRecord {
  holderIdentity: string;
  leaseDurationSeconds: number;
  acquireTime: Date | undefined;
  renewTime: Date | undefined;
  leaseTransitions: number;
}

/** The API server behind an interface, so the election runs on a fake store and clock in tests. */
export interface LeaseStore {
  /** The record and an opaque version, or undefined when the Lease does not exist. */
  get(): Promise<{ record: LeaseRecord; version: string } | undefined>;
  /** Creates the Lease; false when it already exists. */
  create(record: LeaseRecord): Promise<boolean>;
  /** Replaces it if still at `version`; false on a conflict. */
  update(record: LeaseRecord, version: string): Promise<boolean>;
}

export interface Clock {
  now(): number;
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

export const realClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) => new Promise((resolve) => {
    if (signal.aborted) { resolve(); return; }
    const t = setTimeout(() => { signal.removeEventListener('abort', done); resolve(); }, ms);
    const done = (): void => { clearTimeout(t); resolve(); };
    signal.addEventListener('abort', done, { once: true });
  }),
};

export interface LeaderElectionOptions {
  identity: string;
  store: LeaseStore;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  clock?: Clock;
  log?: Logger;
  metrics?: SharedMetrics;
  leaseName?: string;
  /** Called once when this process becomes leader. */
  onStartedLeading?: () => void;
  /** Called once when leadership ends (lost or released). */
  onStoppedLeading?: (reason: 'renew-failed' | 'released' | 'stopped') => void;
  /** Called when another identity is seen holding the Lease. */
  onNewLeader?: (identity: string) => void;
}

export class LeaderElector {
  private readonly o: Required<Omit<LeaderElectionOptions, 'metrics' | 'onStartedLeading' | 'onStoppedLeading' | 'onNewLeader'>> & LeaderElectionOptions;
  private readonly abort = new AbortController();
  private observed: { record: LeaseRecord; version: string } | undefined;
  private observedAt = 0;
  private lastRenew = -Infinity;
  private leading = false;
  private lastSeenHolder = '';
  private loop: Promise<void> | undefined;

  constructor(opts: LeaderElectionOptions) {
    assert.ok(opts.leaseDurationMs > opts.renewDeadlineMs, 'leaseDuration must exceed renewDeadline');
    assert.ok(opts.renewDeadlineMs > opts.retryPeriodMs * 1.2, 'renewDeadline must exceed retryPeriod * 1.2');
    this.o = { clock: realClock, log: nullLogger, leaseName: 'portico-controller', ...opts };
  }

  /**
   * True only while this process holds a Lease it renewed within renewDeadline.
   * Writers check it before each write, so a leader that cannot renew stops
   * writing even if its renew loop is late.
   */
  isLeader(): boolean {
    return this.leading && this.o.clock.now() - this.lastRenew < this.o.renewDeadlineMs;
  }

  /** Starts campaigning; resolves when the election loop ends (after stop or lost leadership). */
  start(): Promise<void> {
    this.loop ??= this.run();
    return this.loop;
  }

  /** Stops campaigning; a leader releases the Lease first. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop?.catch(() => undefined);
    if (this.leading) {
      await this.release();
      this.setLeading(false, 'released');
    }
  }

  private async run(): Promise<void> {
    const { clock, retryPeriodMs, renewDeadlineMs } = this.o;
    const signal = this.abort.signal;
    // Acquire: try every retryPeriod (with jitter, as client-go) until we hold the Lease.
    while (!signal.aborted && !this.leading) {
      if (await this.tryAcquireOrRenew()) {
        this.setLeading(true);
        break;
      }
      await clock.sleep(retryPeriodMs * (1 + Math.random() * 0.2), signal);
    }
    // Renew: every retryPeriod; give up once renewDeadline passed since the last success.
    while (!signal.aborted && this.leading) {
      await clock.sleep(retryPeriodMs, signal);
      if (signal.aborted) break;
      const ok = await this.tryAcquireOrRenew();
      if (!ok && clock.now() - this.lastRenew >= renewDeadlineMs) {
        this.o.log.error('leader lease lost', { lease: this.o.leaseName, identity: this.o.identity, sinceRenewMs: clock.now() - this.lastRenew });
        this.setLeading(false, 'renew-failed');
        return;
      }
    }
  }

  private setLeading(on: boolean, reason?: 'renew-failed' | 'released' | 'stopped'): void {
    if (this.leading === on) return;
    this.leading = on;
    this.o.metrics?.leader.set({ lease: this.o.leaseName }, on ? 1 : 0);
    this.o.metrics?.leaderTransitions.inc({ lease: this.o.leaseName });
    if (on) {
      this.o.log.info('became leader', { lease: this.o.leaseName, identity: this.o.identity });
      this.o.onStartedLeading?.();
    } else {
      this.o.log.info('stopped leading', { lease: this.o.leaseName, identity: this.o.identity, reason });
      this.o.onStoppedLeading?.(reason ?? 'stopped');
    }
  }

  /** One attempt; true when we hold the Lease afterwards. Never throws. */
  private async tryAcquireOrRenew(): Promise<boolean> {
    const { store, clock, identity, leaseDurationMs } = this.o;
    const now = clock.now();
    const mine = (prev?: LeaseRecord): LeaseRecord => ({
      holderIdentity: identity,
      leaseDurationSeconds: Math.ceil(leaseDurationMs / 1000),
      acquireTime: prev && prev.holderIdentity === identity && prev.acquireTime ? prev.acquireTime : new Date(now),
      renewTime: new Date(now),
      leaseTransitions: prev ? (prev.holderIdentity === identity ? prev.leaseTransitions : prev.leaseTransitions + 1) : 0,
    });
    try {
      const cur = await store.get();
      if (!cur) {
        if (!(await store.create(mine()))) return false;
        this.lastRenew = now;
        this.observedAt = now;
        return true;
      }
      if (!this.observed || this.observed.version !== cur.version) {
        this.observed = cur;
        this.observedAt = now;
      }
      const holder = cur.record.holderIdentity;
      if (holder !== '' && holder !== identity && holder !== this.lastSeenHolder) {
        this.lastSeenHolder = holder;
        this.o.onNewLeader?.(holder);
      }
      const held = holder !== '' && holder !== identity
        && this.observedAt + cur.record.leaseDurationSeconds * 1000 > now;
      if (held) return false;
      if (!(await store.update(mine(cur.record), cur.version))) return false;
      this.lastRenew = now;
      return true;
    } catch (err) {
      this.o.log.error('lease update failed', { lease: this.o.leaseName, err });
      return false;
    }
  }

  private async release(): Promise<void> {
    try {
      const cur = await this.o.store.get();
      if (!cur || cur.record.holderIdentity !== this.o.identity) return;
      const now = new Date(this.o.clock.now());
      await this.o.store.update({ holderIdentity: '', leaseDurationSeconds: 1, acquireTime: now, renewTime: now, leaseTransitions: cur.record.leaseTransitions }, cur.version);
    } catch (err) {
      this.o.log.error('lease release failed', { lease: this.o.leaseName, err });
    }
  }
}

/**
 * A Lease's MicroTime: RFC 3339 with exactly six fractional digits
 * (2026-11-21T20:00:00.000000Z); the API server refuses other precisions.
 */
export function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

interface LeaseJSON {
  metadata?: { resourceVersion?: string };
  spec?: { holderIdentity?: string; leaseDurationSeconds?: number; acquireTime?: string | null; renewTime?: string | null; leaseTransitions?: number };
}

/** A LeaseStore on a coordination.k8s.io/v1 Lease, in plain JSON requests. */
export function kubeLeaseStore(kc: KubeSource, namespace: string, name: string): LeaseStore {
  const collection = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/leases`;
  const one = `${collection}/${encodeURIComponent(name)}`;
  const toBody = (r: LeaseRecord, version?: string): unknown => ({
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name, namespace, ...(version ? { resourceVersion: version } : {}), labels: { 'app.kubernetes.io/managed-by': 'portico' } },
    spec: {
      holderIdentity: r.holderIdentity,
      leaseDurationSeconds: r.leaseDurationSeconds,
      ...(r.acquireTime ? { acquireTime: microTime(r.acquireTime) } : {}),
      ...(r.renewTime ? { renewTime: microTime(r.renewTime) } : {}),
      leaseTransitions: r.leaseTransitions,
    },
  });
  const date = (d: string | null | undefined): Date | undefined => (d === undefined || d === null ? undefined : new Date(d));
  return {
    async get() {
      try {
        const l = await kubeRequest<LeaseJSON>(kc, 'GET', one);
        const s = l.spec ?? {};
        return {
          version: l.metadata?.resourceVersion ?? '',
          record: {
            holderIdentity: s.holderIdentity ?? '',
            leaseDurationSeconds: s.leaseDurationSeconds ?? 0,
            acquireTime: date(s.acquireTime),
            renewTime: date(s.renewTime),
            leaseTransitions: s.leaseTransitions ?? 0,
          },
        };
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
    async create(r) {
      try {
        await kubeRequest(kc, 'POST', collection, toBody(r));
        return true;
      } catch (err) {
        if (isConflict(err)) return false;
        throw err;
      }
    },
    async update(r, version) {
      try {
        await kubeRequest(kc, 'PUT', one, toBody(r, version));
        return true;
      } catch (err) {
        if (isConflict(err)) return false;
        throw err;
      }
    },
  };
}
