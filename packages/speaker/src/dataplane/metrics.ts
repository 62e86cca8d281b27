// Prometheus metrics of the dataplane (IPVS or nftables), one set per speaker.
import { counter, gauge, histogram, type Registry } from '@portico/shared';

export function createDataplaneMetrics(registry: Registry) {
  return {
    virtualServices: gauge(registry, { name: 'portico_dataplane_virtual_services_count', help: 'Virtual services (VIP:port/protocol) this node programs', labelNames: ['dataplane'] as const }),
    realServers: gauge(registry, { name: 'portico_dataplane_real_servers_count', help: 'Real servers (endpoints) behind the virtual services, draining ones included', labelNames: ['dataplane'] as const }),
    draining: gauge(registry, { name: 'portico_dataplane_draining_real_servers_count', help: 'Real servers at weight 0 waiting for their connections to end', labelNames: ['dataplane'] as const }),
    syncSeconds: histogram(registry, {
      name: 'portico_dataplane_sync_seconds', help: 'Duration of a dataplane sync', labelNames: ['dataplane', 'kind'] as const,
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    }),
    syncErrors: counter(registry, { name: 'portico_dataplane_sync_errors_total', help: 'Dataplane operations or syncs that failed, by reason', labelNames: ['dataplane', 'reason'] as const }),
    operations: counter(registry, { name: 'portico_dataplane_operations_total', help: 'Kernel operations applied, by kind', labelNames: ['dataplane', 'op'] as const }),
    prunedNodes: gauge(registry, { name: 'portico_dataplane_pruned_nodes_count', help: 'Nodes whose endpoints get no new connections because membership saw them die', labelNames: ['dataplane'] as const }),
    prunedReals: gauge(registry, { name: 'portico_dataplane_pruned_real_servers_count', help: 'Real servers left out because their node is dead (Kubernetes still lists them ready)', labelNames: ['dataplane'] as const }),
    prunedKeptWhole: gauge(registry, { name: 'portico_dataplane_prune_kept_whole_count', help: 'Virtual services whose every endpoint is on a dead node, kept as they are', labelNames: ['dataplane'] as const }),
    pruneChanges: counter(registry, { name: 'portico_dataplane_prune_changes_total', help: 'Nodes pruned (reason node-dead) or restored (the reason they are kept again)', labelNames: ['dataplane', 'reason'] as const }),
    problem: gauge(registry, { name: 'portico_dataplane_problem_state', help: '1 while the dataplane is in a bad state of this kind (missing-module, permission, vip-on-other-interface, ...)', labelNames: ['dataplane', 'problem'] as const }),
  };
}
export type DataplaneMetrics = ReturnType<typeof createDataplaneMetrics>;
