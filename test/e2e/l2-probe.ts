// A client that measures how long a VIP stops answering: it requests each URL
// on a fixed period, every request on a new connection with a short timeout,
// and prints one JSON line with the longest gap between good answers per URL.
// Run inside the client's namespace by the layer-2 test and bench/l2-failover.
//   node l2-probe.ts --duration-ms N --interval-ms N --timeout-ms N [--ready-file F] [--stop-file F] URL...
// With --ready-file it first waits (up to 10 s) for every URL to answer once,
// writes the file, and only then starts the measured period: the starter
// knows when to break things. With --stop-file the period ends as soon as that
// file exists (--duration-ms is then the longest it may last).
import { existsSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';

export interface ProbeResult {
  url: string;
  ok: number;
  failed: number;
  /** Longest time between two good answers (or from the start to the first), ms. */
  maxGapMs: number;
  /** When the longest gap began and ended, ms since the probe started. */
  gapFromMs: number;
  gapToMs: number;
  /** Which pods answered, in order of first answer. */
  pods: string[];
  lastError: string | undefined;
  /** The wall clock (ms since the epoch) at the start, and the failed requests' times since then (the first 50). */
  startedAtMs: number;
  failedAtMs: number[];
}

/** One GET on its own connection: whether it answered 200, and which pod said so. */
export function get(url: string, timeoutMs: number): Promise<{ ok: boolean; pod?: string; error?: string }> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs, headers: { connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => {
        let pod: string | undefined;
        try { pod = (JSON.parse(body) as { pod?: string }).pod; } catch { /* not the pod server */ }
        resolve(res.statusCode === 200 ? { ok: true, ...(pod ? { pod } : {}) } : { ok: false, error: `HTTP ${res.statusCode}` });
      });
      res.on('error', (err) => resolve({ ok: false, error: err.message }));
    });
    // Timers run before I/O in Node's loop: after this process waited for a
    // CPU, an answer already in the socket would lose to its own timeout.
    // Decide only once the queued I/O has been read.
    req.on('timeout', () => setImmediate(() => req.destroy(new Error('timeout'))));
    req.on('error', (err) => resolve({ ok: false, error: err.message }));
  });
}

export async function probe(url: string, durationMs: number, intervalMs: number, timeoutMs: number, stop: () => boolean = () => false): Promise<ProbeResult> {
  const t0 = performance.now();
  const r: ProbeResult = { url, ok: 0, failed: 0, maxGapMs: 0, gapFromMs: 0, gapToMs: 0, pods: [], lastError: undefined, startedAtMs: Date.now(), failedAtMs: [] };
  let lastOk = 0;
  while (performance.now() - t0 < durationMs && !stop()) {
    const start = performance.now();
    const res = await get(url, timeoutMs);
    const at = performance.now() - t0;
    if (res.ok) {
      r.ok++;
      if (at - lastOk > r.maxGapMs) Object.assign(r, { maxGapMs: Math.round(at - lastOk), gapFromMs: Math.round(lastOk), gapToMs: Math.round(at) });
      lastOk = at;
      if (res.pod && !r.pods.includes(res.pod)) r.pods.push(res.pod);
    } else {
      r.failed++;
      r.lastError = res.error;
      if (r.failedAtMs.length < 50) r.failedAtMs.push(Math.round(at));
    }
    const wait = intervalMs - (performance.now() - start);
    if (wait > 0) await new Promise((done) => setTimeout(done, wait));
  }
  const end = performance.now() - t0;
  if (end - lastOk > r.maxGapMs) Object.assign(r, { maxGapMs: Math.round(end - lastOk), gapFromMs: Math.round(lastOk), gapToMs: Math.round(end) });
  return r;
}

/**
 * The probes' command line: `--duration-ms --interval-ms --timeout-ms
 * [--ready-file F] URL...`; with --ready-file it first waits (up to 10 s) for
 * every URL to answer once and writes the file. Prints `run`'s results as one
 * JSON line.
 */
export async function probeCli(run: (url: string, durationMs: number, intervalMs: number, timeoutMs: number, stop: () => boolean) => Promise<unknown>): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { 'duration-ms': { type: 'string', default: '5000' }, 'interval-ms': { type: 'string', default: '10' }, 'timeout-ms': { type: 'string', default: '150' }, 'ready-file': { type: 'string' }, 'stop-file': { type: 'string' } },
  });
  if (values['ready-file']) {
    const deadline = performance.now() + 10_000;
    for (const u of positionals) {
      while (!(await get(u, 500)).ok && performance.now() < deadline) await new Promise((done) => setTimeout(done, 20));
    }
    writeFileSync(values['ready-file'], 'ready\n');
  }
  const stopFile = values['stop-file'];
  const stop = (): boolean => stopFile !== undefined && existsSync(stopFile);
  const results = await Promise.all(positionals.map((u) => run(u, Number(values['duration-ms']), Number(values['interval-ms']), Number(values['timeout-ms']), stop)));
  process.stdout.write(`${JSON.stringify(results)}\n`);
}

if (import.meta.main) await probeCli(probe);
