// Prepares the IPVS VM's kernel: Debian's generic kernel package (the machines'
// own kernel has no ip_vs), unpacked into a cache keyed by the kernel version,
// plus an initramfs that mounts the host's root over 9p and runs a script.
// Only the first run on a machine pays (about 10 s); later runs reuse the cache.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { cpioNewc, type CpioEntry } from './cpio.ts';

/** What the VM boots: kernel image, initramfs, and the unpacked package (for modprobe -d). */
export interface VmKernel {
  /** Kernel release, e.g. 6.1.0-NN-amd64 (what uname -r says in the VM). */
  version: string;
  vmlinuz: string;
  initrd: string;
  /** Root of the unpacked package: `modprobe -d MODROOT NAME` loads its modules. */
  modRoot: string;
  dir: string;
}

/** The metapackage whose dependency names the current generic kernel (the cloud kernel has no 9p). */
const META_PACKAGE = 'linux-image-amd64';

/**
 * Modules the initramfs loads before it can mount the host over virtio-9p. The
 * insmod order comes from modprobe --show-depends at build time, so a kernel
 * that splits or merges modules still gets a correct order.
 */
const BOOT_MODULES = ['virtio_pci', '9pnet_virtio', '9p'];

export function cacheRoot(): string {
  const base = process.env.PORTICO_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'portico');
  return join(base, 'vm');
}

function run(cmd: string, args: string[], opts: { cwd?: string } = {}): string {
  try {
    return execFileSync(cmd, args, { cwd: opts.cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${(e.stderr ?? '').trim() || e.message}`, { cause: err });
  }
}

/** The package name of the current generic kernel, asked of apt at run time (the ABI number changes with updates). */
export function resolveKernelPackage(): string {
  if (process.env.PORTICO_VM_KERNEL_PACKAGE) return process.env.PORTICO_VM_KERNEL_PACKAGE;
  const out = run('apt-cache', ['depends', META_PACKAGE]);
  const m = /Depends:\s*(linux-image-\d[^\s]*)/.exec(out);
  if (!m) throw new Error(`apt-cache depends ${META_PACKAGE} names no kernel package (run apt-get update?):\n${out}`);
  return m[1]!;
}

/** Kernel release from the package name: linux-image-6.1.0-NN-amd64 -> 6.1.0-NN-amd64. */
export function kernelVersion(pkg: string): string {
  const m = /^linux-image-(\d.*)$/.exec(pkg);
  if (!m) throw new Error(`not a kernel image package name: ${pkg}`);
  return m[1]!;
}

/** The init of the initramfs (busybox sh); parameters come from the kernel command line (portico.*=). */
export const INIT_SCRIPT = readFileSync(new URL('./init.sh', import.meta.url), 'utf8');

function bootModules(modRoot: string, version: string): string[] {
  const seen = new Set<string>();
  const order: string[] = [];
  for (const name of BOOT_MODULES) {
    const out = run('modprobe', ['-d', modRoot, '-S', version, '--show-depends', name]);
    for (const line of out.split('\n')) {
      const m = /^insmod\s+(\S+)/.exec(line);
      if (m && !seen.has(m[1]!)) { seen.add(m[1]!); order.push(m[1]!); }
    }
  }
  if (order.length === 0) throw new Error(`modprobe --show-depends found none of ${BOOT_MODULES.join(', ')} in ${modRoot}`);
  return order;
}

/** Builds the initramfs: static busybox, the boot modules in load order, and INIT_SCRIPT. */
export function buildInitramfs(modRoot: string, version: string, busybox = '/bin/busybox'): Buffer {
  const file = run('file', ['-L', busybox]);
  if (!/statically linked/.test(file)) throw new Error(`${busybox} is not statically linked (install busybox-static): ${file.trim()}`);
  const mods = bootModules(modRoot, version);
  const names = mods.map((p, i) => `${String(i).padStart(2, '0')}-${p.replace(/^.*\//, '')}`);
  const entries: CpioEntry[] = [
    ...['bin', 'dev', 'proc', 'sys', 'modules', 'host'].map((path) => ({ kind: 'dir' as const, path })),
    { kind: 'chardev', path: 'dev/console', major: 5, minor: 1 },
    { kind: 'file', path: 'bin/busybox', data: readFileSync(busybox), mode: 0o755 },
    { kind: 'symlink', path: 'bin/sh', target: 'busybox' },
    { kind: 'file', path: 'init', data: Buffer.from(INIT_SCRIPT), mode: 0o755 },
    { kind: 'file', path: 'modules/order', data: Buffer.from(names.join('\n') + '\n') },
    ...mods.map((p, i) => ({ kind: 'file' as const, path: `modules/${names[i]!}`, data: readFileSync(p) })),
  ];
  return cpioNewc(entries);
}

/**
 * Returns the cached kernel, downloading and unpacking it on the first run.
 * Concurrent first runs each build in their own temporary directory; the
 * first rename wins and the others use its result.
 */
export function prepareKernel(log: (msg: string) => void = () => {}): VmKernel {
  const pkg = resolveKernelPackage();
  const version = kernelVersion(pkg);
  const root = cacheRoot();
  const dir = join(root, version);
  const kernel: VmKernel = {
    version,
    dir,
    vmlinuz: join(dir, 'rootfs', 'boot', `vmlinuz-${version}`),
    initrd: join(dir, 'initrd.cpio'),
    modRoot: join(dir, 'rootfs'),
  };
  if (existsSync(join(dir, 'ready'))) {
    // The init script is part of the code: rebuild the initramfs when it changed.
    const stamp = readFileSync(join(dir, 'ready'), 'utf8');
    if (stamp !== initStamp()) {
      writeFileSync(kernel.initrd + '.tmp', buildInitramfs(kernel.modRoot, version));
      renameSync(kernel.initrd + '.tmp', kernel.initrd);
      writeFileSync(join(dir, 'ready'), initStamp());
    }
    return kernel;
  }
  log(`preparing VM kernel ${pkg} in ${dir}`);
  const tmp = join(root, `.${version}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    run('apt-get', ['download', '-q', pkg], { cwd: tmp });
    const deb = run('sh', ['-c', 'ls *.deb'], { cwd: tmp }).trim().split('\n')[0];
    if (!deb) throw new Error(`apt-get download ${pkg} left no .deb in ${tmp}`);
    run('dpkg-deb', ['-x', deb, 'rootfs'], { cwd: tmp });
    rmSync(join(tmp, deb));
    run('depmod', ['-b', join(tmp, 'rootfs'), version]);
    if (!existsSync(join(tmp, 'rootfs', 'boot', `vmlinuz-${version}`))) throw new Error(`${pkg} has no boot/vmlinuz-${version}`);
    writeFileSync(join(tmp, 'initrd.cpio'), buildInitramfs(join(tmp, 'rootfs'), version));
    writeFileSync(join(tmp, 'ready'), initStamp());
    try {
      renameSync(tmp, dir);
    } catch (err) {
      if (!existsSync(join(dir, 'ready'))) throw err;
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return kernel;
}

/** Identifies the initramfs recipe, so a changed init script or module list rebuilds it. */
function initStamp(): string {
  return `initramfs ${createHash('sha256').update(INIT_SCRIPT).update(BOOT_MODULES.join(',')).digest('hex')}\n`;
}
