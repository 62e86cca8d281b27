// arp-rate: ARP requests Portico's responder answers per second, and the reply
// latency seen by the asker. Two namespaces joined by a veth pair: the
// Responder (the speaker's, on the native AF_PACKET socket) owns one VIP in
// one, a load generator in the other keeps WINDOW requests unanswered and
// times each reply. Prints one line per window: 64 (saturating: the rate,
// latency mostly queueing), 8 (a busy segment) and 1 (a lone request).
// Target: >= 20k/s, p99 <= 1 ms.
// Usage: npm run bench -- arp-rate [requests=200000]   (root)
import { execFileSync, spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { repoRoot } from '@portico/lab';
import { report } from './stats.ts';

const requests = Number(process.argv[2] ?? 200_000);
const SCRIPT = path.join(repoRoot, 'packages', 'speaker', 'src', 'l2', 'testdata', 'arp-bench.ts');
const A = 'pl2arp-a';
const B = 'pl2arp-b';
const VIP = '198.51.100.250';
const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

function cleanup(): void {
  for (const ns of [A, B]) { try { ip('netns', 'del', ns); } catch { /* not there */ } }
}

cleanup();
const responder = (() => {
  ip('netns', 'add', A);
  ip('netns', 'add', B);
  ip('link', 'add', 'eth0', 'netns', A, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', B);
  for (const ns of [A, B]) {
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    ip('-n', ns, 'link', 'set', 'eth0', 'up');
  }
  return spawn('ip', ['netns', 'exec', A, process.execPath, SCRIPT, 'responder', 'eth0', VIP], { stdio: ['pipe', 'pipe', 'inherit'] });
})();
try {
  const lines = createInterface({ input: responder.stdout });
  await new Promise<void>((resolve, reject) => {
    lines.once('line', () => resolve());
    responder.once('exit', (code) => reject(new Error(`the responder exited (${code})`)));
  });
  for (const [window, count] of [[64, requests], [8, requests], [1, Math.min(requests, 20_000)]] as const) {
    const raw = execFileSync('ip', ['netns', 'exec', B, process.execPath, SCRIPT, 'load', 'eth0', VIP, String(count), String(window)], { encoding: 'utf8', timeout: 300_000 });
    const r = JSON.parse(raw.trim().split('\n').pop()!) as { sent: number; answered: number; lost: number; seconds: number; per_s: number; p50_us: number; p99_us: number; max_us: number };
    process.stderr.write(`window ${window}: ${JSON.stringify(r)}\n`);
    report('arp-rate', { per_s: r.per_s, p50_ms: r.p50_us / 1000, p99_ms: r.p99_us / 1000, max_ms: r.max_us / 1000, window, requests: r.sent, unanswered: r.lost });
  }
} finally {
  responder.stdin.end();
  await new Promise((r) => { responder.once('exit', r); setTimeout(r, 2000); });
  if (responder.exitCode === null) responder.kill('SIGKILL');
  cleanup();
}
