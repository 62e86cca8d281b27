// The cgroup tree of one real lab node: containerd, kubelet, kube-proxy and
// every pod sandbox and container they start live below one directory in each
// cgroup hierarchy, so a power cut can kill all of them and nothing else.
//
// The tree sits below the lab's own cgroup in the memory hierarchy (the node's
// memory counts against whoever started the lab), and at the same path in every
// other hierarchy, because the kubelet's cgroupRoot is one path for all of them.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const CGROUP_FS = '/sys/fs/cgroup';
/** cpu.shares of a node's tree: about what its ~30 processes would weigh outside a cgroup (1024 each). */
const NODE_CPU_SHARES = 32_768;

export class CgroupError extends Error {
  readonly code = 'PORTICO_LAB_CGROUP';
}

/** The mounted hierarchies (v1 controllers, the named systemd one, cgroup2), as their mount points. */
export function hierarchies(mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): string[] {
  const out: string[] = [];
  for (const line of mountinfo.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!pre || !post) continue;
    const fstype = post.split(' ')[0];
    const mnt = pre.split(' ')[4];
    if ((fstype === 'cgroup' || fstype === 'cgroup2') && mnt?.startsWith(`${CGROUP_FS}/`)) out.push(mnt);
  }
  return out;
}

/** Where this process sits in the memory hierarchy (or the v2 tree), e.g. "/" or "/user.slice/x". */
export function ownCgroup(selfCgroup = readFileSync('/proc/self/cgroup', 'utf8')): string {
  const lines = selfCgroup.split('\n').map((l) => l.split(':'));
  const mem = lines.find((f) => f[1]?.split(',').includes('memory')) ?? lines.find((f) => f[0] === '0' && f[1] === '');
  return mem?.[2] || '/';
}

/** The base directory of every lab node's tree: `<own cgroup>/portico-lab`. */
export function labCgroupBase(): string {
  return path.posix.join(ownCgroup(), 'portico-lab');
}

/** One node's tree: `root` is the kubelet's cgroupRoot; the node's daemons join `root/system`. */
export class NodeCgroup {
  readonly root: string;
  readonly system: string;
  /** Directories this object created above `root` (in hierarchies where they were missing), deepest first. */
  private readonly createdAbove = new Map<string, string[]>();

  constructor(name: string, base = labCgroupBase()) {
    this.root = path.posix.join(base, name);
    this.system = path.posix.join(this.root, 'system');
  }

  /** Creates root and root/system in every hierarchy (cpuset levels get their parent's cpus and mems). */
  create(): void {
    for (const h of hierarchies()) {
      const made: string[] = [];
      const parts = this.system.split('/').filter(Boolean);
      let dir = h;
      for (const part of parts) {
        const parent = dir;
        dir = path.join(dir, part);
        if (existsSync(dir)) continue;
        mkdirSync(dir);
        made.unshift(dir);
        if (existsSync(path.join(dir, 'cpuset.cpus'))) {
          for (const f of ['cpuset.cpus', 'cpuset.mems']) writeFileSync(path.join(dir, f), readFileSync(path.join(parent, f)));
        }
        // A new cpu cgroup is one scheduling entity weighing as much as one process: on a busy
        // machine a whole node (kubelet, containerd, its pods) would get one process's share.
        // Above the node's daemons it weighs as much as the processes of a node.
        if (existsSync(path.join(dir, 'cpu.shares')) && dir !== path.join(h, this.system)) writeFileSync(path.join(dir, 'cpu.shares'), String(NODE_CPU_SHARES));
      }
      // Only what lies above root and was missing is ours to remove later.
      this.createdAbove.set(h, made.filter((d) => !d.startsWith(path.join(h, this.root) + '/') && d !== path.join(h, this.root)));
    }
  }

  /** Shell lines that move the running shell ($$) into root/system in every hierarchy. */
  joinScript(): string {
    return hierarchies().map((h) => `echo $$ > ${path.join(h, this.system, 'cgroup.procs')}`).join('\n');
  }

  /** Every process in the tree, in any hierarchy. */
  pids(): number[] {
    const all = new Set<number>();
    for (const h of hierarchies()) for (const dir of subtree(path.join(h, this.root))) {
      for (const p of readProcs(dir)) all.add(p);
    }
    return [...all];
  }

  /**
   * A power cut: freezes the tree (no process can fork or exit cleanly), sends
   * SIGKILL to every process in it, thaws it, and repeats until it is empty.
   */
  kill(timeoutMs = 10_000): void {
    const freezer = hierarchies().find((h) => existsSync(path.join(h, 'freezer.state')) || path.basename(h) === 'freezer');
    const state = freezer ? path.join(freezer, this.root, 'freezer.state') : undefined;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const pids = this.pids();
      if (pids.length === 0) return;
      if (Date.now() > deadline) throw new CgroupError(`processes of cgroup ${this.root} survived SIGKILL: ${pids.join(' ')}`);
      if (state && existsSync(state)) writeFileSync(state, 'FROZEN');
      for (const pid of this.pids()) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      }
      if (state && existsSync(state)) writeFileSync(state, 'THAWED');
      pause(20);
    }
  }

  /** Kills what is left and removes the tree (and the directories create() made above it). */
  remove(): void {
    this.kill();
    for (const h of hierarchies()) {
      for (const dir of subtree(path.join(h, this.root)).reverse()) rmdirQuiet(dir);
      for (const dir of this.createdAbove.get(h) ?? []) rmdirQuiet(dir);
    }
  }
}

/** A directory and every cgroup below it, parents before children. */
function subtree(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out = [dir];
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) out.push(...subtree(path.join(dir, e.name)));
  return out;
}

function readProcs(dir: string): number[] {
  try {
    return readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** A short synchronous pause (clean-up paths here are synchronous: they also run from `lab down`). */
function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function rmdirQuiet(dir: string): void {
  try { rmdirSync(dir); } catch { /* busy (someone else's) or gone */ }
}

/**
 * Removes the trees of every node of a lab prefix left by a crashed run
 * (`<base>/<prefix>-*`), killing their processes first. Returns how many trees.
 */
export function clearPrefixCgroups(prefix: string, base = labCgroupBase()): number {
  const names = new Set<string>();
  for (const h of hierarchies()) {
    const dir = path.join(h, base);
    if (!existsSync(dir)) continue;
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory() && e.name.startsWith(`${prefix}-`)) names.add(e.name);
  }
  for (const name of names) new NodeCgroup(name, base).remove();
  for (const h of hierarchies()) if (names.size) rmdirQuiet(path.join(h, base));
  return names.size;
}
