// Entry point of the controller Deployment: flags, kubeconfig, HTTP endpoints,
// leader election, and a clean shutdown that releases the Lease.
import os from 'node:os';
import { parseArgs } from 'node:util';
import { KubeConnection, LeaderElector, NAMESPACE, createLogger, createRegistry, createSharedMetrics, kubeLeaseStore, startHttpServer } from '@portico/shared';
import { Controller } from './controller.ts';
import { HEARTBEAT_SECRET, ensureHeartbeatSecret, kubeSecretApi } from './heartbeat-secret.ts';

const USAGE = `portico-controller [flags]
  --kubeconfig PATH           kubeconfig file (default: in-cluster, else $KUBECONFIG / ~/.kube/config)
  --namespace NS              namespace of the config objects and the Lease (default ${NAMESPACE})
  --load-balancer-class CLASS answer only Services of this spec.loadBalancerClass (default: Services without one)
  --lease-name NAME           Lease name (default portico-controller)
  --lease-duration S          seconds (default 15)
  --renew-deadline S          seconds (default 10)
  --retry-period S            seconds (default 2)
  --identity ID               holder identity (default: hostname)
  --listen HOST:PORT          /healthz /readyz /metrics (default 0.0.0.0:7472)
  --debug                     debug logs`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      kubeconfig: { type: 'string' }, namespace: { type: 'string', default: NAMESPACE }, 'load-balancer-class': { type: 'string' },
      'lease-name': { type: 'string', default: 'portico-controller' }, 'lease-duration': { type: 'string', default: '15' },
      'renew-deadline': { type: 'string', default: '10' }, 'retry-period': { type: 'string', default: '2' },
      identity: { type: 'string', default: process.env.POD_NAME ?? os.hostname() }, listen: { type: 'string', default: '0.0.0.0:7472' },
      debug: { type: 'boolean', default: false }, help: { type: 'boolean', default: false },
    },
  });
  if (values.help) { console.log(USAGE); return; }
  const log = createLogger({ debug: values.debug, fields: { app: 'portico-controller', identity: values.identity } });
  // Portico's own connection (not @kubernetes/client-node, whose models alone would double the process's memory).
  const kc = KubeConnection.load({ kubeconfig: values.kubeconfig });

  const seconds = (name: string, v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number of seconds`);
    return n * 1000;
  };
  const registry = createRegistry();
  const sharedMetrics = createSharedMetrics(registry);
  let isLeader = (): boolean => false;
  const controller = new Controller({
    kc, namespace: values.namespace, loadBalancerClass: values['load-balancer-class'], log, registry, sharedMetrics,
    canWrite: () => isLeader(),
  });
  const elector = new LeaderElector({
    identity: values.identity, store: kubeLeaseStore(kc, values.namespace, values['lease-name']), leaseName: values['lease-name'],
    leaseDurationMs: seconds('lease-duration', values['lease-duration']), renewDeadlineMs: seconds('renew-deadline', values['renew-deadline']),
    retryPeriodMs: seconds('retry-period', values['retry-period']), log, metrics: sharedMetrics,
    onStartedLeading: () => {
      controller.lead();
      // The speakers' heartbeat key: created on install by whichever replica leads first.
      ensureHeartbeatSecret(kubeSecretApi(kc), values.namespace).then(
        (outcome) => {
          const fields = { secret: HEARTBEAT_SECRET.name, key: HEARTBEAT_SECRET.key, outcome };
          if (outcome === 'exists-without-key') log.error('heartbeat secret has no key', fields);
          else log.info('heartbeat secret', fields);
        },
        (err: unknown) => log.error('heartbeat secret not ensured', { secret: HEARTBEAT_SECRET.name, err }),
      );
    },
    onStoppedLeading: (why) => {
      // A leader that lost its Lease must not write again: stop and let the Deployment restart us as a standby.
      if (why === 'renew-failed') {
        log.error('leadership lost, exiting', {});
        void controller.stop().finally(() => process.exit(1));
      }
    },
    onNewLeader: (identity) => log.info('leader observed', { leader: identity }),
  });

  isLeader = () => elector.isLeader();

  const [host, port] = splitHostPort(values.listen);
  const server = await startHttpServer(port, host, { registry, ready: () => controller.ready() });
  log.info('controller starting', { namespace: values.namespace, loadBalancerClass: values['load-balancer-class'] ?? null, listen: values.listen });

  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info('shutting down', { signal });
    void (async () => {
      await elector.stop();
      await controller.stop();
      server.close();
      process.exit(0);
    })();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));

  await controller.startInformers();
  void elector.start();
}

function splitHostPort(s: string): [string, number] {
  const i = s.lastIndexOf(':');
  const port = Number(s.slice(i + 1));
  if (i < 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--listen ${s}: expected HOST:PORT`);
  return [s.slice(0, i).replace(/^\[|\]$/g, ''), port];
}

main().catch((err: unknown) => {
  process.stderr.write(`${JSON.stringify({ level: 'error', msg: 'controller failed', err: err instanceof Error ? err.message : String(err) })}\n`);
  process.exit(1);
});
