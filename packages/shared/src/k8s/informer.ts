// An informer that keeps going: list, then watch from the list's
// resourceVersion, over the KubeConnection of `kc` (connection.ts). A watch
// that ends is resumed from the last resourceVersion seen (bookmarks
// included); 410 Gone lists again, and the difference from the cache is handed
// out as add/update/delete; any other error (a failed list, a refused or cut
// stream) restarts the loop after an exponential backoff. Callers only ever
// see plain JSON: a `list` that yields model instances (client-node's
// generated clients, in the speaker) is normalised at the edge.
import type { Logger } from '../log.ts';
import { nullLogger } from '../log.ts';
import type { SharedMetrics } from '../metrics.ts';
import { kubeConnection, type KubeConnection, type KubeSource, type WatchEvent } from './connection.ts';
import { httpStatus } from './errors.ts';

export type EventType = 'add' | 'update' | 'delete';

export interface InformerOptions {
  kc: KubeSource;
  /** Watch path, e.g. /api/v1/services or /apis/portico.dev/v1beta1/namespaces/portico-system/ipaddresspools. */
  path: string;
  list: () => Promise<{ items: unknown[]; metadata?: { resourceVersion?: string } }>;
  /** Short name for logs and metrics (`services`). */
  resource: string;
  labelSelector?: string;
  /** For the watch; `list` must apply the same (e.g. `metadata.name=x`, which RBAC resourceNames can then allow). */
  fieldSelector?: string;
  log?: Logger;
  metrics?: SharedMetrics;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /**
   * The server ends each watch after this many seconds (the informer then
   * resumes it); default a random 300-600 s, so many informers do not
   * reconnect at once. The stream is also cut when nothing arrived for this
   * long plus 30 s (a connection that died without a word).
   */
  watchTimeoutSeconds?: number;
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

type Obj = Record<string, unknown> & { metadata?: { name?: string; namespace?: string; resourceVersion?: string } };

const meta = (o: Obj): { name: string; namespace: string; resourceVersion: string | undefined } => ({
  name: o.metadata?.name ?? '', namespace: o.metadata?.namespace ?? '', resourceVersion: o.metadata?.resourceVersion,
});

/** A watch that ends sooner than this without an event is not resumed at once (a server refusing quietly). */
const QUICK_END_MS = 1_000;

export class Informer<T extends ObjectMetaLike = ObjectMetaLike> {
  private readonly o: Required<Omit<InformerOptions, 'labelSelector' | 'fieldSelector' | 'metrics' | 'plain' | 'trim' | 'watchTimeoutSeconds'>> & InformerOptions;
  private readonly conn: KubeConnection;
  /** namespace ('' when cluster-scoped) -> name -> object, in arrival order. */
  private readonly cache = new Map<string, Map<string, Obj>>();
  private readonly handlers: ((type: EventType, obj: T) => void)[] = [];
  /** Where the next watch starts; undefined: list first. */
  private resourceVersion: string | undefined;
  private backoffMs: number;
  private abort: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private syncedOnce = false;
  private syncWaiters: (() => void)[] = [];

  constructor(opts: InformerOptions) {
    this.o = { log: nullLogger, initialBackoffMs: 500, maxBackoffMs: 30_000, ...opts };
    this.conn = kubeConnection(opts.kc);
    this.backoffMs = this.o.initialBackoffMs;
  }

  on(handler: (type: EventType, obj: T) => void): void {
    this.handlers.push(handler);
  }

  /** Starts watching; resolves once the first list has been delivered. */
  async start(): Promise<void> {
    if (!this.loop) {
      const abort = new AbortController();
      this.abort = abort;
      this.loop = this.run(abort.signal);
    }
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
    this.abort?.abort();
    await this.loop;
    this.loop = undefined;
  }

  /** Every cached object (of one namespace), as plain JSON. */
  list(namespace?: string): T[] {
    const out: T[] = [];
    const add = (m: Map<string, Obj> | undefined): void => { if (m) for (const o of m.values()) out.push(this.out(o)); };
    if (namespace !== undefined) add(this.cache.get(namespace));
    else for (const m of this.cache.values()) add(m);
    return out;
  }

  /** One cached object; without `namespace`, the first of that name in any namespace. */
  get(name: string, namespace?: string): T | undefined {
    if (namespace !== undefined) {
      const o = this.cache.get(namespace)?.get(name);
      return o === undefined ? undefined : this.out(o);
    }
    for (const m of this.cache.values()) {
      const o = m.get(name);
      if (o !== undefined) return this.out(o);
    }
    return undefined;
  }

  private out(o: unknown): T {
    return this.o.plain ? o as T : toPlain<T>(o);
  }

  private async run(signal: AbortSignal): Promise<void> {
    let eventsSinceList = 0;
    while (!signal.aborted) {
      let events = 0;
      const began = Date.now();
      try {
        if (this.resourceVersion === undefined) {
          await this.relist();
          eventsSinceList = 0;
        }
        if (signal.aborted) break;
        const timeout = this.o.watchTimeoutSeconds ?? Math.round(300 + Math.random() * 300);
        await this.conn.watch(this.o.path, (e) => {
          events++;
          eventsSinceList++;
          this.apply(e);
        }, {
          signal,
          query: {
            allowWatchBookmarks: 'true', timeoutSeconds: String(timeout),
            ...(this.resourceVersion ? { resourceVersion: this.resourceVersion } : {}),
            ...(this.o.labelSelector ? { labelSelector: this.o.labelSelector } : {}),
            ...(this.o.fieldSelector ? { fieldSelector: this.o.fieldSelector } : {}),
          },
          idleTimeoutMs: (timeout + 30) * 1000,
          onConnect: () => { this.backoffMs = this.o.initialBackoffMs; },
        });
        // Ended: resume from the last resourceVersion; at once, unless the server ended it before anything happened.
        if (events === 0 && Date.now() - began < QUICK_END_MS) await this.pause(signal);
      } catch (err) {
        if (signal.aborted) break;
        if (httpStatus(err) === 410 && eventsSinceList > 0) {
          // The resourceVersion is too old for the server (compacted): list again, no error.
          this.o.log.debug('watch expired, listing again', { resource: this.o.resource });
          this.resourceVersion = undefined;
          continue;
        }
        // Even a 410 right after a list (nothing seen since) waits, so a confused server is not hammered.
        if (httpStatus(err) === 410) this.resourceVersion = undefined;
        this.o.log.error('informer failed', { resource: this.o.resource, err, retryInMs: Math.round(this.backoffMs) });
        this.o.metrics?.informerRestarts.inc({ resource: this.o.resource });
        await this.pause(signal);
      }
    }
  }

  /** Waits the current backoff (with jitter) and doubles it. */
  private pause(signal: AbortSignal): Promise<void> {
    const delay = this.backoffMs * (0.8 + Math.random() * 0.4);
    this.backoffMs = Math.min(this.backoffMs * 2, this.o.maxBackoffMs);
    return new Promise((resolve) => {
      if (signal.aborted) { resolve(); return; }
      const done = (): void => { clearTimeout(t); resolve(); };
      const t = setTimeout(() => { signal.removeEventListener('abort', done); resolve(); }, delay);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  /** Lists, and hands out the difference from the cache: deletes for what is gone, adds and updates for the rest. */
  private async relist(): Promise<void> {
    const r = await this.o.list();
    const items: Obj[] = [];
    for (const raw of r.items) {
      if (!raw || typeof raw !== 'object') continue;
      // Model instances (Date fields, class prototypes) become plain JSON once, here, as watch events already are.
      const o = (this.o.plain ? raw : toPlain(raw)) as Obj;
      this.o.trim?.(o);
      items.push(o);
    }
    const seen = new Set<string>();
    for (const o of items) { const m = meta(o); seen.add(`${m.namespace}/${m.name}`); }
    for (const [ns, byName] of this.cache) {
      for (const [name, o] of byName) {
        if (seen.has(`${ns}/${name}`)) continue;
        byName.delete(name);
        this.emit('delete', o);
      }
      if (byName.size === 0) this.cache.delete(ns);
    }
    for (const o of items) this.put(o);
    this.resourceVersion = r.metadata?.resourceVersion ?? '';
    if (!this.syncedOnce) {
      this.syncedOnce = true;
      this.o.log.debug('informer synced', { resource: this.o.resource, objects: items.length });
      for (const w of this.syncWaiters.splice(0)) w();
    }
  }

  private apply(e: WatchEvent): void {
    const o = e.object as Obj;
    if (e.type !== 'BOOKMARK') {
      this.o.trim?.(o);
      if (e.type === 'DELETED') {
        const m = meta(o);
        const byName = this.cache.get(m.namespace);
        byName?.delete(m.name);
        if (byName?.size === 0) this.cache.delete(m.namespace);
        this.emit('delete', o);
      } else {
        this.put(o);
      }
    }
    const rv = meta(o).resourceVersion;
    if (rv) this.resourceVersion = rv;
  }

  /** Caches `o`: an add when new, an update when its resourceVersion changed, nothing when it did not. */
  private put(o: Obj): void {
    const m = meta(o);
    let byName = this.cache.get(m.namespace);
    if (!byName) this.cache.set(m.namespace, (byName = new Map()));
    const prev = byName.get(m.name);
    byName.set(m.name, o);
    if (prev === undefined) this.emit('add', o);
    else if (meta(prev).resourceVersion !== m.resourceVersion || m.resourceVersion === undefined) this.emit('update', o);
  }

  private emit(type: EventType, o: Obj): void {
    this.o.metrics?.informerEvents.inc({ resource: this.o.resource, type });
    if (this.handlers.length === 0) return;
    const plain = this.out(o);
    for (const h of this.handlers) h(type, plain);
  }
}
