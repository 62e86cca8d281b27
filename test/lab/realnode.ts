// A real Kubernetes node of the lab: Debian's containerd and runc, the real
// kubelet and (optionally) the real kube-proxy, all in the node's network
// namespace and in one private mount namespace, below one cgroup tree.
//
// Nothing machine-wide changes: the three /proc/sys files the kubelet insists
// on setting are plain files bind-mounted over the real ones, and the places
// that containerd, the CNI plugins, the kubelet and hostPath volumes write to
// without a setting (/run/containerd, /run/<hostPath>, /var/lib/cni,
// /var/log/pods) are the node's own directories mounted over /run, /var/lib
// and /var/log — only inside the node's mount namespace.
import { mkdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { NodeCgroup } from './realnode-cgroup.ts';
import { run, waitFor } from './sh.ts';

export type KubeProxyMode = 'nftables' | 'iptables' | 'none';

export interface RealNodeSpec {
  name: string;
  /** Full network namespace name. */
  ns: string;
  /** Lab tag (prefix-run), for the cgroup name. */
  tag: string;
  ipv4: string;
  ipv6: string;
  podCidrV4: string;
  podCidrV6: string;
  /** The node's own directory (containerd root, kubelet root, configs). */
  dir: string;
  logDir: string;
  binDir: string;
  caCert: string;
  kubeletKubeconfig: string;
  kubeProxyKubeconfig: string;
  kubeProxy: KubeProxyMode;
  /** Pod networks of the whole cluster (kube-proxy's clusterCIDR). */
  clusterCidrs: readonly string[];
  /** The image containerd uses for pod sandboxes. */
  pauseImage: string;
}

export class RealNodeError extends Error {
  readonly code = 'PORTICO_LAB_REAL_NODE';
}

/** The sysctls the kubelet checks and would set machine-wide; the node sees these values in plain files. */
const KUBELET_SYSCTLS: Readonly<Record<string, string>> = {
  'vm/overcommit_memory': '1',
  'kernel/panic': '10',
  'kernel/panic_on_oops': '1',
};

/**
 * The node's /run is its own directory: containerd puts shim sockets in
 * /run/containerd whatever its config says, and hostPath volumes such as the
 * speaker's /run/portico must stay on the node. The lab's directory under the
 * real /run is mounted back inside it, so the node's files keep their paths.
 */
function runMounts(nodeDir: string): string[] {
  const top = nodeDir.startsWith('/run/') ? nodeDir.split('/')[2] : undefined;
  const own = path.join(nodeDir, 'run');
  const lines = [`mkdir -p ${own}/containerd ${own}/lock`];
  if (top) lines.push(`mkdir -p ${own}/${top}`, `mount --bind /run/${top} ${own}/${top}`);
  lines.push(`mount --rbind ${own} /run`);
  return lines;
}

export class RealNode {
  readonly spec: RealNodeSpec;
  readonly cgroup: NodeCgroup;
  readonly socket: string;

  constructor(spec: RealNodeSpec) {
    this.spec = spec;
    this.cgroup = new NodeCgroup(`${spec.tag}-${spec.name}`);
    this.socket = path.join(spec.dir, 'containerd.sock');
  }

  private p(...parts: string[]): string {
    return path.join(this.spec.dir, ...parts);
  }

  /** Writes every config file; idempotent, so a reboot reuses the node's disk (images, kubelet state). */
  prepare(): void {
    for (const d of ['containerd/root', 'containerd/opt', 'kubelet', 'var-lib/cni', 'var-log', 'cni/net.d', 'sysctl']) mkdirSync(this.p(d), { recursive: true });
    for (const [key, value] of Object.entries(KUBELET_SYSCTLS)) writeFileSync(this.p('sysctl', key.replace('/', '.')), `${value}\n`);
    writeFileSync(this.p('resolv.conf'), 'nameserver 127.0.0.1\noptions ndots:1\n');
    writeFileSync(this.p('containerd.toml'), this.containerdConfig());
    writeFileSync(this.p('cni', 'net.d', '10-lab.conflist'), JSON.stringify(this.cniConfig(), null, 2));
    writeFileSync(this.p('kubelet.yaml'), this.kubeletConfig());
    this.writeKubeProxyConfig();
    writeFileSync(this.p('init.sh'), this.initScript(), { mode: 0o755 });
  }

  private containerdConfig(): string {
    const state = this.p('containerd', 'state');
    return `version = 2
root = "${this.p('containerd', 'root')}"
state = "${state}"
oom_score = 0
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "${this.socket}"

[ttrpc]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "${this.p('containerd', 'opt')}"

[plugins."io.containerd.runtime.v1.linux"]
  runtime_root = "${this.p('containerd', 'runc-v1')}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${this.spec.pauseImage}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  max_container_log_line_size = 16384

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "${this.p('containerd', 'runc')}"
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${this.p('cni', 'net.d')}"
    max_conf_num = 1
`;
  }

  /** Bridge cni0 with the node's pod /24 and /64; host-local keeps its leases in the node's /var/lib/cni. */
  private cniConfig(): object {
    const s = this.spec;
    return {
      cniVersion: '0.4.0',
      name: 'lab',
      plugins: [
        {
          type: 'bridge', bridge: 'cni0', isGateway: true, ipMasq: false, hairpinMode: true,
          ipam: {
            type: 'host-local',
            ranges: [[{ subnet: s.podCidrV4 }], [{ subnet: s.podCidrV6 }]],
            routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }],
          },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    };
  }

  private kubeletConfig(): string {
    const s = this.spec;
    return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
cgroupRoot: ${this.cgroup.root}
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://${this.socket}
address: ${s.ipv4}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: ${s.caCert}
authorization:
  mode: Webhook
resolvConf: ${this.p('resolv.conf')}
oomScoreAdj: 0
maxOpenFiles: 16384
nodeLeaseDurationSeconds: 4
nodeStatusUpdateFrequency: 1s
nodeStatusReportFrequency: 10s
syncFrequency: 5s
fileCheckFrequency: 5s
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "0%"
  nodefs.available: "0%"
  nodefs.inodesFree: "0%"
  imagefs.available: "0%"
shutdownGracePeriod: 0s
`;
  }

  /** kube-proxy runs while its config file exists (the init script checks each second). */
  private writeKubeProxyConfig(): void {
    if (this.spec.kubeProxy === 'none') rmSync(this.p('kube-proxy.yaml'), { force: true });
    else writeFileSync(this.p('kube-proxy.yaml'), this.kubeProxyConfig());
  }

  /**
   * Switches kube-proxy's mode on the running node: the running kube-proxy is
   * stopped, its rules are removed (`kube-proxy --cleanup`, as an operator does
   * when changing modes), and the init script starts the new mode's.
   */
  async setKubeProxy(mode: KubeProxyMode): Promise<void> {
    // No config file first, so the init script cannot start one while the old
    // one goes and its rules are cleaned up; each poll kills any still there.
    rmSync(this.p('kube-proxy.yaml'), { force: true });
    await waitFor(`kube-proxy of ${this.spec.name} to stop`, () => {
      const pids = this.kubeProxyPids();
      for (const pid of pids) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      }
      return pids.length === 0;
    }, 10_000, 50);
    await run(['nsenter', `--net=/run/netns/${this.spec.ns}`, '--', path.join(this.spec.binDir, 'kube-proxy'), '--cleanup', '--v=0'], { allowFail: true, timeoutMs: 60_000 });
    this.spec.kubeProxy = mode;
    this.writeKubeProxyConfig();
    if (mode !== 'none') await waitFor(`kube-proxy (${mode}) on ${this.spec.name}`, () => this.kubeProxyPids().length > 0, 10_000, 50);
  }

  private kubeProxyPids(): number[] {
    const bin = path.join(this.spec.binDir, 'kube-proxy');
    return this.cgroup.pids().filter((pid) => {
      try { return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] === bin; } catch { return false; }
    });
  }

  private kubeProxyConfig(): string {
    const s = this.spec;
    return `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: ${s.kubeProxy}
hostnameOverride: ${s.name}
clientConnection:
  kubeconfig: ${this.spec.kubeProxyKubeconfig}
clusterCIDR: ${s.clusterCidrs.join(',')}
bindAddress: 0.0.0.0
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
oomScoreAdj: 0
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
  tcpBeLiberal: false
  udpTimeout: 0s
  udpStreamTimeout: 0s
`;
  }

  /**
   * The node's "init": joins the cgroup tree, sets up the private mounts, and
   * keeps containerd, the kubelet and kube-proxy running (restarting one that
   * exits, as systemd would). Run under `unshare --mount --propagation private`
   * and `nsenter --net`, so every mount here stays inside the node.
   */
  private initScript(): string {
    const s = this.spec;
    const log = (what: string): string => path.join(s.logDir, `${s.name}-${what}.log`);
    const kubelet = [
      path.join(s.binDir, 'kubelet'), `--config=${this.p('kubelet.yaml')}`, `--kubeconfig=${s.kubeletKubeconfig}`,
      `--root-dir=${this.p('kubelet')}`, `--hostname-override=${s.name}`, `--node-ip=${s.ipv4},${s.ipv6}`, '--v=1',
    ];
    const proxy = [path.join(s.binDir, 'kube-proxy'), `--config=${this.p('kube-proxy.yaml')}`, '--v=1'];
    const mounts = Object.keys(KUBELET_SYSCTLS).map((k) => `mount --bind ${this.p('sysctl', k.replace('/', '.'))} /proc/sys/${k}`);
    return `#!/bin/bash
# Real lab node ${s.name}: generated by test/lab/realnode.ts.
set -eu
${this.cgroup.joinScript()}
mount --make-rprivate /
${runMounts(s.dir).join('\n')}
mount --bind ${this.p('var-lib')} /var/lib
mount --bind ${this.p('var-log')} /var/log
${mounts.join('\n')}
set +e
keep() { # name command...: runs it again one second after it exits, as a service manager would
  local name=$1; shift
  while :; do "$@"; echo "[node] $name exited with $?; starting it again" >&2; sleep 1; done
}
(
  while :; do
    rm -f ${this.socket}
    containerd --config ${this.p('containerd.toml')}
    echo "[node] containerd exited with $?; starting it again" >&2; sleep 1
  done
) >> ${log('containerd')} 2>&1 &
for i in $(seq 1 400); do ctr -a ${this.socket} version >/dev/null 2>&1 && break; sleep 0.05; done
keep kubelet ${kubelet.join(' ')} >> ${log('kubelet')} 2>&1 &
(
  while :; do
    if [ -f ${this.p('kube-proxy.yaml')} ]; then ${proxy.join(' ')}; echo "[node] kube-proxy exited with $?" >&2; fi
    sleep 1
  done
) >> ${log('kube-proxy')} 2>&1 &
wait
`;
  }

  /** The argv that boots the node (the lab starts it as a tracked process). */
  bootArgv(): string[] {
    return ['unshare', '--mount', '--propagation', 'private', '--', 'nsenter', `--net=/run/netns/${this.spec.ns}`, '--', 'bash', this.p('init.sh')];
  }

  /** Creates the cgroup tree; call before bootArgv runs. */
  createCgroup(): void {
    this.cgroup.create();
  }

  async waitContainerd(timeoutMs = 30_000): Promise<void> {
    await waitFor(`containerd of ${this.spec.name} (see ${path.join(this.spec.logDir, `${this.spec.name}-containerd.log`)})`, async () => {
      const r = await run(['ctr', '-a', this.socket, 'version'], { allowFail: true, timeoutMs: 5000 });
      return r.code === 0;
    }, timeoutMs, 100);
  }

  /** Loads an image archive (docker-archive or OCI) into the node's containerd, for the kubelet. */
  async importImage(archive: string): Promise<void> {
    await this.waitContainerd();
    const r = await run(['ctr', '-a', this.socket, '-n', 'k8s.io', 'images', 'import', archive], { allowFail: true, timeoutMs: 300_000 });
    if (r.code !== 0) throw new RealNodeError(`could not import ${archive} into ${this.spec.name}'s containerd: ${r.stderr.trim()}`);
  }

  /** The images the node's containerd holds (k8s.io namespace). */
  async images(): Promise<string[]> {
    const r = await run(['ctr', '-a', this.socket, '-n', 'k8s.io', 'images', 'ls', '-q'], { allowFail: true, timeoutMs: 30_000 });
    return r.stdout.split('\n').filter(Boolean);
  }

  /** Power cut: every process of the node's cgroup tree dies at once (pods included); the disk stays. */
  powerCut(): void {
    this.cgroup.kill();
    // What lived in memory on a real machine: containerd's state and its socket.
    rmSync(this.p('containerd', 'state'), { recursive: true, force: true });
    rmSync(this.socket, { force: true });
  }

  /** Power cut, then the cgroup tree is removed (the lab's stop); the disk goes with the run directory. */
  destroy(): void {
    this.cgroup.remove();
  }
}
