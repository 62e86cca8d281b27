// false-failover: membership and ownership changes when nothing fails but the
// machine is busy. Layer 2 in the process lab (three speakers, a dual-stack
// Service), then for N minutes: every core saturated by CPU hogs (busy loops
// in their own sessions, bounded by timeout(1)) and Service churn (rounds of
// 200 LoadBalancer Services created, then deleted, 1,000 of each at least).
// Counted: each speaker's membership changes, the changes of the Service's
// owner (polled every second) and the gratuitous announcements; heartbeats
// sent late (by this speaker, and as seen from its peers' timestamps), and
// the heartbeat thread's own wait for a CPU (/proc/<tid>/schedstat, its tid
// from the speaker's log) against the speaker's CPU use and the machine's load.
// Target: 0 changes.
// Usage: npm run bench -- false-failover [minutes=10] [--hogs=N (default 2 per core)] [--churn=N (Services created and deleted, default 1000)]
//   (root; lab prefix $PORTICO_LAB_PREFIX or pff)
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Lab, PORTICO_NAMESPACE as NS } from '@portico/lab';
import { metric, settled, startL2 } from '../test/e2e/l2-env.ts';
import { strict as assert } from 'node:assert';
import { apply, pool, service } from '../test/e2e/objects.ts';
import { report, summary } from './stats.ts';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { hogs: { type: 'string' }, churn: { type: 'string' } } });
const minutes = Number(positionals[0] ?? 10);
const hogs = Number(values.hogs ?? os.cpus().length * 2);
const churn = Number(values.churn ?? 1000);
const CHURN_NS = 'ff-churn';
const ROUND = 200;

const lab = await Lab.start({ prefix: process.env.PORTICO_LAB_PREFIX ?? 'pff', nodes: 3, clients: ['client'] });
const running: ChildProcess[] = [];
try {
  const env = await startL2(lab);
  try {
    await settled(lab, env);
    await apply(lab, pool('ff-pool', { addresses: ['203.0.113.0/24'] }));
    await lab.kubectlResult(['create', 'namespace', CHURN_NS]);
    const nodes = lab.nodes.map((n) => n.name);
    const counters = async (): Promise<Record<string, number[]>> => ({
      membership: await Promise.all(nodes.map((n) => metric(lab, n, 'portico_membership_changes_total'))),
      gratuitous: await Promise.all(nodes.map((n) => metric(lab, n, 'portico_l2_gratuitous_sent_total'))),
      lateSent: await Promise.all(nodes.map((n) => metric(lab, n, 'portico_membership_heartbeats_late_total{direction="sent"}'))),
      peerLate: await Promise.all(nodes.map((n) => metric(lab, n, 'portico_membership_heartbeats_late_total{direction="peer-sent"}'))),
    });
    // The heartbeat thread of each speaker: its tid from the log line that raised its priority.
    const hbTid = (node: string): number | undefined => {
      const file = path.join(lab.logDir, `portico-speaker-${node}.log`);
      if (!existsSync(file)) return undefined;
      const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l.includes('"heartbeat thread priority raised"'));
      const last = lines.at(-1);
      return last ? (JSON.parse(last) as { tid?: number }).tid : undefined;
    };
    const tids = nodes.map(hbTid);
    const schedWaitMs = (tid: number | undefined): number => {
      if (tid === undefined) return NaN;
      try { return Number(readFileSync(`/proc/${tid}/schedstat`, 'utf8').split(' ')[1]) / 1e6; } catch { return NaN; }
    };
    const processCpuS = (tid: number | undefined): number => {
      if (tid === undefined) return NaN;
      try {
        const pid = Number(/^Tgid:\s+(\d+)/m.exec(readFileSync(`/proc/${tid}/status`, 'utf8'))?.[1]);
        const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
        return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in USER_HZ (100) ticks
      } catch { return NaN; }
    };
    // The machine's CPU time by kind (/proc/stat, USER_HZ ticks): steal is time this VM's vCPUs were not run at all.
    const cpuTicks = (): { steal: number; total: number } => {
      const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
      return { steal: f[7] ?? 0, total: f.slice(0, 8).reduce((a, x) => a + x, 0) };
    };
    // Each 'peer judged silent' the speakers logged since `from` (ISO time), with what the rule saw.
    const silentVerdicts = (from: string): { sinceHeardMs: number; selfStalledMs: number; allowedMs: number; worstLateMs: number }[] =>
      nodes.flatMap((node) => {
        const file = path.join(lab.logDir, `portico-speaker-${node}.log`);
        if (!existsSync(file)) return [];
        return readFileSync(file, 'utf8').split('\n').filter((l) => l.includes('"peer judged silent"'))
          .map((l) => JSON.parse(l) as { time: string; sinceHeardMs: number; selfStalledMs: number; allowedMs: number; worstLateMs: number })
          .filter((v) => v.time >= from);
      });
    const startedIso = new Date().toISOString();
    const ticks0 = cpuTicks();
    const before = await counters();
    const cpu0 = tids.map(processCpuS);
    const wait0 = tids.map(schedWaitMs);

    const endAt = Date.now() + minutes * 60_000;
    const seconds = Math.ceil(minutes * 60) + 5;
    for (let i = 0; i < hogs; i++) {
      const p = spawn('timeout', [String(seconds), 'sh', '-c', 'while :; do :; done'], { detached: true, stdio: 'ignore' });
      running.push(p);
    }
    const ownerOf = (): Promise<string> => env.owner().catch(() => '');
    let owner = await ownerOf();
    let ownerChanges = 0;
    const waits: number[] = [];
    const loads: number[] = [];
    let lastWait = tids.map(schedWaitMs);
    let lastAt = performance.now();
    const poll = (async () => {
      while (Date.now() < endAt) {
        await new Promise((r) => setTimeout(r, 1000));
        const o = await ownerOf();
        if (o && o !== owner) { ownerChanges++; process.stderr.write(`owner changed: ${owner} -> ${o}\n`); owner = o; }
        const w = tids.map(schedWaitMs);
        const at = performance.now();
        // The heartbeat thread's wait for a CPU per second of the window (a poll takes a second or more), worst speaker.
        waits.push((Math.max(...w.map((x, i) => x - lastWait[i]!).filter((x) => !Number.isNaN(x)), 0) * 1000) / (at - lastAt));
        lastWait = w;
        lastAt = at;
        loads.push(os.loadavg()[0]!);
      }
    })();
    let created = 0;
    let deleted = 0;
    while (Date.now() < endAt || created < churn) {
      const names = Array.from({ length: ROUND }, (_, i) => `churn-${created + i}`);
      // With every core taken by the hogs, 200 Services can take the API server minutes (kubectl's default 120 s timeout killed it).
      const items = names.map((n) => service(n, CHURN_NS, { selector: { app: 'none' } }, { 'portico.dev/address-pool': 'ff-pool' }));
      const r = await lab.kubectlResult(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items }), { timeoutMs: 600_000 });
      assert.equal(r.code, 0, `kubectl apply of ${ROUND} Services: ${r.stderr}`);
      created += ROUND;
      await lab.kubectlResult(['delete', 'services', '-n', CHURN_NS, '--all', '--wait=false'], undefined, { timeoutMs: 300_000 });
      deleted += ROUND;
      process.stderr.write(`churn: ${created} created, ${deleted} deleted, load ${os.loadavg()[0]!.toFixed(1)}\n`);
    }
    await poll;
    for (const p of running) if (p.pid) { try { process.kill(-p.pid, 'SIGKILL'); } catch { /* ended */ } }
    const after = await counters();
    const delta = (k: string): number => after[k]!.reduce((a, v, i) => a + v - before[k]![i]!, 0);
    const w = summary(waits);
    const ticks1 = cpuTicks();
    const verdicts = silentVerdicts(startedIso);
    for (const v of verdicts) process.stderr.write(`peer judged silent: ${JSON.stringify(v)}\n`);
    const worst = (k: 'sinceHeardMs' | 'selfStalledMs' | 'worstLateMs'): number => verdicts.reduce((m, v) => Math.max(m, v[k]), 0);
    report('false-failover', {
      minutes, hogs, churn_target: churn, services_created: created, services_deleted: deleted,
      membership_changes: delta('membership'), owner_changes: ownerChanges, gratuitous_sent: delta('gratuitous'),
      heartbeats_late_sent: delta('lateSent'), heartbeats_late_seen_by_peers: delta('peerLate'),
      hb_wait_ms_per_s_p50: Math.round(w.p50), hb_wait_ms_per_s_p99: Math.round(w.p99), hb_wait_ms_per_s_max: Math.round(w.max),
      hb_wait_total_ms: Math.round(tids.map(schedWaitMs).reduce((a, x, i) => a + x - wait0[i]!, 0)),
      speaker_cpu_s: Math.round(tids.map(processCpuS).reduce((a, x, i) => a + x - cpu0[i]!, 0) * 10) / 10,
      silent_verdicts: verdicts.length, silent_since_heard_ms_max: worst('sinceHeardMs'), silent_self_stalled_ms_max: worst('selfStalledMs'), silent_worst_late_ms_max: worst('worstLateMs'),
      steal_pct: Math.round(((ticks1.steal - ticks0.steal) * 1000) / Math.max(1, ticks1.total - ticks0.total)) / 10,
      runs: 1, load: Math.round(summary(loads).p50 * 10) / 10, load_max: Math.round(summary(loads).max * 10) / 10,
    });
  } finally {
    await lab.kubectlResult(['delete', 'namespace', CHURN_NS, '--wait=false']);
    await lab.kubectlResult(['delete', 'ipaddresspools', 'ff-pool', '-n', NS, '--ignore-not-found']);
    await env.stop();
  }
} finally {
  for (const p of running) if (p.pid) { try { process.kill(-p.pid, 'SIGKILL'); } catch { /* ended */ } }
  await lab.stop();
}
