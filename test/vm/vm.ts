// The IPVS VM: Debian's kernel (which has ip_vs) under qemu, with the host's
// root filesystem mounted read-only, so the host's node, ipvsadm and curl run
// inside. Boot it once and run many scripts in it: an agent in the VM takes
// jobs from a directory shared over 9p and writes their results back there.
//
//   const vm = await Vm.start({ modules: ['ip_vs'] });
//   const r = await vm.run('ipvsadm -Ln');   // {exitCode, stdout, stderr, files}
//   await vm.stop();
//
// Shared directory layout (the same path inside and outside the VM):
//   agent.sh          the agent, started by the VM's init
//   ready             written by the agent once it takes jobs
//   heartbeat         a counter the host bumps; the VM powers off if it stalls
//   jobs/ID/          script.sh, timeout, in/ (input files) -> stdout, stderr, files/, rc
//   queue/ID          the trigger, created after jobs/ID/ is complete
//   stop              asks the agent to exit (the init then powers off)
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { prepareKernel, type VmKernel } from './kernel.ts';

/** The repository's root, which scripts in the VM use (Node 24 from node_modules, the sources). */
const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface VmOptions {
  /** Kernel modules loaded before the first job (e.g. ip_vs, ip_vs_rr, dummy). */
  modules?: string[];
  memoryMb?: number;
  cpus?: number;
  /** How long boot may take before start() gives up; TCG on a busy machine is slow. */
  bootTimeoutMs?: number;
  log?: (msg: string) => void;
}

export interface RunOptions {
  /** Limit for the script inside the VM (default 60 s); it is killed after that and exitCode is 124. */
  timeoutMs?: number;
  /** Extra environment variables for the script. */
  env?: Record<string, string>;
  /** Input files, placed under $PORTICO_IN before the script starts. */
  files?: Record<string, string | Uint8Array>;
}

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** Every file the script wrote under $PORTICO_OUT (its working directory), by relative path. */
  files: Record<string, Buffer>;
  durationMs: number;
}

/** Why the VM cannot run here, or null when it can. Tests skip with this reason. */
export function vmUnavailableReason(): string | null {
  if (process.platform !== 'linux') return `the IPVS VM needs Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'the IPVS VM needs root (qemu must read the whole host filesystem to share it over 9p)';
  if (process.env.PORTICO_SKIP_VM) return 'PORTICO_SKIP_VM is set';
  const tools: Array<[string, string]> = [['qemu-system-x86_64', 'qemu-system-x86'], ['busybox', 'busybox-static'], ['modprobe', 'kmod'],
    ['depmod', 'kmod'], ['apt-get', 'apt'], ['dpkg-deb', 'dpkg'], ['ipvsadm', 'ipvsadm'], ['file', 'file']];
  const missing = tools.filter(([cmd]) => spawnSync('sh', ['-c', `command -v ${cmd} || test -x /usr/sbin/${cmd} || test -x /sbin/${cmd}`], { stdio: 'ignore' }).status !== 0);
  if (missing.length) return `the IPVS VM needs ${missing.map(([c, p]) => `${c} (Debian package ${p})`).join(', ')}`;
  return null;
}

/** The agent the VM's init starts (the host's /bin/sh, in the chroot). */
const AGENT = readFileSync(new URL('./agent.sh', import.meta.url), 'utf8');
const live = new Set<Vm>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A test run that ends without stop() must not leave qemu spinning on the machine.
  process.on('exit', () => {
    for (const vm of live) { vm.kill(); rmSync(vm.dir, { recursive: true, force: true }); }
  });
}

let shared: Promise<Vm> | null = null;

/**
 * The VM of this process, booted on first use and stopped when the process
 * exits: the project boots the IPVS VM once per test run. Callers must not stop it.
 */
export function sharedVm(opts: VmOptions = {}): Promise<Vm> {
  shared ??= Vm.start({ modules: ['ip_vs', 'ip_vs_rr', 'ip_vs_wrr', 'ip_vs_sh', 'dummy', 'veth', 'bridge'], ...opts });
  return shared;
}

/** Boots a VM, runs one script, powers off. Prefer one Vm for several scripts. */
export async function runInVm(script: string, opts: RunOptions & VmOptions = {}): Promise<RunResult> {
  const [r] = await runScriptsInVm([script], opts);
  return r!;
}

/** Boots one VM, runs the scripts in order, powers off. */
export async function runScriptsInVm(scripts: readonly string[], opts: RunOptions & VmOptions = {}): Promise<RunResult[]> {
  const vm = await Vm.start(opts);
  try {
    const results: RunResult[] = [];
    for (const s of scripts) results.push(await vm.run(s, opts));
    return results;
  } finally {
    await vm.stop();
  }
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function readTree(root: string): Record<string, Buffer> {
  const files: Record<string, Buffer> = {};
  if (!existsSync(root)) return files;
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else files[relative(root, p)] = readFileSync(p);
    }
  };
  walk(root);
  return files;
}

export class Vm implements AsyncDisposable {
  readonly kernel: VmKernel;
  /** Milliseconds from spawning qemu to the agent taking jobs. */
  bootMs = 0;
  readonly #dir: string;
  readonly #proc: ChildProcess;
  #exited: { code: number | null; signal: string | null } | null = null;
  #nextId = 1;
  #queue: Promise<unknown> = Promise.resolve();
  #heartbeat: NodeJS.Timeout;
  #beat = 0;

  private constructor(kernel: VmKernel, dir: string, proc: ChildProcess) {
    this.kernel = kernel;
    this.#dir = dir;
    this.#proc = proc;
    proc.on('exit', (code, signal) => { this.#exited = { code, signal }; live.delete(this); clearInterval(this.#heartbeat); });
    this.#heartbeat = setInterval(() => { writeFileSync(join(dir, 'heartbeat'), `${++this.#beat}\n`); }, 1000);
    this.#heartbeat.unref();
  }

  /** Boots the VM and resolves once its agent takes jobs. */
  static async start(opts: VmOptions = {}): Promise<Vm> {
    const reason = vmUnavailableReason();
    if (reason) throw new Error(reason);
    const log = opts.log ?? (() => {});
    const kernel = prepareKernel(log);
    const dir = mkdtempSync(join(tmpdir(), 'portico-vm-'));
    for (const p of [dir, kernel.modRoot]) {
      if (/[\s"'\\]/.test(p)) throw new Error(`the VM passes paths on the kernel command line; this one has whitespace or quotes: ${p}`);
    }
    mkdirSync(join(dir, 'jobs'));
    mkdirSync(join(dir, 'queue'));
    writeFileSync(join(dir, 'agent.sh'), AGENT, { mode: 0o755 });
    writeFileSync(join(dir, 'heartbeat'), '0\n');
    const modules = opts.modules ?? [];
    if (modules.some((m) => !/^[\w-]+$/.test(m))) throw new Error(`bad module name in ${modules.join(',')}`);
    const append = [
      'console=ttyS0', 'quiet', 'panic=-1',
      `portico.out=${dir}`, `portico.script=${join(dir, 'agent.sh')}`, `portico.modroot=${kernel.modRoot}`,
      // The VM's /tmp is its own; the repository and the kernel's modules stay
      // visible wherever they live (a CI clone or a HOME under /tmp).
      `portico.keep=${[REPO_ROOT, kernel.modRoot].join(',')}`,
      ...(modules.length ? [`portico.modules=${modules.join(',')}`] : []),
    ].join(' ');
    const args = [
      '-nodefaults', '-no-user-config', '-display', 'none', '-monitor', 'none', '-no-reboot', '-nic', 'none',
      // KVM hangs on these machines; TCG (software emulation) works.
      '-accel', 'tcg,thread=multi', '-cpu', 'max', '-smp', String(opts.cpus ?? 2), '-m', String(opts.memoryMb ?? 2048),
      '-serial', `file:${join(dir, 'console.log')}`,
      '-kernel', kernel.vmlinuz, '-initrd', kernel.initrd, '-append', append,
      '-virtfs', 'local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap',
      '-virtfs', `local,path=${dir},mount_tag=out,security_model=none`,
    ];
    const t0 = performance.now();
    log(`booting VM: kernel ${kernel.version}`);
    const proc = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
    // A VM must not keep the test process alive: the exit hook kills it if stop() was never called.
    proc.unref();
    (proc.stderr as unknown as { unref?: () => void }).unref?.();
    const vm = new Vm(kernel, dir, proc);
    live.add(vm);
    installExitHook();
    const deadline = t0 + (opts.bootTimeoutMs ?? 180_000);
    try {
      await new Promise<void>((resolve, reject) => {
        proc.once('error', reject);
        proc.once('spawn', () => resolve());
      });
      while (!existsSync(join(dir, 'ready'))) {
        if (vm.#exited) throw new Error(`qemu exited (${JSON.stringify(vm.#exited)}) before the VM was ready. qemu: ${stderr.trim()}\nconsole:\n${vm.consoleTail()}`);
        if (performance.now() > deadline) throw new Error(`the VM was not ready after ${opts.bootTimeoutMs ?? 180_000} ms\nconsole:\n${vm.consoleTail()}`);
        await sleep(25);
      }
    } catch (err) {
      vm.kill();
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    vm.bootMs = Math.round(performance.now() - t0);
    log(`VM ready in ${vm.bootMs} ms`);
    return vm;
  }

  /** The shared directory (the same path inside the VM). */
  get dir(): string {
    return this.#dir;
  }

  get running(): boolean {
    return this.#exited === null;
  }

  /** The last lines of the VM's serial console: init messages, kernel oopses. */
  consoleTail(lines = 40): string {
    try {
      return readFileSync(join(this.#dir, 'console.log'), 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no console log)';
    }
  }

  /**
   * Runs a shell script (/bin/sh of the host, inside the VM's chroot) and
   * resolves with its exit code, output and files. Jobs run one at a time in
   * the order they were submitted. A non-zero exit code is a result, not an error;
   * an error means the VM itself failed.
   */
  run(script: string, opts: RunOptions = {}): Promise<RunResult> {
    const p = this.#queue.then(() => this.#run(script, opts));
    this.#queue = p.catch(() => {});
    return p;
  }

  async #run(script: string, opts: RunOptions): Promise<RunResult> {
    if (this.#exited) throw new Error(`the VM is not running (${JSON.stringify(this.#exited)})\nconsole:\n${this.consoleTail()}`);
    const id = String(this.#nextId++).padStart(5, '0');
    const job = join(this.#dir, 'jobs', id);
    mkdirSync(join(job, 'in'), { recursive: true });
    for (const [name, data] of Object.entries(opts.files ?? {})) {
      const p = join(job, 'in', name);
      if (relative(join(job, 'in'), p).startsWith('..')) throw new Error(`input file name escapes the job: ${name}`);
      mkdirSync(dirname(p), { recursive: true });
      writeFileSync(p, data);
    }
    const env = Object.entries(opts.env ?? {}).map(([k, v]) => {
      if (!/^[A-Za-z_]\w*$/.test(k)) throw new Error(`bad environment variable name: ${k}`);
      return `export ${k}=${shellQuote(v)}\n`;
    });
    writeFileSync(join(job, 'script.sh'), env.join('') + script);
    const timeoutMs = opts.timeoutMs ?? 60_000;
    writeFileSync(join(job, 'timeout'), `${Math.ceil(timeoutMs / 1000)}\n`);
    const t0 = performance.now();
    writeFileSync(join(this.#dir, 'queue', id), '');
    // The agent kills the script at its timeout (+5 s for SIGKILL); allow for a slow 9p round trip on top.
    const deadline = t0 + timeoutMs + 30_000;
    const rcFile = join(job, 'rc');
    while (!existsSync(rcFile)) {
      if (this.#exited) throw new Error(`the VM stopped while running job ${id} (${JSON.stringify(this.#exited)})\nconsole:\n${this.consoleTail()}`);
      if (performance.now() > deadline) {
        this.kill();
        throw new Error(`job ${id} did not finish within ${timeoutMs} ms and the agent did not stop it; VM killed\nconsole:\n${this.consoleTail()}`);
      }
      await sleep(20);
    }
    const durationMs = Math.round(performance.now() - t0);
    const exitCode = Number(readFileSync(rcFile, 'utf8').trim());
    return {
      exitCode,
      stdout: readFileSync(join(job, 'stdout'), 'utf8'),
      stderr: readFileSync(join(job, 'stderr'), 'utf8'),
      files: readTree(join(job, 'files')),
      durationMs,
    };
  }

  /** Asks the agent to exit (the VM powers off), waits for qemu, and removes the shared directory. */
  async stop(): Promise<void> {
    if (!this.#exited) {
      writeFileSync(join(this.#dir, 'stop'), '');
      const deadline = performance.now() + 20_000;
      while (!this.#exited && performance.now() < deadline) await sleep(25);
      if (!this.#exited) {
        this.kill();
        while (!this.#exited) await sleep(10);
      }
    }
    clearInterval(this.#heartbeat);
    rmSync(this.#dir, { recursive: true, force: true });
  }

  /** Kills qemu at once (synchronous, for exit hooks and failures). */
  kill(): void {
    if (!this.#exited && this.#proc.pid !== undefined) {
      try { process.kill(this.#proc.pid, 'SIGKILL'); } catch { /* already gone */ }
    }
    clearInterval(this.#heartbeat);
    live.delete(this);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
