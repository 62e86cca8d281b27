// Writes that go through the API server on behalf of the leader: status
// subresources (merge patches), annotations and Events. Every write first asks
// `canWrite()`, so a process that lost its Lease writes nothing.
import * as k8s from '@kubernetes/client-node';
import type { Logger } from '../log.ts';
import { nullLogger } from '../log.ts';
import { GROUP, VERSION } from '../api/types.ts';
import { PorticoError } from '../errors.ts';

const mergePatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);

export interface EventTarget {
  apiVersion: string;
  kind: string;
  name: string;
  namespace: string;
  uid?: string;
}

export interface StatusWriterOptions {
  kc: k8s.KubeConfig;
  component: string;
  canWrite?: () => boolean;
  log?: Logger;
  now?: () => number;
  /** The same Event for the same object is not repeated within this window. */
  eventDedupMs?: number;
}

export class StatusWriter {
  private readonly core: k8s.CoreV1Api;
  private readonly custom: k8s.CustomObjectsApi;
  private readonly o: Required<Omit<StatusWriterOptions, 'kc'>>;
  private readonly recentEvents = new Map<string, number>();

  constructor(opts: StatusWriterOptions) {
    this.core = opts.kc.makeApiClient(k8s.CoreV1Api);
    this.custom = opts.kc.makeApiClient(k8s.CustomObjectsApi);
    this.o = { canWrite: () => true, log: nullLogger, now: () => Date.now(), eventDedupMs: 600_000, ...opts };
  }

  private gate(): void {
    if (!this.o.canWrite()) throw new PorticoError('PORTICO_NOT_LEADER', 'not the leader: refusing to write');
  }

  /** Merge-patches a Service's status subresource. */
  async patchServiceStatus(namespace: string, name: string, status: k8s.V1ServiceStatus): Promise<k8s.V1Service> {
    this.gate();
    return this.core.patchNamespacedServiceStatus({ name, namespace, body: { status } }, mergePatch);
  }

  /** Sets (string) or removes (null) annotations of a Service. */
  async patchServiceAnnotations(namespace: string, name: string, annotations: Record<string, string | null>): Promise<void> {
    this.gate();
    await this.core.patchNamespacedService({ name, namespace, body: { metadata: { annotations } } }, mergePatch);
  }

  /** Merge-patches the status of a portico.dev object. */
  async patchCustomStatus(plural: string, namespace: string, name: string, status: unknown): Promise<void> {
    this.gate();
    await this.custom.patchNamespacedCustomObjectStatus({ group: GROUP, version: VERSION, namespace, plural, name, body: { status } }, mergePatch);
  }

  /** Records an Event on an object; identical Events within the dedup window are dropped. */
  async event(target: EventTarget, type: 'Normal' | 'Warning', reason: string, message: string): Promise<boolean> {
    this.gate();
    const key = `${target.kind}/${target.namespace}/${target.name}/${target.uid ?? ''}/${reason}/${message}`;
    const now = this.o.now();
    const last = this.recentEvents.get(key);
    if (last !== undefined && now - last < this.o.eventDedupMs) return false;
    this.recentEvents.set(key, now);
    if (this.recentEvents.size > 10_000) {
      for (const [k, t] of this.recentEvents) if (now - t >= this.o.eventDedupMs) this.recentEvents.delete(k);
    }
    const ts = new Date(now);
    try {
      await this.core.createNamespacedEvent({
        namespace: target.namespace,
        body: {
          metadata: { generateName: `${target.name}.`, namespace: target.namespace },
          involvedObject: { apiVersion: target.apiVersion, kind: target.kind, name: target.name, namespace: target.namespace, ...(target.uid ? { uid: target.uid } : {}) },
          type, reason, message: message.slice(0, 1024),
          source: { component: this.o.component },
          reportingComponent: this.o.component,
          reportingInstance: this.o.component,
          firstTimestamp: ts, lastTimestamp: ts, count: 1,
        },
      });
    } catch (err) {
      this.recentEvents.delete(key);
      this.o.log.error('event not recorded', { kind: target.kind, namespace: target.namespace, name: target.name, reason, err });
      return false;
    }
    return true;
  }
}
