// Small builders for the Kubernetes objects the end-to-end tests apply, and
// the one way they apply them (kubectl apply of a List), so every suite writes
// a pool or a Service the same way.
import { strict as assert } from 'node:assert';
import { PORTICO_NAMESPACE, type Lab } from '../lab/index.ts';

export type Obj = Record<string, unknown>;

/** An IPAddressPool in portico-system. */
export function pool(name: string, spec: Obj): Obj {
  return { apiVersion: 'portico.dev/v1beta1', kind: 'IPAddressPool', metadata: { name, namespace: PORTICO_NAMESPACE }, spec };
}

/** An L2Advertisement in portico-system (an empty spec selects every pool). */
export function l2Advertisement(name: string, spec: Obj = {}): Obj {
  return { apiVersion: 'portico.dev/v1beta1', kind: 'L2Advertisement', metadata: { name, namespace: PORTICO_NAMESPACE }, spec };
}

/** A LoadBalancer Service on TCP port 80 selecting `app: <name>`; `spec` overrides any of it. */
export function service(name: string, namespace: string, spec: Obj = {}, annotations: Record<string, string> = {}): Obj {
  return {
    apiVersion: 'v1', kind: 'Service', metadata: { name, namespace, annotations },
    spec: { type: 'LoadBalancer', ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 80 }], selector: { app: name }, ...spec },
  };
}

/** kubectl apply of the objects as one List; fails the test with kubectl's message. */
export async function apply(lab: Lab, ...objs: Obj[]): Promise<void> {
  const r = await lab.kubectlResult(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objs }));
  assert.equal(r.code, 0, r.stderr);
}

/** Clean-ups of a test environment, run last-in first-out by runCleanups. */
export type Cleanups = (() => Promise<unknown>)[];

/** Runs the clean-ups newest first; one that fails does not stop the rest. */
export async function runCleanups(cleanups: Cleanups): Promise<void> {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
}

/**
 * A manually assigned pool (`addresses`) with an L2Advertisement of it, and
 * the namespace `app` for the test's workloads, each with its clean-up pushed
 * on `cleanups`.
 */
export async function layer2Space(lab: Lab, cleanups: Cleanups, opts: { pool: string; addresses: string[]; advertisement: string; app: string }): Promise<void> {
  await apply(lab,
    pool(opts.pool, { addresses: opts.addresses, autoAssign: false }),
    l2Advertisement(opts.advertisement, { ipAddressPools: [opts.pool] }),
  );
  cleanups.push(() => lab.kubectlResult(['delete', 'l2advertisements', opts.advertisement, '-n', PORTICO_NAMESPACE, '--ignore-not-found']));
  cleanups.push(() => lab.kubectlResult(['delete', 'ipaddresspools', opts.pool, '-n', PORTICO_NAMESPACE, '--ignore-not-found']));
  await lab.kubectlResult(['create', 'namespace', opts.app]);
  cleanups.push(() => lab.kubectlResult(['delete', 'namespace', opts.app, '--wait=false']));
}
