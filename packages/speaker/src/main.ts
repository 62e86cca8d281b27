// Entry point of the speaker DaemonSet: one per node. Watches the cluster,
// builds World snapshots and hands them to the announcers registered in
// announcers.ts (layer 2, BGP) and the dataplane.
import { mkdirSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { NAMESPACE, StatusWriter, createLogger, createRegistry, createSharedMetrics, gauge, histogram, startHttpServer, type Registry } from '@portico/shared';
import { createAnnouncers } from './announcers.ts';
import type { SpeakerContext } from './context.ts';
import { Dispatcher } from './dispatch.ts';
import { LivenessFeed } from './membership/liveness.ts';
import { STRICT_ARP_MODES, type StrictArpMode } from './l2/arp-filter.ts';
import { createSpeakerMetrics } from './metrics.ts';
import { InstallWatch } from './uninstall/watch.ts';
import { WorldWatcher } from './world/watcher.ts';

const USAGE = `portico-speaker [flags]
  --node-name NAME            this node (default $NODE_NAME)
  --kubeconfig PATH           kubeconfig file (default: in-cluster, else $KUBECONFIG / ~/.kube/config)
  --namespace NS              namespace of the config objects, Leases and Secrets (default ${NAMESPACE})
  --load-balancer-class CLASS announce only Services of this spec.loadBalancerClass (default: Services without one)
  --state-dir DIR             state kept across restarts (default /run/portico)
  --listen HOST:PORT          /healthz /readyz /metrics (default 0.0.0.0:7473)
  --dataplane MODE            ipvs, nftables or none (default: ipvs where the kernel has ip_vs, else nftables)
  --strict-arp MODE           sysctl, nftables or auto: how other nodes' kernels are kept from answering ARP
                              for a VIP (default auto: the arp_ignore/arp_announce sysctls where /proc/sys is
                              writable, else the nftables table arp portico)
  --daemonset NAME            the DaemonSet this speaker runs in (default portico-speaker): on SIGTERM,
                              when it or the namespace is being deleted (an uninstall), the speaker
                              removes what it put on the node; otherwise it stops as for a restart.
                              Empty: every stop is a restart
  --debug                     debug logs`;

export class UsageError extends Error {
  readonly code = 'PORTICO_USAGE';
}

function hostPort(v: string): { host: string; port: number } {
  const i = v.lastIndexOf(':');
  const port = Number(v.slice(i + 1));
  if (i < 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--listen must be HOST:PORT, got ${JSON.stringify(v)}`);
  return { host: v.slice(0, i).replace(/^\[(.*)\]$/, '$1'), port };
}

/**
 * Event-loop delay (perf_hooks.monitorEventLoopDelay) in windows of windowMs:
 * the last window's p50, p99 and max as a gauge, and each window's max in a
 * histogram, so a benchmark can count the windows in which the loop was held
 * longer than a heartbeat interval.
 */
function watchEventLoop(registry: Registry, windowMs = 5000): () => void {
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  const delay = gauge(registry, { name: 'portico_speaker_event_loop_delay_seconds', help: `Event-loop delay over the last ${windowMs / 1000} s (quantile 0.5, 0.99, 1 = max)`, labelNames: ['quantile'] as const });
  const peaks = histogram(registry, { name: 'portico_speaker_event_loop_max_delay_seconds', help: `Largest event-loop delay of each ${windowMs / 1000} s window`, buckets: [0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 1, 2.5, 5] });
  const t = setInterval(() => {
    if (h.count === 0) return;
    delay.set({ quantile: '0.5' }, h.percentile(50) / 1e9);
    delay.set({ quantile: '0.99' }, h.percentile(99) / 1e9);
    delay.set({ quantile: '1' }, h.max / 1e9);
    peaks.observe(h.max / 1e9);
    h.reset();
  }, windowMs);
  t.unref();
  return () => { clearInterval(t); h.disable(); };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'node-name': { type: 'string', default: process.env.NODE_NAME }, kubeconfig: { type: 'string' },
      namespace: { type: 'string', default: NAMESPACE }, 'load-balancer-class': { type: 'string' },
      'state-dir': { type: 'string', default: '/run/portico' }, listen: { type: 'string', default: '0.0.0.0:7473' },
      dataplane: { type: 'string', default: 'auto' }, 'strict-arp': { type: 'string', default: 'auto' },
      daemonset: { type: 'string', default: 'portico-speaker' },
      debug: { type: 'boolean', default: false }, help: { type: 'boolean', default: false },
    },
  });
  if (values.help) { process.stdout.write(`${USAGE}\n`); return; }
  const self = values['node-name'];
  if (!self) throw new UsageError('--node-name (or $NODE_NAME) is required: the speaker must know its node');
  const listen = hostPort(values.listen);
  const dataplane = values.dataplane;
  if (dataplane !== 'auto' && dataplane !== 'ipvs' && dataplane !== 'nftables' && dataplane !== 'none') throw new UsageError(`--dataplane must be ipvs, nftables or none, got ${JSON.stringify(dataplane)}`);
  const strictArp = values['strict-arp'];
  if (!(STRICT_ARP_MODES as readonly string[]).includes(strictArp)) throw new UsageError(`--strict-arp must be ${STRICT_ARP_MODES.join(', ')}, got ${JSON.stringify(strictArp)}`);
  const log = createLogger({ debug: values.debug, fields: { app: 'portico-speaker', node: self } });
  const kc = new k8s.KubeConfig();
  if (values.kubeconfig) kc.loadFromFile(values.kubeconfig);
  else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else kc.loadFromDefault();
  mkdirSync(values['state-dir'], { recursive: true });

  const registry = createRegistry();
  const sharedMetrics = createSharedMetrics(registry);
  const metrics = createSpeakerMetrics(registry);
  watchEventLoop(registry);
  const ctx: SpeakerContext = {
    self, namespace: values.namespace, kc, log, registry, sharedMetrics, stateDir: values['state-dir'], dataplane, strictArp: strictArp as StrictArpMode,
    writer: new StatusWriter({ kc, component: 'portico-speaker', log }), liveness: new LivenessFeed(),
  };
  const announcers = await createAnnouncers(ctx);
  log.info('speaker starting', { announcers: announcers.map((a) => a.name), namespace: values.namespace, loadBalancerClass: values['load-balancer-class'] ?? null });
  const dispatcher = new Dispatcher(announcers, log, {
    onError: (a) => metrics.announcerErrors.inc({ announcer: a }),
    onDone: (a, s) => metrics.announcerSeconds.set({ announcer: a }, s),
  });
  const watcher = new WorldWatcher({
    kc, namespace: values.namespace, self, loadBalancerClass: values['load-balancer-class'], log, metrics: sharedMetrics,
    onChange: (world) => {
      metrics.services.set(world.services.size);
      metrics.worldUpdates.inc();
      metrics.configStale.set(watcher.configStale ? 1 : 0);
      dispatcher.push(world);
    },
  });
  const install = new InstallWatch({ kc, namespace: values.namespace, daemonSet: values.daemonset, log, metrics: sharedMetrics });
  install.start();
  const server = await startHttpServer(listen.port, listen.host, { registry, ready: () => watcher.synced });
  const world = await watcher.start();
  log.info('caches synced', { services: world.services.size, nodes: world.nodes.size, config: world.config !== undefined });

  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    void (async () => {
      // An uninstall removes everything from the node; a restart keeps what the next speaker needs (uninstall/decide.ts).
      const { reason, cause, daemonSet, namespace } = await install.decide();
      log.info('speaker stopping', { signal, reason, cause, daemonSet, namespace });
      await Promise.all([watcher.stop(), install.stop()]);
      await dispatcher.idle();
      await Promise.all(announcers.map((a) => a.stop(reason).catch((err: unknown) => log.error('announcer stop failed', { announcer: a.name, err }))));
      server.close();
      process.exit(0);
    })();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`portico-speaker: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(err instanceof UsageError ? 2 : 1);
});
