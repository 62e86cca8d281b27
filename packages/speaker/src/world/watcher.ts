// Builds World snapshots from informers: Services, EndpointSlices, Nodes and
// the configuration. Work is incremental per Service (a slice index keeps the
// cost of one change independent of the number of Services); snapshots are
// coalesced over a short window and handed to one callback.
import * as k8s from '@kubernetes/client-node';
import { ConfigWatcher, Informer, LABELS, type Config, type Logger, type SharedMetrics } from '@portico/shared';
import { nodeState, serviceState, type EndpointSliceObject, type NodeObject, type ServiceObject } from './from-k8s.ts';
import type { NodeState, ServiceState, World } from './types.ts';

export interface WorldWatcherOptions {
  kc: k8s.KubeConfig;
  /** Namespace of Portico's configuration. */
  namespace: string;
  self: string;
  loadBalancerClass: string | undefined;
  log: Logger;
  metrics?: SharedMetrics;
  onChange: (world: World) => void;
  /** Coalescing window for bursts of events (ms). */
  debounceMs?: number;
  /** Called when a new configuration is refused (the last good one stays). */
  onConfigProblems?: (problems: readonly string[]) => void;
}

export class WorldWatcher {
  private readonly o: WorldWatcherOptions;
  private readonly services: Informer<ServiceObject & { metadata?: { name?: string; namespace?: string } }>;
  private readonly slices: Informer<EndpointSliceObject>;
  private readonly nodes: Informer<NodeObject>;
  private readonly configWatcher: ConfigWatcher;
  private readonly slicesByService = new Map<string, Map<string, EndpointSliceObject>>();
  private readonly serviceStates = new Map<string, ServiceState>();
  private readonly nodeStates = new Map<string, NodeState>();
  private dirty = new Set<string>();
  private config: Config | undefined;
  private stale = false;
  private configSignature = '';
  private timer: NodeJS.Timeout | undefined;
  private started = false;
  private last: World;

  constructor(opts: WorldWatcherOptions) {
    this.o = opts;
    const core = opts.kc.makeApiClient(k8s.CoreV1Api);
    const discovery = opts.kc.makeApiClient(k8s.DiscoveryV1Api);
    const common = { kc: opts.kc, log: opts.log, ...(opts.metrics ? { metrics: opts.metrics } : {}) };
    this.services = new Informer({ ...common, resource: 'services', path: '/api/v1/services', list: () => core.listServiceForAllNamespaces() });
    this.slices = new Informer({ ...common, resource: 'endpointslices', path: '/apis/discovery.k8s.io/v1/endpointslices', list: () => discovery.listEndpointSliceForAllNamespaces() });
    this.nodes = new Informer({ ...common, resource: 'nodes', path: '/api/v1/nodes', list: () => core.listNode() });
    this.configWatcher = new ConfigWatcher(common.metrics ? { kc: opts.kc, namespace: opts.namespace, log: opts.log, metrics: common.metrics } : { kc: opts.kc, namespace: opts.namespace, log: opts.log });
    this.last = { self: opts.self, config: undefined, services: new Map(), nodes: new Map(), generation: 0 };

    this.services.on((_t, svc) => this.touch(`${svc.metadata?.namespace}/${svc.metadata?.name}`));
    this.slices.on((type, slice) => {
      const owner = slice.metadata?.labels?.[LABELS.serviceName];
      if (!owner) return;
      const key = `${slice.metadata?.namespace}/${owner}`;
      let byName = this.slicesByService.get(key);
      if (type === 'delete') {
        byName?.delete(slice.metadata?.name ?? '');
        if (byName?.size === 0) this.slicesByService.delete(key);
      } else {
        if (!byName) this.slicesByService.set(key, (byName = new Map()));
        byName.set(slice.metadata?.name ?? '', slice);
      }
      this.touch(key);
    });
    this.nodes.on((type, node) => {
      const name = node.metadata?.name ?? '';
      if (type === 'delete') this.nodeStates.delete(name);
      else this.nodeStates.set(name, nodeState(node));
      this.schedule();
    });
    this.configWatcher.on(() => {
      // The controller's status writes change the objects but not the configuration.
      if (!this.started || this.configWatcher.signature() === this.configSignature) return;
      this.loadConfig();
      this.schedule();
    });
  }

  /** Starts the informers; resolves with the first complete World once every cache has synced. */
  async start(): Promise<World> {
    await Promise.all([this.services.start(), this.slices.start(), this.nodes.start(), this.configWatcher.start()]);
    this.started = true;
    this.loadConfig();
    for (const svc of this.services.list()) this.dirty.add(`${svc.metadata?.namespace}/${svc.metadata?.name}`);
    this.flush();
    return this.last;
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.started = false;
    await Promise.all([this.services.stop(), this.slices.stop(), this.nodes.stop(), this.configWatcher.stop()]);
  }

  get synced(): boolean {
    return this.started;
  }

  /** True while the newest configuration is refused and the last good one is in force. */
  get configStale(): boolean {
    return this.stale;
  }

  current(): World {
    return this.last;
  }

  private touch(key: string): void {
    this.dirty.add(key);
    this.schedule();
  }

  private schedule(): void {
    if (!this.started || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, this.o.debounceMs ?? 10);
  }

  private loadConfig(): void {
    this.configSignature = this.configWatcher.signature();
    const { config, problems } = this.configWatcher.build();
    this.stale = problems.length > 0;
    if (problems.length === 0) {
      this.config = config;
      return;
    }
    const text = problems.map((p) => `${p.kind}/${p.name} ${p.code}: ${p.message}`);
    this.o.log.error('configuration refused; the last good one stays in force', { problems: text, haveLastGood: this.config !== undefined });
    this.o.onConfigProblems?.(text);
  }

  private flush(): void {
    const changed = this.dirty;
    this.dirty = new Set();
    for (const key of changed) {
      const slash = key.indexOf('/');
      const svc = this.services.get(key.slice(slash + 1), key.slice(0, slash));
      const state = svc ? serviceState(svc, [...(this.slicesByService.get(key)?.values() ?? [])], this.o.loadBalancerClass) : undefined;
      if (state) this.serviceStates.set(key, state);
      else this.serviceStates.delete(key);
    }
    const from = this.last.generation ?? 0;
    this.last = {
      self: this.o.self, config: this.config, services: new Map(this.serviceStates), nodes: new Map(this.nodeStates),
      generation: from + 1, changed: { from, services: changed },
    };
    this.o.onChange(this.last);
  }
}
