// What the lab needs before it starts, each missing piece named with its fix.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';

export class LabPreflightError extends Error {
  readonly code = 'PORTICO_LAB_PREFLIGHT';
}

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');

/** Debian package for each command the lab runs. */
export const LAB_COMMANDS: Readonly<Record<string, string>> = {
  ip: 'iproute2',
  openssl: 'openssl',
  socat: 'socat',
  curl: 'curl',
  sysctl: 'procps',
};

export function hasCommand(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** The directory holding the control-plane binaries (built by test/lab/build-control-plane.sh). */
export function controlPlaneBinDir(): string | undefined {
  const fromEnv = process.env.PORTICO_CONTROL_PLANE_BIN;
  if (fromEnv) return fromEnv;
  const recorded = path.join(root, 'node_modules', '.portico-control-plane');
  if (existsSync(recorded)) {
    const dir = readFileSync(recorded, 'utf8').trim();
    if (existsSync(path.join(dir, 'kube-apiserver'))) return dir;
  }
  const r = spawnSync('bash', [path.join(here, 'build-control-plane.sh'), '--check'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** What real nodes need besides the lab's commands, each with the Debian package that has it. */
export const REAL_NODE_COMMANDS: Readonly<Record<string, string>> = {
  containerd: 'containerd',
  ctr: 'containerd',
  runc: 'runc',
  '/usr/lib/cni/bridge': 'containernetworking-plugins',
  '/usr/lib/cni/host-local': 'containernetworking-plugins',
  gcc: 'build-essential',
  unshare: 'util-linux',
  nsenter: 'util-linux',
  nft: 'nftables',
};

/** Checks what real nodes need on top of preflight(): commands, and kubelet + kube-proxy next to the control plane. */
export function realNodePreflight(binDir: string): void {
  const missing = Object.entries(REAL_NODE_COMMANDS).filter(([cmd]) => !hasCommand(cmd));
  if (missing.length) {
    const pkgs = [...new Set(missing.map(([, p]) => p))];
    throw new LabPreflightError(`real nodes need: ${missing.map(([c]) => c).join(', ')}. Install them with: apt-get install -y ${pkgs.join(' ')}`);
  }
  const bins = ['kubelet', 'kube-proxy'].filter((b) => !existsSync(path.join(binDir, b)));
  if (bins.length) {
    throw new LabPreflightError(`${bins.join(' and ')} are not built yet: run \`bash test/lab/build-control-plane.sh --node\` (npm run lab and npm test do)`);
  }
}

/** Checks root, commands and the control plane; returns the binaries' directory. */
export async function preflight(): Promise<string> {
  if (process.platform !== 'linux') throw new LabPreflightError('the lab needs Linux (network namespaces); this is ' + process.platform);
  if (!isRoot()) {
    throw new LabPreflightError('the lab creates network namespaces and must run as root: run it again with sudo (sudo -E npm run lab)');
  }
  const missing = Object.entries(LAB_COMMANDS).filter(([cmd]) => !hasCommand(cmd));
  if (missing.length) {
    const pkgs = [...new Set(missing.map(([, p]) => p))];
    throw new LabPreflightError(`missing commands: ${missing.map(([c]) => c).join(', ')}. Install them with: apt-get install -y ${pkgs.join(' ')}`);
  }
  const bin = controlPlaneBinDir();
  if (!bin) {
    throw new LabPreflightError('the Kubernetes control plane is not built yet: run `bash test/lab/build-control-plane.sh` (or `npm run lab`, which builds it)');
  }
  return bin;
}
