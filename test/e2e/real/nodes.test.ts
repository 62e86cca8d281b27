// Real nodes in the lab, end to end: containerd + runc + the real kubelet and
// kube-proxy per node; pods are containers reached over the pod network and
// through a ClusterIP; kubectl logs/exec reach the kubelets; a power cut kills
// the node's whole cgroup tree (pods included) and a reboot brings it back;
// a stopped real-node lab leaves no process, namespace, mount, cgroup or CNI file.
import { strict as assert } from 'node:assert';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { Lab, waitFor, webDeployment } from '../../lab/index.ts';
import { listNetns } from '../../lab/netns.ts';
import { isAlive } from '../../lab/sh.ts';
import { hierarchies } from '../../lab/realnode-cgroup.ts';
import { requireE2e } from '../shared-lab.ts';
import { realLab, realLabPrefix } from './real-lab.ts';

interface WebAnswer { pod: string; namespace: string; node: string; client: string; server: string }

/** Every process whose mount table or command line names `text`. */
function processesTouching(text: string): string[] {
  const out: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid)) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      const mounts = readFileSync(`/proc/${pid}/mountinfo`, 'utf8');
      if (cmd.includes(text) || mounts.includes(text)) out.push(`${pid}: ${cmd.slice(0, 120)}`);
    } catch { /* exited */ }
  }
  return out;
}

/** Cgroup directories of a lab tag, in any hierarchy. */
function cgroupsOf(tag: string): string[] {
  const out: string[] = [];
  const walk = (dir: string, depth: number): void => {
    if (depth > 6 || !existsSync(dir)) return;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      const d = path.join(dir, e.name);
      if (e.name.startsWith(`${tag}-`)) out.push(d);
      else walk(d, depth + 1);
    }
  };
  for (const h of hierarchies()) walk(h, 0);
  return out;
}

describe('real nodes (e2e, root): containerd, runc, the real kubelet and kube-proxy', function () {
  this.timeout(180_000);
  let lab: Lab;

  before(async function () {
    requireE2e(this);
    lab = await realLab();
    await lab.kubectlResult(['apply', '-f', '-'], webDeployment('web', 3));
  });

  after(async function () {
    if (lab) await lab.kubectlResult(['delete', 'deployment/web', 'service/web', '--ignore-not-found', '--wait=false']);
  });

  it('registers each node as a real kubelet on containerd, Ready', async function () {
    const nodes = await lab.kc.makeApiClient(k8s.CoreV1Api).listNode();
    assert.deepEqual(nodes.items.map((n) => n.metadata?.name).sort(), ['node-1', 'node-2', 'node-3']);
    for (const n of nodes.items) {
      assert.match(n.status?.nodeInfo?.containerRuntimeVersion ?? '', /^containerd:\/\/1\./, n.metadata?.name);
      assert.equal(n.status?.nodeInfo?.kubeletVersion, 'v1.36.3');
      assert.ok(n.status?.addresses?.some((a) => a.type === 'InternalIP' && a.address === lab.node(n.metadata!.name!).ipv4));
    }
  });

  it('runs pods as containers that a client reaches on their pod IPs, IPv4 and IPv6', async function () {
    const pods = await waitFor('3 ready web pods', async () => {
      const list = await lab.kc.makeApiClient(k8s.CoreV1Api).listNamespacedPod({ namespace: 'default', labelSelector: 'app=web' });
      const ready = list.items.filter((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
      return ready.length === 3 ? ready : undefined;
    }, 90_000, 250);
    assert.deepEqual(new Set(pods.map((p) => p.spec?.nodeName)), new Set(['node-1', 'node-2', 'node-3']));
    for (const p of pods) {
      const ips = (p.status?.podIPs ?? []).map((x) => x.ip);
      const v4 = ips.find((ip) => ip.includes('.'));
      const v6 = ips.find((ip) => ip.includes(':'));
      const node = lab.node(p.spec!.nodeName!);
      assert.ok(v4?.startsWith(node.podCidrV4.replace(/0\/24$/, '')), `${p.metadata?.name} ${v4} in ${node.podCidrV4}`);
      assert.ok(v6?.startsWith(node.podCidrV6.replace(/\/64$/, '')), `${p.metadata?.name} ${v6} in ${node.podCidrV6}`);
      for (const ip of [v4, `[${v6}]`]) {
        const a = JSON.parse(await lab.curl('client', `http://${ip}/`)) as WebAnswer;
        assert.equal(a.pod, p.metadata?.name);
        assert.equal(a.node, node.name);
        assert.ok(a.client === lab.clients[0]!.ipv4 || a.client === lab.clients[0]!.ipv6, `client address seen: ${a.client}`);
      }
    }
  });

  it('serves kubectl logs and kubectl exec from the kubelets', async function () {
    const pod = (await lab.kubectl('get', 'pods', '-l', 'app=web', '-o', 'jsonpath={.items[0].metadata.name}')).trim();
    const logs = await lab.kubectl('logs', pod);
    assert.match(logs, new RegExp(`lab-web: ${pod} serving on port 80`));
    const node = (await lab.kubectl('exec', pod, '--', 'sh', '-c', 'echo $NODE_NAME')).trim();
    assert.equal(node, (await lab.kubectl('get', 'pod', pod, '-o', 'jsonpath={.spec.nodeName}')).trim());
  });

  it('forwards a ClusterIP Service through kube-proxy (nftables mode) from a node', async function () {
    await lab.kubectl('expose', 'deployment', 'web', '--port=80');
    const ip = (await lab.kubectl('get', 'service', 'web', '-o', 'jsonpath={.spec.clusterIP}')).trim();
    await waitFor('kube-proxy to program the Service', async () => {
      const r = await lab.exec('node-1', ['nft', 'list', 'map', 'ip', 'kube-proxy', 'service-ips'], { allowFail: true });
      return r.stdout.includes(ip);
    }, 30_000, 200);
    const seen = new Set<string>();
    for (let i = 0; i < 30 && seen.size < 2; i++) {
      const a = JSON.parse(await lab.curl('node-1', `http://${ip}/`)) as WebAnswer;
      seen.add(a.pod);
    }
    assert.ok(seen.size >= 2, `kube-proxy spread 30 requests over ${seen.size} pod(s)`);
  });

  it('switches kube-proxy to iptables mode and off; the API server\'s ClusterIP answers in every mode', async function () {
    const ip = (await lab.kubectl('get', 'service', 'web', '-o', 'jsonpath={.spec.clusterIP}')).trim();
    // What a hostNetwork pod (the speaker) does: the API server at its ClusterIP, from the node.
    const apiVersion = async (): Promise<string> => (await lab.exec('node-1', ['curl', '-sk', '--max-time', '3', 'https://100.64.240.1/version'], { allowFail: true })).stdout;
    try {
      await lab.setKubeProxy('iptables');
      await waitFor('KUBE-SERVICES for the Service in iptables', async () => {
        const r = await lab.exec('node-1', ['iptables-save', '-t', 'nat'], { allowFail: true });
        return r.stdout.includes(ip) && r.stdout.includes('KUBE-SERVICES');
      }, 30_000, 200);
      const nft = (await lab.exec('node-1', ['nft', 'list', 'tables'])).stdout;
      assert.doesNotMatch(nft, /table ip kube-proxy/, 'the nftables mode\'s rules were removed');
      const a = JSON.parse(await lab.curl('node-1', `http://${ip}/`)) as WebAnswer;
      assert.match(a.pod, /^web-/);
      assert.match(await apiVersion(), /"gitVersion": "v1\.36\.3"/);
      await lab.setKubeProxy('none');
      const r = await lab.exec('node-1', ['curl', '-sS', '--max-time', '2', `http://${ip}/`], { allowFail: true });
      assert.notEqual(r.code, 0, 'without kube-proxy nothing forwards the ClusterIP');
      assert.doesNotMatch((await lab.exec('node-1', ['iptables-save', '-t', 'nat'])).stdout, /KUBE-SERVICES/);
      assert.match(await apiVersion(), /"gitVersion": "v1\.36\.3"/, 'the API server\'s ClusterIP still answers');
    } finally {
      await lab.setKubeProxy('nftables');
    }
    await waitFor('kube-proxy (nftables) programs the Service again', async () => {
      const r = await lab.exec('node-1', ['nft', 'list', 'map', 'ip', 'kube-proxy', 'service-ips'], { allowFail: true });
      return r.stdout.includes(ip);
    }, 30_000, 200);
  });

  it('kills the whole node on a power cut, pods included, and reboots it', async function () {
    const name = 'node-3';
    const node = lab.realNodes.get(name)!;
    const before = node.cgroup.pids();
    assert.ok(before.length > 5, `node-3's cgroup tree holds its daemons and pods (${before.length} processes)`);
    const pod = (await lab.kc.makeApiClient(k8s.CoreV1Api).listNamespacedPod({ namespace: 'default', labelSelector: 'app=web', fieldSelector: `spec.nodeName=${name}` })).items[0]!;
    const podIp = pod.status!.podIP!;
    await lab.killNode(name);
    assert.deepEqual(node.cgroup.pids(), [], 'no process of the node survives');
    // A zombie is dead; its parent (the test's own process, for the node's init) reaps it later.
    for (const pid of before) assert.equal(isAlive({ pid, startTicks: 0 }), false, `process ${pid} is gone`);
    await lab.reconnectNode(name); // the link is up, the node is still dead: nothing answers
    const r = await lab.exec('client', ['curl', '-sS', '--max-time', '2', `http://${podIp}/`], { allowFail: true });
    assert.notEqual(r.code, 0, 'the pod on the dead node does not answer');
    await lab.disconnectNode(name);
    await lab.waitNodesNotReady([name], 30_000);
    await lab.restartNode(name);
    const again = await waitFor('a web pod running again on node-3', async () => {
      const list = await lab.kc.makeApiClient(k8s.CoreV1Api).listNamespacedPod({ namespace: 'default', labelSelector: 'app=web', fieldSelector: `spec.nodeName=${name}` });
      return list.items.find((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') && p.status.podIP);
    }, 90_000, 250);
    const a = JSON.parse(await lab.curl('client', `http://${again.status!.podIP!}/`)) as WebAnswer;
    assert.equal(a.node, name);
  });
});

describe('real nodes (e2e, root): a stopped lab leaves nothing', function () {
  this.timeout(180_000);

  it('removes every process, namespace, mount, cgroup and CNI file of its nodes', async function () {
    requireE2e(this);
    const lab = await Lab.start({ prefix: `${realLabPrefix()}s`, nodes: 1, clients: ['client'], realNodes: true });
    const runBefore = readdirSync('/run').sort();
    let stopped = false;
    try {
      await lab.kubectlResult(['apply', '-f', '-'], webDeployment('web', 1));
      await waitFor('a ready web pod', async () => (await lab.kubectl('get', 'pods', '-l', 'app=web', '-o', 'jsonpath={.items[*].status.containerStatuses[*].ready}')).includes('true'), 90_000, 250);
      const tag = lab.tag;
      assert.ok(cgroupsOf(tag).length > 0, 'the node had a cgroup tree');
      assert.ok(processesTouching(lab.dir).length > 0, 'the node had processes and mounts in its directory');
      const hostCni = ['/var/lib/cni', '/etc/cni/net.d'].map((d) => (existsSync(d) ? readdirSync(d).length : 0));
      // The node's /run is its own (shim sockets, hostPath volumes): the host's /run gains nothing.
      const hostRun = readdirSync('/run').sort();
      await lab.stop();
      stopped = true;
      assert.deepEqual(processesTouching(lab.dir), [], 'no process and no mount namespace refers to the lab');
      assert.deepEqual(listNetns().filter((n) => n.startsWith(`${tag}-`)), [], 'no namespace');
      assert.deepEqual(cgroupsOf(tag), [], 'no cgroup');
      assert.deepEqual(['/var/lib/cni', '/etc/cni/net.d'].map((d) => (existsSync(d) ? readdirSync(d).length : 0)), hostCni, 'no CNI file on the host');
      assert.equal(existsSync(path.join(lab.dir, 'nodes')), false, "the nodes' disks are gone");
      assert.deepEqual(readdirSync('/run').sort(), hostRun, "nothing new in the host's /run");
      assert.deepEqual(readdirSync('/run').sort(), runBefore, "nothing new in the host's /run since before the lab started");
    } finally {
      if (!stopped) await lab.stop();
    }
  });
});
