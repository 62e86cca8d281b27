// An informer that keeps going: @kubernetes/client-node's informer stops for
// good on an error, so this one restarts it with exponential backoff. Objects
// are normalised at the edge: the initial list yields model instances (Date
// fields, class prototypes) while watch events yield plain JSON; callers only
// ever see plain JSON.
import * as k8s from '@kubernetes/client-node';
import type { Logger } from '../log.ts';
import { nullLogger } from '../log.ts';
import type { SharedMetrics } from '../metrics.ts';

export type EventType = 'add' | 'update' | 'delete';

export interface InformerOptions {
  kc: k8s.KubeConfig;
  /** Watch path, e.g. /api/v1/services or /apis/portico.dev/v1beta1/namespaces/portico-system/ipaddresspools. */
  path: string;
  list: () => Promise<{ items: unknown[]; metadata?: { resourceVersion?: string } }>;
  /** Short name for logs and metrics (`services`). */
  resource: string;
  labelSelector?: string;
  log?: Logger;
  metrics?: SharedMetrics;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /**
   * `list` already yields plain JSON (listJSON in rest.ts), as watch events
   * do: objects are handed out as cached, without a copy or a check.
   * Callers must then treat them as read-only.
   */
  plain?: boolean;
  /**
   * Removes, in place, what the caller never reads (managedFields, unused
   * spec fields), before an object enters the cache: with thousands of
   * objects this is most of the informer's memory. Must keep metadata.name,
   * namespace and resourceVersion.
   */
  trim?: (obj: Record<string, unknown>) => void;
}

/** Plain JSON of a Kubernetes object, whatever the client handed us. */
export function toPlain<T = Record<string, unknown>>(obj: unknown): T {
  if (obj === null || typeof obj !== 'object') return obj as T;
  const proto = Object.getPrototypeOf(obj) as unknown;
  if (proto === Object.prototype && !containsNonPlain(obj)) return obj as T;
  return JSON.parse(JSON.stringify(obj)) as T;
}

function containsNonPlain(v: unknown, depth = 0): boolean {
  if (v === null || typeof v !== 'object') return false;
  if (depth > 0 && Object.getPrototypeOf(v) !== Object.prototype && !Array.isArray(v)) return true;
  if (depth > 6) return false;
  for (const x of Object.values(v)) if (containsNonPlain(x, depth + 1)) return true;
  return false;
}

export interface ObjectMetaLike { metadata?: { name?: string; namespace?: string } }

export class Informer<T extends ObjectMetaLike = ObjectMetaLike> {
  private readonly o: Required<Omit<InformerOptions, 'labelSelector' | 'metrics' | 'plain' | 'trim'>> & InformerOptions;
  private readonly inner: k8s.Informer<k8s.KubernetesObject> & k8s.ObjectCache<k8s.KubernetesObject>;
  private readonly handlers: ((type: EventType, obj: T) => void)[] = [];
  private backoffMs: number;
  private stopped = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private syncedOnce = false;
  private syncWaiters: (() => void)[] = [];
  private errorInStart = false;

  constructor(opts: InformerOptions) {
    this.o = { log: nullLogger, initialBackoffMs: 500, maxBackoffMs: 30_000, ...opts };
    this.backoffMs = this.o.initialBackoffMs;
    const trim = opts.trim;
    const list = trim
      ? async () => {
        const r = await opts.list();
        for (const o of r.items) if (o && typeof o === 'object') trim(o as Record<string, unknown>);
        return r;
      }
      : opts.list;
    this.inner = k8s.makeInformer(opts.kc, opts.path, list as k8s.ListPromise<k8s.KubernetesObject>, opts.labelSelector);
    // Watch events reach the cache before these handlers run, as the same object: trimming it here trims the cached copy.
    for (const type of ['add', 'update', 'delete'] as const) {
      this.inner.on(type, (obj) => {
        if (trim) trim(obj as unknown as Record<string, unknown>);
        const plain = this.out(obj);
        this.o.metrics?.informerEvents.inc({ resource: this.o.resource, type });
        for (const h of this.handlers) h(type, plain);
      });
    }
    this.inner.on('error', (err) => {
      this.errorInStart = true;
      this.o.log.error('informer failed', { resource: this.o.resource, err: err as unknown, retryInMs: this.backoffMs });
      this.scheduleRestart();
    });
    this.inner.on('connect', () => {
      this.backoffMs = this.o.initialBackoffMs;
    });
  }

  on(handler: (type: EventType, obj: T) => void): void {
    this.handlers.push(handler);
  }

  /** Starts watching; resolves once the first list has been delivered. */
  async start(): Promise<void> {
    this.stopped = false;
    void this.attempt();
    await this.synced();
  }

  synced(): Promise<void> {
    if (this.syncedOnce) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  get hasSynced(): boolean {
    return this.syncedOnce;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    await this.inner.stop().catch(() => undefined);
  }

  /** Every cached object, as plain JSON. */
  list(namespace?: string): T[] {
    return this.inner.list(namespace).map((o) => this.out(o));
  }

  get(name: string, namespace?: string): T | undefined {
    const o = this.inner.get(name, namespace);
    return o === undefined ? undefined : this.out(o);
  }

  private out(o: unknown): T {
    return this.o.plain ? o as T : toPlain<T>(o);
  }

  private async attempt(): Promise<void> {
    if (this.stopped) return;
    this.errorInStart = false;
    try {
      await this.inner.start();
    } catch (err) {
      this.o.log.error('informer failed to start', { resource: this.o.resource, err, retryInMs: this.backoffMs });
      this.scheduleRestart();
      return;
    }
    if (!this.errorInStart && !this.syncedOnce) {
      this.syncedOnce = true;
      this.o.log.debug('informer synced', { resource: this.o.resource, objects: this.inner.list().length });
      for (const w of this.syncWaiters.splice(0)) w();
    }
  }

  private scheduleRestart(): void {
    if (this.stopped || this.restartTimer) return;
    this.o.metrics?.informerRestarts.inc({ resource: this.o.resource });
    const delay = this.backoffMs * (0.8 + Math.random() * 0.4);
    this.backoffMs = Math.min(this.backoffMs * 2, this.o.maxBackoffMs);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      void this.attempt();
    }, delay);
  }
}
