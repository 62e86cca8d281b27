// Watches this speaker's DaemonSet and namespace from start-up, so that on
// SIGTERM it can tell an uninstall from a restart (decide.ts). The watches
// matter more than the read at SIGTERM: an uninstall deletes the speaker's
// ServiceAccount and roles too, often before the pods stop, and from then on
// its requests are refused, while watches opened before go on delivering.
// RBAC: get/list/watch on the one DaemonSet and the one Namespace, by name.
import { Informer, httpStatus, kubeRequest, listJSON, type KubeSource, type Logger, type SharedMetrics } from '@portico/shared';
import { decideStop, fresher, objectState, type InstallFacts, type ObjectState, type StopDecision } from './decide.ts';

type Obj = { metadata?: { name?: string; namespace?: string; deletionTimestamp?: unknown } };

export interface InstallWatchOptions {
  kc: KubeSource;
  namespace: string;
  /** The DaemonSet this speaker runs in; '' checks nothing (every stop is a restart). */
  daemonSet: string;
  log: Logger;
  metrics?: SharedMetrics;
}

/** One object watched by name: its state, but 'gone' only once it was seen there (a wrong name is not an uninstall). */
class Watched {
  readonly informer: Informer<Obj>;
  readonly what: string;
  readonly name: string;
  private readonly kc: KubeSource;
  private readonly path: string;
  private seen = false;

  constructor(kc: KubeSource, what: string, path: string, name: string, opts: Pick<InstallWatchOptions, 'log' | 'metrics'>) {
    this.kc = kc;
    this.what = what;
    this.path = path;
    this.name = name;
    const fieldSelector = `metadata.name=${name}`;
    this.informer = new Informer<Obj>({
      kc, resource: what, path, fieldSelector, plain: true, log: opts.log, ...(opts.metrics ? { metrics: opts.metrics } : {}),
      list: listJSON(kc, `${path}?${new URLSearchParams({ fieldSelector })}`),
    });
    this.informer.on((type) => { if (type !== 'delete') this.seen = true; });
  }

  state(): ObjectState {
    if (!this.informer.hasSynced) return 'unknown';
    return this.guard(objectState(this.informer.get(this.name)));
  }

  /** A fresh GET, bounded by `timeoutMs`; 'unknown' when it fails or takes longer. */
  async read(timeoutMs: number): Promise<ObjectState> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<ObjectState>((resolve) => { timer = setTimeout(() => resolve('unknown'), timeoutMs); });
    const get = kubeRequest<Obj>(this.kc, 'GET', `${this.path}/${encodeURIComponent(this.name)}`).then(
      (o) => objectState(o),
      (err: unknown) => (httpStatus(err) === 404 ? 'gone' as const : 'unknown' as const),
    );
    try {
      return this.guard(await Promise.race([get, late]));
    } finally {
      clearTimeout(timer);
    }
  }

  private guard(s: ObjectState): ObjectState {
    if (s !== 'present' && s !== 'unknown') return this.seen ? s : 'unknown';
    if (s === 'present') this.seen = true;
    return s;
  }
}

export class InstallWatch {
  private readonly daemonSet: Watched | undefined;
  private readonly namespace: Watched | undefined;
  private readonly log: Logger;

  constructor(opts: InstallWatchOptions) {
    this.log = opts.log;
    if (!opts.daemonSet) return;
    const ns = encodeURIComponent(opts.namespace);
    this.daemonSet = new Watched(opts.kc, 'daemonsets', `/apis/apps/v1/namespaces/${ns}/daemonsets`, opts.daemonSet, opts);
    this.namespace = new Watched(opts.kc, 'namespaces', '/api/v1/namespaces', opts.namespace, opts);
  }

  /** Starts both watches; does not wait for them (a refused watch must not hold up the speaker's start). */
  start(): void {
    for (const w of [this.daemonSet, this.namespace]) {
      if (!w) continue;
      void w.informer.start().then(() => {
        if (w.state() === 'unknown') this.log.error('cannot check for an uninstall: not found; every stop is taken for a restart', { resource: w.what, name: w.name });
      });
    }
  }

  /** Resolves once both watches have listed (tests; the speaker never waits for it). */
  async synced(): Promise<void> {
    await Promise.all([this.daemonSet?.informer.synced(), this.namespace?.informer.synced()]);
  }

  /** What the watches know now. */
  facts(): InstallFacts {
    return { daemonSet: this.daemonSet?.state() ?? 'unknown', namespace: this.namespace?.state() ?? 'unknown' };
  }

  /**
   * The decision at SIGTERM: what the watches saw, refreshed by a GET of each
   * (at most `timeoutMs`) unless they already show an uninstall.
   */
  async decide(timeoutMs = 1500): Promise<StopDecision & InstallFacts> {
    if (!this.daemonSet || !this.namespace) return { reason: 'restart', cause: 'not-checked', daemonSet: 'unknown', namespace: 'unknown' };
    let facts = this.facts();
    if (decideStop(facts).reason !== 'leave') {
      const [d, n] = await Promise.all([this.daemonSet.read(timeoutMs), this.namespace.read(timeoutMs)]);
      facts = { daemonSet: fresher(facts.daemonSet, d), namespace: fresher(facts.namespace, n) };
    }
    return { ...decideStop(facts), ...facts };
  }

  async stop(): Promise<void> {
    await Promise.all([this.daemonSet?.informer.stop(), this.namespace?.informer.stop()]);
  }
}
