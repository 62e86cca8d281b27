// The lab itself, end to end: a real control plane, nodes that run pods, the
// real EndpointSlice controller, pod networking, node failure, and clean-up.
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, symlinkSync, readdirSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { Lab, LabBusyError, readState, waitFor, repoRoot, type Lab as LabT, type LabEndpoint } from '../lab/index.ts';
import { listNetns } from '../lab/netns.ts';
import { requireE2e, sharedLab } from './shared-lab.ts';

const WEB_MANIFEST = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: portico.dev/lab-web
        ports: [{containerPort: 80}]
        readinessProbe: {httpGet: {path: /healthz, port: 80}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 80, targetPort: 80}]
`;

interface PodAnswer { pod: string; namespace: string; node: string; client: string; server: string }

/** The Service's IPv4 endpoints, ready or not. */
async function readyEndpoints(lab: LabT, service: string, namespace = 'default'): Promise<LabEndpoint[]> {
  return (await lab.endpoints(service, namespace)).filter((e) => e.family === 'IPv4');
}

function processesWith(text: string): string[] {
  return readdirSync('/proc').filter((p) => /^\d+$/.test(p)).flatMap((pid) => {
    try {
      const cmd = spawnSync('cat', [`/proc/${pid}/cmdline`], { encoding: 'utf8' }).stdout.replace(/\0/g, ' ');
      return cmd.includes(text) ? [`${pid}: ${cmd}`] : [];
    } catch { return []; }
  });
}

describe('lab (e2e, root): a real cluster on one machine', function () {
  this.timeout(120_000);
  let lab: LabT;

  before(async function () {
    requireE2e(this);
    lab = await sharedLab();
  });

  it('registers every node with its addresses, pod CIDRs and a Ready condition', async () => {
    const core = lab.kc.makeApiClient(k8s.CoreV1Api);
    const nodes = (await core.listNode()).items;
    assert.deepEqual(nodes.map((n) => n.metadata?.name).sort(), ['node-1', 'node-2', 'node-3']);
    for (const ln of lab.nodes) {
      const n = nodes.find((x) => x.metadata?.name === ln.name)!;
      assert.deepEqual(n.status?.addresses?.filter((a) => a.type === 'InternalIP').map((a) => a.address), [ln.ipv4, ln.ipv6]);
      assert.deepEqual(n.spec?.podCIDRs, [ln.podCidrV4, ln.podCidrV6]);
      assert.equal(n.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
    }
  });

  it('runs RBAC: an unprivileged service account is refused', async () => {
    await lab.kubectl('create', 'serviceaccount', 'nobody-sa');
    const r = await lab.kubectlResult(['auth', 'can-i', 'create', 'services', '--as=system:serviceaccount:default:nobody-sa']);
    assert.equal(r.stdout.trim(), 'no');
  });

  describe('a Deployment behind a LoadBalancer Service', () => {
    let endpoints: { ip: string; ready: boolean; node?: string; pod?: string }[];

    before(async () => {
      // Apply with kubectl, as a user would; the readiness probe is what the lab kubelet checks.
      await lab.kubectlResult(['apply', '-f', '-'], WEB_MANIFEST).then((r) => assert.equal(r.code, 0, r.stderr));
      endpoints = await waitFor('3 ready endpoints of web', async () => {
        const eps = await readyEndpoints(lab, 'web');
        return eps.length === 3 && eps.every((e) => e.ready) ? eps : undefined;
      }, 60_000, 200);
    });

    it('lists three ready pods on real pod addresses in its EndpointSlices', async () => {
      assert.equal(endpoints.length, 3);
      for (const e of endpoints) assert.match(e.ip, /^100\.64\.[1-3]\.\d+$/);
      const svc = await lab.kc.makeApiClient(k8s.CoreV1Api).readNamespacedService({ name: 'web', namespace: 'default' });
      assert.equal(svc.spec?.type, 'LoadBalancer');
    });

    it('each pod answers the client namespace with its own name and the client address', async () => {
      const client = lab.clients[0]!;
      for (const e of endpoints) {
        const a = JSON.parse(await lab.curl('client', `http://${e.ip}/`)) as PodAnswer;
        assert.equal(a.pod, e.pod);
        assert.equal(a.node, e.node);
        assert.equal(a.client, client.ipv4, 'the pod sees the client address unchanged');
      }
    });

    it('each pod answers from another node, over IPv4 and IPv6', async () => {
      const core = lab.kc.makeApiClient(k8s.CoreV1Api);
      const pods = (await core.listNamespacedPod({ namespace: 'default', labelSelector: 'app=web' })).items;
      assert.equal(pods.length, 3);
      for (const p of pods) {
        const other = lab.nodes.find((n) => n.name !== p.spec?.nodeName)!;
        const v6 = p.status?.podIPs?.map((x) => x.ip).find((ip) => ip.includes(':'));
        assert.ok(v6, 'the pod has an IPv6 address');
        for (const url of [`http://${p.status?.podIP}/`, `http://[${v6}]/`]) {
          const a = JSON.parse(await lab.curl(other.name, url)) as PodAnswer;
          assert.equal(a.pod, p.metadata?.name, `${url} from ${other.name}`);
          assert.ok(a.client === other.ipv4 || a.client === other.ipv6, `client seen as ${a.client}`);
        }
      }
    });

    it('follows the readiness check: a failing pod leaves the ready endpoints and comes back', async () => {
      const victim = endpoints[0]!;
      await lab.exec('client', ['curl', '-sS', '--fail', '-X', 'POST', `http://${victim.ip}/fail`]);
      await waitFor('the failing pod to be not ready', async () => (await readyEndpoints(lab, 'web')).some((e) => e.ip === victim.ip && !e.ready), 15_000, 200);
      await lab.exec('client', ['curl', '-sS', '--fail', '-X', 'POST', `http://${victim.ip}/recover`]);
      await waitFor('the pod to be ready again', async () => (await readyEndpoints(lab, 'web')).every((e) => e.ready), 15_000, 200);
    });

    it('a killed node disappears: its pods go not ready within the grace period, and it comes back', async () => {
      // Whichever node runs the last web pod (the shared lab's scheduling varies).
      const victim = (await readyEndpoints(lab, 'web')).at(-1)!;
      const node = victim.node!;
      const t0 = Date.now();
      await lab.killNode(node);
      let took: number;
      try {
        await assert.rejects(lab.curl('client', `http://${victim.ip}/`, { timeoutS: 1 }), 'the killed node no longer answers');
        await waitFor(`${node} pods to be not ready`, async () => (await readyEndpoints(lab, 'web')).some((e) => e.node === node && !e.ready), 30_000, 200);
        took = Date.now() - t0;
      } finally {
        // The lab is shared: the node comes back whatever happened above.
        await lab.restartNode(node);
      }
      // kube-controller-manager runs with --node-monitor-grace-period=5s and a 1 s monitor period: 6-7 s
      // on a fresh lab. Right after another suite stopped the API server, the controller first has to
      // get over every node's lease looking stale at once: 21.7 s was seen then. The bound covers both.
      assert.ok(took < 28_000, `pods went not ready after ${took} ms`);
      await waitFor(`${node} pods ready again`, async () => {
        const eps = await readyEndpoints(lab, 'web');
        return eps.length === 3 && eps.every((e) => e.ready);
      }, 60_000, 200);
      const back = (await readyEndpoints(lab, 'web')).find((e) => e.node === node)!;
      const a = JSON.parse(await lab.curl('client', `http://${back.ip}/`)) as PodAnswer;
      assert.equal(a.node, node);
    });

    it('a node cut off long enough to go NotReady comes back with its pods ready again', async () => {
      const node = (await readyEndpoints(lab, 'web')).at(0)!.node!;
      await lab.disconnectNode(node);
      try {
        // kube-controller-manager marks the node's pods not ready; its processes keep running.
        await waitFor(`${node} pods to be not ready`, async () => (await readyEndpoints(lab, 'web')).some((e) => e.node === node && !e.ready), 30_000, 200);
      } finally {
        await lab.reconnectNode(node);
      }
      // Only the lab kubelet sets them ready again: its probe never failed, the API server says otherwise.
      await waitFor(`${node} pods ready again`, async () => (await readyEndpoints(lab, 'web')).every((e) => e.ready), 30_000, 200);
    });

    it('a deleted pod is stopped and replaced', async () => {
      const before = await readyEndpoints(lab, 'web');
      const gone = before[0]!;
      await lab.kubectl('delete', 'pod', gone.pod!, '--wait=true', '--timeout=30s');
      await assert.rejects(lab.curl('client', `http://${gone.ip}/`, { timeoutS: 1 }));
      await waitFor('a replacement pod', async () => {
        const eps = await readyEndpoints(lab, 'web');
        return eps.length === 3 && eps.every((e) => e.ready) && !eps.some((e) => e.pod === gone.pod);
      }, 30_000, 200);
    });

    it('a pod deleted while its node was down leaves nothing behind: the node starts its next pod', async () => {
      const victim = (await readyEndpoints(lab, 'web')).at(-1)!;
      const node = lab.nodes.find((n) => n.name === victim.node)!;
      await lab.killNode(node.name);
      try {
        await lab.kubectl('delete', 'pod', victim.pod!, '--force', '--grace-period=0', '--wait=false');
      } finally {
        await lab.restartNode(node.name);
      }
      const pinned = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'pinned', namespace: 'default' },
        spec: { nodeName: node.name, containers: [{ name: 'web', image: 'portico.dev/podserver', ports: [{ containerPort: 80 }] }] } };
      await lab.kubectlResult(['apply', '-f', '-'], JSON.stringify(pinned)).then((r) => assert.equal(r.code, 0, r.stderr));
      try {
        const core = lab.kc.makeApiClient(k8s.CoreV1Api);
        const ip = await waitFor('the pinned pod to be ready', async () => {
          const p = await core.readNamespacedPod({ name: 'pinned', namespace: 'default' });
          return p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? p.status.podIP : undefined;
        }, 30_000, 200);
        const a = JSON.parse(await lab.curl('client', `http://${ip}/`)) as PodAnswer;
        assert.equal(a.pod, 'pinned');
        // Every pod namespace on the node belongs to a pod the API binds to it: the deleted pod's is gone.
        const bound = (await core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${node.name}` })).items
          .filter((p) => !p.metadata?.deletionTimestamp).length;
        const netns = listNetns().filter((x) => x.startsWith(`${node.ns}-p-`)).length;
        assert.equal(netns, bound, `${netns} pod namespaces on ${node.name} for ${bound} pods bound to it`);
      } finally {
        await lab.kubectlResult(['delete', 'pod', 'pinned', '--wait=false']);
      }
    });

    after(async () => {
      await lab?.kubectlResult(['delete', 'service,deployment', 'web', '--wait=false']);
    });
  });
});

describe('lab (e2e, root): lifecycle and bad input', function () {
  this.timeout(120_000);
  before(function () { requireE2e(this); });

  it('stop removes every namespace and process of the run', async () => {
    const lab = await Lab.start({ prefix: 'plife', nodes: 1, clients: [] });
    await lab.kubectl('create', 'deployment', 'one', '--image=x', '--replicas=1');
    await waitFor('the pod to run', async () => (await lab.kubectl('get', 'pods', '-o', 'jsonpath={.items[*].status.phase}')).includes('Running'), 30_000, 200);
    assert.ok(readdirSync('/run/netns').some((n) => n.startsWith(`${lab.tag}-node-1-p-`)), 'the pod has its own namespace');
    assert.ok(processesWith(`--lab=${lab.tag}`).length >= 2, 'kubelet and pod server carry the lab tag');
    await lab.stop();
    assert.deepEqual(readdirSync('/run/netns').filter((n) => n.startsWith('plife-')), []);
    assert.deepEqual(processesWith(lab.tag), []);
    assert.deepEqual(processesWith(path.join('plife', lab.runId)), [], 'no control-plane process is left');
    assert.deepEqual(readdirSync(lab.dir), ['logs'], 'only the logs stay, for a post-mortem');
  });

  it('a new run clears the leftovers of a crashed one, and refuses a prefix in use', async () => {
    // A "crashed" run: started by a child process that is killed without stopping its lab.
    const child = spawnSync('bash', ['-c', `timeout -s KILL 40 ${process.execPath} --input-type=module -e "
      const { Lab } = await import('${path.join(repoRoot, 'test/lab/index.ts')}');
      await Lab.start({ prefix: 'pcrash', nodes: 1, clients: [] });
      console.log('UP'); process.kill(process.pid, 'SIGKILL');"`], { encoding: 'utf8', timeout: 60_000 });
    assert.match(child.stdout, /UP/, child.stderr);
    const left = readState('pcrash');
    assert.ok(left, 'the crashed run left its state');
    assert.ok(readdirSync('/run/netns').some((n) => n.startsWith('pcrash-')), 'and its namespaces');
    const lab = await Lab.start({ prefix: 'pcrash', nodes: 1, clients: [] });
    try {
      assert.deepEqual(readdirSync('/run/netns').filter((n) => n.startsWith('pcrash-') && !n.startsWith(lab.tag)), []);
      for (const d of left.daemons) assert.ok(!existsSync(`/proc/${d.pid}`) || !spawnSync('cat', [`/proc/${d.pid}/cmdline`], { encoding: 'utf8' }).stdout.includes(left.runId), `${d.name} is gone`);
      // While this run lives, another start with the same prefix is refused with the fix.
      const kept = { ...readState('pcrash')!, keep: true, ownerPid: 1, ownerStartTicks: -1 };
      const { writeState } = await import('../lab/state.ts');
      writeState(kept);
      await assert.rejects(Lab.start({ prefix: 'pcrash', nodes: 1 }), (err: Error) => {
        assert.ok(err instanceof LabBusyError);
        assert.match(err.message, /prefix 'pcrash' is in use/);
        assert.match(err.message, /npm run lab -- down|PORTICO_LAB_PREFIX/);
        return true;
      });
    } finally {
      await lab.stop();
    }
  });

  it('as a non-root user, says that root is needed and how', () => {
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, path.join(repoRoot, 'test/lab/cli.ts'), 'up'],
      { encoding: 'utf8', timeout: 30_000, cwd: '/' });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /must run as root/);
    assert.match(r.stderr, /sudo/);
  });

  it('without a needed Debian package, names it and the command that installs it', () => {
    // A PATH with everything the lab runs except socat.
    const bin = mkdtempSync(path.join(os.tmpdir(), 'portico-path-'));
    for (const cmd of ['ip', 'openssl', 'curl', 'sysctl', 'sh', 'bash', 'nsenter']) {
      const found = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).stdout.trim();
      if (found) symlinkSync(found, path.join(bin, cmd));
    }
    const r = spawnSync(process.execPath, [path.join(repoRoot, 'test/lab/cli.ts'), 'up'], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, PATH: bin } });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /missing commands: socat/);
    assert.match(r.stderr, /apt-get install -y socat/);
  });
});

describe('lab (e2e, root): service-account identities', function () {
  this.timeout(60_000);
  it('a process can run as a ServiceAccount, with exactly its RBAC', async function () {
    requireE2e(this);
    const lab = await sharedLab();
    await lab.kubectl('create', 'namespace', 'sa-probe');
    await lab.kubectl('create', 'serviceaccount', 'reader', '-n', 'sa-probe');
    await lab.kubectl('create', 'role', 'read-cm', '-n', 'sa-probe', '--verb=get,list', '--resource=configmaps');
    await lab.kubectl('create', 'rolebinding', 'reader', '-n', 'sa-probe', '--role=read-cm', '--serviceaccount=sa-probe:reader');
    const kubeconfig = await lab.serviceAccountKubeconfig('sa-probe', 'reader', 'segment');
    // From a node, over the segment, like a speaker would.
    const kubectl = path.join(lab.binDir, 'kubectl');
    const allowed = await lab.exec('node-1', [kubectl, `--kubeconfig=${kubeconfig}`, 'get', 'configmaps', '-n', 'sa-probe'], { allowFail: true });
    assert.equal(allowed.code, 0, allowed.stderr);
    const denied = await lab.exec('node-1', [kubectl, `--kubeconfig=${kubeconfig}`, 'create', 'configmap', 'x', '-n', 'sa-probe'], { allowFail: true });
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /forbidden.*system:serviceaccount:sa-probe:reader/);
  });
});
