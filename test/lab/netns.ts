// Network namespaces and links for the lab. Everything is created inside
// namespaces the lab owns; the root namespace never holds a lab interface.
import { readdirSync, existsSync } from 'node:fs';
import { run, runSync } from './sh.ts';

export function listNetns(): string[] {
  try {
    return readdirSync('/run/netns');
  } catch {
    return [];
  }
}

export function netnsExists(name: string): boolean {
  return existsSync(`/run/netns/${name}`);
}

/** PIDs of the processes whose network namespace is `name`. */
export function netnsPids(name: string): number[] {
  const r = runSync(['ip', 'netns', 'pids', name], { allowFail: true });
  return r.stdout.split(/\s+/).filter(Boolean).map(Number).filter((n) => Number.isInteger(n) && n > 1 && n !== process.pid);
}

/** Kills every process in the namespace (by PID) and deletes it. */
export function destroyNetns(name: string): void {
  for (let round = 0; round < 5; round++) {
    const pids = netnsPids(name);
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    runSync(['sleep', '0.05'], { allowFail: true });
  }
  runSync(['ip', 'netns', 'delete', name], { allowFail: true });
}

/** Creates a namespace with loopback up, IPv6 DAD off and forwarding as asked. */
export async function createNetns(name: string, opts: { forward?: boolean } = {}): Promise<void> {
  await run(['ip', 'netns', 'add', name]);
  const sysctls = [
    'net.ipv6.conf.all.accept_dad=0',
    'net.ipv6.conf.default.accept_dad=0',
    'net.ipv6.conf.default.dad_transmits=0',
  ];
  if (opts.forward) sysctls.push('net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1');
  await run(['sysctl', '-q', '-w', ...sysctls], { netns: name });
  await run(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
}

/** `ip -n NS ...`, several commands at once through ip's batch mode. */
export async function ipBatch(netns: string, lines: readonly string[]): Promise<void> {
  if (lines.length === 0) return;
  await run(['ip', '-n', netns, '-batch', '-'], { input: lines.join('\n') + '\n' });
}
