// Installing Portico as a user would: `kubectl apply -f manifests/portico.yaml`
// on the lab's API server (RBAC on), the components run from the manifests'
// command lines with their ServiceAccounts' tokens, a Service gets an IP, the
// accounts cannot do what they must not, and the invalid examples are refused
// at apply time with the field named.
import { strict as assert } from 'node:assert';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { PORTICO_NAMESPACE as NS, installPortico, manifestWorkload, repoRoot, waitFor, type Lab, type PorticoInstall } from '../lab/index.ts';
import { requireE2e, sharedLab } from './shared-lab.ts';

const EXAMPLES = path.join(repoRoot, 'manifests', 'examples');
const INVALID = path.join(EXAMPLES, 'invalid');
const APP_NS = 'pinst-app';
const SPEAKER = `system:serviceaccount:${NS}:portico-speaker`;
const CONTROLLER = `system:serviceaccount:${NS}:portico-controller`;
const mergePatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);

describe('install from manifests/portico.yaml (e2e, root): RBAC on, components as their ServiceAccounts', function () {
  this.timeout(300_000);
  let lab: Lab;
  let install: PorticoInstall;
  let core: k8s.CoreV1Api;
  /** Kubeconfigs usable from this (root) namespace, one per account. */
  let asController: string;
  let asSpeaker: string;

  const kubectlAs = (kubeconfig: string, args: string[], input?: string) => lab.kubectlResult([`--kubeconfig=${kubeconfig}`, ...args], input);

  before(async function () {
    requireE2e(this);
    lab = await sharedLab();
    core = lab.kc.makeApiClient(k8s.CoreV1Api);
    install = await installPortico(lab);
    asController = await lab.serviceAccountKubeconfig(NS, 'portico-controller', 'host');
    asSpeaker = await lab.serviceAccountKubeconfig(NS, 'portico-speaker', 'host');
  });

  after(async function () {
    await install?.stop();
    if (!lab) return;
    await lab.kubectlResult(['delete', 'namespace', APP_NS, '--wait=false', '--ignore-not-found']);
    await lab.kubectlResult(['delete', '-f', EXAMPLES, '--ignore-not-found', '--wait=false']);
    await lab.kubectlResult(['-n', NS, 'delete', 'lease', 'pinst-someone-else', '--ignore-not-found']);
  });

  it('the CRDs are Established and served', async function () {
    const out = await lab.kubectl('get', 'crd', '-l', 'app.kubernetes.io/part-of=portico', '-o', 'jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Established")].status}{"\\n"}{end}');
    const got = Object.fromEntries(out.trim().split('\n').map((l) => l.split('=')));
    assert.deepEqual(Object.keys(got).sort(), ['bfdprofiles', 'bgpadvertisements', 'bgppeers', 'communities', 'ipaddresspools', 'l2advertisements', 'servicebgpstatuses'].map((p) => `${p}.portico.dev`));
    assert.ok(Object.values(got).every((s) => s === 'True'), out);
  });

  it('the examples are accepted by the API server', async function () {
    const r = await lab.kubectlResult(['apply', '-f', EXAMPLES]);
    assert.equal(r.code, 0, r.stderr);
    for (const [kind, name] of [['ipaddresspool', 'lan'], ['l2advertisement', 'lan'], ['ipaddresspool', 'routed'], ['bgppeer', 'tor-1'], ['bgpadvertisement', 'routed'], ['community', 'communities'], ['bfdprofile', 'fast'], ['ipaddresspool', 'payments']]) {
      await lab.kubectl('-n', NS, 'get', `${kind}/${name}`);
    }
  });

  it('the components run the manifests\' command lines, authenticated as their ServiceAccounts', async function () {
    const dep = manifestWorkload('Deployment', 'portico-controller');
    assert.equal(install.controllers.length, dep.spec.replicas);
    // The manifests' command lines: image paths mapped onto the checkout, $(VAR) from the downward API, hostPath per node.
    const strip = (argv: string[]): string[] => argv.slice(1).map((a) => a.replace(repoRoot, '/app').replace(lab.dir, 'LAB'));
    const ctl = install.argv.get('portico-controller-1')!;
    assert.equal(ctl[0], process.execPath);
    assert.deepEqual(strip(ctl), ['--optimize-for-size', '/app/packages/controller/src/main.ts', '--namespace=portico-system', '--lease-name=portico-controller',
      '--identity=portico-controller-lab-1', '--listen=0.0.0.0:7472', `--kubeconfig=LAB/kubeconfig.sa.${NS}.portico-controller.segment`]);
    for (const n of lab.nodes) {
      assert.deepEqual(strip(install.argv.get(`portico-speaker-${n.name}`)!), ['--optimize-for-size', '/app/packages/speaker/src/main.ts', `--node-name=${n.name}`, '--namespace=portico-system',
        `--state-dir=LAB/portico/${n.name}/state`, '--listen=0.0.0.0:7473', `--kubeconfig=LAB/kubeconfig.sa.${NS}.portico-speaker.segment`]);
    }
    for (const [kc, who] of [[asController, CONTROLLER], [asSpeaker, SPEAKER]] as const) {
      const r = await kubectlAs(kc, ['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), who);
    }
    // The leader holds the Lease under its pod name ($(POD_NAME) expanded from the downward API).
    const holder = await waitFor('a controller replica to lead', async () => {
      const l = await lab.kc.makeApiClient(k8s.CoordinationV1Api).readNamespacedLease({ name: 'portico-controller', namespace: NS }).catch(() => undefined);
      const h = l?.spec?.holderIdentity ?? '';
      return /^portico-controller-lab-\d$/.test(h) ? h : undefined;
    }, 30_000, 200);
    assert.match(holder, /^portico-controller-lab-[12]$/);
  });

  it('the leader created the heartbeat Secret with a 32-byte key', async function () {
    const s = await waitFor('Secret portico-heartbeat', () => core.readNamespacedSecret({ name: 'portico-heartbeat', namespace: NS }).catch(() => undefined), 30_000, 200);
    assert.equal(Buffer.from(s.data?.key ?? '', 'base64').length, 32);
  });

  it('a LoadBalancer Service gets an IP from the example pool', async function () {
    await lab.kubectlResult(['create', 'namespace', APP_NS]);
    // Pods behind it (the lab kubelet runs them), so the speakers have something to announce.
    await lab.kubectl('-n', APP_NS, 'create', 'deployment', 'web', '--image=portico.dev/lab-web', '--replicas=2', '--port=80');
    const svc = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: APP_NS }, spec: { type: 'LoadBalancer', selector: { app: 'web' }, ports: [{ port: 80, targetPort: 80 }] } };
    const r = await lab.kubectlResult(['apply', '-f', '-'], JSON.stringify(svc));
    assert.equal(r.code, 0, r.stderr);
    const got = await waitFor('web to get an IP', async () => {
      const s = await core.readNamespacedService({ name: 'web', namespace: APP_NS });
      const ip = s.status?.loadBalancer?.ingress?.[0]?.ip;
      const pool = s.metadata?.annotations?.['portico.dev/ip-allocated-from-pool'];
      // Status and the pool annotation are two writes: wait for both.
      return ip && pool ? { ip, pool } : undefined;
    }, 30_000, 200);
    assert.equal(got.pool, 'lan');
    const last = Number(got.ip.split('.')[3]);
    assert.ok(got.ip.startsWith('203.0.113.') && last >= 10 && last <= 40, got.ip);
  });

  it('a speaker takes the Service in layer 2 (nodeAssigned Event, annotations the policy lets through) and the client reaches the pods', async function () {
    const node = await waitFor('a layer-2 owner for web', async () => {
      const s = await core.readNamespacedService({ name: 'web', namespace: APP_NS });
      return s.metadata?.annotations?.['portico.dev/layer2-node'];
    }, 60_000, 250);
    assert.ok(lab.nodes.some((n) => n.name === node), node);
    const events = await core.listNamespacedEvent({ namespace: APP_NS, fieldSelector: 'involvedObject.name=web,reason=nodeAssigned' });
    assert.ok(events.items.some((e) => e.message?.includes(`"${node}"`)), JSON.stringify(events.items.map((e) => e.message)));
    const s = await core.readNamespacedService({ name: 'web', namespace: APP_NS });
    const ip = s.status!.loadBalancer!.ingress![0]!.ip!;
    // The example pool is not the segment's subnet: tell the client the VIP is on its link
    // (what a LAN whose subnet holds the pool gives for free); ARP then finds the owner.
    await lab.exec('client', ['ip', 'route', 'replace', `${ip}/32`, 'dev', 'eth0']);
    try {
      const body = await waitFor(`the client to reach http://${ip}/`, () => lab.curl('client', `http://${ip}/`, { timeoutS: 2 }).catch(() => undefined), 30_000, 500);
      assert.match(body, /"pod":"web-/);
      const neigh = await lab.exec('client', ['ip', 'neigh', 'show', ip]);
      const mac = (await lab.exec(node, ['cat', '/sys/class/net/eth0/address'])).stdout.trim();
      assert.ok(neigh.stdout.includes(mac), `the client resolved ${ip} to ${neigh.stdout.trim()}, the owner ${node} is ${mac}`);
    } finally {
      await lab.exec('client', ['ip', 'route', 'del', `${ip}/32`, 'dev', 'eth0'], { allowFail: true });
    }
  });

  it('Portico\'s Lease requests are served at the leader-election priority level (FlowSchema portico-leases)', async function () {
    const fs = JSON.parse(await lab.kubectl('get', 'flowschema', 'portico-leases', '-o', 'json')) as { status?: { conditions?: { type: string; status: string }[] } };
    assert.equal(fs.status?.conditions?.find((c) => c.type === 'Dangling')?.status, 'False', 'the priority level it names exists');
    // The components renew their Leases every few seconds: the API server counts them under the schema.
    const served = async (): Promise<string[]> => {
      const r = await lab.apiGet('/metrics', 10_000);
      return r.body.split('\n').filter((l) => l.startsWith('apiserver_flowcontrol_dispatched_requests_total{') && l.includes('flow_schema="portico-leases"'));
    };
    const lines = await waitFor('Lease requests counted under portico-leases', async () => { const l = await served(); return l.length ? l : undefined; }, 30_000, 1000);
    assert.ok(lines.every((l) => l.includes('priority_level="leader-election"')), lines.join('\n'));
  });

  it('no component was refused by the API server: the roles cover what the code does', async function () {
    for (const n of lab.nodes) {
      await waitFor(`the speaker on ${n.name} to load the heartbeat key`, () => readFileSync(path.join(lab.logDir, `portico-speaker-${n.name}.log`), 'utf8').includes('heartbeat key loaded'), 30_000, 250);
    }
    const refused: string[] = [];
    for (const key of [...install.argv.keys()]) {
      for (const line of readFileSync(path.join(lab.logDir, `${key}.log`), 'utf8').split('\n')) {
        // RBAC ("cannot patch resource") or a policy; a 403 for a terminating namespace is not ours.
        if (/cannot [a-z]+ resource|ValidatingAdmissionPolicy/i.test(line)) refused.push(`${key}: ${line.slice(0, 300)}`);
      }
    }
    assert.deepEqual(refused, []);
  });

  describe('what the accounts may not do is refused', function () {
    const canI = async (as: string, ...args: string[]): Promise<string> => (await lab.kubectlResult(['auth', 'can-i', `--as=${as}`, ...args])).stdout.trim();

    it('kubectl auth can-i: the speaker may not update, create or delete Services nor touch their status or pools; the controller no other Lease', async function () {
      assert.equal(await canI(SPEAKER, 'update', 'services', '-n', APP_NS), 'no');
      assert.equal(await canI(SPEAKER, 'patch', 'services', '--subresource=status', '-n', APP_NS), 'no');
      assert.equal(await canI(SPEAKER, 'create', 'services', '-n', APP_NS), 'no');
      assert.equal(await canI(SPEAKER, 'delete', 'services', '-n', APP_NS), 'no');
      assert.equal(await canI(SPEAKER, 'create', 'ipaddresspools.portico.dev', '-n', NS), 'no');
      // Secrets: a list/watch in Portico's namespace only (BGP password Secrets, bgp/secrets.ts), nowhere else.
      assert.equal(await canI(SPEAKER, 'list', 'secrets', '-n', 'default'), 'no');
      assert.equal(await canI(SPEAKER, 'watch', 'secrets', '-A'), 'no');
      assert.equal(await canI(SPEAKER, 'get', 'secrets', '-n', 'default'), 'no');
      assert.equal(await canI(CONTROLLER, 'update', 'leases/pinst-someone-else', '-n', NS), 'no');
      assert.equal(await canI(CONTROLLER, 'update', 'leases/portico-controller', '-n', NS), 'yes');
      assert.equal(await canI(CONTROLLER, 'get', 'secrets/tor-1-password', '-n', NS), 'no');
      // And what they need:
      assert.equal(await canI(SPEAKER, 'watch', 'endpointslices.discovery.k8s.io', '-A'), 'yes');
      assert.equal(await canI(SPEAKER, 'watch', 'secrets', '-n', NS), 'yes');
      assert.equal(await canI(CONTROLLER, 'patch', 'services', '--subresource=status', '-n', APP_NS), 'yes');
    });

    it('the speaker\'s token cannot update a Service: RBAC refuses update and status, the policy every patch but its layer-2 annotations', async function () {
      const kc = new k8s.KubeConfig();
      kc.loadFromFile(asSpeaker);
      const api = kc.makeApiClient(k8s.CoreV1Api);
      const current = await core.readNamespacedService({ name: 'web', namespace: APP_NS });
      const denied = async (p: Promise<unknown>): Promise<string> => p.then(() => 'accepted', (e: unknown) => `${(e as { code?: number }).code} ${String((e as { body?: unknown }).body)}`);
      assert.match(await denied(api.replaceNamespacedService({ name: 'web', namespace: APP_NS, body: current })), /^403 .*cannot update resource/);
      assert.match(await denied(api.readNamespacedService({ name: 'web', namespace: APP_NS })), /^403 .*cannot get resource/);
      assert.match(await denied(api.patchNamespacedServiceStatus({ name: 'web', namespace: APP_NS, body: { status: { loadBalancer: { ingress: [{ ip: '203.0.113.99' }] } } } }, mergePatch)), /^403 .*cannot patch resource/);
      // Merge patches, as the speaker's code sends them (the speaker may not even GET a Service).
      const patch = (body: object): Promise<string> => denied(api.patchNamespacedService({ name: 'web', namespace: APP_NS, body }, mergePatch));
      assert.match(await patch({ spec: { ports: [{ port: 81, targetPort: 80 }] } }), /a speaker may not change a Service's spec/);
      assert.match(await patch({ metadata: { annotations: { 'pinst/by': 'speaker' } } }), /a speaker may only change the annotations portico.dev\/layer2-node and portico.dev\/layer2-interfaces/);
      assert.match(await patch({ metadata: { labels: { pinst: 'x' } } }), /labels or finalizers/);
      assert.equal(await patch({ metadata: { annotations: { 'portico.dev/layer2-node': current.metadata?.annotations?.['portico.dev/layer2-node'] ?? 'node-1' } } }), 'accepted');
      const s = await core.readNamespacedService({ name: 'web', namespace: APP_NS });
      assert.equal(s.metadata?.annotations?.['pinst/by'], undefined);
      assert.deepEqual(s.spec?.ports?.map((p) => p.port), [80]);
      assert.deepEqual(s.status?.loadBalancer?.ingress?.map((i) => i.ip), current.status?.loadBalancer?.ingress?.map((i) => i.ip));
    });

    it('the speaker\'s token cannot change a pool', async function () {
      const kc = new k8s.KubeConfig();
      kc.loadFromFile(asSpeaker);
      const custom = kc.makeApiClient(k8s.CustomObjectsApi);
      const r = await custom.patchNamespacedCustomObject({ group: 'portico.dev', version: 'v1beta1', namespace: NS, plural: 'ipaddresspools', name: 'lan', body: { spec: { autoAssign: false } } }, mergePatch)
        .then(() => 'accepted', (e: unknown) => `${(e as { code?: number }).code} ${String((e as { body?: unknown }).body)}`);
      assert.match(r, /^403 .*cannot patch resource \\?"ipaddresspools\\?"/);
      const pool = await lab.kubectl('-n', NS, 'get', 'ipaddresspool', 'lan', '-o', 'jsonpath={.spec.autoAssign}');
      assert.equal(pool, 'true');
    });

    it('the controller\'s token cannot update another Lease (RBAC) nor create one under another name (Lease policy)', async function () {
      const lease = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'pinst-someone-else', namespace: NS }, spec: { holderIdentity: 'someone' } };
      assert.equal((await lab.kubectlResult(['apply', '-f', '-'], JSON.stringify(lease))).code, 0);
      // A direct update (kubectl patch would stop at its GET, which is refused too).
      const kc = new k8s.KubeConfig();
      kc.loadFromFile(asController);
      const leases = kc.makeApiClient(k8s.CoordinationV1Api);
      const err = await leases.replaceNamespacedLease({ name: 'pinst-someone-else', namespace: NS, body: { ...lease, spec: { holderIdentity: 'controller' } } }).then(() => undefined, (e: unknown) => e as { code?: number; body?: unknown });
      assert.equal(err?.code, 403, `update accepted or failed otherwise: ${String(err?.body)}`);
      assert.match(String(err.body), /cannot update resource \\"leases\\"|cannot update resource "leases"/);
      assert.equal((await kubectlAs(asController, ['-n', NS, 'get', 'lease', 'pinst-someone-else'])).code, 1);
      const other = { ...lease, metadata: { name: 'pinst-controller-grab', namespace: NS } };
      const cr = await kubectlAs(asController, ['create', '-f', '-'], JSON.stringify(other));
      assert.notEqual(cr.code, 0, cr.stdout);
      assert.match(cr.stderr, /the controller may only write its own Lease, portico-controller/);
      const l = await lab.kc.makeApiClient(k8s.CoordinationV1Api).readNamespacedLease({ name: 'pinst-someone-else', namespace: NS });
      assert.equal(l.spec?.holderIdentity, 'someone');
    });

    it('a speaker\'s pod-bound token (which names its node) may write only its own node\'s Lease (Lease policy)', async function () {
      // A pod of the speaker's account on node-1, as the DaemonSet makes; its bound token carries the node name.
      const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'pinst-speaker-node-1', namespace: NS }, spec: { serviceAccountName: 'portico-speaker', nodeName: 'node-1', containers: [{ name: 'c', image: 'portico.dev/lab-web' }] } };
      assert.equal((await lab.kubectlResult(['apply', '-f', '-'], JSON.stringify(pod))).code, 0);
      try {
        const token = (await lab.kubectl('-n', NS, 'create', 'token', 'portico-speaker', '--bound-object-kind=Pod', '--bound-object-name=pinst-speaker-node-1', '--duration=10m')).trim();
        const kc = new k8s.KubeConfig();
        kc.loadFromFile(asSpeaker);
        kc.users = kc.users.map((u) => ({ ...u, token }));
        const who = await kubectlAs(asSpeaker, ['auth', 'whoami', '-o', 'json', `--token=${token}`]);
        assert.match(who.stdout, /"authentication.kubernetes.io\/node-name":\s*\[\s*"node-1"/, who.stdout + who.stderr);
        const leases = kc.makeApiClient(k8s.CoordinationV1Api);
        const body = (name: string): k8s.V1Lease => ({ metadata: { name, namespace: NS }, spec: { holderIdentity: 'pinst' } });
        const other = await leases.createNamespacedLease({ namespace: NS, body: body('portico-speaker-node-2-pinst') }).then(() => 'accepted', (e: unknown) => String((e as { body?: unknown }).body));
        assert.match(other, /a speaker may only write the Lease of its own node/);
        await leases.createNamespacedLease({ namespace: NS, body: body('pinst-node-1') });
        await lab.kubectl('-n', NS, 'delete', 'lease', 'pinst-node-1');
      } finally {
        await lab.kubectlResult(['-n', NS, 'delete', 'pod', 'pinst-speaker-node-1', '--wait=false']);
      }
    });

    it('the speaker\'s token cannot take the controller\'s Lease (Lease policy)', async function () {
      // Read and replace, as a speaker's Lease code does: RBAC allows both on Leases, the policy refuses this name.
      const kc = new k8s.KubeConfig();
      kc.loadFromFile(asSpeaker);
      const leases = kc.makeApiClient(k8s.CoordinationV1Api);
      const l = await leases.readNamespacedLease({ name: 'portico-controller', namespace: NS });
      const holder = l.spec?.holderIdentity;
      const r = await leases.replaceNamespacedLease({ name: 'portico-controller', namespace: NS, body: { ...l, spec: { ...l.spec, holderIdentity: 'speaker' } } })
        .then(() => 'accepted', (e: unknown) => String((e as { body?: unknown }).body));
      assert.match(r, /a speaker may not write the controller's Lease/);
      const after = await lab.kc.makeApiClient(k8s.CoordinationV1Api).readNamespacedLease({ name: 'portico-controller', namespace: NS });
      assert.notEqual(after.spec?.holderIdentity, 'speaker');
      assert.ok(holder === undefined || after.spec?.holderIdentity === holder || /^portico-controller-lab-/.test(after.spec?.holderIdentity ?? ''));
    });
  });

  describe('kubectl apply --dry-run=server refuses each invalid example, naming the field', function () {
    for (const f of readdirSync(INVALID).filter((x) => x.endsWith('.yaml')).sort()) {
      const text = readFileSync(path.join(INVALID, f), 'utf8');
      const field = /^# refused-field: (\S+)$/m.exec(text)?.[1] ?? '';
      it(`${f} (${field})`, async function () {
        assert.ok(field, `${f} has no "# refused-field:" line`);
        const r = await lab.kubectlResult(['apply', '--dry-run=server', '-f', path.join(INVALID, f)]);
        assert.notEqual(r.code, 0, `accepted: ${r.stdout}`);
        const esc = field.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        assert.match(r.stderr, new RegExp(`(^|[^.\\w])${esc}(:|"| )`), r.stderr);
      });
    }
  });
});
