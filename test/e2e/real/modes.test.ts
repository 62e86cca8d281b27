// Each dataplane choice on real nodes, next to the real kube-proxy and
// without it, over layer 2 and over BGP (FRR): the rows of docs/dataplane.md's
// "With kube-proxy: what to do for each mode" table, one per kube-proxy mode,
// plus the explicit flags. Per row the speakers restart as a user restarts
// them (the DaemonSet patched with the docs' own patch, or its pods deleted
// after kube-proxy changed), then:
// - every speaker logs `dataplane chosen` with the mode and the reason;
// - a client on the segment reaches a layer-2 Service's pods, and FRR (its
//   kernel routes learnt over BGP only) reaches a BGP Service's pods;
// - exactly the expected forwarder holds the VIPs on every node: kube-proxy's
//   rules (table ip kube-proxy, or chain KUBE-SERVICES) and no table inet
//   portico, or Portico's table and no kube-proxy rules.
// kube-proxy's IPVS mode and Portico's IPVS dataplane need ip_vs, which this
// kernel lacks: test/vm covers the IPVS dataplane; that row says so and skips.
import { strict as assert } from 'node:assert';
import { existsSync } from 'node:fs';
import * as k8s from '@kubernetes/client-node';
import { addRouter, waitFor, webDeployment, type KubeProxyMode, type Lab, type Router } from '../../lab/index.ts';
import { manifestWorkload, PORTICO_NAMESPACE } from '../../lab/portico.ts';
import { FIRST_BUILD_TIMEOUT_MS, installPorticoReal, porticoImage, type RealInstall } from '../../lab/realnode-portico.ts';
import { requireE2e } from '../shared-lab.ts';
import { realLab } from './real-lab.ts';

const L2_POOL = '203.0.113.64/28';
const BGP_POOL = '203.0.113.96/28';
const NODE_AS = 64512;
const ROUTER_AS = 64513;
const SPEAKER = 'app.kubernetes.io/component=speaker';

type Dataplane = 'auto' | 'nftables' | 'none';
/** Who should forward the VIPs on every node. */
type Forwarder = 'kube-proxy' | 'portico' | 'both' | 'nobody';

interface Row {
  kubeProxy: KubeProxyMode;
  dataplane: Dataplane;
  /** What the speakers log: the mode they run, the kube-proxy mode they saw, the reason. */
  chosen: { dataplane: 'nftables' | 'none'; kubeProxy: 'nftables' | 'iptables' | null; why: RegExp };
  forwarder: Forwarder;
  /** Who forwards once kube-proxy changed and before the speakers restart, when the row checks it. */
  beforeRestart?: Forwarder;
}

interface Chosen { msg?: string; dataplane?: string; kubeProxy?: string | null; why?: string; asked?: string }

describe('Portico on real nodes (e2e, root): each dataplane choice with and without kube-proxy, over layer 2 and BGP', function () {
  this.timeout(240_000);
  let lab: Lab;
  let install: RealInstall | undefined;
  let frr: Router | undefined;
  let vipL2 = '';
  let vipBgp = '';
  const cleanups: (() => Promise<unknown>)[] = [];
  const core = (): k8s.CoreV1Api => lab.kc.makeApiClient(k8s.CoreV1Api);
  const baseArgs = (manifestWorkload('DaemonSet', 'portico-speaker').spec.template.spec.containers[0] as { args: string[] }).args;
  let dataplane: Dataplane = 'auto';

  before(async function () {
    requireE2e(this);
    this.timeout(FIRST_BUILD_TIMEOUT_MS);
    lab = await realLab();
    const image = await porticoImage();
    if (lab.kubeProxyMode !== 'nftables') await lab.setKubeProxy('nftables');
    try {
      await setUp(image);
    } catch (err) {
      await tearDown();
      throw err;
    }
  });

  async function setUp(image: Awaited<ReturnType<typeof porticoImage>>): Promise<void> {
    const nodes = lab.nodes.map((n) => n.ipv4);
    frr = await addRouter(lab, {
      name: 'm-frr', kind: 'frr', config: `
frr defaults datacenter
hostname m-frr
router bgp ${ROUTER_AS}
 bgp router-id {{ipv4}}
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 neighbor NODES peer-group
 neighbor NODES remote-as ${NODE_AS}
 neighbor NODES passive
 neighbor NODES timers 1 3
${nodes.map((ip) => ` neighbor ${ip} peer-group NODES`).join('\n')}
 address-family ipv4 unicast
  maximum-paths 4
  neighbor NODES activate
 exit-address-family
`,
    });
    cleanups.push(() => frr!.stop());
    install = await installPorticoReal(lab, { image });
    cleanups.push(async () => { await install?.uninstall(); install = undefined; });
    cleanups.push(() => lab.kubectlResult(['delete', 'service/m-l2', 'service/m-bgp', 'deployment/m-web', '--ignore-not-found', '--wait=true']));
    const applied = await lab.kubectlResult(['apply', '-f', '-'], `apiVersion: portico.dev/v1beta1
kind: IPAddressPool
metadata: {name: m-l2, namespace: ${PORTICO_NAMESPACE}}
spec: {addresses: ["${L2_POOL}"], autoAssign: false}
---
apiVersion: portico.dev/v1beta1
kind: L2Advertisement
metadata: {name: m-l2, namespace: ${PORTICO_NAMESPACE}}
spec: {ipAddressPools: [m-l2]}
---
apiVersion: portico.dev/v1beta1
kind: IPAddressPool
metadata: {name: m-bgp, namespace: ${PORTICO_NAMESPACE}}
spec: {addresses: ["${BGP_POOL}"], autoAssign: false}
---
apiVersion: portico.dev/v1beta1
kind: BGPAdvertisement
metadata: {name: m-bgp, namespace: ${PORTICO_NAMESPACE}}
spec: {ipAddressPools: [m-bgp]}
---
apiVersion: portico.dev/v1beta1
kind: BGPPeer
metadata: {name: m-frr, namespace: ${PORTICO_NAMESPACE}}
spec: {myASN: ${NODE_AS}, peerASN: ${ROUTER_AS}, peerAddress: "${frr.ipv4}", holdTime: 9s, connectTime: 1s}
---
${webDeployment('m-web', 3)}
---
${service('m-l2')}
---
${service('m-bgp')}
`);
    assert.equal(applied.code, 0, applied.stderr);
    const ips = await waitFor('both Services with an IP', async () => {
      const [l2, bgp] = await Promise.all(['m-l2', 'm-bgp'].map(async (name) => (await core().readNamespacedService({ name, namespace: 'default' })).status?.loadBalancer?.ingress?.[0]?.ip));
      return l2 && bgp ? { l2, bgp } : undefined;
    }, 60_000, 250);
    vipL2 = ips.l2;
    vipBgp = ips.bgp;
    await lab.exec('client', ['ip', 'route', 'replace', L2_POOL, 'dev', 'eth0']);
    cleanups.push(() => lab.exec('client', ['ip', 'route', 'del', L2_POOL, 'dev', 'eth0'], { allowFail: true }));
  }

  function service(name: string): string {
    return `apiVersion: v1
kind: Service
metadata: {name: ${name}, annotations: {portico.dev/address-pool: ${name}}}
spec:
  type: LoadBalancer
  selector: {app: m-web}
  ports: [{port: 80, targetPort: 80}]`;
  }

  async function tearDown(): Promise<void> {
    for (const fn of cleanups.reverse()) await fn().catch(() => undefined);
    cleanups.length = 0;
    // The next suite finds kube-proxy as the lab starts it.
    if (lab && lab.kubeProxyMode !== 'nftables') await lab.setKubeProxy('nftables');
  }

  after(async function () {
    this.timeout(240_000);
    if (lab) await tearDown();
  });

  /** The speaker DaemonSet's args: the manifest's plus --dataplane (as docs/dataplane.md's patch adds it). */
  async function setDataplane(want: Dataplane): Promise<void> {
    if (want === dataplane) return;
    const args = want === 'auto' ? baseArgs : [...baseArgs, `--dataplane=${want}`];
    const patch = JSON.stringify([{ op: 'replace', path: '/spec/template/spec/containers/0/args', value: args }]);
    const r = await lab.kubectlResult(['patch', '-n', PORTICO_NAMESPACE, 'daemonset/portico-speaker', '--type=json', '-p', patch]);
    assert.equal(r.code, 0, r.stderr);
    dataplane = want;
  }

  /** Restarts every speaker pod (a user does it after changing kube-proxy; the choice is made at start) and waits for the new ones. */
  async function restartSpeakers(): Promise<k8s.V1Pod[]> {
    const old = new Set((await core().listNamespacedPod({ namespace: PORTICO_NAMESPACE, labelSelector: SPEAKER })).items.map((p) => p.metadata!.uid!));
    const r = await lab.kubectlResult(['delete', 'pod', '-n', PORTICO_NAMESPACE, '-l', SPEAKER, '--wait=false']);
    assert.equal(r.code, 0, r.stderr);
    const want = dataplane === 'auto' ? baseArgs : [...baseArgs, `--dataplane=${dataplane}`];
    return waitFor('a new, ready speaker on every node', async () => {
      const pods = (await core().listNamespacedPod({ namespace: PORTICO_NAMESPACE, labelSelector: SPEAKER })).items
        .filter((p) => !old.has(p.metadata!.uid!) && !p.metadata?.deletionTimestamp);
      const ready = pods.filter((p) => p.status?.containerStatuses?.[0]?.ready && JSON.stringify(p.spec?.containers[0]?.args) === JSON.stringify(want));
      return ready.length === lab.nodes.length ? ready : undefined;
    }, 150_000, 500);
  }

  async function chosenBy(pod: k8s.V1Pod): Promise<Chosen> {
    const logs = await lab.kubectl('logs', '-n', PORTICO_NAMESPACE, pod.metadata!.name!);
    for (const line of logs.split('\n')) {
      if (!line.includes('"dataplane chosen"')) continue;
      return JSON.parse(line) as Chosen;
    }
    throw new Error(`${pod.metadata!.name} logged no "dataplane chosen": ${logs.slice(0, 2000)}`);
  }

  /** A JSON answer from a pod of m-web at `url`, from namespace `from`. */
  async function reach(from: string, url: string): Promise<{ pod: string; node: string }> {
    return waitFor(`an answer from ${url} at ${from}`, async () => {
      const r = await lab.exec(from, ['curl', '-sS', '--max-time', '2', url], { allowFail: true });
      return r.code === 0 ? JSON.parse(r.stdout) as { pod: string; node: string } : undefined;
    }, 60_000, 250);
  }

  /** Which forwarders hold `vip` on `node`: kube-proxy's rules and/or Portico's table inet portico. */
  async function forwardersOn(node: string, vips: string[]): Promise<Forwarder> {
    const tables = (await lab.exec(node, ['nft', 'list', 'tables'])).stdout;
    let kp: boolean;
    if (/table ip kube-proxy\b/.test(tables)) {
      const map = (await lab.exec(node, ['nft', 'list', 'map', 'ip', 'kube-proxy', 'service-ips'], { allowFail: true })).stdout;
      kp = vips.every((v) => map.includes(`${v} . tcp . 80`));
    } else {
      const chain = (await lab.exec(node, ['iptables', '-t', 'nat', '-S', 'KUBE-SERVICES'], { allowFail: true })).stdout;
      kp = vips.every((v) => chain.includes(`-d ${v}/32`));
    }
    let portico = false;
    if (/table inet portico\b/.test(tables)) {
      const t = (await lab.exec(node, ['nft', 'list', 'table', 'inet', 'portico'])).stdout;
      portico = vips.some((v) => t.includes(v));
    }
    return kp && portico ? 'both' : kp ? 'kube-proxy' : portico ? 'portico' : 'nobody';
  }

  async function checkRow(row: Row): Promise<void> {
    const changed = lab.kubeProxyMode !== row.kubeProxy || dataplane !== row.dataplane;
    if (lab.kubeProxyMode !== row.kubeProxy) await lab.setKubeProxy(row.kubeProxy);
    if (row.beforeRestart) await expectForwarder(row.beforeRestart);
    await setDataplane(row.dataplane);
    // The speakers as installed already chose next to this kube-proxy; after a change, they restart.
    const pods = changed ? await restartSpeakers() : (await core().listNamespacedPod({ namespace: PORTICO_NAMESPACE, labelSelector: SPEAKER })).items;
    for (const p of pods) {
      const c = await chosenBy(p);
      assert.deepEqual({ dataplane: c.dataplane, kubeProxy: c.kubeProxy, asked: c.asked }, { dataplane: row.chosen.dataplane, kubeProxy: row.chosen.kubeProxy, asked: row.dataplane }, `${p.spec?.nodeName}: ${c.why}`);
      assert.match(c.why ?? '', row.chosen.why, `${p.spec?.nodeName}'s reason`);
    }
    if (row.forwarder === 'nobody') {
      await expectNoForwarding();
    } else {
      const l2 = await reach('client', `http://${vipL2}/`);
      assert.match(l2.pod, /^m-web-/);
      // FRR's kernel has the BGP VIP only as a route learnt from the speakers.
      const bgp = await reach(frr!.host.name, `http://${vipBgp}/`);
      assert.match(bgp.pod, /^m-web-/);
      const route = (await lab.exec(frr!.host.name, ['ip', 'route', 'show', `${vipBgp}/32`])).stdout;
      assert.match(route, /proto bgp/, `FRR's route to ${vipBgp}: ${route}`);
    }
    await expectForwarder(row.forwarder);
  }

  async function expectForwarder(want: Forwarder): Promise<void> {
    for (const n of lab.nodes) {
      // kube-proxy programs its rules for the VIPs a moment after it starts or the Services change; Portico its table after a restart.
      await waitFor(`${n.name}: forwarded by ${want}`, async () => (await forwardersOn(n.name, [vipL2, vipBgp])) === want, 30_000, 250)
        .catch(async (err: unknown) => { throw new Error(`${String(err)}; found: ${await forwardersOn(n.name, [vipL2, vipBgp])}`); });
    }
  }

  /** Announced, but no node forwards: the owner answers ARP, a connection gets nowhere. */
  async function expectNoForwarding(): Promise<void> {
    const svc = await core().readNamespacedService({ name: 'm-l2', namespace: 'default' });
    const owner = await waitFor('an owner for m-l2', async () => (await core().readNamespacedService({ name: 'm-l2', namespace: 'default' })).metadata?.annotations?.['portico.dev/layer2-node'], 30_000, 250);
    assert.ok(svc.status?.loadBalancer?.ingress?.length);
    const mac = (await lab.exec(owner, ['cat', '/sys/class/net/eth0/address'])).stdout.trim();
    await waitFor(`the client's neighbour entry for ${vipL2} from ${owner}`, async () => {
      await lab.exec('client', ['ping', '-c', '1', '-W', '1', vipL2], { allowFail: true });
      return (await lab.exec('client', ['ip', 'neigh', 'show', vipL2])).stdout.includes(mac);
    }, 30_000, 250);
    for (let i = 0; i < 3; i++) {
      const r = await lab.exec('client', ['curl', '-sS', '--max-time', '2', `http://${vipL2}/`], { allowFail: true });
      assert.notEqual(r.code, 0, `nothing should forward ${vipL2}, yet it answered: ${r.stdout}`);
    }
  }

  it('kube-proxy nftables mode, manifest as shipped (auto): the speakers choose none; kube-proxy alone forwards, over layer 2 and BGP', async () => {
    await checkRow({
      kubeProxy: 'nftables', dataplane: 'auto', forwarder: 'kube-proxy',
      chosen: { dataplane: 'none', kubeProxy: 'nftables', why: /kube-proxy \(nftables mode\) forwards LoadBalancer IPs on this node \(table ip kube-proxy/ },
    });
  });

  it('kube-proxy nftables mode, --dataplane=nftables: obeyed and logged as double forwarding; traffic still reaches the pods', async () => {
    await checkRow({
      kubeProxy: 'nftables', dataplane: 'nftables', forwarder: 'both',
      chosen: { dataplane: 'nftables', kubeProxy: 'nftables', why: /^--dataplane=nftables; kube-proxy \(nftables mode\) also forwards LoadBalancer IPs here \(table ip kube-proxy/ },
    });
  });

  it('kube-proxy iptables mode (nft backend), auto after a speaker restart: none; the table the last speakers left is gone, kube-proxy alone forwards', async () => {
    await checkRow({
      kubeProxy: 'iptables', dataplane: 'auto', forwarder: 'kube-proxy',
      chosen: { dataplane: 'none', kubeProxy: 'iptables', why: /kube-proxy \(iptables mode\) forwards LoadBalancer IPs on this node \(chain KUBE-SERVICES in table ip nat\)/ },
    });
  });

  it('no kube-proxy, --dataplane=none: announced, but nothing forwards (for a CNI that forwards LoadBalancer IPs itself)', async () => {
    await checkRow({
      kubeProxy: 'none', dataplane: 'none', forwarder: 'nobody',
      chosen: { dataplane: 'none', kubeProxy: null, why: /^--dataplane=none$/ },
    });
  });

  it('no kube-proxy, auto: the speakers forward themselves with nftables (no ip_vs here), over layer 2 and BGP', async function () {
    if (existsSync('/proc/net/ip_vs')) {
      this.test!.title += ' (skipped: this kernel has ip_vs, so auto picks ipvs: test/vm covers that)';
      this.skip();
    }
    await checkRow({
      kubeProxy: 'none', dataplane: 'auto', forwarder: 'portico',
      chosen: { dataplane: 'nftables', kubeProxy: null, why: /^no kube-proxy seen; the kernel has no ip_vs/ },
    });
  });

  it('kube-proxy (nftables) started after the speakers: both forward until the speaker pods restart, as docs/dataplane.md says; then kube-proxy alone', async function () {
    if (existsSync('/proc/net/ip_vs')) this.skip(); // the row before it set the stage (skipped there too)
    await checkRow({
      kubeProxy: 'nftables', dataplane: 'auto', forwarder: 'kube-proxy', beforeRestart: 'both',
      chosen: { dataplane: 'none', kubeProxy: 'nftables', why: /kube-proxy \(nftables mode\) forwards LoadBalancer IPs on this node \(table ip kube-proxy/ },
    });
  });

  it('kube-proxy IPVS mode, and Portico\'s IPVS dataplane without kube-proxy', function () {
    // Both need ip_vs in the kernel the nodes share: the lab's real nodes run on this machine's kernel.
    this.test!.title += ` (skipped: ${existsSync('/proc/net/ip_vs') ? 'not wired up in the real-node lab' : 'this kernel has no ip_vs'}; test/vm runs the IPVS dataplane on a kernel with it)`;
    this.skip();
  });
});
