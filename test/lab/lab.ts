// The lab: a real Kubernetes control plane and N nodes, each a network
// namespace on one layer-2 segment with a lab kubelet that runs Pods as small
// HTTP servers, or (realNodes) a real node: containerd, runc, the kubelet and
// kube-proxy (realnode.ts). Used by the end-to-end tests, the benchmarks and the demo.
import { mkdirSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import https from 'node:https';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import { run, startDaemon, stopDaemon, isAlive, signal, sleep, waitFor, type DaemonRecord, type RunResult } from './sh.ts';
import { createNetns, destroyNetns, ipBatch, netnsPids, listNetns } from './netns.ts';
import { makeClientCert, makePki, writeKubeconfig, writeLabKubeconfig, type Pki } from './pki.ts';
import { RealNode, type KubeProxyMode } from './realnode.ts';
import { pauseImage, webImage, type LabImage } from './realnode-images.ts';
import { LabBusyError, clearPrefix, ownerRecord, prefixDir, readState, stateInUse, withClaimLock, writeState, type LabState } from './state.ts';
import { preflight, realNodePreflight } from './preflight.ts';
import type { KubeletConfig } from './kubelet-config.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..');

/** Address plan: the segment is 198.51.100.0/24 and 2001:db8:1::/64. */
export const SEGMENT = {
  v4Prefix: '198.51.100.',
  v6Prefix: '2001:db8:1::',
  controlPlane: 2,
  firstNode: 11,
  firstClient: 100,
  firstRouter: 201,
} as const;
export const SERVICE_CIDRS = ['100.64.240.0/20', '2001:db8:f::/112'] as const;
/** The `kubernetes` Service's ClusterIP: the first address of the IPv4 Service CIDR. */
const KUBERNETES_SERVICE_IP = '100.64.240.1';

export interface LabOptions {
  /** Number of nodes (default 3). */
  nodes?: number;
  /** Client namespaces to add on the segment (default ['client']). */
  clients?: string[];
  /** Lab prefix for namespaces, processes and the run directory (default $PORTICO_LAB_PREFIX or 'ptest'). */
  prefix?: string;
  /** Leave the lab running after this process exits (the demo). */
  keep?: boolean;
  /** How long a silent node stays Ready (kube-controller-manager's node-monitor-grace-period), seconds. */
  nodeGraceSeconds?: number;
  /**
   * Real nodes: containerd + runc + the real kubelet (and kube-proxy) in each
   * node's namespaces, pods as real containers (default false: the lab kubelet).
   */
  realNodes?: boolean;
  /** Real nodes only: kube-proxy's mode, or 'none' for no kube-proxy (default 'nftables'). */
  kubeProxy?: KubeProxyMode;
  /**
   * The API server writes an audit log (metadata of every request, JSON lines)
   * to `auditLog`, so a test can say who sent which requests (default false).
   */
  audit?: boolean;
  log?: (msg: string) => void;
}

/** Metadata of every request once it completed (watches when they start), nothing of the bodies. */
const AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
`;

/** The pod networks of the whole lab (kube-proxy's clusterCIDR on real nodes). */
export const CLUSTER_CIDRS = ['100.64.0.0/17', '2001:db8:64::/48'] as const;

export interface LabNode {
  name: string;
  index: number;
  ns: string;
  ipv4: string;
  ipv6: string;
  podCidrV4: string;
  podCidrV6: string;
}

/** One endpoint of a Service's EndpointSlices. */
export interface LabEndpoint {
  family: 'IPv4' | 'IPv6';
  ip: string;
  ready: boolean;
  node: string | undefined;
  pod: string | undefined;
}

export interface LabHost {
  name: string;
  ns: string;
  ipv4: string;
  ipv6: string;
}

/** A process the lab starts on a node and restarts with restartNode (e.g. a speaker). */
export interface NodeDaemonSpec {
  name: string;
  argv: (node: LabNode) => string[];
  env?: (node: LabNode) => NodeJS.ProcessEnv;
}


export class Lab {
  readonly prefix: string;
  readonly runId: string;
  readonly tag: string;
  readonly dir: string;
  readonly nodes: LabNode[] = [];
  readonly clients: LabHost[] = [];
  readonly routers: LabHost[] = [];
  /** Kubeconfig for this machine's root namespace (through the lab's forwarder on 127.0.0.1). */
  readonly kubeconfig: string;
  /** Kubeconfig for processes on the segment (nodes): the API server at 198.51.100.2. */
  readonly segmentKubeconfig: string;
  readonly kc = new k8s.KubeConfig();
  readonly binDir: string;
  readonly apiServerAddress = `${SEGMENT.v4Prefix}${SEGMENT.controlPlane}`;
  private pki!: Pki;
  private apiPort = 0;
  private readonly opts: Required<Omit<LabOptions, 'log'>> & Pick<LabOptions, 'log'>;
  private readonly daemons = new Map<string, DaemonRecord>();
  private readonly nodeDaemons: NodeDaemonSpec[] = [];
  private apiserverArgv: string[] = [];
  private readonly controlPlaneArgv = new Map<string, string[]>();
  private stopped = false;
  private readonly stopHooks: (() => Promise<void>)[] = [];
  /** Real nodes by name (realNodes mode). */
  readonly realNodes = new Map<string, RealNode>();
  /** Images every real node holds, loaded again into a node that joins later. */
  private readonly nodeImages: LabImage[] = [];

  private constructor(opts: LabOptions, binDir: string) {
    this.opts = {
      nodes: opts.nodes ?? 3,
      clients: opts.clients ?? ['client'],
      prefix: opts.prefix ?? process.env.PORTICO_LAB_PREFIX ?? 'ptest',
      keep: opts.keep ?? false,
      nodeGraceSeconds: opts.nodeGraceSeconds ?? 5,
      realNodes: opts.realNodes ?? false,
      kubeProxy: opts.kubeProxy ?? 'nftables',
      audit: opts.audit ?? false,
      log: opts.log,
    };
    this.prefix = this.opts.prefix;
    this.runId = randomBytes(2).toString('hex');
    this.tag = `${this.prefix}-${this.runId}`;
    this.dir = path.join(prefixDir(this.prefix), this.runId);
    this.kubeconfig = path.join(this.dir, 'kubeconfig');
    this.segmentKubeconfig = path.join(this.dir, 'kubeconfig.segment');
    this.binDir = binDir;
  }

  /** Brings up the control plane, the nodes and the clients; on failure removes what it made. */
  static async start(opts: LabOptions = {}): Promise<Lab> {
    const binDir = await preflight();
    if (opts.realNodes) realNodePreflight(binDir);
    const lab = new Lab(opts, binDir);
    await lab.claimPrefix();
    try {
      await lab.bringUp();
    } catch (err) {
      await lab.stop().catch(() => undefined);
      throw err;
    }
    return lab;
  }

  private log(msg: string): void {
    this.opts.log?.(msg);
  }

  get logDir(): string {
    return path.join(this.dir, 'logs');
  }

  /** Full namespace name for a short one ('node-1', 'client', 'cp', 'sw'). */
  nsName(short: string): string {
    return short.startsWith(`${this.tag}-`) ? short : `${this.tag}-${short}`;
  }

  node(name: string): LabNode {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no lab node named ${name} (nodes: ${this.nodes.map((x) => x.name).join(', ')})`);
    return n;
  }

  private async claimPrefix(): Promise<void> {
    await withClaimLock(this.prefix, () => this.claimPrefixLocked());
  }

  private claimPrefixLocked(): void {
    const prev = readState(this.prefix);
    if (prev && stateInUse(prev)) {
      const who = prev.keep ? 'a lab left running by `npm run lab`' : `a lab run by process ${prev.ownerPid}`;
      throw new LabBusyError(
        `lab prefix '${this.prefix}' is in use by ${who} (run ${prev.runId}, started ${prev.startedAt}). ` +
          (prev.keep ? 'Stop it with `npm run lab -- down`' : `Wait for it, or stop that process`) +
          `, or use another prefix: PORTICO_LAB_PREFIX=<name>.`,
      );
    }
    const cleared = clearPrefix(this.prefix);
    if (cleared.namespaces || cleared.processes) {
      this.log(`cleared leftovers of an earlier '${this.prefix}' run: ${cleared.namespaces} namespaces, ${cleared.processes} processes`);
    }
    mkdirSync(this.logDir, { recursive: true });
    this.saveState();
  }

  private saveState(): void {
    const state: LabState = {
      prefix: this.prefix,
      runId: this.runId,
      ...ownerRecord(),
      keep: this.opts.keep,
      startedAt: new Date().toISOString(),
      dir: this.dir,
      kubeconfig: this.kubeconfig,
      daemons: [...this.daemons.values()],
    };
    writeState(state);
  }

  private startTracked(key: string, argv: readonly string[], netns?: string, env?: NodeJS.ProcessEnv, keepMounts = false): DaemonRecord {
    const opts: Parameters<typeof startDaemon>[0] = { name: key, argv, keepMounts, log: path.join(this.logDir, `${key}.log`), env: { ...process.env, ...env, PORTICO_LAB: this.tag } };
    if (netns) opts.netns = netns;
    const rec = startDaemon(opts);
    this.daemons.set(key, rec);
    this.saveState();
    return rec;
  }

  private async bringUp(): Promise<void> {
    const t0 = Date.now();
    const segment = this.buildSegment();
    const pki = makePki(path.join(this.dir, 'pki'), ['127.0.0.1', this.apiServerAddress, '100.64.240.1']);
    const images = this.opts.realNodes ? Promise.all([pauseImage(), webImage()]) : Promise.resolve([]);
    [this.pki] = await Promise.all([pki, segment]);
    this.log(`network: switch, control plane, ${this.nodes.length} nodes, ${this.clients.length} clients (${Date.now() - t0} ms)`);
    await this.startControlPlane();
    this.log(`control plane ready (${Date.now() - t0} ms)`);
    if (this.opts.realNodes) {
      this.nodeImages.push(...await images);
      await Promise.all(this.nodes.map((n) => this.bootRealNode(n)));
      await this.waitNodesReady(this.nodes.map((n) => n.name), 60_000);
    } else {
      for (const n of this.nodes) this.startKubelet(n);
      await this.waitNodesReady(this.nodes.map((n) => n.name), 30_000);
    }
    await waitFor('the default ServiceAccount', async () => {
      const core = this.kc.makeApiClient(k8s.CoreV1Api);
      return core.readNamespacedServiceAccount({ name: 'default', namespace: 'default' }).then(() => true, () => false);
    }, 30_000, 200);
    this.log(`${this.nodes.length} nodes Ready (${Date.now() - t0} ms)`);
  }

  // ---- network -------------------------------------------------------------

  private async buildSegment(): Promise<void> {
    const sw = this.nsName('sw');
    await createNetns(sw);
    await ipBatch(sw, ['link add br0 type bridge forward_delay 0 mcast_snooping 0', 'link set br0 up']);
    const hosts: Promise<unknown>[] = [this.attach('cp', SEGMENT.controlPlane)];
    for (let i = 1; i <= this.opts.nodes; i++) {
      const name = `node-${i}`;
      const host = SEGMENT.firstNode + i - 1;
      const node: LabNode = {
        name, index: i, ns: this.nsName(name),
        ipv4: `${SEGMENT.v4Prefix}${host}`, ipv6: `${SEGMENT.v6Prefix}${host}`,
        podCidrV4: `100.64.${i}.0/24`, podCidrV6: `2001:db8:64:${i}::/64`,
      };
      this.nodes.push(node);
      hosts.push(this.attach(name, host, { forward: true }));
    }
    this.opts.clients.forEach((name, k) => hosts.push(this.addHost(name, SEGMENT.firstClient + k, this.clients)));
    await Promise.all(hosts);
    // Any node, and every client, reaches every pod network through the node that hosts it.
    await Promise.all([...this.nodes.map((n) => n.ns), ...this.clients.map((c) => c.ns)].map((ns) => this.addPodRoutes(ns)));
    if (this.opts.realNodes) {
      // Real pods reach the API server through its ClusterIP, DNAT'ed by kube-proxy and not
      // masqueraded: the control plane answers them through their node. Nodes have no default
      // route, so the Service CIDRs get one (a connect would fail before netfilter sees it).
      await this.addPodRoutes(this.nsName('cp'));
      // The API server's ClusterIP also answers without kube-proxy (a cluster whose Services
      // are forwarded by something else): the control plane's namespace DNATs it itself.
      await run(['nft', '-f', '-'], { netns: this.nsName('cp'), input: `table ip lab-apiserver {
  chain prerouting { type nat hook prerouting priority dstnat; ip daddr ${KUBERNETES_SERVICE_IP} tcp dport 443 dnat to ${this.apiServerAddress}:6443; }
}
` });
      const [v4, v6] = SERVICE_CIDRS;
      await Promise.all(this.nodes.map((n) => ipBatch(n.ns, [
        `route add ${v4} via ${this.apiServerAddress}`, `route add ${v6} via ${SEGMENT.v6Prefix}${SEGMENT.controlPlane}`,
      ])));
    }
  }

  /** Creates a namespace with eth0 on the segment at .host / ::host. */
  private async attach(short: string, host: number, opts: { forward?: boolean } = {}): Promise<string> {
    const ns = this.nsName(short);
    const sw = this.nsName('sw');
    await createNetns(ns, opts);
    const port = `p${host}`;
    await run(['ip', 'link', 'add', 'eth0', 'netns', ns, 'type', 'veth', 'peer', 'name', port, 'netns', sw]);
    await ipBatch(sw, [`link set ${port} master br0`, `link set ${port} up`]);
    await ipBatch(ns, [
      `addr add ${SEGMENT.v4Prefix}${host}/24 dev eth0`,
      `addr add ${SEGMENT.v6Prefix}${host}/64 dev eth0 nodad`,
      'link set eth0 up',
    ]);
    return ns;
  }

  private async addHost(name: string, host: number, into: LabHost[]): Promise<LabHost> {
    const h: LabHost = { name, ns: this.nsName(name), ipv4: `${SEGMENT.v4Prefix}${host}`, ipv6: `${SEGMENT.v6Prefix}${host}` };
    into.push(h);
    await this.attach(name, host);
    return h;
  }

  private async addPodRoutes(ns: string): Promise<void> {
    const lines: string[] = [];
    for (const n of this.nodes) {
      if (n.ns === ns) continue;
      lines.push(`route add ${n.podCidrV4} via ${n.ipv4}`, `route add ${n.podCidrV6} via ${n.ipv6}`);
    }
    await ipBatch(ns, lines);
  }

  /** Adds a client namespace on the segment (with routes to the pod networks). */
  async addClient(name: string): Promise<LabHost> {
    const used = [...this.clients, ...this.routers].map((h) => Number(h.ipv4.split('.')[3]));
    let host = SEGMENT.firstClient;
    while (used.includes(host)) host++;
    const h = await this.addHost(name, host, this.clients);
    await this.addPodRoutes(h.ns);
    return h;
  }

  /** Adds a bare namespace on the segment for a router (see routers.ts for the daemons). */
  async addRouterHost(name: string): Promise<LabHost> {
    const used = this.routers.map((h) => Number(h.ipv4.split('.')[3]));
    let host = SEGMENT.firstRouter;
    while (used.includes(host)) host++;
    return this.addHost(name, host, this.routers);
  }

  // ---- control plane ---------------------------------------------------------

  private bin(name: string): string {
    return path.join(this.binDir, name);
  }

  private async freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const a = s.address();
        s.close(() => (a && typeof a === 'object' ? resolve(a.port) : reject(new Error('no port'))));
      });
    });
  }

  /** The API server's audit log (JSON lines), when the lab was started with `audit`. */
  get auditLog(): string {
    return path.join(this.dir, 'audit.log');
  }

  private auditArgs(): string[] {
    const policy = path.join(this.dir, 'audit-policy.yaml');
    writeFileSync(policy, AUDIT_POLICY);
    return [`--audit-policy-file=${policy}`, `--audit-log-path=${this.auditLog}`, '--audit-log-format=json', '--audit-log-maxsize=0'];
  }

  /** The PID of a process the lab started, by its key (e.g. `portico-speaker-node-1`), if it runs. */
  pidOf(key: string): number | undefined {
    const rec = this.daemons.get(key);
    return rec && isAlive(rec) ? rec.pid : undefined;
  }

  private async startControlPlane(): Promise<void> {
    const cp = this.nsName('cp');
    const p = this.pki;
    const inCp = path.join(this.dir, 'kubeconfig.cp');
    writeKubeconfig(inCp, p, 'https://127.0.0.1:6443');
    writeKubeconfig(this.segmentKubeconfig, p, `https://${this.apiServerAddress}:6443`);
    this.startTracked('etcd', [
      this.bin('etcd'), '--name', 'lab', '--data-dir', path.join(this.dir, 'etcd'),
      '--listen-client-urls', 'http://127.0.0.1:2379', '--advertise-client-urls', 'http://127.0.0.1:2379',
      '--listen-peer-urls', 'http://127.0.0.1:2380', '--initial-advertise-peer-urls', 'http://127.0.0.1:2380',
      '--initial-cluster', 'lab=http://127.0.0.1:2380', '--unsafe-no-fsync', '--log-level', 'warn',
    ], cp);
    this.apiserverArgv = [
      this.bin('kube-apiserver'),
      '--etcd-servers=http://127.0.0.1:2379',
      '--bind-address=0.0.0.0', '--secure-port=6443', `--advertise-address=${this.apiServerAddress}`,
      `--tls-cert-file=${p.apiserverCert}`, `--tls-private-key-file=${p.apiserverKey}`, `--client-ca-file=${p.caCert}`,
      `--service-account-key-file=${p.saPub}`, `--service-account-signing-key-file=${p.saKey}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-cluster-ip-range=${SERVICE_CIDRS.join(',')}`,
      `--authorization-mode=${this.opts.realNodes ? 'Node,RBAC' : 'RBAC'}`, '--allow-privileged=true', '--profiling=false',
      '--event-ttl=1h', '--v=1',
      // Real kubelets: `kubectl logs/exec` reach them at their InternalIP, as the lab admin.
      ...(this.opts.realNodes ? ['--kubelet-preferred-address-types=InternalIP,Hostname', `--kubelet-client-certificate=${p.adminCert}`, `--kubelet-client-key=${p.adminKey}`] : []),
      ...(this.opts.audit ? this.auditArgs() : []),
    ];
    this.startTracked('kube-apiserver', this.apiserverArgv, cp);
    // The root namespace reaches the API server through a Unix socket (socket
    // files are not bound to a network namespace): TCP 127.0.0.1:port here ->
    // socket -> TCP 127.0.0.1:6443 inside the control-plane namespace.
    const sock = path.join(this.dir, 'apiserver.sock');
    this.apiPort = await this.freePort();
    this.startTracked('forward-cp', ['socat', `UNIX-LISTEN:${sock},fork,unlink-early`, 'TCP:127.0.0.1:6443'], cp);
    this.startTracked('forward-host', ['socat', `TCP-LISTEN:${this.apiPort},bind=127.0.0.1,reuseaddr,fork`, `UNIX-CONNECT:${sock}`]);
    writeKubeconfig(this.kubeconfig, p, `https://127.0.0.1:${this.apiPort}`);
    this.kc.loadFromFile(this.kubeconfig);
    this.saveState();
    await this.waitApiReady(60_000);
    this.controlPlaneArgv.set('kube-controller-manager', [
      this.bin('kube-controller-manager'), `--kubeconfig=${inCp}`, '--leader-elect=false',
      `--service-account-private-key-file=${p.saKey}`, `--root-ca-file=${p.caCert}`,
      '--use-service-account-credentials=false', '--controllers=*,-nodeipam,-service-lb-controller,-cloud-node-lifecycle,-persistentvolume-binder,-attachdetach',
      '--node-monitor-period=1s', `--node-monitor-grace-period=${this.opts.nodeGraceSeconds}s`,
      '--bind-address=127.0.0.1', '--v=1',
    ]);
    this.controlPlaneArgv.set('kube-scheduler', [this.bin('kube-scheduler'), `--kubeconfig=${inCp}`, '--leader-elect=false', '--bind-address=127.0.0.1', '--v=1']);
    for (const [key, argv] of this.controlPlaneArgv) this.startTracked(key, argv, cp);
  }

  /** GET on the API server with the admin certificate; resolves with status and body. */
  apiGet(pathname: string, timeoutMs = 2000): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = https.request({
        host: '127.0.0.1', port: this.apiPort, path: pathname, method: 'GET', timeout: timeoutMs,
        ca: readFileSync(this.pki.caCert), cert: readFileSync(this.pki.adminCert), key: readFileSync(this.pki.adminKey),
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', reject);
      req.end();
    });
  }

  private async waitApiReady(timeoutMs: number): Promise<void> {
    await waitFor('the API server to be ready (see ' + path.join(this.logDir, 'kube-apiserver.log') + ')', async () => {
      const api = this.daemons.get('kube-apiserver');
      if (api && !isAlive(api)) throw new Error('kube-apiserver exited; see its log ' + api.log);
      const r = await this.apiGet('/readyz');
      return r.status === 200;
    }, timeoutMs, 200);
  }

  /** Stops the API server (for outage tests); startApiServer brings it back. */
  async stopApiServer(): Promise<void> {
    const rec = this.daemons.get('kube-apiserver');
    if (rec) await stopDaemon(rec, 5000);
  }

  /**
   * Brings the API server back after stopApiServer. The controller-manager and
   * the scheduler start afresh too (their watches may sit in long back-offs),
   * and it returns once every node is Ready again, so the next test finds a
   * settled cluster.
   */
  async startApiServer(): Promise<void> {
    const cp = this.nsName('cp');
    this.startTracked('kube-apiserver', this.apiserverArgv, cp);
    await this.waitApiReady(60_000);
    for (const [key, argv] of this.controlPlaneArgv) {
      const rec = this.daemons.get(key);
      if (rec) await stopDaemon(rec);
      this.startTracked(key, argv, cp);
    }
    await this.waitNodesReady(this.nodes.map((n) => n.name), 60_000);
  }

  // ---- nodes -----------------------------------------------------------------

  private startKubelet(n: LabNode): void {
    const cfg: KubeletConfig = {
      node: n.name, index: n.index, tag: this.tag, ipv4: n.ipv4, ipv6: n.ipv6,
      podCidrV4: n.podCidrV4, podCidrV6: n.podCidrV6, podNsPrefix: `${n.ns}-p-`,
      kubeconfig: this.segmentKubeconfig, logDir: this.logDir, podserver: path.join(here, 'podserver.ts'),
      heartbeatMs: 1000,
    };
    const file = path.join(this.dir, `kubelet-${n.name}.json`);
    writeFileSync(file, JSON.stringify(cfg, null, 2));
    this.startTracked(`kubelet-${n.name}`, [process.execPath, path.join(here, 'kubelet.ts'), `--lab=${this.tag}`, `--config=${file}`], n.ns, undefined, true);
    for (const spec of this.nodeDaemons) this.startNodeDaemon(spec, n);
  }

  /**
   * Boots a real node: its cgroup tree, then containerd, the kubelet and
   * kube-proxy (realnode.ts); loads the lab's images once containerd answers.
   * Certificates and configs are made once; a reboot reuses them and the disk.
   */
  private async bootRealNode(n: LabNode): Promise<void> {
    let node = this.realNodes.get(n.name);
    if (!node) {
      const dir = path.join(this.dir, 'nodes', n.name);
      mkdirSync(dir, { recursive: true });
      const server = `https://${this.apiServerAddress}:6443`;
      const [kubeletCert, proxyCert] = await Promise.all([
        makeClientCert(this.pki, `/O=system:nodes/CN=system:node:${n.name}`, path.join(dir, 'kubelet')),
        makeClientCert(this.pki, '/CN=system:kube-proxy', path.join(dir, 'kube-proxy')),
      ]);
      writeLabKubeconfig(path.join(dir, 'kubelet.kubeconfig'), this.pki, server, `system:node:${n.name}`, kubeletCert);
      writeLabKubeconfig(path.join(dir, 'kube-proxy.kubeconfig'), this.pki, server, 'system:kube-proxy', proxyCert);
      node = new RealNode({
        name: n.name, ns: n.ns, tag: this.tag, ipv4: n.ipv4, ipv6: n.ipv6, podCidrV4: n.podCidrV4, podCidrV6: n.podCidrV6,
        dir, logDir: this.logDir, binDir: this.binDir, caCert: this.pki.caCert,
        kubeletKubeconfig: path.join(dir, 'kubelet.kubeconfig'), kubeProxyKubeconfig: path.join(dir, 'kube-proxy.kubeconfig'),
        kubeProxy: this.opts.kubeProxy, clusterCidrs: CLUSTER_CIDRS, pauseImage: this.nodeImages[0]?.name ?? 'portico.dev/lab-pause:1',
      });
      node.prepare();
      this.realNodes.set(n.name, node);
    }
    node.createCgroup();
    this.startTracked(`node-${n.name}`, node.bootArgv());
    for (const img of this.nodeImages) await node.importImage(img.archive);
    for (const spec of this.nodeDaemons) this.startNodeDaemon(spec, n);
  }

  /** Loads an image archive into every real node's containerd (and into nodes that reboot or join later). */
  async loadImage(image: LabImage): Promise<void> {
    if (!this.opts.realNodes) throw new Error('loadImage needs a lab with realNodes: true');
    if (!this.nodeImages.some((i) => i.archive === image.archive)) this.nodeImages.push(image);
    await Promise.all([...this.realNodes.values()].map((n) => n.importImage(image.archive)));
  }

  /** Real nodes: switches kube-proxy on every node to `mode` ('none' stops it and removes its rules). */
  async setKubeProxy(mode: KubeProxyMode): Promise<void> {
    if (!this.opts.realNodes) throw new Error('setKubeProxy needs a lab with realNodes: true');
    this.opts.kubeProxy = mode;
    await Promise.all([...this.realNodes.values()].map((n) => n.setKubeProxy(mode)));
  }

  get kubeProxyMode(): KubeProxyMode {
    return this.opts.kubeProxy;
  }

  /** Whether the nodes are real kubelets (realNodes) rather than the lab kubelet. */
  get real(): boolean {
    return this.opts.realNodes;
  }

  private startNodeDaemon(spec: NodeDaemonSpec, n: LabNode): DaemonRecord {
    return this.startTracked(`${spec.name}-${n.name}`, spec.argv(n), n.ns, spec.env?.(n));
  }

  /** Runs a process on every node now and after every restartNode (e.g. the speaker). */
  startOnNodes(spec: NodeDaemonSpec): void {
    this.nodeDaemons.push(spec);
    for (const n of this.nodes) this.startNodeDaemon(spec, n);
  }

  /**
   * Stops a per-node process started with startOnNodes: on one node (it comes
   * back with restartNode), or on every node, which also forgets it (a test
   * that is done with its speakers leaves nothing for the next test).
   */
  async stopOnNodes(name: string, node?: string): Promise<void> {
    for (const n of this.nodes) {
      if (node && n.name !== node) continue;
      const key = `${name}-${n.name}`;
      const rec = this.daemons.get(key);
      if (rec) await stopDaemon(rec);
      if (!node) this.daemons.delete(key);
    }
    if (!node) {
      const i = this.nodeDaemons.findIndex((s) => s.name === name);
      if (i >= 0) this.nodeDaemons.splice(i, 1);
      this.saveState();
    }
  }

  /** Restarts one per-node process on one node (SIGTERM, then start again). */
  async restartOnNode(name: string, node: string): Promise<void> {
    const spec = this.nodeDaemons.find((s) => s.name === name);
    if (!spec) throw new Error(`no per-node process named ${name}`);
    await this.stopOnNodes(name, node);
    this.startNodeDaemon(spec, this.node(node));
  }

  async waitNodesReady(names: readonly string[], timeoutMs: number): Promise<void> {
    const core = this.kc.makeApiClient(k8s.CoreV1Api);
    await waitFor(`nodes ${names.join(', ')} Ready`, async () => {
      const list = await core.listNode();
      const ready = new Set(list.items.filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).map((n) => n.metadata?.name));
      return names.every((n) => ready.has(n));
    }, timeoutMs, 200);
  }

  async waitNodesNotReady(names: readonly string[], timeoutMs: number): Promise<void> {
    const core = this.kc.makeApiClient(k8s.CoreV1Api);
    await waitFor(`nodes ${names.join(', ')} not Ready`, async () => {
      const list = await core.listNode();
      const ready = new Set(list.items.filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).map((n) => n.metadata?.name));
      return names.every((n) => !ready.has(n));
    }, timeoutMs, 200);
  }

  /**
   * Kills a node abruptly: every process in its namespaces dies (SIGKILL) and
   * its link goes down. On a real node that is a power cut of its whole cgroup
   * tree: containerd, kubelet, kube-proxy and every pod's processes, whose
   * sandboxes live in network namespaces of their own.
   */
  async killNode(name: string): Promise<void> {
    const n = this.node(name);
    await this.setLink(n, 'down');
    this.realNodes.get(name)?.powerCut();
    for (const ns of listNetns().filter((x) => x === n.ns || x.startsWith(`${n.ns}-p-`))) {
      for (const pid of netnsPids(ns)) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      }
    }
    for (const rec of this.daemons.values()) if (rec.netns === n.ns) signal(rec, 'SIGKILL');
    await waitFor(`processes of ${name} to exit`, () => [...this.daemons.values()].every((d) => d.netns !== n.ns || !isAlive(d)), 5000, 20);
  }

  /** Brings a killed node back: link up, kubelet and per-node processes started again. */
  async restartNode(name: string): Promise<void> {
    const n = this.node(name);
    await this.setLink(n, 'up');
    if (this.opts.realNodes) await this.bootRealNode(n);
    else this.startKubelet(n);
    await this.waitNodesReady([name], 30_000);
  }

  /** Cuts a node off the segment (its processes keep running), or reconnects it. */
  async disconnectNode(name: string): Promise<void> {
    await this.setLink(this.node(name), 'down');
  }

  async reconnectNode(name: string): Promise<void> {
    await this.setLink(this.node(name), 'up');
  }

  private async setLink(n: LabNode, state: 'up' | 'down'): Promise<void> {
    const host = Number(n.ipv4.split('.')[3]);
    await run(['ip', '-n', this.nsName('sw'), 'link', 'set', `p${host}`, state]);
  }

  // ---- using the lab ---------------------------------------------------------

  /** The endpoints of a Service's EndpointSlices, every family, ready or not. */
  async endpoints(service: string, namespace = 'default'): Promise<LabEndpoint[]> {
    const slices = await this.kc.makeApiClient(k8s.DiscoveryV1Api).listNamespacedEndpointSlice({ namespace, labelSelector: `kubernetes.io/service-name=${service}` });
    return slices.items.flatMap((s) => (s.addressType === 'IPv4' || s.addressType === 'IPv6' ? s.endpoints ?? [] : []).flatMap((e) => e.addresses.map((ip) => ({
      family: s.addressType as 'IPv4' | 'IPv6', ip, ready: e.conditions?.ready === true, node: e.nodeName, pod: e.targetRef?.name,
    }))));
  }

  /** Runs kubectl against the lab; resolves with stdout, throws with stderr on failure. */
  async kubectl(...args: string[]): Promise<string> {
    const r = await run([this.bin('kubectl'), `--kubeconfig=${this.kubeconfig}`, ...args], { timeoutMs: 120_000 });
    return r.stdout;
  }

  /** kubectl with the result, for commands expected to fail (e.g. a refused apply); large batches may need a longer timeout. */
  async kubectlResult(args: readonly string[], input?: string, opts_: { timeoutMs?: number } = {}): Promise<RunResult> {
    const opts: Parameters<typeof run>[1] = { allowFail: true, timeoutMs: opts_.timeoutMs ?? 120_000 };
    if (input !== undefined) opts.input = input;
    return run([this.bin('kubectl'), `--kubeconfig=${this.kubeconfig}`, ...args], opts);
  }

  /**
   * A kubeconfig that authenticates as a ServiceAccount (a token from the
   * TokenRequest API), so a component runs with exactly that account's RBAC.
   * `where` picks the server address: 'segment' for processes on nodes, 'host' for this namespace.
   */
  async serviceAccountKubeconfig(namespace: string, name: string, where: 'segment' | 'host' = 'segment'): Promise<string> {
    const token = (await this.kubectl('create', 'token', name, '-n', namespace, '--duration=48h')).trim();
    const file = path.join(this.dir, `kubeconfig.sa.${namespace}.${name}.${where}`);
    const server = where === 'segment' ? `https://${this.apiServerAddress}:6443` : `https://127.0.0.1:${this.apiPort}`;
    writeLabKubeconfig(file, this.pki, server, `${namespace}-${name}`, { token }, namespace);
    return file;
  }

  /** Runs a command inside a lab namespace ('client', 'node-1', ...); throws on failure unless allowFail. */
  async exec(ns: string, argv: readonly string[], opts: { allowFail?: boolean; timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
    return run(argv, { ...opts, netns: this.nsName(ns), timeoutMs: opts.timeoutMs ?? 60_000 });
  }

  /** HTTP GET from inside a namespace with curl; resolves with the body (throws on failure). */
  async curl(ns: string, url: string, opts: { timeoutS?: number } = {}): Promise<string> {
    const r = await this.exec(ns, ['curl', '-sS', '--fail', '--max-time', String(opts.timeoutS ?? 5), '-g', url]);
    return r.stdout;
  }

  /** Starts a tracked process in a lab namespace (stopped by lab.stop). */
  spawn(key: string, ns: string | undefined, argv: readonly string[], env?: NodeJS.ProcessEnv): DaemonRecord {
    return this.startTracked(key, argv, ns ? this.nsName(ns) : undefined, env);
  }

  async stopProcess(key: string): Promise<void> {
    const rec = this.daemons.get(key);
    if (rec) await stopDaemon(rec);
    this.daemons.delete(key);
    this.saveState();
  }

  /** Registers clean-up that runs first when the lab stops (e.g. a router's files outside the run directory). */
  onStop(fn: () => Promise<void>): void {
    this.stopHooks.push(fn);
  }

  /** Removes every namespace and process of this run. Safe to call twice and after a failed start. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const fn of this.stopHooks.reverse()) await fn().catch(() => undefined);
    // Real nodes go first and all at once (their pods' namespaces are not the lab's to list).
    for (const node of this.realNodes.values()) {
      try { node.destroy(); } catch (err) { this.log(`could not remove node ${node.spec.name}'s cgroup tree: ${String(err)}`); }
    }
    // Kubelets first so they do not restart pods while the rest goes away.
    const order = [...this.daemons.values()].sort((a, b) => Number(b.name.startsWith('kubelet')) - Number(a.name.startsWith('kubelet')));
    await Promise.all(order.map((d) => stopDaemon(d, 2000, { group: true })));
    const mine = listNetns().filter((n) => n.startsWith(`${this.tag}-`)).sort((a, b) => b.length - a.length);
    for (const ns of mine) destroyNetns(ns);
    this.daemons.clear();
    // Logs stay for a post-mortem until the next start with this prefix clears them.
    clearPrefix(this.prefix, { keepLogs: true });
  }

  /** Where the lab's files are, for people using it by hand. */
  describe(): Record<string, string> {
    return {
      kubeconfig: this.kubeconfig,
      logs: this.logDir,
      client: this.clients[0] ? this.clients[0].ns : '',
      kubectl: this.bin('kubectl'),
    };
  }
}

export { sleep, waitFor, existsSync };
