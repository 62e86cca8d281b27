// The controller's annotations on a Service (portico.dev/external-ips, which
// the speakers announce, and portico.dev/ip-allocated-from-pool) can be set by
// the controller's ServiceAccount only: the ValidatingAdmissionPolicy
// portico-controller-annotations of manifests/policy.yaml, installed from
// manifests/portico.yaml, checked against the lab's real API server with a
// user who may edit Services (the built-in `edit` role) and with the
// controller running as its own ServiceAccount.
import { strict as assert } from 'node:assert';
import * as k8s from '@kubernetes/client-node';
import { PORTICO_NAMESPACE as NS, installPortico, waitFor, type Lab, type PorticoInstall } from '../lab/index.ts';
import { requireE2e, sharedLab } from './shared-lab.ts';

const EXT = 'portico.dev/external-ips';
const POOL = 'portico.dev/ip-allocated-from-pool';
/** The pool admits this namespace... */
const APP_NS = 'pcap-app';
/** ...and not this one. */
const OTHER_NS = 'pcap-other';
const USER = 'developer';
const REFUSED = /only the Portico controller may set the annotation/;
const mergePatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);

describe('controller-owned annotations (e2e, root): only the controller\'s ServiceAccount may write them', function () {
  this.timeout(240_000);
  let lab: Lab;
  let install: PorticoInstall | undefined;
  let asUser: string;
  let asController: string;

  const as = (kubeconfig: string, args: string[], input?: string) => lab.kubectlResult([`--kubeconfig=${kubeconfig}`, ...args], input);
  const annotations = async (namespace: string, name: string): Promise<Record<string, string>> =>
    JSON.parse((await lab.kubectl('get', 'service', name, '-n', namespace, '-o', 'jsonpath={.metadata.annotations}')) || '{}') as Record<string, string>;
  /** A LoadBalancer Service in APP_NS; elsewhere a ClusterIP one (its externalIPs are Portico's all the same). */
  const service = (namespace: string, name: string, externalIP: string, extra: Record<string, string> = {}): string => JSON.stringify({
    apiVersion: 'v1', kind: 'Service', metadata: { name, namespace, annotations: extra },
    spec: { type: namespace === APP_NS ? 'LoadBalancer' : 'ClusterIP', ipFamilies: ['IPv4'], ipFamilyPolicy: 'SingleStack', ports: [{ port: 80, protocol: 'TCP' }], selector: { app: name }, externalIPs: [externalIP] },
  });
  const annotate = (kubeconfig: string, namespace: string, name: string, kv: string) => as(kubeconfig, ['annotate', '--overwrite', 'service', name, '-n', namespace, kv]);

  before(async function () {
    requireE2e(this);
    lab = await sharedLab();
    for (const ns of [APP_NS, OTHER_NS]) {
      await lab.kubectlResult(['create', 'namespace', ns]);
      await lab.kubectlResult(['-n', ns, 'create', 'rolebinding', `${USER}-edit`, '--clusterrole=edit', `--serviceaccount=${APP_NS}:${USER}`]);
      // Some users may write a Service's status (other load balancers, operators' tools): annotations can change through it too.
      await lab.kubectlResult(['-n', ns, 'create', 'role', `${USER}-status`, '--verb=get,patch,update', '--resource=services/status']);
      await lab.kubectlResult(['-n', ns, 'create', 'rolebinding', `${USER}-status`, `--role=${USER}-status`, `--serviceaccount=${APP_NS}:${USER}`]);
    }
    await lab.kubectlResult(['-n', APP_NS, 'create', 'serviceaccount', USER]);
    install = await installPortico(lab, { speakers: false, replicas: 1 });
    asUser = await lab.serviceAccountKubeconfig(APP_NS, USER, 'host');
    asController = await lab.serviceAccountKubeconfig(NS, 'portico-controller', 'host');
    const pool = {
      apiVersion: 'portico.dev/v1beta1', kind: 'IPAddressPool', metadata: { name: 'pcap', namespace: NS },
      spec: { addresses: ['100.64.77.0/29'], allowExternalIPs: true, serviceAllocation: { namespaces: [APP_NS] } },
    };
    const r = await lab.kubectlResult(['apply', '-f', '-'], JSON.stringify(pool));
    assert.equal(r.code, 0, r.stderr);
    // The policy is enforced a moment after it is created: wait until a forged value is refused
    // (accepted probes are removed again, which the policy allows).
    await as(asUser, ['create', '-f', '-'], service(OTHER_NS, 'probe', '100.64.77.7')).then((x) => assert.equal(x.code, 0, x.stderr));
    let n = 0;
    await waitFor('the annotation policy to be enforced', async () => {
      const p = await annotate(asUser, OTHER_NS, 'probe', `${POOL}=probe-${n++}`);
      if (p.code === 0) { await as(asUser, ['annotate', 'service', 'probe', '-n', OTHER_NS, `${POOL}-`]); return undefined; }
      return REFUSED.test(p.stderr) ? true : undefined;
    }, 60_000, 500);
  });

  after(async function () {
    await install?.stop();
    if (!lab) return;
    await lab.kubectlResult(['-n', NS, 'delete', 'ipaddresspool', 'pcap', '--ignore-not-found', '--wait=false']);
    for (const ns of [APP_NS, OTHER_NS]) await lab.kubectlResult(['delete', 'namespace', ns, '--wait=false', '--ignore-not-found']);
  });

  it('the controller\'s own writes go through: it records an admitted externalIP and its pool', async function () {
    const r = await as(asUser, ['create', '-f', '-'], service(APP_NS, 'web', '100.64.77.6'));
    assert.equal(r.code, 0, r.stderr);
    const got = await waitFor('web to be annotated by the controller', async () => {
      const a = await annotations(APP_NS, 'web');
      return a[EXT] === '100.64.77.6' && a[POOL] === 'pcap' ? a : undefined;
    }, 60_000, 250);
    assert.equal(got[EXT], '100.64.77.6');
    const ip = await lab.kubectl('get', 'service', 'web', '-n', APP_NS, '-o', 'jsonpath={.status.loadBalancer.ingress[0].ip}');
    assert.match(ip, /^100\.64\.77\.[0-7]$/);
  });

  it('a user who may edit Services cannot add or change either annotation, and is told why', async function () {
    // The pool does not admit this namespace: the controller records nothing here.
    const r = await as(asUser, ['create', '-f', '-'], service(OTHER_NS, 'sneaky', '100.64.77.5'));
    assert.equal(r.code, 0, r.stderr);
    const forged = await annotate(asUser, OTHER_NS, 'sneaky', `${EXT}=100.64.77.5`);
    assert.notEqual(forged.code, 0, 'the forged external-ips annotation was accepted');
    assert.match(forged.stderr, /ValidatingAdmissionPolicy 'portico-controller-annotations'.*denied request: only the Portico controller may set the annotation portico\.dev\/external-ips/);
    // Changing what the controller wrote is refused too.
    const moved = await annotate(asUser, APP_NS, 'web', `${POOL}=elsewhere`);
    assert.notEqual(moved.code, 0, 'changing the pool annotation was accepted');
    assert.match(moved.stderr, /only the Portico controller may set the annotation portico\.dev\/ip-allocated-from-pool/);
    const stolen = await annotate(asUser, APP_NS, 'web', `${EXT}=100.64.77.6,100.64.77.5`);
    assert.match(stolen.stderr, REFUSED);
    // Through the status subresource as well.
    const viaStatus = await as(asUser, ['patch', 'service', 'sneaky', '-n', OTHER_NS, '--subresource=status', '--type=merge', '-p', JSON.stringify({ metadata: { annotations: { [EXT]: '100.64.77.5' } } })]);
    assert.notEqual(viaStatus.code, 0, 'the forged annotation was accepted through the status subresource');
    assert.match(viaStatus.stderr, REFUSED);
    // So is creating a Service that already carries one.
    const created = await as(asUser, ['create', '-f', '-'], service(OTHER_NS, 'born-forged', '100.64.77.4', { [EXT]: '100.64.77.4' }));
    assert.notEqual(created.code, 0);
    assert.match(created.stderr, /only the Portico controller may set the annotation portico\.dev\/external-ips/);
    // Nothing changed.
    assert.equal((await annotations(OTHER_NS, 'sneaky'))[EXT], undefined);
    const web = await annotations(APP_NS, 'web');
    assert.deepEqual([web[EXT], web[POOL]], ['100.64.77.6', 'pcap']);
    assert.equal((await lab.kubectlResult(['get', 'service', 'born-forged', '-n', OTHER_NS])).code, 1);
  });

  it('the same write from the controller\'s token is accepted (and the controller then undoes what it did not decide)', async function () {
    // A merge patch, as the controller sends it (its account may not GET a single Service, which kubectl does first).
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(asController);
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const patched = await core.patchNamespacedService({ name: 'sneaky', namespace: OTHER_NS, body: { metadata: { annotations: { [EXT]: '100.64.77.5' } } } }, mergePatch);
    assert.equal(patched.metadata?.annotations?.[EXT], '100.64.77.5');
    await waitFor('the controller to remove an externalIP it did not accept', async () => ((await annotations(OTHER_NS, 'sneaky'))[EXT] === undefined ? true : undefined), 30_000, 250);
  });

  it('the user may still edit the rest of the Service, drop the annotation (the controller writes it again) and delete the Service', async function () {
    const other = await annotate(asUser, APP_NS, 'web', 'example.com/owner=team-a');
    assert.equal(other.code, 0, other.stderr);
    const dropped = await as(asUser, ['annotate', 'service', 'web', '-n', APP_NS, `${EXT}-`]);
    assert.equal(dropped.code, 0, dropped.stderr);
    await waitFor('the controller to record web\'s externalIP again', async () => ((await annotations(APP_NS, 'web'))[EXT] === '100.64.77.6' ? true : undefined), 30_000, 250);
    for (const [ns, name] of [[APP_NS, 'web'], [OTHER_NS, 'sneaky'], [OTHER_NS, 'probe']] as const) {
      const d = await as(asUser, ['delete', 'service', name, '-n', ns]);
      assert.equal(d.code, 0, d.stderr);
    }
  });
});
