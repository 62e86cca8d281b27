// The speaker process against the real API server: every node's speaker builds
// the same World from Services, EndpointSlices, Nodes and the configuration,
// and follows changes. (What the speakers then announce is tested per feature:
// l2, bgp, nftables.) The Service status is written here directly, as the
// controller would, so this test does not depend on the controller. The
// speakers are the manifests' DaemonSet, each as its ServiceAccount.
import { strict as assert } from 'node:assert';
import path from 'node:path';
import { installPortico, waitFor, type Lab, type PorticoInstall } from '../lab/index.ts';
import { pool } from './objects.ts';
import { requireE2e, sharedLab } from './shared-lab.ts';

const NS = 'speaker-e2e';
/** The DaemonSet's monitoring port (manifests/speaker.yaml). */
const PORT = 7473;

async function metric(lab: Lab, node: string, name: string): Promise<number | undefined> {
  const r = await lab.exec(node, ['curl', '-sS', '--max-time', '2', `http://127.0.0.1:${PORT}/metrics`], { allowFail: true });
  const line = r.stdout.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

async function allNodes(lab: Lab, name: string, want: number): Promise<void> {
  await waitFor(`${name} = ${want} on every speaker`, async () => {
    const values = await Promise.all(lab.nodes.map((n) => metric(lab, n.name, name)));
    return values.every((v) => v === want);
  }, 20_000, 200);
}

describe('speaker process (e2e, root): the World from the real API server', function () {
  this.timeout(90_000);
  let lab: Lab;
  let install: PorticoInstall | undefined;

  before(async function () {
    requireE2e(this);
    this.timeout(180_000);
    lab = await sharedLab();
    await lab.kubectl('create', 'namespace', NS);
    await lab.kubectl('create', 'deployment', 'web', '-n', NS, '--image=x', '--replicas=2', '--port=80');
    // Speakers only: the Service status is written by hand below.
    install = await installPortico(lab, { controller: false, stateDir: path.join(lab.dir, 'portico-speaker') });
  });

  after(async () => {
    await install?.stop();
    await lab?.kubectlResult(['delete', 'namespace', NS, '--wait=false']);
  });

  it('every speaker becomes ready once its caches have synced', async () => {
    for (const n of lab.nodes) {
      await waitFor(`${n.name} ready`, async () => (await lab.exec(n.name, ['curl', '-sf', `http://127.0.0.1:${PORT}/readyz`], { allowFail: true })).code === 0, 20_000, 200);
    }
  });

  it('counts a LoadBalancer Service once it has an IP, ignores other classes, and forgets it when deleted', async () => {
    await allNodes(lab, 'portico_speaker_services_count', 0);
    await lab.kubectl('expose', 'deployment', 'web', '-n', NS, '--type=LoadBalancer', '--port=80');
    // Pending: no IP yet, nothing to announce.
    await new Promise((r) => setTimeout(r, 500));
    await allNodes(lab, 'portico_speaker_services_count', 0);
    await lab.kubectl('annotate', 'service', 'web', '-n', NS, 'portico.dev/ip-allocated-from-pool=manual');
    await lab.kubectl('patch', 'service', 'web', '-n', NS, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { loadBalancer: { ingress: [{ ip: '203.0.113.200', ipMode: 'VIP' }] } } }));
    await allNodes(lab, 'portico_speaker_services_count', 1);

    // A Service of another class, created with it (the API refuses to add
    // spec.loadBalancerClass to an existing Service), and given an IP as its
    // own implementation would: no speaker may count it.
    const other = {
      apiVersion: 'v1', kind: 'Service', metadata: { name: 'other', namespace: NS, annotations: { 'portico.dev/ip-allocated-from-pool': 'manual' } },
      spec: { type: 'LoadBalancer', loadBalancerClass: 'example.com/other', selector: { app: 'web' }, ports: [{ port: 80, targetPort: 80 }] },
    };
    await lab.kubectlResult(['apply', '-f', '-'], JSON.stringify(other)).then((r) => assert.equal(r.code, 0, r.stderr));
    assert.equal((await lab.kubectl('get', 'service', 'other', '-n', NS, '-o', 'jsonpath={.spec.loadBalancerClass}')).trim(), 'example.com/other');
    await lab.kubectl('patch', 'service', 'other', '-n', NS, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { loadBalancer: { ingress: [{ ip: '203.0.113.201', ipMode: 'VIP' }] } } }));
    // The barrier: 'web' loses its IP after 'other' got one, and one watch
    // delivers both in order. A speaker that counted 'other' goes 1 -> 2 -> 1
    // and never reaches 0; one that ignores it goes 1 -> 0.
    await lab.kubectl('patch', 'service', 'web', '-n', NS, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { loadBalancer: { ingress: [] } } }));
    await allNodes(lab, 'portico_speaker_services_count', 0);

    await lab.kubectl('delete', 'service', 'web', 'other', '-n', NS);
  });

  it('keeps the last good configuration when a new one is refused, and says it is stale', async () => {
    const poolOf = (name: string, addresses: string[]): string => JSON.stringify(pool(name, { addresses }));
    await lab.kubectlResult(['apply', '-f', '-'], poolOf('speaker-a', ['203.0.113.224/29'])).then((r) => assert.equal(r.code, 0, r.stderr));
    await allNodes(lab, 'portico_speaker_config_stale_state', 0);
    // Overlapping pools: valid one by one, refused together.
    await lab.kubectlResult(['apply', '-f', '-'], poolOf('speaker-b', ['203.0.113.228/30'])).then((r) => assert.equal(r.code, 0, r.stderr));
    await allNodes(lab, 'portico_speaker_config_stale_state', 1);
    await lab.kubectl('delete', 'ipaddresspool', 'speaker-b', '-n', 'portico-system');
    await allNodes(lab, 'portico_speaker_config_stale_state', 0);
    await lab.kubectl('delete', 'ipaddresspool', 'speaker-a', '-n', 'portico-system');
  });

  it('no speaker was refused by the API server: the manifests\' roles cover building the World', async () => {
    assert.deepEqual(await install!.refusals(), []);
  });
});
