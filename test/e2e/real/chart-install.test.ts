// Portico installed from its Helm chart on real nodes: `helm install` of
// charts/portico (helm built from its pinned Go module) with only the image
// values pointed at the image built here. The pods come up from the chart's
// objects, a Service is reached over layer 2 with one node answering ARP, and
// `helm uninstall` leaves nothing on the nodes (the speakers see their
// DaemonSet deleted and leave) and nothing of Portico in the API server but
// the CRDs, which Helm never deletes (its rule for a chart's crds/).
// The file installs and uninstalls by itself, so it shares the one real lab
// with the manifest's tests in either order.
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { type Lab, type LabImage, repoRoot, run, waitFor } from '../../lab/index.ts';
import { PORTICO_NAMESPACE } from '../../lab/portico.ts';
import { FIRST_BUILD_TIMEOUT_MS, porticoImage, waitRolledOut } from '../../lab/realnode-portico.ts';
import { requireE2e } from '../shared-lab.ts';
import { answerers, exposeWeb, nodeMac, reach, waitNodesClean } from './layer2.ts';
import { realLab } from './real-lab.ts';

const RELEASE = 'portico';
const CHART = path.join(repoRoot, 'charts', 'portico');

describe('Portico on real nodes (e2e, root): installed with helm install of charts/portico', function () {
  this.timeout(240_000);
  let lab: Lab;
  let image: LabImage;
  let helmBin = '';
  let installed = false;
  const core = (): k8s.CoreV1Api => lab.kc.makeApiClient(k8s.CoreV1Api);

  /** helm against the lab's API server, with its own config and cache under the lab's directory. */
  const helm = (args: string[], timeoutMs = 200_000): ReturnType<typeof run> => {
    const home = path.join(lab.dir, 'helm');
    mkdirSync(home, { recursive: true });
    return run([helmBin, `--kubeconfig=${lab.kubeconfig}`, ...args], {
      allowFail: true, timeoutMs,
      env: { ...process.env, HELM_CONFIG_HOME: path.join(home, 'config'), HELM_CACHE_HOME: path.join(home, 'cache'), HELM_DATA_HOME: path.join(home, 'data') },
    });
  };

  before(async function () {
    requireE2e(this);
    // helm and the image may both be built here first on a fresh machine.
    this.timeout(FIRST_BUILD_TIMEOUT_MS);
    const built = spawnSync('bash', [path.join(repoRoot, 'test', 'lab', 'build-helm.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    // The control plane built from the same toolchain and module proxy: a helm that does not build is a failure.
    if (built.status !== 0) throw new Error(`test/lab/build-helm.sh failed (exit ${built.status}); its output is above`);
    helmBin = built.stdout.trim();
    lab = await realLab();
    image = await porticoImage();
    await lab.loadImage(image);
  });

  after(async function () {
    if (!lab) return;
    await lab.kubectlResult(['delete', 'service/chart-lb', 'deployment/chart-lb', '--ignore-not-found']);
    if (installed) await helm(['uninstall', RELEASE, '--wait', '--timeout=120s']);
    // Helm keeps a chart's CRDs; the next install in this lab (the manifest's) brings its own.
    await lab.kubectlResult(['delete', 'crd', '-l', 'app.kubernetes.io/part-of=portico', '--ignore-not-found', '--wait=true']);
  });

  it('helm install with the image values pointed at the local build: the controller and a speaker on every node ready', async function () {
    const at = image.name.lastIndexOf(':');
    const r = await helm(['install', RELEASE, CHART, '--set', `image.repository=${image.name.slice(0, at)}`, '--set', `image.tag=${image.name.slice(at + 1)}`]);
    assert.equal(r.code, 0, `helm install: ${r.stderr}`);
    installed = true;
    await lab.kubectl('wait', '--for=condition=Established', '--timeout=60s', 'crd', '-l', 'app.kubernetes.io/part-of=portico');
    await waitRolledOut(lab);
    const pods = (await core().listNamespacedPod({ namespace: PORTICO_NAMESPACE })).items;
    const speakers = pods.filter((p) => p.metadata?.labels?.['app.kubernetes.io/component'] === 'speaker');
    assert.deepEqual(speakers.map((p) => p.spec?.nodeName).sort(), lab.nodes.map((n) => n.name).sort());
    for (const p of pods) {
      assert.equal(p.spec?.containers[0]?.image, image.name, `${p.metadata?.name} runs the local image`);
      assert.ok(p.status?.containerStatuses?.[0]?.ready, `${p.metadata?.name} is ready`);
    }
    const status = await helm(['status', RELEASE, '-o', 'json']);
    assert.equal((JSON.parse(status.stdout) as { info: { status: string } }).info.status, 'deployed');
  });

  it('a LoadBalancer Service of the chart\'s install is reached over layer 2, one node answering ARP', async function () {
    if (!installed) this.skip();
    const svc = await exposeWeb(lab, 'chart-lb');
    assert.match((await reach(lab, `http://${svc.v4}/`)).pod, /^chart-lb-/);
    const arp = await answerers(lab, svc.v4, () => lab.exec('client', ['ping', '-c', '2', '-W', '1', svc.v4], { allowFail: true }));
    assert.deepEqual([...arp], [await nodeMac(lab, svc.owner)], `ARP for ${svc.v4}: only the owner ${svc.owner} answers`);
  });

  it('helm uninstall leaves nothing on the nodes (no portico0, no table of Portico\'s) and nothing in the API server but the CRDs', async function () {
    if (!installed) this.skip();
    await lab.kubectlResult(['delete', 'service/chart-lb', 'deployment/chart-lb', '--ignore-not-found', '--wait=true']);
    const r = await helm(['uninstall', RELEASE, '--wait', '--timeout=120s']);
    assert.equal(r.code, 0, `helm uninstall: ${r.stderr}`);
    installed = false;
    await waitFor(`namespace ${PORTICO_NAMESPACE} gone`, async () => (await lab.kubectlResult(['get', 'namespace', PORTICO_NAMESPACE])).code !== 0, 120_000, 500);
    await waitNodesClean(lab);
    const left = await lab.kubectl('get', 'clusterroles,clusterrolebindings,validatingadmissionpolicies,validatingadmissionpolicybindings,flowschemas,crd', '-l', 'app.kubernetes.io/part-of=portico', '-o', 'name');
    assert.deepEqual(left.split('\n').filter(Boolean).filter((n) => !n.startsWith('customresourcedefinition')), [], 'only the CRDs stay');
    assert.equal((await helm(['list', '-a', '-q'])).stdout.trim(), '', 'no release left');
  });
});
