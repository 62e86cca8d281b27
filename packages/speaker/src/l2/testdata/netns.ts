// Two network namespaces joined by a veth pair, for capturing kernel frames and
// for the responder's root test. Everything made here is named `pl2cap-*` and
// is removed by dispose(), including every process started through spawn().
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

export const PREFIX = 'pl2cap-';

export function run(cmd: string, args: readonly string[], opts: { allowFail?: boolean } = {}): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
  } catch (err) {
    if (opts.allowFail) return '';
    const e = err as { stderr?: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.stderr ?? String(err)}`, { cause: err });
  }
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** Why a namespace test cannot run here, or null when it can. */
export function whyNoNetns(): string | null {
  if (process.platform !== 'linux') return `needs Linux, this is ${process.platform}`;
  if (!isRoot()) return 'needs root (creates network namespaces and raw sockets)';
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
  } catch {
    return 'needs iproute2 (`ip`)';
  }
  return null;
}

export interface Side {
  ns: string;
  /** The veth end inside this namespace. */
  ifname: string;
  mac: string;
}

/** Namespace `a` and `b`, each with `eth0`, the two ends of one veth. */
export class VethPair {
  readonly a: Side;
  readonly b: Side;
  private readonly children = new Set<ChildProcess>();
  private disposed = false;
  private readonly onExit = (): void => this.dispose();

  constructor(tag: string) {
    const ns = (s: string): string => `${PREFIX}${tag}-${s}`;
    this.a = { ns: ns('a'), ifname: 'eth0', mac: '' };
    this.b = { ns: ns('b'), ifname: 'eth0', mac: '' };
    process.once('exit', this.onExit);
    try {
      for (const side of [this.a, this.b]) {
        if (run('ip', ['netns', 'list']).split('\n').some((l) => l.split(' ')[0] === side.ns)) run('ip', ['netns', 'del', side.ns]);
        run('ip', ['netns', 'add', side.ns]);
        run('ip', ['-n', side.ns, 'link', 'set', 'lo', 'up']);
      }
      // Both ends are created straight inside the namespaces: the root namespace never holds them.
      run('ip', ['link', 'add', 'eth0', 'netns', this.a.ns, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.b.ns]);
      for (const side of [this.a, this.b]) {
        side.mac = /link\/ether ([0-9a-f:]{17})/.exec(run('ip', ['-n', side.ns, 'link', 'show', 'eth0']))![1]!;
      }
    } catch (err) {
      this.dispose();
      throw err;
    }
  }

  /** Runs a command inside a namespace and returns its stdout. */
  exec(side: Side, cmd: string, args: readonly string[], opts: { allowFail?: boolean } = {}): string {
    return run('ip', ['netns', 'exec', side.ns, cmd, ...args], opts);
  }

  ip(side: Side, ...args: string[]): string {
    return run('ip', ['-n', side.ns, ...args]);
  }

  sysctl(side: Side, key: string, value: string | number): void {
    this.exec(side, 'sysctl', ['-qw', `${key}=${value}`]);
  }

  /** Starts a long-running process in a namespace; dispose() kills it by PID. */
  spawn(side: Side, cmd: string, args: readonly string[], opts: SpawnOptions = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', side.ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    process.removeListener('exit', this.onExit);
    for (const child of this.children) {
      if (child.pid !== undefined && child.exitCode === null) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    this.children.clear();
    for (const side of [this.a, this.b]) run('ip', ['netns', 'del', side.ns], { allowFail: true });
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
