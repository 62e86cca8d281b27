// The `portico` CLI against the lab, with Portico installed from
// manifests/portico.yaml: `portico status` shows the expected rows (and JSON),
// and `portico import` turns MetalLB's documented objects into ones the API
// server accepts and that allocate what the originals would.
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { PORTICO_NAMESPACE as NS, installPortico, repoRoot, waitFor, type Lab, type PorticoInstall } from '../lab/index.ts';
import { requireE2e, sharedLab } from './shared-lab.ts';

const PORTICO = path.join(repoRoot, 'bin', 'portico');
const DATA = path.join(repoRoot, 'test', 'e2e', 'install-metallb');
const APP = 'pinst-cli';
const CONFIG_KINDS = 'ipaddresspools,l2advertisements,bgpadvertisements,bgppeers,communities,bfdprofiles';

type Obj = Record<string, unknown>;

describe('portico CLI against the lab (e2e, root)', function () {
  this.timeout(300_000);
  let lab: Lab;
  let install: PorticoInstall;
  let core: k8s.CoreV1Api;

  const portico = (args: string[], input?: string): { code: number | null; stdout: string; stderr: string } => {
    const r = spawnSync(PORTICO, args, { input, encoding: 'utf8', env: { ...process.env, KUBECONFIG: lab.kubeconfig, NO_COLOR: '1' } });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const apply = async (objs: Obj[] | string): Promise<void> => {
    const text = typeof objs === 'string' ? objs : JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objs });
    const r = await lab.kubectlResult(['apply', '-f', '-'], text);
    assert.equal(r.code, 0, r.stderr);
  };
  const service = (name: string, annotations: Record<string, string> = {}, spec: Obj = {}): Obj => ({
    apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: APP, annotations },
    spec: { type: 'LoadBalancer', selector: { app: name }, ports: [{ port: 80, targetPort: 80 }], ...spec },
  });
  const ipsOf = async (name: string, count: number): Promise<string[]> => waitFor(`${APP}/${name} to get ${count} IP(s)`, async () => {
    const s = await core.readNamespacedService({ name, namespace: APP });
    const ips = (s.status?.loadBalancer?.ingress ?? []).map((i) => i.ip ?? '');
    return ips.length === count ? ips : undefined;
  }, 30_000, 200);
  const clean = async (): Promise<void> => {
    await lab.kubectlResult(['delete', 'namespace', APP, '--ignore-not-found', '--wait=true', '--timeout=60s']);
    await lab.kubectlResult(['-n', NS, 'delete', CONFIG_KINDS, '--all', '--wait=true']);
    await lab.kubectlResult(['-n', NS, 'delete', 'configmap', 'config', '--ignore-not-found']);
  };

  before(async function () {
    requireE2e(this);
    lab = await sharedLab();
    core = lab.kc.makeApiClient(k8s.CoreV1Api);
    install = await installPortico(lab);
    await clean();
  });

  after(async function () {
    await install?.stop();
    if (lab) await clean();
  });

  describe('portico status', function () {
    before(async function () {
      await lab.kubectl('create', 'namespace', APP);
      // The broken object first: every configuration with it is refused, so cli-pool is never applied before the fix.
      await apply([{ apiVersion: 'portico.dev/v1beta1', kind: 'L2Advertisement', metadata: { name: 'cli-bad', namespace: NS }, spec: { ipAddressPools: ['no-such-pool'] } }]);
      await apply([{ apiVersion: 'portico.dev/v1beta1', kind: 'IPAddressPool', metadata: { name: 'cli-pool', namespace: NS }, spec: { addresses: ['203.0.113.240/30'] } }]);
      await apply([service('cli-a'), service('cli-b', { 'portico.dev/address-pool': 'nope' })]);
      // Pods behind cli-a, so a speaker announces it and status can say which node.
      await lab.kubectl('-n', APP, 'create', 'deployment', 'cli-a', '--image=portico.dev/lab-web', '--replicas=1', '--port=80');
    });

    it('shows the pool with used/total, the allocated Service with the node answering for it, the pending one with its reason, and the refused object', async function () {
      // The L2Advertisement names a pool that does not exist: the configuration is refused,
      // so nothing is allocated; fix it and the rows change.
      const refused = await waitFor('status to report the refused config', () => {
        const r = portico(['status']);
        return /UnknownPool|does not exist/.test(r.stdout) && /configuration refused/.test(r.stdout) ? r : undefined;
      }, 30_000, 500);
      assert.equal(refused.code, 1);
      assert.match(refused.stdout, /^pinst-cli\/cli-a +- +- +- +pending$/m);
      await lab.kubectl('-n', NS, 'delete', 'l2advertisement', 'cli-bad');
      await apply([{ apiVersion: 'portico.dev/v1beta1', kind: 'L2Advertisement', metadata: { name: 'cli-l2', namespace: NS }, spec: { ipAddressPools: ['cli-pool'] } }]);
      const [ip] = await ipsOf('cli-a', 1);
      assert.equal(ip, '203.0.113.240');
      const r = await waitFor('status rows', () => {
        const x = portico(['status']);
        return /^cli-pool +crd +1\/4 +- +yes$/m.test(x.stdout) && /PORTICO_POOL_NOT_FOUND/.test(x.stdout) && /node-\d \(layer 2/.test(x.stdout) ? x : undefined;
      }, 30_000, 500).catch(() => portico(['status']));
      assert.match(r.stdout, /^NAME +SOURCE +IPV4 USED\/TOTAL +IPV6 USED\/TOTAL +VALID$/m);
      assert.match(r.stdout, /^cli-pool +crd +1\/4 +- +yes$/m, r.stdout);
      assert.match(r.stdout, /^pinst-cli\/cli-a +203\.0\.113\.240 +cli-pool +node-\d \(layer 2, eth0\) +allocated$/m, r.stdout);
      assert.match(r.stdout, /^pinst-cli\/cli-b +- +- +- +pending$/m, r.stdout);
      assert.match(r.stdout, /Service pinst-cli\/cli-b pending: PORTICO_POOL_NOT_FOUND: pool "nope" does not exist/, r.stdout);
      assert.ok(!r.stdout.includes('configuration refused'), r.stdout);
      assert.equal(r.code, 1, 'a pending Service is a problem: exit code 1');
      assert.ok(!r.stdout.includes('\x1b['), 'NO_COLOR: no escape codes');
    });

    it('-o json carries the same model', async function () {
      const r = portico(['status', '-o', 'json']);
      const m = JSON.parse(r.stdout) as { pools: { name: string; ipv4: { used: number; free: number } }[]; services: { name: string; ips: string[]; state: string; problem: string }[] };
      assert.deepEqual(m.pools.find((p) => p.name === 'cli-pool')?.ipv4, { used: 1, free: 3 });
      assert.deepEqual(m.services.filter((s) => s.name.startsWith('cli-')).map((s) => [s.name, s.ips, s.state]), [['cli-a', ['203.0.113.240'], 'allocated'], ['cli-b', [], 'pending']]);
    });

    it('kubectl portico runs the same command as a kubectl plugin', async function () {
      const kubectl = lab.describe().kubectl ?? '';
      const r = spawnSync(kubectl, ['portico', 'status', '-o', 'json'], { encoding: 'utf8', env: { ...process.env, KUBECONFIG: lab.kubeconfig, PATH: `${path.join(repoRoot, 'bin')}:${process.env.PATH}` } });
      assert.ok(r.stdout.includes('"cli-pool"'), `${r.stdout}${r.stderr}`);
    });

    after(async function () {
      await clean();
    });
  });

  describe('portico import', function () {
    it('MetalLB CRDs: the API server accepts the output; Services get addresses from the converted pools', async function () {
      const r = portico(['import', path.join(DATA, 'crds.yaml')]);
      assert.equal(r.code, 0, r.stderr);
      // disableMP is a Portico field now (issue 15): carried over, not reported.
      assert.doesNotMatch(r.stderr, /spec\.disableMP/);
      assert.match(r.stderr, /copy Secret metallb-system\/secretname to portico-system/);
      await apply(r.stdout);
      await lab.kubectlResult(['create', 'namespace', APP]);
      await apply([
        service('auto', {}, { ipFamilyPolicy: 'RequireDualStack', ipFamilies: ['IPv4', 'IPv6'] }),
        service('premium', { 'portico.dev/address-pool': 'expensive' }),
      ]);
      // first-pool is the only autoAssign pool: the lowest free address of each family.
      assert.deepEqual(await ipsOf('auto', 2), ['203.0.113.0', '2001:db8:5::']);
      assert.deepEqual(await ipsOf('premium', 1), ['203.0.113.64']);
      const v = await lab.kubectl('-n', NS, 'get', 'bgppeer', 'sample', '-o', 'jsonpath={.spec.passwordSecret.namespace}');
      assert.equal(v, NS);
      assert.equal(await lab.kubectl('-n', NS, 'get', 'bgppeer', 'sample', '-o', 'jsonpath={.spec.disableMP}'), 'false', 'disableMP carried over');
      await clean();
    });

    it('the legacy ConfigMap: the converted objects allocate exactly what Portico allocates from the ConfigMap itself', async function () {
      // 1. The original: the ConfigMap, read by Portico as portico-system/config.
      const cm = readFileSync(path.join(DATA, 'configmap.yaml'), 'utf8').replace('namespace: metallb-system', `namespace: ${NS}`);
      await apply(cm);
      await lab.kubectl('create', 'namespace', APP);
      const services = [
        service('one'),
        service('two', {}, { ipFamilyPolicy: 'RequireDualStack', ipFamilies: ['IPv4', 'IPv6'] }),
        service('routed', { 'portico.dev/address-pool': 'routed' }),
        service('pinned', { 'portico.dev/loadBalancerIPs': '203.0.113.15' }),
      ];
      const allocate = async (): Promise<Record<string, string[]>> => {
        for (const s of services) await apply([s]);
        const out: Record<string, string[]> = {};
        for (const [name, n] of [['one', 1], ['two', 2], ['routed', 1], ['pinned', 1]] as const) out[name] = await ipsOf(name, n);
        return out;
      };
      const original = await allocate();
      assert.deepEqual(original.pinned, ['203.0.113.15']);
      await lab.kubectl('delete', 'namespace', APP, '--wait=true', '--timeout=60s');
      await lab.kubectl('-n', NS, 'delete', 'configmap', 'config');

      // 2. The conversion, applied as CRDs.
      const r = portico(['import', path.join(DATA, 'configmap.yaml')]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, '', 'nothing left out of this ConfigMap');
      await apply(r.stdout);
      const kinds = (await lab.kubectl('-n', NS, 'get', CONFIG_KINDS, '-o', 'name')).trim().split('\n').sort();
      assert.deepEqual(kinds, [
        'bgpadvertisement.portico.dev/routed', 'bgppeer.portico.dev/peer-198.51.100.201', 'community.portico.dev/communities',
        'ipaddresspool.portico.dev/default', 'ipaddresspool.portico.dev/routed', 'l2advertisement.portico.dev/default',
      ]);
      await lab.kubectl('create', 'namespace', APP);
      const converted = await allocate();
      assert.deepEqual(converted, original);
    });
  });
});
