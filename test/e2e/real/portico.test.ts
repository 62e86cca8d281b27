// Portico on real nodes, installed as a user installs it: `kubectl apply -f
// manifests/portico.yaml` with the image built here; the controller and the
// speakers run as real pods under the manifest's securityContext, next to the
// real kube-proxy (nftables mode). A LoadBalancer Service is reached over
// layer 2 (ARP and NDP, one answerer by capture); a power cut of the owner
// node moves the VIP; uninstalling leaves nothing on the nodes.
import { strict as assert } from 'node:assert';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { Lab, repoRoot, waitFor, webDeployment } from '../../lab/index.ts';
import { manifestWorkload, PORTICO_NAMESPACE } from '../../lab/portico.ts';
import { installPorticoReal, porticoImage, PorticoImageError, type RealInstall } from '../../lab/realnode-portico.ts';
import { requireE2e } from '../shared-lab.ts';
import { realLab } from './real-lab.ts';

interface WebAnswer { pod: string; node: string; client: string }

/** Who answered ARP (IPv4) or Neighbor Advertisements (IPv6) for `vip`, by source MAC, in a capture on the client. */
async function answerers(lab: Lab, vip: string, trigger: () => Promise<unknown>): Promise<Set<string>> {
  const v6 = vip.includes(':');
  const filter = v6 ? 'icmp6 and ip6[40] == 136' : 'arp';
  const capture = lab.exec('client', ['timeout', '4', 'tcpdump', '-i', 'eth0', '-n', '-e', '-l', '-Q', 'in', filter], { allowFail: true, timeoutMs: 10_000 });
  await new Promise((r) => setTimeout(r, 700)); // tcpdump needs its socket open before the trigger
  await lab.exec('client', ['ip', 'neigh', 'flush', 'to', vip], { allowFail: true });
  await trigger();
  const out = (await capture).stdout;
  const macs = new Set<string>();
  for (const line of out.split('\n')) {
    const about = v6 ? line.includes(`tgt is ${vip}`) : line.includes(`Reply ${vip} is-at`);
    if (about) macs.add(line.split(' ')[1] ?? '?');
  }
  return macs;
}

async function nodeMac(lab: Lab, node: string): Promise<string> {
  return (await lab.exec(node, ['cat', '/sys/class/net/eth0/address'])).stdout.trim();
}

describe('Portico on real nodes (e2e, root): installed from the manifest, as real pods', function () {
  this.timeout(240_000);
  let lab: Lab;
  let install: RealInstall | undefined;
  let vip4 = '';
  let vip6 = '';
  const core = (): k8s.CoreV1Api => lab.kc.makeApiClient(k8s.CoreV1Api);

  before(async function () {
    requireE2e(this);
    lab = await realLab();
    const image = await porticoImage().catch((err: unknown) => {
      if (err instanceof PorticoImageError) return err;
      throw err;
    });
    if (image instanceof PorticoImageError) {
      if (this.test?.parent) this.test.parent.title += ` (skipped: ${image.message})`;
      this.skip();
    }
    install = await installPorticoReal(lab, { image });
  });

  after(async function () {
    if (!lab) return;
    await lab.kubectlResult(['delete', 'service/lb', 'deployment/lb', '--ignore-not-found']);
    if (install) await install.uninstall().catch(() => undefined);
  });

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
      assert.equal(c.image, install!.image.name);
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
    await lab.kubectl('apply', '-f', path.join(repoRoot, 'manifests', 'examples', 'layer2.yaml'));
    await lab.exec('client', ['ip', 'route', 'replace', '203.0.113.0/24', 'dev', 'eth0']);
    await lab.kubectlResult(['apply', '-f', '-'], webDeployment('lb', 3));
    await lab.kubectlResult(['apply', '-f', '-'], `apiVersion: v1
kind: Service
metadata: {name: lb}
spec:
  type: LoadBalancer
  ipFamilyPolicy: RequireDualStack
  selector: {app: lb}
  ports: [{port: 80, targetPort: 80}]
`);
    const got = await waitFor('dual-stack external IPs and an owner', async () => {
      const svc = await core().readNamespacedService({ name: 'lb', namespace: 'default' });
      const ips = (svc.status?.loadBalancer?.ingress ?? []).map((i) => i.ip ?? '');
      const owner = svc.metadata?.annotations?.['portico.dev/layer2-node'];
      const v4 = ips.find((i) => i.includes('.'));
      const v6 = ips.find((i) => i.includes(':'));
      return v4 && v6 && owner ? { v4, v6, owner } : undefined;
    }, 60_000, 250);
    vip4 = got.v4;
    vip6 = got.v6;
    for (const url of [`http://${vip4}/`, `http://[${vip6}]/`]) {
      const a = await waitFor(`an answer from ${url}`, async () => {
        const r = await lab.exec('client', ['curl', '-sS', '--max-time', '2', '-g', url], { allowFail: true });
        return r.code === 0 ? JSON.parse(r.stdout) as WebAnswer : undefined;
      }, 30_000, 250);
      assert.match(a.pod, /^lb-/);
    }
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

  it('leaves nothing on the nodes once uninstalled but the strict-ARP table kept for a restart: no portico0, no table inet portico', async function () {
    await lab.kubectlResult(['delete', 'service/lb', 'deployment/lb', '--ignore-not-found', '--wait=true']);
    await install!.uninstall();
    install = undefined;
    for (const n of lab.nodes) {
      await waitFor(`${n.name} clean`, async () => {
        const links = (await lab.exec(n.name, ['ip', '-o', 'link', 'show'])).stdout;
        const tables = (await lab.exec(n.name, ['nft', 'list', 'tables'])).stdout;
        // table arp portico stays by design (a stopping speaker keeps it for its
        // restart; docs/install.md "Uninstall" says how to remove it).
        const left = [...links.matchAll(/\bportico0\b/g), ...tables.matchAll(/\btable (?!arp )\w+ portico\b/g)].map((m) => m[0]);
        if (left.length) throw new Error(`still there: ${left.join(', ')}`);
        return true;
      }, 30_000, 250);
      // IPVS: this kernel has no ip_vs (LAB.md); test/vm proves the IPVS clean-up.
    }
  });
});
