// Running commands for the lab: one-shot commands (optionally inside a network
// namespace) with their output, and long-lived daemons tracked by PID.
import { spawn, spawnSync } from 'node:child_process';
import { openSync, closeSync, readFileSync } from 'node:fs';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class CommandError extends Error {
  readonly code = 'PORTICO_LAB_COMMAND_FAILED';
  readonly result: RunResult;
  readonly argv: readonly string[];
  constructor(argv: readonly string[], result: RunResult) {
    super(`command failed (exit ${result.code}): ${argv.join(' ')}\n${result.stderr.trim() || result.stdout.trim()}`);
    this.argv = argv;
    this.result = result;
  }
}

export interface RunOptions {
  /** Full name of the network namespace to run in. */
  netns?: string;
  input?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** Resolve with a non-zero result instead of throwing. */
  allowFail?: boolean;
}

/**
 * `ip netns exec` also gives the command a private mount namespace (for /sys);
 * `nsenter --net` keeps the root mount namespace, which a process that itself
 * creates namespaces (the lab kubelet) needs so `ip netns` sees them everywhere.
 */
function wrap(argv: readonly string[], netns: string | undefined, keepMounts = false): string[] {
  if (!netns) return [...argv];
  return keepMounts ? ['nsenter', `--net=/run/netns/${netns}`, '--', ...argv] : ['ip', 'netns', 'exec', netns, ...argv];
}

/** Runs a command to completion; throws CommandError on a non-zero exit unless allowFail. */
export function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const full = wrap(argv, opts.netns);
  return new Promise((resolve, reject) => {
    const child = spawn(full[0]!, full.slice(1), { env: opts.env ?? process.env, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (d: Buffer) => out.push(d));
    child.stderr?.on('data', (d: Buffer) => err.push(d));
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : undefined;
    child.on('error', (e) => { if (timer) clearTimeout(timer); reject(e); });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      const result = { code: code ?? (signal ? 128 : 1), stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
      if (result.code !== 0 && !opts.allowFail) reject(new CommandError(full, result));
      else resolve(result);
    });
    if (child.stdin) {
      // A command may exit without reading its input; that is its exit code's business.
      child.stdin.on('error', () => undefined);
      child.stdin.end(opts.input);
    }
  });
}

/** Synchronous variant for clean-up paths that must finish before exit. */
export function runSync(argv: readonly string[], opts: RunOptions = {}): RunResult {
  const full = wrap(argv, opts.netns);
  const r = spawnSync(full[0]!, full.slice(1), { encoding: 'utf8', input: opts.input ?? '', timeout: opts.timeoutMs ?? 30_000 });
  const result = { code: r.status ?? 1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  if (result.code !== 0 && !opts.allowFail) throw new CommandError(full, result);
  return result;
}

/** A process the lab started and must stop; the start time guards against PID reuse. */
export interface DaemonRecord {
  name: string;
  pid: number;
  startTicks: number;
  netns?: string;
  log: string;
}

export interface DaemonOptions {
  name: string;
  argv: readonly string[];
  netns?: string;
  log: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Enter only the network namespace, staying in the root mount namespace. */
  keepMounts?: boolean;
}

/** Starts a detached process (surviving its starter) with output appended to a log file. */
export function startDaemon(opts: DaemonOptions): DaemonRecord {
  const full = wrap(opts.argv, opts.netns, opts.keepMounts);
  const fd = openSync(opts.log, 'a');
  try {
    const child = spawn(full[0]!, full.slice(1), {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: opts.env ?? process.env,
      cwd: opts.cwd,
    });
    if (child.pid === undefined) throw new Error(`could not start ${opts.name}: ${full.join(' ')}`);
    child.unref();
    const rec: DaemonRecord = { name: opts.name, pid: child.pid, startTicks: startTicks(child.pid) ?? 0, log: opts.log };
    if (opts.netns) rec.netns = opts.netns;
    return rec;
  } finally {
    closeSync(fd);
  }
}

/** Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot. */
export function startTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[19]);
  } catch {
    return undefined;
  }
}

/** True while the recorded process (same PID and start time) is alive and not a zombie. */
export function isAlive(rec: Pick<DaemonRecord, 'pid' | 'startTicks'>): boolean {
  const t = startTicks(rec.pid);
  if (t === undefined || (rec.startTicks && t !== rec.startTicks)) return false;
  try {
    const stat = readFileSync(`/proc/${rec.pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Sends a signal to the recorded process only if it is still the same process. */
export function signal(rec: Pick<DaemonRecord, 'pid' | 'startTicks'>, sig: NodeJS.Signals): boolean {
  if (!isAlive(rec)) return false;
  try {
    process.kill(rec.pid, sig);
    return true;
  } catch {
    return false;
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Stops a process: SIGTERM, then SIGKILL after graceMs; resolves when it is gone.
 * With `group`, what it forked and left behind goes too (a socat forward's
 * per-connection children): daemons start detached, so their process group
 * is the daemon's PID, and it is killed once the daemon itself is gone.
 */
export async function stopDaemon(rec: DaemonRecord, graceMs = 3000, opts: { group?: boolean } = {}): Promise<void> {
  const killGroup = (): void => { if (opts.group) { try { process.kill(-rec.pid, 'SIGKILL'); } catch { /* no member left */ } } };
  if (!signal(rec, 'SIGTERM')) return;
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!isAlive(rec)) return killGroup();
    await sleep(25);
  }
  signal(rec, 'SIGKILL');
  for (let i = 0; i < 100 && isAlive(rec); i++) await sleep(10);
  killGroup();
}

/** Polls `check` until it returns a value (not undefined/false) or the time is up. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs: number, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: Error | undefined;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err instanceof Error ? err : new Error(String(err));
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    }
    await sleep(intervalMs);
  }
}
