// ServiceBGPStatus objects: one per (node, Service) this node announces over
// BGP, naming the node, the Service, its announced IPs and the peers that get
// them, so `kubectl get servicebgpstatuses -n portico-system -l
// portico.dev/service-name=web` shows who announces what. The desired set is a
// pure function of the policy plan; the reconciler writes only differences and
// deletes what this node no longer announces (also what a previous run left).
import { createHash } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import { LABELS, API_VERSION, apiMessage, httpStatus, isConflict, isNotFound, nullLogger, type Logger } from '@portico/shared';
import { systemClock, type Clock } from './clock.ts';
import type { BgpPlan } from './policy.ts';

export const STATUS_KIND = 'ServiceBGPStatus';
export const STATUS_PLURAL = 'servicebgpstatuses';
export const MANAGED_BY = { key: LABELS.managedBy, value: 'portico-speaker' } as const;
export const LABEL_NODE = LABELS.statusNode;
export const LABEL_SERVICE_NAME = LABELS.statusServiceName;
export const LABEL_SERVICE_NAMESPACE = LABELS.statusServiceNamespace;

export interface ServiceBGPStatusBody {
  node: string;
  serviceName: string;
  serviceNamespace: string;
  /** Sorted. */
  ips: string[];
  /** BGPPeer names the IPs are announced to, sorted. */
  peers: string[];
}

export interface ServiceBGPStatus {
  name: string;
  labels: Record<string, string>;
  status: ServiceBGPStatusBody;
}

/** Label values are at most 63 characters; a longer node name is left out of the labels (status.node has it). */
const labelValue = (v: string): string | undefined => (v.length <= 63 ? v : undefined);

/** One object name per (node, Service): the node (for humans) and a hash of both (for uniqueness). */
export function statusName(node: string, serviceKey: string): string {
  const h = createHash('sha256').update(`${node}\n${serviceKey}`).digest('hex').slice(0, 10);
  return `${node.slice(0, 200).replace(/\.+$/, '')}-${h}`;
}

/** The ServiceBGPStatus objects this node should have for `plan`, by name. Pure. */
export function desiredStatuses(node: string, plan: BgpPlan | undefined): Map<string, ServiceBGPStatus> {
  const out = new Map<string, ServiceBGPStatus>();
  if (!plan) return out;
  for (const svc of plan.services) {
    const announced = svc.ips.filter((d) => d.announce);
    if (announced.length === 0) continue;
    const slash = svc.service.indexOf('/');
    const serviceNamespace = svc.service.slice(0, slash);
    const serviceName = svc.service.slice(slash + 1);
    const peers = new Set<string>();
    for (const d of announced) if (d.announce) for (const p of d.peers) peers.add(p);
    const labels: Record<string, string> = { [MANAGED_BY.key]: MANAGED_BY.value, [LABEL_SERVICE_NAME]: serviceName, [LABEL_SERVICE_NAMESPACE]: serviceNamespace };
    const n = labelValue(node);
    if (n !== undefined) labels[LABEL_NODE] = n;
    const name = statusName(node, svc.service);
    out.set(name, { name, labels, status: { node, serviceName, serviceNamespace, ips: announced.map((d) => d.ip).sort(), peers: [...peers].sort() } });
  }
  return out;
}

/** The API surface the reconciler needs; tests pass an in-memory one. */
export interface StatusStore {
  /** Every object this node's speaker manages (status.node === node). */
  list(node: string): Promise<ServiceBGPStatus[]>;
  create(o: ServiceBGPStatus): Promise<void>;
  /** Merge-patches labels and status. */
  update(o: ServiceBGPStatus): Promise<void>;
  /** Resolves when the object is gone (also when it was already). */
  delete(name: string): Promise<void>;
}

const same = (a: ServiceBGPStatus, b: ServiceBGPStatus): boolean => JSON.stringify([a.labels, a.status]) === JSON.stringify([b.labels, b.status]);

export interface StatusReconcilerOptions {
  node: string;
  store: StatusStore;
  log?: Logger;
  /** Delay before the first retry after a failed pass, ms; doubles per failure up to maxRetryMs. */
  retryMs?: number;
  maxRetryMs?: number;
  /** Runs the retry timer (tests pass a FakeClock). */
  clock?: Clock;
}

/**
 * Keeps the node's ServiceBGPStatus objects equal to the last desired set.
 * `set()` never waits for the API server: writes run one pass at a time, a
 * newer desired set replaces a pending one, and a failed pass is retried.
 */
export class StatusReconciler {
  readonly #o: Required<Pick<StatusReconcilerOptions, 'retryMs' | 'maxRetryMs'>> & StatusReconcilerOptions;
  readonly #log: Logger;
  /** What the API server holds, as far as this process knows; undefined until the first list. */
  #actual: Map<string, ServiceBGPStatus> | undefined;
  #desired = new Map<string, ServiceBGPStatus>();
  #running: Promise<void> | undefined;
  #dirty = false;
  #retry: unknown;
  readonly #clock: Clock;
  #stopped = false;
  #failures = 0;

  constructor(opts: StatusReconcilerOptions) {
    this.#o = { retryMs: 1000, maxRetryMs: 60_000, ...opts };
    this.#log = (opts.log ?? nullLogger).child({ component: 'bgp-status' });
    this.#clock = opts.clock ?? systemClock;
  }

  set(desired: Map<string, ServiceBGPStatus>): void {
    if (this.#stopped) return;
    this.#desired = desired;
    this.#dirty = true;
    // After a failure, the retry timer writes the newest set; no extra API calls before then.
    if (this.#retry === undefined) this.#kick();
  }

  /** Resolves once the last desired set is written (or a pass failed). */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  /** Stops writing; the objects stay (a restarted speaker takes them over). */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#clock.clearTimeout(this.#retry);
    this.#retry = undefined;
    await this.idle();
  }

  #kick(): void {
    if (this.#running || this.#stopped) return;
    this.#running = (async () => {
      try {
        while (this.#dirty && !this.#stopped) {
          this.#dirty = false;
          await this.#pass();
        }
        this.#failures = 0;
      } catch (err) {
        this.#dirty = true;
        // 404 on the list: the ServiceBGPStatus CRD is not installed; 403: RBAC does not allow it. Neither heals soon.
        const absent = this.#actual === undefined && (httpStatus(err) === 404 || httpStatus(err) === 403);
        const delayMs = absent ? this.#o.maxRetryMs : Math.min(this.#o.maxRetryMs, this.#o.retryMs * 2 ** this.#failures);
        if (!absent || this.#failures === 0) this.#log.error('bgp status not written', { err: apiMessage(err), code: httpStatus(err) ?? null, retryInMs: delayMs });
        this.#failures++;
        this.#actual = undefined; // re-list on the retry: the failure may have left anything behind
        this.#clock.clearTimeout(this.#retry);
        this.#retry = this.#clock.setTimeout(() => { this.#retry = undefined; this.#kick(); }, delayMs);
      } finally {
        this.#running = undefined;
      }
    })();
  }

  async #pass(): Promise<void> {
    const actual = this.#actual ?? new Map((await this.#o.store.list(this.#o.node)).map((o) => [o.name, o]));
    this.#actual = actual;
    const desired = this.#desired;
    for (const [name, want] of desired) {
      const have = actual.get(name);
      if (have && same(have, want)) continue;
      if (have) {
        try { await this.#o.store.update(want); } catch (err) {
          if (!isNotFound(err)) throw err;
          await this.#o.store.create(want);
        }
      } else {
        try { await this.#o.store.create(want); } catch (err) {
          if (!isConflict(err)) throw err;
          await this.#o.store.update(want);
        }
      }
      actual.set(name, want);
    }
    for (const name of [...actual.keys()]) {
      if (desired.has(name)) continue;
      await this.#o.store.delete(name);
      actual.delete(name);
    }
  }
}

interface RawStatus { metadata?: { name?: string; labels?: Record<string, string> }; status?: Partial<ServiceBGPStatusBody> }

const mergePatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);

/** A StatusStore over the API server, objects in `namespace`. */
export function kubernetesStatusStore(kc: k8s.KubeConfig, namespace: string): StatusStore {
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  const [group, version] = API_VERSION.split('/') as [string, string];
  const base = { group, version, namespace, plural: STATUS_PLURAL };
  const body = (o: ServiceBGPStatus): object => ({ apiVersion: API_VERSION, kind: STATUS_KIND, metadata: { name: o.name, namespace, labels: o.labels }, status: o.status });
  return {
    async list(node) {
      const r = await custom.listNamespacedCustomObject({ ...base, labelSelector: `${MANAGED_BY.key}=${MANAGED_BY.value}` }) as { items?: RawStatus[] };
      return (r.items ?? []).filter((i) => i.status?.node === node && i.metadata?.name).map((i) => ({
        name: i.metadata!.name!, labels: i.metadata?.labels ?? {},
        status: { node, serviceName: i.status?.serviceName ?? '', serviceNamespace: i.status?.serviceNamespace ?? '', ips: i.status?.ips ?? [], peers: i.status?.peers ?? [] },
      }));
    },
    async create(o) { await custom.createNamespacedCustomObject({ ...base, body: body(o) }); },
    async update(o) { await custom.patchNamespacedCustomObject({ ...base, name: o.name, body: { metadata: { labels: o.labels }, status: o.status } }, mergePatch); },
    async delete(name) {
      try { await custom.deleteNamespacedCustomObject({ ...base, name }); } catch (err) { if (!isNotFound(err)) throw err; }
    },
  };
}
