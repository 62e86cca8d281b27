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
