// A client that sees a failover the way a busy user of the Service does: it
// opens a new connection to each URL every interval, whether or not the
// earlier ones have answered (arrivals at a fixed rate, as many clients make
// them), and records when each request started and whether it succeeded.
// figures() turns that into what the user felt after a given instant (the
// kill): failed requests, when the last one failed, the longest gap between
// good answers. Run in the client's namespace by test/e2e/service-failover and
// bench/service-failover:
//   node service-failover-probe.ts --duration-ms N --interval-ms N --timeout-ms N [--ready-file F] URL...
// With --ready-file it first waits (up to 10 s) for every URL to answer once
// and writes the file: the starter knows when to break things.
import { get, probeCli } from './l2-probe.ts';

export interface Samples {
  url: string;
  /** Start of each request, wall clock (ms since the epoch: the starter's clock too). */
  at: number[];
  ok: boolean[];
  /** The pod that answered ('' for a failure). */
  pod: string[];
  /** One error message per kind, with its count. */
  errors: Record<string, number>;
  /** Starts the client missed because it waited for a CPU (a loaded machine), not started late. */
  skipped: number;
}

export interface FailoverFigures {
  url: string;
  /** Requests started from `from` on, or in flight at `from` (started less than inFlightMs before it). */
  requests: number;
  failed: number;
  /** From `from` to the start of the last failed request (0: none failed), ms. */
  lastFailureMs: number;
  /** Longest time between the starts of two good requests that spans `from`, or lies after it, ms. */
  maxGapMs: number;
  /** Requests that failed and were done before `from` (the service was not healthy to begin with). */
  failedBefore: number;
  /** Pods that answered after the last failure (after `from` when none failed): where traffic goes once recovered. */
  pods: string[];
  /** Starts the client missed (starved of CPU), over the whole run. */
  skipped: number;
}

/**
 * What a client felt after `from` (the kill). A request started less than
 * inFlightMs (its timeout) before `from` may still have been in flight when
 * the node died: it counts with the kill, not as a failure before it. Pure.
 */
export function figures(s: Samples, from: number, inFlightMs = 0): FailoverFigures {
  let failed = 0;
  let failedBefore = 0;
  let requests = 0;
  let lastFailure = from;
  let maxGap = 0;
  let lastOk: number | undefined;
  const pods = new Set<string>();
  for (let i = 0; i < s.at.length; i++) {
    const at = s.at[i]!;
    const ok = s.ok[i]!;
    if (at < from - inFlightMs || (at < from && ok)) {
      if (!ok) failedBefore++;
      else lastOk = at;
      continue;
    }
    requests++;
    if (!ok) { failed++; lastFailure = Math.max(lastFailure, at); pods.clear(); continue; }
    if (lastOk !== undefined) maxGap = Math.max(maxGap, at - lastOk);
    lastOk = at;
    pods.add(s.pod[i]!);
  }
  // Still failing at the end: the gap runs to the last request.
  const end = s.at.at(-1);
  if (end !== undefined && lastOk !== undefined && !s.ok.at(-1)) maxGap = Math.max(maxGap, end - lastOk);
  return { url: s.url, requests, failed, lastFailureMs: Math.round(lastFailure - from), maxGapMs: Math.round(maxGap), failedBefore, pods: [...pods].sort(), skipped: s.skipped };
}

/** Starts a request every intervalMs for durationMs (each with its own connection and timeout) and waits for the last. */
export async function sample(url: string, durationMs: number, intervalMs: number, timeoutMs: number): Promise<Samples> {
  const s: Samples = { url, at: [], ok: [], pod: [], errors: {}, skipped: 0 };
  const pending: Promise<void>[] = [];
  const t0 = performance.now();
  let n = 0;
  while (performance.now() - t0 < durationMs) {
    const i = s.at.length;
    s.at.push(Date.now());
    s.ok.push(false);
    s.pod.push('');
    pending.push(get(url, timeoutMs).then((r) => {
      s.ok[i] = r.ok;
      s.pod[i] = r.pod ?? '';
      if (r.error) s.errors[r.error] = (s.errors[r.error] ?? 0) + 1;
    }));
    n++;
    // The next start on the fixed schedule: a late timer does not shift the later ones,
    // but a client starved for more than a few intervals skips the starts it missed
    // (counted) rather than opening them all at once.
    let wait = t0 + n * intervalMs - performance.now();
    if (wait < -5 * intervalMs) {
      const missed = Math.floor(-wait / intervalMs);
      s.skipped += missed;
      n += missed;
      wait = t0 + n * intervalMs - performance.now();
    }
    await new Promise((done) => (wait > 0 ? setTimeout(done, wait) : setImmediate(done)));
  }
  await Promise.all(pending);
  return s;
}

if (import.meta.main) await probeCli(sample);
