// The lab's run state on disk: which run holds a prefix, its processes and
// namespaces, so that `lab down`, a later run, or a crashed test can clean up.
import { mkdirSync, readFileSync, writeFileSync, rmSync, existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { isAlive, signal, type DaemonRecord, startTicks } from './sh.ts';
import { listNetns, destroyNetns } from './netns.ts';
import { clearPrefixCgroups } from './realnode-cgroup.ts';

export const LAB_ROOT = process.env.PORTICO_LAB_DIR ?? '/run/portico-lab';

/**
 * Runs `fn` holding the prefix's claim lock, so that two starts of one prefix at
 * once (two checkouts, a test run beside `npm run lab`) see each other's run
 * state instead of both clearing it. The lock is a directory (mkdir is atomic)
 * naming its holder; a lock whose holder died is taken over.
 */
export async function withClaimLock<T>(prefix: string, fn: () => T, opts: { timeoutMs?: number; root?: string } = {}): Promise<T> {
  const { timeoutMs = 30_000, root = LAB_ROOT } = opts;
  mkdirSync(root, { recursive: true });
  const lock = path.join(root, `${prefix}.claim`);
  const owner = path.join(lock, 'owner.json');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let holder: { pid: number; startTicks: number } | undefined;
    try {
      holder = JSON.parse(readFileSync(owner, 'utf8')) as { pid: number; startTicks: number };
    } catch {
      holder = undefined; // being written just now, or its writer died before writing
    }
    const age = Date.now() - (statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? 0);
    if ((holder && !isAlive(holder)) || (!holder && age > 5000)) {
      rmSync(lock, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) {
      throw new LabBusyError(`lab prefix '${prefix}' has been claimed by process ${holder?.pid ?? '?'} for over ${timeoutMs / 1000} s (${lock})`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  writeFileSync(owner, JSON.stringify({ pid: process.pid, startTicks: startTicks(process.pid) ?? 0 }));
  try {
    return fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

export interface LabState {
  prefix: string;
  runId: string;
  ownerPid: number;
  ownerStartTicks: number;
  /** A demo lab is left running on purpose after its starter exits. */
  keep: boolean;
  startedAt: string;
  dir: string;
  kubeconfig: string;
  daemons: DaemonRecord[];
}

export class LabBusyError extends Error {
  readonly code = 'PORTICO_LAB_BUSY';
}

export function prefixDir(prefix: string): string {
  return path.join(LAB_ROOT, prefix);
}

export function readState(prefix: string): LabState | undefined {
  try {
    return JSON.parse(readFileSync(path.join(prefixDir(prefix), 'state.json'), 'utf8')) as LabState;
  } catch {
    return undefined;
  }
}

export function writeState(state: LabState): void {
  mkdirSync(prefixDir(state.prefix), { recursive: true });
  const file = path.join(prefixDir(state.prefix), 'state.json');
  writeFileSync(`${file}.tmp`, JSON.stringify(state, null, 2));
  writeFileSync(file, JSON.stringify(state, null, 2));
  rmSync(`${file}.tmp`, { force: true });
}

/** Whether a recorded run is still in use: its owner lives, or it is a kept demo whose processes live. */
export function stateInUse(state: LabState): boolean {
  if (state.ownerPid === process.pid) return false;
  if (isAlive({ pid: state.ownerPid, startTicks: state.ownerStartTicks })) return true;
  return state.keep && state.daemons.some((d) => isAlive(d));
}

export function ownerRecord(): { ownerPid: number; ownerStartTicks: number } {
  return { ownerPid: process.pid, ownerStartTicks: startTicks(process.pid) ?? 0 };
}

/** Names of namespaces that carry the prefix (any run). */
export function prefixNamespaces(prefix: string): string[] {
  return listNetns().filter((n) => n.startsWith(`${prefix}-`));
}

/**
 * Removes what an earlier run with this prefix left: its recorded processes (by
 * PID, checked against their start time), every namespace carrying the prefix
 * together with the processes inside it, and the run directory. Returns what it removed.
 */
export function clearPrefix(prefix: string, opts: { keepLogs?: boolean } = {}): { processes: number; namespaces: number } {
  let processes = 0;
  const state = readState(prefix);
  for (const d of state?.daemons ?? []) {
    if (signal(d, 'SIGKILL')) processes++;
  }
  // Real nodes first: their pods and daemons die with their cgroup trees (a power cut).
  processes += clearPrefixCgroups(prefix);
  const namespaces = prefixNamespaces(prefix);
  // Pod namespaces first, the switch last: a node's veth peers go with it.
  namespaces.sort((a, b) => b.length - a.length);
  for (const ns of namespaces) destroyNetns(ns);
  const dir = prefixDir(prefix);
  if (existsSync(dir)) {
    if (opts.keepLogs) {
      for (const run of readdirSync(dir)) {
        const runDir = path.join(dir, run);
        if (!statSync(runDir).isDirectory()) { rmSync(runDir, { force: true }); continue; }
        for (const entry of readdirSync(runDir)) if (entry !== 'logs') rmSync(path.join(runDir, entry), { recursive: true, force: true });
      }
    } else {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return { processes, namespaces: namespaces.length };
}
