// Shared by install-to-traffic and create-to-traffic: the machine's load, and
// a client prober (bench/_first-answer.ts) started in a lab namespace that
// reports when a URL first answers from a pod.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const PROBER = path.join(path.dirname(fileURLToPath(import.meta.url)), '_first-answer.ts');

/** The 1-minute load average (/proc/loadavg). */
export function load1(): number {
  return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
}

export interface FirstAnswer {
  /** Date.now() of the first good answer. */
  at: number;
  pod: string;
  tries: number;
}

/**
 * Starts the prober in network namespace `ns` against `url`; resolves once it
 * runs (so the caller starts its clock after the prober's own start-up) with
 * the promise of its first answer.
 */
export async function startProber(ns: string, url: string, maxMs: number): Promise<{ answer: Promise<FirstAnswer> }> {
  const p = spawn('ip', ['netns', 'exec', ns, process.execPath, PROBER, url, '--max-ms', String(maxMs)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  let onReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => { onReady = resolve; });
  p.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    if (out.startsWith('ready\n')) onReady();
  });
  const answer = new Promise<FirstAnswer>((resolve, reject) => {
    p.on('close', (code) => {
      onReady();
      const line = out.split('\n').find((l) => l.startsWith('{'));
      const r = line ? JSON.parse(line) as { at: number | null; pod?: string; tries: number; lastError?: string } : undefined;
      if (r?.at != null && r.pod) resolve({ at: r.at, pod: r.pod, tries: r.tries });
      else reject(new Error(`no answer from ${url} within ${maxMs} ms (exit ${code}; ${r?.lastError ?? err.trim().slice(-300)})`));
    });
  });
  answer.catch(() => undefined); // the caller awaits it; this keeps an early failure from being unhandled
  await ready;
  return { answer };
}
