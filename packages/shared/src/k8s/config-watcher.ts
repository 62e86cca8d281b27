// Watches everything Portico's configuration is made of (the portico.dev
// objects and the legacy ConfigMap in one namespace) and builds a Config from
// the caches on demand. The controller and the speaker both read config this way.
import { GROUP, KINDS, LEGACY_CONFIGMAP, PLURALS, VERSION, type PorticoKind } from '../api/types.ts';
import { buildConfig, type BuildResult } from '../config/build.ts';
import type { Logger } from '../log.ts';
import type { SharedMetrics } from '../metrics.ts';
import type { KubeSource } from './connection.ts';
import { Informer } from './informer.ts';
import { listJSON } from './rest.ts';

type Raw = { metadata?: { name?: string; namespace?: string; uid?: string; generation?: number; labels?: Record<string, string> }; status?: { conditions?: unknown[] }; data?: Record<string, string> };

export interface ConfigWatcherOptions {
  kc: KubeSource;
  namespace: string;
  log?: Logger;
  metrics?: SharedMetrics;
}

export class ConfigWatcher {
  readonly configMaps: Informer<Raw>;
  readonly crds = new Map<PorticoKind, Informer<Raw>>();
  private readonly namespace: string;

  constructor(opts: ConfigWatcherOptions) {
    const ns = opts.namespace;
    this.namespace = ns;
    const common = { kc: opts.kc, ...(opts.log ? { log: opts.log } : {}), ...(opts.metrics ? { metrics: opts.metrics } : {}) };
    const configMaps = `/api/v1/namespaces/${ns}/configmaps`;
    this.configMaps = new Informer({ ...common, resource: 'configmaps', path: configMaps, list: listJSON(opts.kc, configMaps) });
    for (const kind of KINDS) {
      const plural = PLURALS[kind];
      const p = `/apis/${GROUP}/${VERSION}/namespaces/${ns}/${plural}`;
      this.crds.set(kind, new Informer({ ...common, resource: plural, path: p, list: listJSON(opts.kc, p) }));
    }
  }

  private all(): Informer<Raw>[] {
    return [this.configMaps, ...this.crds.values()];
  }

  /** Calls `handler` on any change to a config object. */
  on(handler: () => void): void {
    this.configMaps.on((_t, cm) => { if (cm.metadata?.name === LEGACY_CONFIGMAP.name) handler(); });
    for (const inf of this.crds.values()) inf.on(() => handler());
  }

  async start(): Promise<void> {
    await Promise.all(this.all().map((i) => i.start()));
  }

  async stop(): Promise<void> {
    await Promise.all(this.all().map((i) => i.stop()));
  }

  get hasSynced(): boolean {
    return this.all().every((i) => i.hasSynced);
  }

  /** The objects of one kind in the cache. */
  list(kind: PorticoKind): Raw[] {
    return this.crds.get(kind)!.list();
  }

  /**
   * What users wrote: specs, labels and the ConfigMap text, not the status
   * Portico writes. Equal signatures mean an equal configuration, so a change
   * that only touched status can be ignored.
   */
  signature(): string {
    const parts: unknown[] = [];
    for (const [kind, inf] of this.crds) {
      for (const o of inf.list()) parts.push([kind, o.metadata?.name, o.metadata?.labels, (o as { spec?: unknown }).spec]);
    }
    parts.push(this.configMaps.get(LEGACY_CONFIGMAP.name, this.namespace)?.data?.[LEGACY_CONFIGMAP.key] ?? null);
    return JSON.stringify(parts);
  }

  /** Builds the configuration from what the caches hold now. */
  build(): BuildResult {
    const list = (k: PorticoKind): unknown[] => this.list(k);
    const cm = this.configMaps.get(LEGACY_CONFIGMAP.name, this.namespace);
    return buildConfig({
      pools: list('IPAddressPool'), l2Advertisements: list('L2Advertisement'), bgpAdvertisements: list('BGPAdvertisement'),
      peers: list('BGPPeer'), communities: list('Community'), bfdProfiles: list('BFDProfile'), legacy: cm?.data?.[LEGACY_CONFIGMAP.key],
    });
  }
}
