// The failover a client feels, on real nodes (e2e, root): Portico from
// manifests/portico.yaml with the speakers' --dataplane=nftables next to the
// real kube-proxy in nftables mode (the Services carry kube-proxy's
// service-proxy-name label, so Portico's dataplane alone forwards their
// VIPs), a web pod on every node, Cluster and Local dual-stack Services. A
// power cut of the owner node (kubelet, containerd, kube-proxy, the speaker
// and its web pod) while the client opens a new connection every 10 ms: every
// request succeeds again within the process lab's bound, before Kubernetes
// marks the dead pods not ready, the heir pruned the dead node's endpoints,
// and one node at a time answers ARP/NDP. The same checks as
// test/e2e/service-failover.test.ts (service-failover-env.ts).
import { strict as assert } from 'node:assert';
import type { Lab } from '../../lab/index.ts';
import { FIRST_BUILD_TIMEOUT_MS, porticoImage, type RealInstall } from '../../lab/realnode-portico.ts';
import { requireE2e } from '../shared-lab.ts';
import { BOUND_MS, POLICIES, PRUNED, expectFailover, killOwner, startRealFailover, type FailoverEnv } from '../service-failover-env.ts';
import { realLab } from './real-lab.ts';

describe('service failover on real nodes (e2e, root): Portico\'s nftables dataplane next to kube-proxy; the client\'s requests all succeed again soon after a power cut of the owner', function () {
  this.timeout(150_000);
  let lab: Lab;
  let env: FailoverEnv<RealInstall> | undefined;

  before(async function () {
    requireE2e(this);
    this.timeout(FIRST_BUILD_TIMEOUT_MS);
    lab = await realLab();
    env = await startRealFailover(lab, { image: await porticoImage(), dataplane: 'nftables' });
  });

  after(async function () {
    this.timeout(180_000);
    await env?.stop();
  });

  it('Portico\'s dataplane alone forwards the VIPs: every node\'s table inet portico holds them, kube-proxy\'s service-ips map (nftables mode) does not', async () => {
    assert.equal(lab.kubeProxyMode, 'nftables');
    await env!.settle();
    const vips = [...env!.vips.Cluster, ...env!.vips.Local];
    for (const n of lab.nodes) {
      const portico = (await lab.exec(n.name, ['nft', 'list', 'table', 'inet', 'portico'])).stdout;
      const kubeProxy = (await lab.exec(n.name, ['nft', 'list', 'table', 'ip', 'kube-proxy'])).stdout;
      assert.match(kubeProxy, /map service-ips/, `${n.name}: kube-proxy runs in nftables mode`);
      for (const v of vips) {
        assert.ok(portico.includes(v), `${n.name}: Portico's table forwards ${v}`);
        assert.ok(!kubeProxy.includes(v), `${n.name}: kube-proxy leaves ${v} to Portico`);
      }
    }
  });

  for (const policy of POLICIES) {
    it(`${policy}: power cut of the owner (and its pod): all requests succeed again within ${BOUND_MS} ms, before Kubernetes marks its pods not ready${policy === 'Cluster' ? ' (the heir pruned them)' : ''}; one ARP/NDP answerer at a time; the node comes back`, async () => {
      const k = await killOwner(env!, policy, { counters: [PRUNED('node-dead'), PRUNED('node-alive')] });
      await expectFailover(env!, k, BOUND_MS);
    });
  }
});
