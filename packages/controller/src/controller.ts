// The controller process: informers feed a work queue of Service keys; the
// leader builds the configuration, rebuilds allocations from Service status,
// then reconciles. Config problems keep the last good configuration in force
// and are reported on the objects (conditions + Events) and as a metric.
import {
  API_VERSION, ConfigWatcher, Informer, PLURALS, StatusWriter, TokenBucket, createSharedMetrics, listJSON,
  isConflict, isNotFound, type KubeSource, type Config, type SharedMetrics, type ConfigProblem, type Logger, type Registry,
} from '@portico/shared';
import { Allocator } from './allocator.ts';
import { Written, objectKey, validCondition } from './conditions.ts';
import { createControllerMetrics, type ControllerMetrics } from './metrics.ts';
import { ServiceReconciler, type IngressEntry, type ServiceSink } from './reconciler.ts';
import { trimNamespace, trimService, type ServiceObject } from './service.ts';

export interface ControllerOptions {
  kc: KubeSource;
  namespace: string;
  loadBalancerClass: string | undefined;
  log: Logger;
  registry: Registry;
  /** Informer metrics, shared with the rest of the process (created once per registry). */
  sharedMetrics?: SharedMetrics;
  /** Leadership check before every write. */
  canWrite: () => boolean;
  resyncMs?: number;
  /** Reconciles in flight at once (their API writes overlap). */
  workers?: number;
  /**
   * Normal Events (IPAllocated, IPReleased, ExternalIPAccepted) are limited
   * to `eventBurst` at once, refilled at `eventsPerSecond`: under a burst of
   * thousands of new Services the Events would cost the API server as much as
   * the allocations themselves. The ones left out are counted (metric
   * portico_controller_events_suppressed_total) and summed up in one log
   * line. Warnings are never limited; eventsPerSecond 0 is no limit.
   */
  eventBurst?: number;
  eventsPerSecond?: number;
}

const SAT = Number.MAX_SAFE_INTEGER;
const sat = (n: bigint): number => (n > BigInt(SAT) ? SAT : Number(n));

type Raw = { metadata?: { name?: string; namespace?: string; uid?: string; generation?: number; labels?: Record<string, string> }; status?: { conditions?: unknown[] }; data?: Record<string, string> };

export class Controller {
  private readonly o: Required<Omit<ControllerOptions, 'sharedMetrics'>>;
  private readonly log: Logger;
  private readonly metrics: ControllerMetrics;
  private readonly writer: StatusWriter;
  private readonly services: Informer<ServiceObject & Raw>;
  private readonly namespaces: Informer<Raw>;
  private readonly configWatcher: ConfigWatcher;
  private readonly allocator = new Allocator();
  private readonly reconciler: ServiceReconciler;
  private config: Config | undefined;
  private problems: readonly ConfigProblem[] = [];
  private readonly queue = new Set<string>();
  private readonly retries = new Map<string, number>();
  private running = false;
  private draining = false;
  private configTimer: NodeJS.Timeout | undefined;
  private statusTimer: NodeJS.Timeout | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  /** What was last written per object and generation (a re-created object is written again). */
  private readonly lastPoolStatus = new Written();
  private readonly lastConditions = new Written();
  private synced = false;

  constructor(opts: ControllerOptions) {
    this.o = { resyncMs: 300_000, workers: 16, eventBurst: 100, eventsPerSecond: 10, ...opts };
    this.normalEvents = new TokenBucket(this.o.eventBurst, this.o.eventsPerSecond);
    this.log = opts.log.child({ component: 'controller' });
    this.metrics = createControllerMetrics(opts.registry);
    const shared = opts.sharedMetrics ?? createSharedMetrics(opts.registry);
    this.writer = new StatusWriter({ kc: opts.kc, component: 'portico-controller', canWrite: opts.canWrite, log: this.log });
    // Plain JSON lists, and only the fields the controller reads kept in the caches.
    const common = { kc: opts.kc, log: this.log, metrics: shared, plain: true };
    this.services = new Informer({ ...common, resource: 'services', path: '/api/v1/services', list: listJSON(opts.kc, '/api/v1/services', { trim: trimService }), trim: trimService });
    this.namespaces = new Informer({ ...common, resource: 'namespaces', path: '/api/v1/namespaces', list: listJSON(opts.kc, '/api/v1/namespaces', { trim: trimNamespace }), trim: trimNamespace });
    this.configWatcher = new ConfigWatcher({ kc: opts.kc, namespace: opts.namespace, log: this.log, metrics: shared });
    this.reconciler = new ServiceReconciler({
      allocator: this.allocator,
      sink: this.sink(),
      loadBalancerClass: opts.loadBalancerClass,
      namespaceLabels: (name) => this.namespaces.get(name)?.metadata?.labels ?? {},
      log: this.log,
      onAllocated: (pool) => this.metrics.allocations.inc({ pool }),
      onFailed: (code) => this.metrics.failures.inc({ code }),
    });

    this.services.on((type, svc) => {
      const key = `${svc.metadata?.namespace}/${svc.metadata?.name}`;
      this.enqueue(type === 'delete' ? `${key}` : key);
    });
    this.namespaces.on(() => this.enqueueAll());
    this.configWatcher.on(() => this.configChanged());
  }

  /** Starts every informer; resolves when all caches have synced. Standbys keep warm caches. */
  async startInformers(): Promise<void> {
    await Promise.all([this.services.start(), this.namespaces.start(), this.configWatcher.start()]);
    this.synced = true;
    this.log.info('caches synced', { services: this.services.list().length });
  }

  ready(): boolean {
    return this.synced;
  }

  /** Called when this process becomes leader: load config, rebuild, then reconcile. */
  lead(): void {
    this.running = true;
    this.applyConfig();
    if (this.config) this.rebuildAndRun();
    this.resyncTimer = setInterval(() => this.enqueueAll(), this.o.resyncMs);
  }

  /** Stops processing (leadership lost or shutdown). */
  async stop(): Promise<void> {
    this.running = false;
    for (const t of [this.configTimer, this.statusTimer, this.suppressedTimer]) if (t) clearTimeout(t);
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    await Promise.all([this.services.stop(), this.namespaces.stop(), this.configWatcher.stop()]);
  }

  private rebuilt = false;

  private rebuildAndRun(): void {
    if (!this.rebuilt) {
      this.reconciler.rebuild(this.services.list());
      this.rebuilt = true;
    }
    this.enqueueAll();
  }

  private sink(): ServiceSink {
    const w = (): StatusWriter => this.writer;
    return {
      setIngress: async (namespace: string, name: string, ingress: IngressEntry[], annotations?: Record<string, string | null>) => {
        await w().patchServiceStatus(namespace, name, { loadBalancer: { ingress } }, annotations);
      },
      setAnnotations: (namespace, name, annotations) => w().patchServiceAnnotations(namespace, name, annotations),
      event: async (svc, type, reason, message) => {
        if (type === 'Normal' && !this.normalEvents.take()) {
          this.eventSuppressed(reason);
          return;
        }
        await w().event({ apiVersion: 'v1', kind: 'Service', name: svc.metadata?.name ?? '', namespace: svc.metadata?.namespace ?? '', uid: svc.metadata?.uid }, type, reason, message);
      },
    };
  }

  private readonly normalEvents: TokenBucket;
  private suppressed = 0;
  private suppressedTimer: NodeJS.Timeout | undefined;

  /** Counts a Normal Event left out by the limit; one log line sums up each burst. */
  private eventSuppressed(reason: string): void {
    this.metrics.eventsSuppressed.inc({ reason });
    this.suppressed++;
    this.suppressedTimer ??= setTimeout(() => {
      this.suppressedTimer = undefined;
      this.log.info('normal events left out under a burst (the Services\' status and annotations carry the same facts)', { count: this.suppressed, limitPerSecond: this.o.eventsPerSecond });
      this.suppressed = 0;
    }, 5_000);
  }

  private configChanged(): void {
    if (!this.running) return;
    if (this.configTimer) clearTimeout(this.configTimer);
    this.configTimer = setTimeout(() => {
      this.configTimer = undefined;
      // Our own status writes come back as watch events: only a change of what users wrote counts.
      const sig = this.configSignature();
      if (sig === this.appliedSignature) {
        // The same configuration, but maybe not the same objects: one deleted and
        // created again under its name, or a new generation with an equal spec,
        // needs its own current Valid condition.
        void this.reportConditions();
        return;
      }
      const had = this.config !== undefined;
      if (this.applyConfig() || !had) {
        if (this.config) this.rebuildAndRun();
      }
    }, 100);
  }

  private appliedSignature = '';

  private configSignature(): string {
    return this.configWatcher.signature();
  }

  /** Builds the config from the caches; applies it when it has no problems. True when applied. */
  private applyConfig(): boolean {
    this.appliedSignature = this.configSignature();
    const { config, problems } = this.configWatcher.build();
    const all = [...problems];
    if (problems.length === 0) {
      for (const s of this.allocator.stranded(config.pools)) {
        all.push({ kind: 'IPAddressPool', name: this.allocator.get(s.services[0]!)?.pool ?? '', field: 'spec.addresses', code: 'StrandsIPs', message: `${s.ip} is in use by ${s.services.join(', ')} and would be in no pool` });
      }
    }
    this.problems = all;
    this.metrics.configProblems.set(all.length);
    if (all.length > 0) {
      this.metrics.configStale.set(1);
      this.log.error('configuration refused; the last good one stays in force', { problems: all.map((p) => `${p.kind}/${p.name} ${p.code}: ${p.message}`), haveLastGood: this.config !== undefined });
    } else {
      this.metrics.configStale.set(0);
      this.config = config;
      this.allocator.setPools(config.pools);
      this.log.info('configuration applied', { pools: config.pools.length });
    }
    void this.reportConditions();
    this.schedulePoolStatus();
    return all.length === 0;
  }

  /** A Valid condition on every portico.dev object, and a Warning Event for each problem. */
  private async reportConditions(): Promise<void> {
    if (!this.o.canWrite()) return;
    const now = new Date().toISOString();
    const present = new Set<string>();
    for (const [kind, inf] of this.configWatcher.crds) {
      for (const obj of inf.list()) {
        const name = obj.metadata?.name ?? '';
        const key = objectKey(kind, obj);
        present.add(key);
        const { condition: cond, mine } = validCondition(kind, name, this.problems);
        if (!this.lastConditions.claim(key, cond)) continue;
        try {
          if (kind !== 'IPAddressPool') await this.writer.patchCustomStatus(PLURALS[kind], this.o.namespace, name, { conditions: [{ ...cond, lastTransitionTime: now, observedGeneration: obj.metadata?.generation }] });
          for (const p of mine) {
            await this.writer.event({ apiVersion: API_VERSION, kind, name, namespace: this.o.namespace, uid: obj.metadata?.uid }, 'Warning', `Config${p.code}`, p.message);
          }
        } catch (err) {
          this.lastConditions.forget(key);
          if (!isNotFound(err) && !isConflict(err)) this.log.error('condition not written', { kind, name, err });
        }
      }
    }
    this.lastConditions.prune(present);
    await this.reportWithoutObject();
    this.schedulePoolStatus();
  }

  private readonly reportedElsewhere = new Set<string>();

  /**
   * Problems with no portico.dev object to hold a condition: a pool deleted
   * while its IPs are in use (the refused removal) and the legacy ConfigMap.
   * Each gets a Warning Event once for as long as it lasts.
   */
  private async reportWithoutObject(): Promise<void> {
    const current = new Set<string>();
    for (const p of this.problems) {
      let target: { apiVersion: string; kind: string; name: string; namespace: string };
      if (p.kind === 'ConfigMap') {
        target = { apiVersion: 'v1', kind: 'ConfigMap', name: p.name.split('/').at(-1)!, namespace: this.o.namespace };
      } else {
        if (this.configWatcher.list(p.kind).some((o) => o.metadata?.name === p.name)) continue;
        target = { apiVersion: API_VERSION, kind: p.kind, name: p.name, namespace: this.o.namespace };
      }
      const key = `${p.kind}/${p.name}/${p.code}/${p.message}`;
      current.add(key);
      if (this.reportedElsewhere.has(key)) continue;
      try {
        await this.writer.event(target, 'Warning', `Config${p.code}`, p.message);
        this.reportedElsewhere.add(key);
      } catch (err) {
        this.log.error('config problem event not written', { kind: p.kind, name: p.name, err });
      }
    }
    for (const k of this.reportedElsewhere) if (!current.has(k)) this.reportedElsewhere.delete(k);
  }

  private schedulePoolStatus(): void {
    if (this.statusTimer || !this.running) return;
    this.statusTimer = setTimeout(() => {
      this.statusTimer = undefined;
      void this.writePoolStatus();
    }, 500);
  }

  /** Assigned/available per family and the Valid condition on each IPAddressPool; written only when changed. */
  private async writePoolStatus(): Promise<void> {
    for (const name of this.allocator.poolNames()) {
      const u = this.allocator.usage(name)!;
      for (const f of ['IPv4', 'IPv6'] as const) {
        this.metrics.poolSize.set({ pool: name, family: f }, sat(u[f].total));
        this.metrics.poolUsed.set({ pool: name, family: f }, sat(u[f].assigned));
      }
    }
    if (!this.o.canWrite()) return;
    const present = new Set<string>();
    for (const obj of this.configWatcher.list('IPAddressPool')) {
      const name = obj.metadata?.name ?? '';
      const key = objectKey('IPAddressPool', obj);
      present.add(key);
      const u = this.config?.pools.some((p) => p.name === name && p.source === 'crd') ? this.allocator.usage(name) : undefined;
      const mine = this.problems.filter((p) => p.kind === 'IPAddressPool' && p.name === name);
      const status = {
        assignedIPv4: sat(u?.IPv4.assigned ?? 0n), assignedIPv6: sat(u?.IPv6.assigned ?? 0n),
        availableIPv4: sat(u?.IPv4.available ?? 0n), availableIPv6: sat(u?.IPv6.available ?? 0n),
        conditions: [mine.length === 0
          ? { type: 'Valid', status: u ? 'True' : 'False', reason: u ? 'Valid' : 'NotApplied', message: u ? 'pool in use' : 'the configuration has problems elsewhere; this pool is not applied yet' }
          : { type: 'Valid', status: 'False', reason: mine[0]!.code, message: mine.map((p) => p.message).join('; ').slice(0, 1000) }],
      };
      if (!this.lastPoolStatus.claim(key, status)) continue;
      try {
        const now = new Date().toISOString();
        await this.writer.patchCustomStatus('ipaddresspools', this.o.namespace, name, { ...status, conditions: status.conditions.map((c) => ({ ...c, lastTransitionTime: now, observedGeneration: obj.metadata?.generation })) });
        for (const p of mine) await this.writer.event({ apiVersion: API_VERSION, kind: 'IPAddressPool', name, namespace: this.o.namespace, uid: obj.metadata?.uid }, 'Warning', `Config${p.code}`, p.message);
      } catch (err) {
        this.lastPoolStatus.forget(key);
        if (!isNotFound(err)) this.log.error('pool status not written', { pool: name, err });
      }
    }
    this.lastPoolStatus.prune(present);
  }

  private enqueue(key: string): void {
    this.queue.add(key);
    if (this.running && this.config) void this.drain();
  }

  private enqueueAll(): void {
    for (const s of this.services.list()) this.queue.add(`${s.metadata?.namespace}/${s.metadata?.name}`);
    if (this.running && this.config) void this.drain();
  }

  /**
   * Runs up to `workers` reconciles at once: allocation decisions are
   * synchronous, so only the API writes overlap; one key is never in flight twice.
   */
  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      await Promise.all(Array.from({ length: this.o.workers }, () => this.worker()));
    } finally {
      this.draining = false;
    }
    if (this.running && this.queue.size > 0 && [...this.queue].some((k) => !this.inFlight.has(k))) void this.drain();
  }

  private readonly inFlight = new Set<string>();

  private nextKey(): string | undefined {
    for (const k of this.queue) if (!this.inFlight.has(k)) return k;
    return undefined;
  }

  private async worker(): Promise<void> {
    for (;;) {
      if (!this.running) return;
      const key = this.nextKey();
      if (key === undefined) return;
      this.queue.delete(key);
      this.inFlight.add(key);
      try {
        await this.process(key);
      } finally {
        this.inFlight.delete(key);
      }
    }
  }

  private async process(key: string): Promise<void> {
    const [ns, name] = key.split('/') as [string, string];
    const svc = this.services.get(name, ns) ?? null;
    const r = await this.reconciler.reconcile(key, svc);
    this.metrics.reconciles.inc({ outcome: r.outcome });
    switch (r.outcome) {
      case 'success':
      case 'give-up':
        this.retries.delete(key);
        break;
      case 'retry': {
        // Retried even when the write was refused for a renewal running late
        // (canWrite() false for a moment, the Lease still ours): nothing else
        // would bring the key back before the next resync. A leader that truly
        // lost its Lease stops (running false) and the next one lists anew.
        if (!this.running) break;
        const n = (this.retries.get(key) ?? 0) + 1;
        this.retries.set(key, n);
        setTimeout(() => this.enqueue(key), Math.min(100 * 2 ** n, 30_000));
        break;
      }
      case 'reprocess-all':
        this.retries.delete(key);
        // A pool change refused for stranding IPs may go through now that IPs were freed.
        if (this.problems.some((p) => p.code === 'StrandsIPs')) {
          this.appliedSignature = '';
          this.configChanged();
        }
        for (const s of this.services.list()) {
          const k = `${s.metadata?.namespace}/${s.metadata?.name}`;
          // Services without IPs, and Services with externalIPs not (all) accepted: one may be free now.
          const wantsExternal = (s.spec?.externalIPs?.length ?? 0) > this.allocator.externalIPs(k).length;
          if (!this.allocator.get(k) || wantsExternal) this.queue.add(k);
        }
        break;
    }
    this.schedulePoolStatus();
  }
}
