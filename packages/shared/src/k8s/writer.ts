// Writes that go through the API server on behalf of the leader: status
// subresources (merge patches), annotations and Events. Every write first asks
// `canWrite()`, so a process that lost its Lease writes nothing. Requests go
// out as plain JSON (rest.ts): no model (de)serialisation on these hot paths.
import type * as k8s from '@kubernetes/client-node';
import type { Logger } from '../log.ts';
import { nullLogger } from '../log.ts';
import { GROUP, VERSION } from '../api/types.ts';
import { PorticoError } from '../errors.ts';
import type { KubeSource } from './connection.ts';
import { MERGE_PATCH, kubeRequest } from './rest.ts';

const seg = encodeURIComponent;

export interface EventTarget {
  apiVersion: string;
  kind: string;
  name: string;
  namespace: string;
  uid?: string;
}

export interface StatusWriterOptions {
  kc: KubeSource;
  component: string;
  canWrite?: () => boolean;
  log?: Logger;
  now?: () => number;
  /** The same Event for the same object is not repeated within this window. */
  eventDedupMs?: number;
}

export class StatusWriter {
  private readonly kc: KubeSource;
  private readonly o: Required<Omit<StatusWriterOptions, 'kc'>>;
  private readonly recentEvents = new Map<string, number>();

  constructor(opts: StatusWriterOptions) {
    this.kc = opts.kc;
    this.o = { canWrite: () => true, log: nullLogger, now: () => Date.now(), eventDedupMs: 600_000, ...opts };
  }

  private gate(): void {
    if (!this.o.canWrite()) throw new PorticoError('PORTICO_NOT_LEADER', 'not the leader: refusing to write');
  }

  /**
   * Merge-patches a Service's status subresource; annotations given here ride
   * in the same request (the Service status strategy keeps metadata changes),
   * so an allocation is one write instead of two.
   */
  async patchServiceStatus(namespace: string, name: string, status: k8s.V1ServiceStatus, annotations?: Record<string, string | null>): Promise<k8s.V1Service> {
    this.gate();
    const body = annotations === undefined ? { status } : { metadata: { annotations }, status };
    return kubeRequest<k8s.V1Service>(this.kc, 'PATCH', `/api/v1/namespaces/${seg(namespace)}/services/${seg(name)}/status`, body, MERGE_PATCH);
  }

  /** Sets (string) or removes (null) annotations of a Service. */
  async patchServiceAnnotations(namespace: string, name: string, annotations: Record<string, string | null>): Promise<void> {
    this.gate();
    await kubeRequest(this.kc, 'PATCH', `/api/v1/namespaces/${seg(namespace)}/services/${seg(name)}`, { metadata: { annotations } }, MERGE_PATCH);
  }

  /** Merge-patches the status of a portico.dev object. */
  async patchCustomStatus(plural: string, namespace: string, name: string, status: unknown): Promise<void> {
    this.gate();
    await kubeRequest(this.kc, 'PATCH', `/apis/${GROUP}/${VERSION}/namespaces/${seg(namespace)}/${seg(plural)}/${seg(name)}/status`, { status }, MERGE_PATCH);
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
      await kubeRequest(this.kc, 'POST', `/api/v1/namespaces/${seg(target.namespace)}/events`, {
        apiVersion: 'v1', kind: 'Event',
        metadata: { generateName: `${target.name}.`, namespace: target.namespace },
        involvedObject: { apiVersion: target.apiVersion, kind: target.kind, name: target.name, namespace: target.namespace, ...(target.uid ? { uid: target.uid } : {}) },
        type, reason, message: message.slice(0, 1024),
        source: { component: this.o.component },
        reportingComponent: this.o.component,
        reportingInstance: this.o.component,
        firstTimestamp: ts.toISOString(), lastTimestamp: ts.toISOString(), count: 1,
      });
    } catch (err) {
      this.recentEvents.delete(key);
      this.o.log.error('event not recorded', { kind: target.kind, namespace: target.namespace, name: target.name, reason, err });
      return false;
    }
    return true;
  }
}
