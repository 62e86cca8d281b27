// The level-based Service reconciler: current object (or null when deleted)
// -> allocation -> desired status and annotation -> write only the difference.
// It returns an outcome the work queue acts on, and a reason saying why.
import { ANNOTATIONS, classifyService, formatIP, handlesExternalIPs, isNotFound, isPorticoError, tryParseIP, type IP, type Logger, nullLogger } from '@portico/shared';
import type { Allocator } from './allocator.ts';
import { judgeExternalIPs, parseRecorded, type ExternalIPDecision } from './external-ips.ts';
import { ignoredRequests, recordedPool, serviceKey, statusIPs, toRequest, type ServiceObject } from './service.ts';

export type Outcome = 'success' | 'retry' | 'give-up' | 'reprocess-all';

export type Reason =
  | 'deleted' | 'not-ours' | 'allocated' | 'unchanged' | 'released' | 'allocation-failed' | 'bad-request' | 'write-failed' | 'gone';

export interface Result {
  readonly outcome: Outcome;
  /** Why, for the LoadBalancer allocation. */
  readonly reason: Reason;
  readonly message?: string;
  /** One decision per spec.externalIP, when this Portico handles the Service's externalIPs. */
  readonly externalIPs?: readonly ExternalIPDecision[];
}

export type EventReason = 'IPAllocated' | 'AllocationFailed' | 'IPReleased' | 'ExternalIPAccepted' | 'ExternalIPIgnored' | 'RequestIgnored';

export interface IngressEntry { ip: string; ipMode: 'VIP' }

/** Where the reconciler's writes go: the API server in production, a map in tests. */
export interface ServiceSink {
  /** Writes the ingress, and with it (one request) the annotations given. */
  setIngress(namespace: string, name: string, ingress: IngressEntry[], annotations?: Record<string, string | null>): Promise<void>;
  setAnnotations(namespace: string, name: string, annotations: Record<string, string | null>): Promise<void>;
  event(svc: ServiceObject, type: 'Normal' | 'Warning', reason: EventReason, message: string): Promise<void>;
}

export interface ReconcilerDeps {
  allocator: Allocator;
  sink: ServiceSink;
  /** The loadBalancerClass Portico answers to (undefined: Services without a class). */
  loadBalancerClass: string | undefined;
  namespaceLabels: (namespace: string) => Readonly<Record<string, string>>;
  log?: Logger;
  onAllocated?: (pool: string) => void;
  onFailed?: (code: string) => void;
}

const sameIngress = (svc: ServiceObject, want: IngressEntry[]): boolean => {
  const cur = svc.status?.loadBalancer?.ingress ?? [];
  return cur.length === want.length && cur.every((c, i) => c.ip === want[i]!.ip && c.ipMode === want[i]!.ipMode && !c.hostname);
};

export class ServiceReconciler {
  private readonly d: ReconcilerDeps;
  private readonly log: Logger;

  constructor(deps: ReconcilerDeps) {
    this.d = deps;
    this.log = deps.log ?? nullLogger;
  }

  /**
   * Records the IPs Services already have, before any change is handled, so a
   * restart never moves or duplicates an IP. Services are taken oldest first,
   * so if two claim one IP the older keeps it. LoadBalancer IPs (status) come
   * first, then the externalIPs each Service's annotation records.
   */
  rebuild(services: readonly ServiceObject[]): { kept: number; conflicts: string[]; externalKept: number; externalDropped: string[] } {
    const ordered = [...services].sort((a, b) => {
      const ta = a.metadata?.creationTimestamp ?? '';
      const tb = b.metadata?.creationTimestamp ?? '';
      if (ta !== tb) return ta < tb ? -1 : 1;
      const ka = `${a.metadata?.namespace}/${a.metadata?.name}`;
      const kb = `${b.metadata?.namespace}/${b.metadata?.name}`;
      return ka < kb ? -1 : ka > kb ? 1 : 0;
    });
    let kept = 0;
    const conflicts: string[] = [];
    for (const svc of ordered) {
      if (!classifyService(svc, this.d.loadBalancerClass).mine) continue;
      const ips = statusIPs(svc);
      if (ips.length === 0) continue;
      let req;
      try { req = toRequest(svc, this.d.namespaceLabels(svc.metadata?.namespace ?? '')); } catch { continue; }
      const r = this.d.allocator.assign(req, ips);
      if (r.ok) kept++;
      else conflicts.push(`${req.key}: ${r.message}`);
    }
    // Then the externalIPs recorded on each Service, after every LoadBalancer IP:
    // an allocated address is never given up for an externalIP.
    let externalKept = 0;
    const externalDropped: string[] = [];
    for (const svc of ordered) {
      const recorded = parseRecorded(svc.metadata?.annotations?.[ANNOTATIONS.externalIPs]);
      if (recorded.length === 0 || !handlesExternalIPs(svc, this.d.loadBalancerClass)) continue;
      // Only what the Service still lists, re-judged against the current pools and holders.
      const listed = new Set((svc.spec?.externalIPs ?? []).map((s) => { const ip = tryParseIP(s.trim()); return ip ? formatIP(ip) : s; }));
      const decisions = this.judge(svc, recorded.map(formatIP).filter((ip) => listed.has(ip)));
      const { reserved } = this.d.allocator.setExternalIPs(serviceKey(svc), decisions.flatMap((d) => (d.reason === 'accepted' && d.parsed ? [d.parsed] : [])));
      externalKept += reserved.length;
      for (const ip of recorded) if (!reserved.some((r) => formatIP(r) === formatIP(ip))) externalDropped.push(`${serviceKey(svc)}: ${formatIP(ip)}`);
    }
    this.log.info('allocations rebuilt from Service status', { kept, conflicts: conflicts.length, externalIPs: externalKept, externalIPsDropped: externalDropped.length });
    return { kept, conflicts, externalKept, externalDropped };
  }

  async reconcile(key: string, svc: ServiceObject | null): Promise<Result> {
    if (!svc) {
      const freedLB = this.d.allocator.release(key);
      const freedExt = this.d.allocator.releaseExternalIPs(key);
      return { outcome: freedLB || freedExt ? 'reprocess-all' : 'success', reason: 'deleted' };
    }
    const lb = await this.reconcileLoadBalancer(key, svc);
    const ext = await this.reconcileExternalIPs(key, svc);
    // A failed write wins (retry), then a release others may be waiting for.
    const outcome: Outcome = lb.outcome === 'retry' || ext.outcome === 'retry' ? 'retry'
      : lb.outcome === 'reprocess-all' || ext.outcome === 'reprocess-all' ? 'reprocess-all'
        : lb.outcome;
    return { ...lb, outcome, ...(ext.decisions ? { externalIPs: ext.decisions } : {}), ...(ext.outcome === 'retry' && lb.outcome !== 'retry' ? { message: ext.message } : {}) };
  }

  private judge(svc: ServiceObject, ips: readonly string[]): ExternalIPDecision[] {
    const ns = svc.metadata?.namespace ?? '';
    return judgeExternalIPs(
      { key: serviceKey(svc), namespace: ns, labels: svc.metadata?.labels ?? {}, namespaceLabels: this.d.namespaceLabels(ns) },
      ips, this.d.allocator.poolList(), (ip) => this.d.allocator.holderOf(ip),
    );
  }

  /**
   * spec.externalIPs: record the accepted ones in the portico.dev/external-ips
   * annotation (what the speakers announce), reserve them in the allocator, and
   * say with a Warning Event why each other one is ignored.
   */
  private async reconcileExternalIPs(key: string, svc: ServiceObject): Promise<{ outcome: Outcome; decisions?: ExternalIPDecision[]; message?: string }> {
    const { allocator, sink } = this.d;
    const ns = svc.metadata?.namespace ?? '';
    const name = svc.metadata?.name ?? '';
    const recorded = svc.metadata?.annotations?.[ANNOTATIONS.externalIPs];
    if (!handlesExternalIPs(svc, this.d.loadBalancerClass)) {
      // Another Portico instance may own the annotation now: remove it only if we held something for this Service.
      const freed = allocator.releaseExternalIPs(key);
      if (freed && recorded !== undefined) {
        try { await sink.setAnnotations(ns, name, { [ANNOTATIONS.externalIPs]: null }); } catch (err) { return { outcome: 'retry', message: this.writeFailed(key, err).message }; }
      }
      return { outcome: freed ? 'reprocess-all' : 'success' };
    }
    const decisions = this.judge(svc, svc.spec?.externalIPs ?? []);
    const accepted = decisions.flatMap((d) => (d.reason === 'accepted' && d.parsed ? [d.parsed] : []));
    const { reserved, freed } = allocator.setExternalIPs(key, accepted);
    const want = reserved.map(formatIP).join(',');
    const before = new Set(parseRecorded(recorded).map(formatIP));
    try {
      if (want !== (recorded ?? '')) {
        await sink.setAnnotations(ns, name, { [ANNOTATIONS.externalIPs]: want === '' ? null : want });
        const added = reserved.map(formatIP).filter((ip) => !before.has(ip));
        if (added.length > 0) {
          await sink.event(svc, 'Normal', 'ExternalIPAccepted', `externalIPs ${added.join(', ')} recorded for the speakers to announce`);
          this.log.info('external ip accepted', { service: key, ips: added });
        }
      }
      for (const d of decisions) {
        if (d.reason === 'accepted') continue;
        await sink.event(svc, 'Warning', 'ExternalIPIgnored', `externalIP ${d.ip} ignored (${d.reason}): ${d.message}`);
      }
    } catch (err) {
      return { outcome: 'retry', decisions, message: this.writeFailed(key, err).message };
    }
    return { outcome: freed ? 'reprocess-all' : 'success', decisions };
  }

  private async reconcileLoadBalancer(key: string, svc: ServiceObject): Promise<Result> {
    const { allocator, sink } = this.d;
    const ns = svc.metadata?.namespace ?? '';
    const name = svc.metadata?.name ?? '';
    const ourPool = svc.metadata?.annotations?.[ANNOTATIONS.allocatedFromPool];
    const cls = classifyService(svc, this.d.loadBalancerClass);
    if (!cls.mine) {
      const freed = allocator.release(key);
      try {
        // Only undo what Portico wrote: another class's status belongs to its controller.
        if (ourPool !== undefined) {
          const unpool = { [ANNOTATIONS.allocatedFromPool]: null };
          if (cls.why === 'not-load-balancer' && (svc.status?.loadBalancer?.ingress?.length ?? 0) > 0) await sink.setIngress(ns, name, [], unpool);
          else await sink.setAnnotations(ns, name, unpool);
          await sink.event(svc, 'Normal', 'IPReleased', `released: the Service is ${cls.why === 'other-class' ? 'of another loadBalancerClass' : 'no longer type LoadBalancer'}`);
        }
      } catch (err) {
        return this.writeFailed(key, err);
      }
      return { outcome: freed ? 'reprocess-all' : 'success', reason: 'not-ours' };
    }

    let req;
    try {
      req = toRequest(svc, this.d.namespaceLabels(ns));
    } catch (err) {
      const message = isPorticoError(err) ? err.message : String(err);
      const freed = allocator.release(key);
      return this.fail(svc, key, 'PORTICO_INVALID_ADDRESS', `bad IP request: ${message}`, freed, 'bad-request');
    }
    if (!allocator.get(key)) {
      // Not held (a new Service, or one whose rebuild did not fit): keep what
      // status says when it is still valid and an allocator wrote it (Portico,
      // or MetalLB before a migration).
      const current = statusIPs(svc);
      if (current.length > 0 && recordedPool(svc) !== undefined) allocator.assign(req, current);
    }
    const heldBefore = allocator.get(key) !== undefined;
    const r = allocator.allocate(req);
    if (!r.ok) return this.fail(svc, key, r.code, r.message, heldBefore, 'allocation-failed');

    const ingress = r.ips.map((ip: IP) => ({ ip: formatIP(ip), ipMode: 'VIP' as const }));
    const changedIngress = !sameIngress(svc, ingress);
    const changedPool = ourPool !== r.pool;
    // A sharing key changed on an IP held alone: a pending Service may share it now.
    const unchanged: Outcome = r.sharingChanged === true ? 'reprocess-all' : 'success';
    if (!changedIngress && !changedPool) return { outcome: unchanged, reason: 'unchanged' };
    try {
      // IP and pool in one write, so a speaker that sees the IP already knows which advertisements apply to it.
      // Should an API server drop the annotation from a status write, the next pass sees the pool missing and writes it alone.
      if (changedIngress) await sink.setIngress(ns, name, ingress, changedPool ? { [ANNOTATIONS.allocatedFromPool]: r.pool } : undefined);
      else await sink.setAnnotations(ns, name, { [ANNOTATIONS.allocatedFromPool]: r.pool });
      if (changedIngress) {
        this.d.onAllocated?.(r.pool);
        await sink.event(svc, 'Normal', 'IPAllocated', `assigned ${ingress.map((i) => i.ip).join(', ')} from pool ${r.pool}`);
        await this.warnIgnored(svc);
        this.log.info('ip allocated', { service: key, ips: ingress.map((i) => i.ip), pool: r.pool });
      }
    } catch (err) {
      return this.writeFailed(key, err);
    }
    return { outcome: unchanged, reason: 'allocated' };
  }

  /** A Warning for each part of the request that lost to another (sent with the allocation or failure it explains). */
  private async warnIgnored(svc: ServiceObject): Promise<void> {
    for (const m of ignoredRequests(svc)) await this.d.sink.event(svc, 'Warning', 'RequestIgnored', m);
  }

  /** The Service gets no IP: clear what it shows, say why, and wait for something to change. */
  private async fail(svc: ServiceObject, key: string, code: string, message: string, freed: boolean, reason: Reason): Promise<Result> {
    const ns = svc.metadata?.namespace ?? '';
    const name = svc.metadata?.name ?? '';
    this.d.onFailed?.(code);
    this.log.info('allocation failed', { service: key, code, message });
    try {
      if (svc.metadata?.annotations?.[ANNOTATIONS.allocatedFromPool] !== undefined) {
        const unpool = { [ANNOTATIONS.allocatedFromPool]: null };
        if ((svc.status?.loadBalancer?.ingress?.length ?? 0) > 0) await this.d.sink.setIngress(ns, name, [], unpool);
        else await this.d.sink.setAnnotations(ns, name, unpool);
      }
      await this.d.sink.event(svc, 'Warning', 'AllocationFailed', `${code}: ${message}`);
      await this.warnIgnored(svc);
    } catch (err) {
      return this.writeFailed(key, err);
    }
    return { outcome: freed ? 'reprocess-all' : 'give-up', reason, message: `${code}: ${message}` };
  }

  private writeFailed(key: string, err: unknown): Result {
    if (isNotFound(err)) {
      // Deleted while we wrote to it: a normal race; its delete event comes next and frees what it held.
      this.log.debug('service gone before its write', { service: key });
      return { outcome: 'success', reason: 'gone' };
    }
    this.log.error('service write failed', { service: key, err });
    return { outcome: 'retry', reason: 'write-failed', message: err instanceof Error ? err.message : String(err) };
  }
}
