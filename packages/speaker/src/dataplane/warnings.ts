// Tells a Service's owner, once, what the dataplane could not do as asked
// (an unknown scheduler, a port another Service holds): a Warning Event on
// the Service and a log line. A warning that goes away and comes back is told again.
import type { Logger } from '@portico/shared';
import type { World } from '../world/types.ts';
import type { DesiredWarning, WarningReason } from './desired.ts';

export interface EventTarget { apiVersion: string; kind: string; name: string; namespace: string; uid?: string }
/** Where Events go (StatusWriter.event has this shape). */
export interface EventSink {
  event(target: EventTarget, type: 'Normal' | 'Warning', reason: string, message: string): unknown;
}

export const EVENT_REASONS: Record<WarningReason, string> = {
  'unknown-scheduler': 'InvalidIPVSScheduler',
  'unknown-forward': 'InvalidIPVSForward',
  'port-conflict': 'DataplanePortConflict',
  'unresolved-target-port': 'UnresolvedTargetPort',
  'forward-port-ignored': 'TargetPortIgnored',
};

export class WarningReporter {
  readonly #log: Logger;
  readonly #events: EventSink | undefined;
  #told = new Set<string>();

  constructor(log: Logger, events: EventSink | undefined) {
    this.#log = log;
    this.#events = events;
  }

  /** Reports the warnings not reported before; forgets the ones that are gone. */
  report(world: World, warnings: readonly DesiredWarning[]): void {
    const now = new Set<string>();
    for (const w of warnings) {
      const key = `${w.service}\n${w.reason}\n${w.message}`;
      now.add(key);
      if (this.#told.has(key)) continue;
      this.#log.info('dataplane warning', { service: w.service, reason: w.reason, message: w.message });
      const svc = world.services.get(w.service);
      if (!svc || !this.#events) continue;
      try {
        const r = this.#events.event({ apiVersion: 'v1', kind: 'Service', name: svc.name, namespace: svc.namespace, uid: svc.uid }, 'Warning', EVENT_REASONS[w.reason], w.message);
        if (r instanceof Promise) r.catch((err: unknown) => this.#log.error('dataplane event failed', { service: w.service, err }));
      } catch (err) {
        this.#log.error('dataplane event failed', { service: w.service, err });
      }
    }
    this.#told = now;
  }
}
