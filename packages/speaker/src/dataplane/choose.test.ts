import { strict as assert } from 'node:assert';
import { decideDataplane, findKubeProxy, nodeFacts, type NodeFacts, type NodeProbe } from './choose.ts';
import { chooseDataplane } from './index.ts';

const NFT: NodeFacts['kubeProxy'] = { mode: 'nftables', evidence: 'table ip kube-proxy' };
const IPT: NodeFacts['kubeProxy'] = { mode: 'iptables', evidence: 'chain KUBE-SERVICES in table ip nat' };
const IPVS_KP: NodeFacts['kubeProxy'] = { mode: 'ipvs', evidence: 'link kube-ipvs0' };

describe('dataplane choice: the decision', () => {
  const cases: Array<[string, Parameters<typeof decideDataplane>[0], NodeFacts, string, RegExp]> = [
    ['no kube-proxy, ip_vs present', 'auto', { kubeProxy: undefined, ipvs: { state: 'present' } }, 'ipvs', /no kube-proxy seen; the kernel has ip_vs/],
    ['no kube-proxy, ip_vs loaded on request', 'auto', { kubeProxy: undefined, ipvs: { state: 'loaded' } }, 'ipvs', /loaded ip_vs on request/],
    ['no kube-proxy, no ip_vs', 'auto', { kubeProxy: undefined, ipvs: { state: 'missing', detail: 'ENOENT' } }, 'nftables', /no ip_vs \(ENOENT\)/],
    ['kube-proxy nftables mode', 'auto', { kubeProxy: NFT, ipvs: { state: 'present' } }, 'none', /kube-proxy \(nftables mode\) forwards LoadBalancer IPs.*table ip kube-proxy.*only announces/],
    ['kube-proxy iptables mode', 'auto', { kubeProxy: IPT }, 'none', /kube-proxy \(iptables mode\).*KUBE-SERVICES/],
    ['kube-proxy ipvs mode', 'auto', { kubeProxy: IPVS_KP }, 'none', /kube-proxy \(ipvs mode\).*kube-ipvs0/],
    ['kube-proxy of unknown mode', 'auto', { kubeProxy: { mode: 'unknown', evidence: 'health port answers' } }, 'none', /unknown mode/],
    ['asked for nftables next to kube-proxy: obeyed, the double forwarding said', 'nftables', { kubeProxy: NFT }, 'nftables', /--dataplane=nftables; kube-proxy \(nftables mode\) also forwards/],
    ['asked for ipvs', 'ipvs', { kubeProxy: undefined }, 'ipvs', /^--dataplane=ipvs$/],
    ['asked for none next to kube-proxy', 'none', { kubeProxy: IPT }, 'none', /^--dataplane=none$/],
  ];
  for (const [name, asked, facts, mode, why] of cases) {
    it(`${name}: ${mode}`, () => {
      const r = decideDataplane(asked, facts);
      assert.equal(r.mode, mode);
      assert.match(r.why, why);
      assert.equal(r.kubeProxy, facts.kubeProxy?.mode);
    });
  }
});

/** A node as the probe sees it; counts what was asked. */
function fakeNode(o: { tables?: string[] | undefined; chains?: string[]; links?: string[]; http?: Record<string, string>; ipvs?: boolean; loads?: boolean } = {}) {
  const asked: string[] = [];
  let loaded = false;
  const probe: NodeProbe = {
    nftTables: async () => { asked.push('tables'); return 'tables' in o ? o.tables : []; },
    nftChainExists: async (f, t, c) => { asked.push(`chain ${f} ${t} ${c}`); return (o.chains ?? []).includes(`${f} ${t} ${c}`); },
    linkExists: (n) => (o.links ?? []).includes(n),
    httpGet: async (port, path) => { asked.push(`http ${port}${path}`); return o.http?.[`${port}${path}`]; },
    hasIpvs: () => !!o.ipvs || loaded,
    // Loads a little later, as the kernel's request_module does: the choice waits for it.
    requestIpvs: () => new Promise((resolve) => setTimeout(() => { loaded = !!o.loads; resolve(o.loads ? undefined : 'resolve generic netlink family IPVS: ENOENT'); }, 5)),
  };
  return { probe, asked };
}

describe('dataplane choice: what the node shows', () => {
  it('kube-proxy nftables mode: table ip kube-proxy', async () => {
    assert.deepEqual(await findKubeProxy(fakeNode({ tables: ['inet portico', 'ip kube-proxy', 'ip6 kube-proxy'] }).probe), { mode: 'nftables', evidence: 'table ip kube-proxy, table ip6 kube-proxy' });
  });

  it('kube-proxy iptables mode (nft backend): chain KUBE-SERVICES in table ip nat; a nat table without it is someone else\'s', async () => {
    assert.deepEqual(await findKubeProxy(fakeNode({ tables: ['ip nat', 'ip filter'], chains: ['ip nat KUBE-SERVICES'] }).probe), { mode: 'iptables', evidence: 'chain KUBE-SERVICES in table ip nat' });
    assert.equal(await findKubeProxy(fakeNode({ tables: ['ip nat'], chains: [] }).probe), undefined);
  });

  it('kube-proxy ipvs mode: link kube-ipvs0', async () => {
    assert.equal((await findKubeProxy(fakeNode({ links: ['kube-ipvs0'] }).probe))?.mode, 'ipvs');
  });

  it('without nft (or legacy iptables): kube-proxy\'s /proxyMode, else its health port', async () => {
    assert.deepEqual(await findKubeProxy(fakeNode({ tables: undefined, http: { '10249/proxyMode': 'iptables\n' } }).probe), { mode: 'iptables', evidence: '127.0.0.1:10249/proxyMode says "iptables"' });
    assert.equal((await findKubeProxy(fakeNode({ http: { '10249/proxyMode': 'kernelspace' } }).probe))?.mode, 'unknown');
    assert.equal((await findKubeProxy(fakeNode({ http: { '10256/healthz': '{}' } }).probe))?.mode, 'unknown');
    assert.equal(await findKubeProxy(fakeNode().probe), undefined);
  });

  it('ip_vs is requested from the kernel only when auto may pick it (no kube-proxy, not loaded)', async () => {
    const withKp = fakeNode({ tables: ['ip kube-proxy'], loads: true });
    assert.deepEqual(await nodeFacts('auto', withKp.probe), { kubeProxy: { mode: 'nftables', evidence: 'table ip kube-proxy' } });
    assert.equal((await chooseDataplane('auto', fakeNode({ loads: true }).probe)).mode, 'ipvs');
    const r = await chooseDataplane('auto', fakeNode({ loads: false }).probe);
    assert.equal(r.mode, 'nftables');
    assert.match(r.why, /asking the kernel for the IPVS family: resolve generic netlink family IPVS: ENOENT/);
    assert.equal((await chooseDataplane('auto', fakeNode({ ipvs: true }).probe)).why, 'no kube-proxy seen; the kernel has ip_vs');
  });
});
