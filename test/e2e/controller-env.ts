// The set-up the controller suites share: the shared lab, namespaces of their
// own, the controller installed from the manifests without speakers, and the
// reads they assert on (a Service's ingress IPs, its Events). Call
// `controllerEnv` inside a describe(); it registers the before/after hooks.
import * as k8s from '@kubernetes/client-node';
import { PORTICO_NAMESPACE as NS, installPortico, waitFor, type Lab, type PorticoInstall } from '../lab/index.ts';
import { FAST_LEASE } from '../lab/portico.ts';
import { apply as applyTo, type Obj } from './objects.ts';
import { requireE2e, sharedLab } from './shared-lab.ts';

export interface ControllerEnv {
  /** Set in before(). */
  lab: Lab;
  core: k8s.CoreV1Api;
  install: PorticoInstall;
  apply: (...objs: Obj[]) => Promise<void>;
  /** The Service's status.loadBalancer.ingress IPs, in order. */
  ips: (namespace: string, name: string) => Promise<string[]>;
  /** Waits until the Service has `count` ingress IPs and returns them. */
  ipsOf: (namespace: string, name: string, count?: number) => Promise<string[]>;
  /** The Events on an object, as "<type> <reason>: <message>". */
  events: (namespace: string, name: string) => Promise<string[]>;
  /** Waits for an Event on the object matching `re` and returns it. */
  eventMatching: (namespace: string, name: string, re: RegExp) => Promise<string>;
}

export function controllerEnv(opts: { namespaces: readonly string[]; replicas: 1 | 2 }): ControllerEnv {
  let install: PorticoInstall | undefined;
  const env = {
    apply: async (...objs: Obj[]): Promise<void> => { await applyTo(env.lab, ...objs); },
    ips: async (namespace: string, name: string): Promise<string[]> => {
      const s = await env.core.readNamespacedService({ name, namespace });
      return (s.status?.loadBalancer?.ingress ?? []).map((i) => i.ip ?? '');
    },
    ipsOf: (namespace: string, name: string, count = 1): Promise<string[]> =>
      waitFor(`${namespace}/${name} to get ${count} IP(s)`, async () => {
        const got = await env.ips(namespace, name);
        return got.length === count ? got : undefined;
      }, 30_000, 100),
    events: async (namespace: string, name: string): Promise<string[]> => {
      const list = await env.core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.name=${name}` });
      return list.items.map((e) => `${e.type} ${e.reason}: ${e.message}`);
    },
    eventMatching: (namespace: string, name: string, re: RegExp): Promise<string> =>
      waitFor(`an Event on ${namespace}/${name} matching ${re}`, async () => (await env.events(namespace, name)).find((e) => re.test(e)), 20_000, 200),
  } as ControllerEnv;

  before(async function () {
    requireE2e(this);
    env.lab = await sharedLab();
    env.core = env.lab.kc.makeApiClient(k8s.CoreV1Api);
    for (const ns of opts.namespaces) await env.lab.kubectlResult(['create', 'namespace', ns]);
    install = await installPortico(env.lab, { speakers: false, replicas: opts.replicas, controllerArgs: FAST_LEASE });
    env.install = install;
  });

  after(async function () {
    await install?.stop();
    if (!env.lab) return;
    await env.lab.kubectlResult(['delete', 'namespace', ...opts.namespaces, '--wait=false']);
    await env.lab.kubectlResult(['delete', 'ipaddresspools,l2advertisements,bgpadvertisements,bgppeers,communities,bfdprofiles', '--all', '-n', NS, '--wait=false']);
    await env.lab.kubectlResult(['delete', 'configmap', 'config', '-n', NS, '--ignore-not-found']);
  });
  return env;
}
