// Portico on real nodes, installed as a user installs it: `kubectl apply -f
// manifests/portico.yaml` with the image built here; the controller and the
// speakers run as real pods under the manifest's securityContext, next to the
// real kube-proxy (nftables mode). A LoadBalancer Service is reached over
// layer 2 (ARP and NDP, one answerer by capture); a power cut of the owner
// node moves the VIP; uninstalling leaves nothing on the nodes (not even the
// strict-ARP table: the speakers tell an uninstall from a restart).
import { strict as assert } from 'node:assert';
import * as k8s from '@kubernetes/client-node';
import { Lab, waitFor } from '../../lab/index.ts';
import { manifestWorkload, PORTICO_NAMESPACE } from '../../lab/portico.ts';
import { manifestInstall } from './install.ts';
import { answerers, exposeWeb, nodeMac, reach, waitNodesClean, type WebAnswer } from './layer2.ts';

describe('Portico on real nodes (e2e, root): installed from the manifest, as real pods', function () {
  this.timeout(240_000);
  const portico = manifestInstall(['service/lb', 'deployment/lb']);
  let lab: Lab;
  let vip4 = '';
  let vip6 = '';
  const core = (): k8s.CoreV1Api => lab.kc.makeApiClient(k8s.CoreV1Api);

  before(function () { lab = portico.lab; });

  it('runs the controller Deployment and the speaker DaemonSet as pods from the image, with the manifest\'s securityContext', async function () {
    const pods = (await core().listNamespacedPod({ namespace: PORTICO_NAMESPACE })).items;
    const speakers = pods.filter((p) => p.metadata?.labels?.['app.kubernetes.io/component'] === 'speaker');
    const controllers = pods.filter((p) => p.metadata?.labels?.['app.kubernetes.io/component'] === 'controller');
    assert.deepEqual(speakers.map((p) => p.spec?.nodeName).sort(), ['node-1', 'node-2', 'node-3']);
    assert.equal(controllers.length, manifestWorkload('Deployment', 'portico-controller').spec.replicas ?? 1);
    const shipped = {
      speaker: manifestWorkload('DaemonSet', 'portico-speaker').spec.template.spec.containers[0] as { securityContext?: unknown },
      controller: manifestWorkload('Deployment', 'portico-controller').spec.template.spec.containers[0] as { securityContext?: unknown },
    };
    for (const p of [...speakers, ...controllers]) {
      const c = p.spec!.containers[0]!;
      const kind = p.metadata?.labels?.['app.kubernetes.io/component'] as 'speaker' | 'controller';
      assert.equal(c.image, portico.install!.image.name);
      assert.deepEqual(JSON.parse(JSON.stringify(c.securityContext)), shipped[kind].securityContext, `${p.metadata?.name}'s securityContext is the manifest's`);
      assert.ok(p.status?.containerStatuses?.[0]?.ready, `${p.metadata?.name} is ready`);
      assert.ok(p.status?.containerStatuses?.[0]?.imageID, `${p.metadata?.name} runs from an image in containerd`);
    }
    // kubectl logs and exec reach the pods through the real kubelets.
    const logs = await lab.kubectl('logs', '-n', PORTICO_NAMESPACE, speakers[0]!.metadata!.name!);
    assert.ok(logs.trim().length > 0, 'the speaker logged');
    const uid = await lab.kubectl('exec', '-n', PORTICO_NAMESPACE, controllers[0]!.metadata!.name!, '--', 'node', '-e', 'process.stdout.write(String(process.getuid()))');
    assert.equal(uid, '65532');
  });

  it('answers a LoadBalancer Service over layer 2: ARP and NDP from one node, traffic reaches the pods', async function () {
    const got = await exposeWeb(lab, 'lb', { dualStack: true });
    vip4 = got.v4;
    vip6 = got.v6!;
    for (const url of [`http://${vip4}/`, `http://[${vip6}]/`]) assert.match((await reach(lab, url)).pod, /^lb-/);
    const ownerMac = await nodeMac(lab, got.owner);
    const arp = await answerers(lab, vip4, () => lab.exec('client', ['ping', '-c', '2', '-W', '1', vip4], { allowFail: true }));
    assert.deepEqual([...arp], [ownerMac], `ARP for ${vip4}: only the owner ${got.owner} answers`);
    const nd = await answerers(lab, vip6, () => lab.exec('client', ['ping', '-6', '-c', '2', '-W', '1', vip6], { allowFail: true }));
    assert.deepEqual([...nd], [ownerMac], `NDP for ${vip6}: only the owner ${got.owner} answers`);
  });

  it('moves the VIP to another node when the owner loses power', async function () {
    if (!vip4) this.skip();
    const svc = await core().readNamespacedService({ name: 'lb', namespace: 'default' });
    const owner = svc.metadata!.annotations!['portico.dev/layer2-node']!;
    const t0 = Date.now();
    await lab.killNode(owner);
    const a = await waitFor(`an answer from ${vip4} after ${owner}'s power cut`, async () => {
      const r = await lab.exec('client', ['curl', '-sS', '--max-time', '1', `http://${vip4}/`], { allowFail: true });
      return r.code === 0 ? JSON.parse(r.stdout) as WebAnswer : undefined;
    }, 60_000, 100);
    const gapMs = Date.now() - t0;
    assert.notEqual(a.node, owner, 'a pod on a live node answers');
    const neigh = (await lab.exec('client', ['ip', 'neigh', 'show', vip4])).stdout;
    assert.ok(!neigh.includes(await nodeMac(lab, owner).catch(() => 'none')), `the client no longer sends to ${owner}: ${neigh}`);
    console.log(`      (VIP answered again ${gapMs} ms after the power cut of ${owner})`);
    await lab.restartNode(owner);
    await waitFor('a speaker ready on the rebooted node', async () => {
      const pods = await core().listNamespacedPod({ namespace: PORTICO_NAMESPACE, labelSelector: 'app.kubernetes.io/component=speaker', fieldSelector: `spec.nodeName=${owner}` });
      return pods.items.some((p) => p.status?.containerStatuses?.[0]?.ready);
    }, 90_000, 250);
  });

  it('leaves nothing on the nodes once uninstalled: no portico0, no table inet portico, no table arp portico (each speaker saw its namespace being deleted and left)', async function () {
    await lab.kubectlResult(['delete', 'service/lb', 'deployment/lb', '--ignore-not-found', '--wait=true']);
    await portico.uninstall();
    await waitNodesClean(lab);
  });
});
