// The controller's Prometheus metrics, all in one place.
import { counter, gauge, type Counter, type Gauge, type Registry } from '@portico/shared';

export interface ControllerMetrics {
  poolSize: Gauge<'pool' | 'family'>;
  poolUsed: Gauge<'pool' | 'family'>;
  allocations: Counter<'pool'>;
  failures: Counter<'code'>;
  configStale: Gauge;
  configProblems: Gauge;
  reconciles: Counter<'outcome'>;
  eventsSuppressed: Counter<'reason'>;
}

export function createControllerMetrics(registry: Registry): ControllerMetrics {
  return {
    poolSize: gauge(registry, { name: 'portico_pool_size_addresses', help: 'Usable addresses in a pool (saturates at 2^53)', labelNames: ['pool', 'family'] }),
    poolUsed: gauge(registry, { name: 'portico_pool_used_addresses', help: 'Addresses in use in a pool', labelNames: ['pool', 'family'] }),
    allocations: counter(registry, { name: 'portico_allocator_allocations_total', help: 'IP allocations written to Services', labelNames: ['pool'] }),
    failures: counter(registry, { name: 'portico_allocator_failures_total', help: 'Allocations that failed, by error code', labelNames: ['code'] }),
    configStale: gauge(registry, { name: 'portico_config_stale_state', help: '1 when the current configuration has problems and the last good one is in force' }),
    configProblems: gauge(registry, { name: 'portico_config_problems_count', help: 'Problems found in the current configuration' }),
    reconciles: counter(registry, { name: 'portico_controller_reconciles_total', help: 'Service reconciles by outcome', labelNames: ['outcome'] }),
    eventsSuppressed: counter(registry, { name: 'portico_controller_events_suppressed_total', help: 'Normal Events left out by the burst limit, by reason', labelNames: ['reason'] }),
  };
}
