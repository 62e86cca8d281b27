// Prometheus helpers on prom-client, and the metrics of @portico/shared itself
// (informers, leader election). Names are portico_<area>_<thing>_<unit>.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export { Counter, Gauge, Histogram, Registry };

const NAME = /^portico_[a-z0-9]+_[a-z0-9_]+_(total|seconds|bytes|info|count|ratio|addresses|state)$/;

/** Throws unless `name` follows portico_<area>_<thing>_<unit>. */
export function checkMetricName(name: string): void {
  if (!NAME.test(name)) throw new Error(`metric name ${name} does not follow portico_<area>_<thing>_<unit>`);
}

export interface MetricSpec<L extends string> {
  name: string;
  help: string;
  labelNames?: readonly L[];
}

export function counter<L extends string = never>(registry: Registry, spec: MetricSpec<L>): Counter<L> {
  checkMetricName(spec.name);
  return new Counter<L>({ name: spec.name, help: spec.help, labelNames: spec.labelNames ?? [], registers: [registry] });
}

export function gauge<L extends string = never>(registry: Registry, spec: MetricSpec<L>): Gauge<L> {
  checkMetricName(spec.name);
  return new Gauge<L>({ name: spec.name, help: spec.help, labelNames: spec.labelNames ?? [], registers: [registry] });
}

export function histogram<L extends string = never>(registry: Registry, spec: MetricSpec<L> & { buckets?: number[] }): Histogram<L> {
  checkMetricName(spec.name);
  return new Histogram<L>({
    name: spec.name, help: spec.help, labelNames: spec.labelNames ?? [], registers: [registry],
    ...(spec.buckets ? { buckets: spec.buckets } : {}),
  });
}

/**
 * A registry with Node's process metrics (CPU, RSS, event loop lag) already in
 * it, under their standard names (`process_resident_memory_bytes`,
 * `nodejs_eventloop_lag_seconds`, ...) so that dashboards built for any
 * process find them; the job and instance labels tell the components apart.
 */
export function createRegistry(withProcessMetrics = true): Registry {
  const registry = new Registry();
  if (withProcessMetrics) collectDefaultMetrics({ register: registry });
  return registry;
}

export interface SharedMetrics {
  informerRestarts: Counter<'resource'>;
  informerEvents: Counter<'resource' | 'type'>;
  leader: Gauge<'lease'>;
  leaderTransitions: Counter<'lease'>;
}

export function createSharedMetrics(registry: Registry): SharedMetrics {
  return {
    informerRestarts: counter(registry, { name: 'portico_informer_restarts_total', help: 'Informers restarted after an error', labelNames: ['resource'] }),
    informerEvents: counter(registry, { name: 'portico_informer_events_total', help: 'Objects delivered by informers', labelNames: ['resource', 'type'] }),
    leader: gauge(registry, { name: 'portico_leader_is_leader_state', help: '1 while this process holds the Lease', labelNames: ['lease'] }),
    leaderTransitions: counter(registry, { name: 'portico_leader_transitions_total', help: 'Times this process gained or lost the Lease', labelNames: ['lease'] }),
  };
}
