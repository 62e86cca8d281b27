// cli-status: `portico status` as a user runs it (bin/portico, the lab's
// kubeconfig in KUBECONFIG) against a 3-node process lab holding Portico's
// CRDs, a pool, an L2Advertisement and some LoadBalancer Services (no
// controller: they stay pending, which status reads and reports the same).
// Wall time and max RSS per run (from /usr/bin/time), p50/p99 over the warm
// runs; the first run has an empty compile cache and is reported alone.
// `kubectl get svc -A` runs beside it, in the same lab, as the reference, and
// `portico help` (start-up alone, no request). PORTICO_BENCH_BASELINE=FILE also
// times `node FILE status` (another build of the CLI's portico.ts, e.g. an older
// commit's) the same way. Load average at the start and end of the timed runs.
// Target: p50 <= 0.5 s. Usage: npm run bench -- cli-status [runs=15] [services=50]
//   (root; prefix $PORTICO_LAB_PREFIX or pclistat)
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Lab, PORTICO_NAMESPACE as NS, repoRoot } from '@portico/lab';
import { apply, l2Advertisement, pool, service } from '../test/e2e/objects.ts';
import { report, summary } from './stats.ts';

const runs = Number(process.argv[2] ?? 15);
const services = Number(process.argv[3] ?? 50);
const APP = 'clistat';
const PORTICO = path.join(repoRoot, 'bin', 'portico');
const load = (): string => os.loadavg().map((l) => l.toFixed(2)).join(' ');

interface Run { wallMs: number; maxRssKB: number; code: number | null }

/** One run of argv under /usr/bin/time: wall from here (spawn to exit), max RSS from time's report. */
function timed(argv: string[], env: NodeJS.ProcessEnv, tmp: string): Run {
  const out = path.join(tmp, 'time.txt');
  const t0 = performance.now();
  const r = spawnSync('/usr/bin/time', ['-o', out, '-f', '%M', ...argv], { env, encoding: 'utf8', maxBuffer: 64 << 20 });
  const wallMs = performance.now() - t0;
  if (r.error) throw r.error;
  // `portico status` exits 1 when it found problems (the pending Services): that is a result, not a failure.
  if (r.status !== 0 && r.status !== 1) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
  const lines = readFileSync(out, 'utf8').trim().split('\n');
  return { wallMs, maxRssKB: Number(lines[lines.length - 1]), code: r.status };
}

let loadStart = load();

function figures(name: string, rs: readonly Run[], extra: Record<string, number | string> = {}): void {
  const wall = summary(rs.map((r) => r.wallMs));
  const rss = summary(rs.map((r) => r.maxRssKB));
  report('cli-status', {
    command: name, runs: rs.length, wall_p50_ms: Math.round(wall.p50), wall_p99_ms: Math.round(wall.p99), wall_min_ms: Math.round(wall.min),
    max_rss_p50_mb: Math.round(rss.p50 / 1024), max_rss_max_mb: Math.round(rss.max / 1024), services, nodes: 3, loadavg_start: loadStart, loadavg_end: load(), ...extra,
  });
}

const tmp = mkdtempSync(path.join(os.tmpdir(), 'portico-bench-cli-'));
const lab = await Lab.start({ prefix: process.env.PORTICO_LAB_PREFIX ?? 'pclistat', nodes: 3, clients: [] });
try {
  const crds = path.join(repoRoot, 'manifests', 'crds');
  for (const f of readdirSync(crds).sort()) await lab.kubectl('apply', '-f', path.join(crds, f));
  await lab.kubectl('wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all');
  await lab.kubectlResult(['create', 'namespace', NS]);
  await lab.kubectlResult(['create', 'namespace', APP]);
  await apply(lab, pool('clistat', { addresses: ['203.0.113.0/25'] }), l2Advertisement('clistat', { ipAddressPools: ['clistat'] }),
    ...Array.from({ length: services }, (_, i) => service(`s${i}`, APP, { type: 'LoadBalancer' })));

  const { kubectl } = lab.describe();
  // The compile cache bin/portico keeps, here in a directory of the bench's own so the first run is cold.
  const env = { ...process.env, KUBECONFIG: lab.kubeconfig, NO_COLOR: '1', NODE_COMPILE_CACHE: path.join(tmp, 'compile-cache') };
  const status = [PORTICO, 'status'];
  const kubectlGet = [kubectl!, 'get', 'svc', '-A'];
  const help = [PORTICO, 'help'];
  const baselineFile = process.env.PORTICO_BENCH_BASELINE;
  const baseline = baselineFile ? [process.execPath, '--disable-warning=ExperimentalWarning', baselineFile, 'status'] : undefined;
  loadStart = load();
  const first = timed(status, env, tmp);
  const check = spawnSync(PORTICO, ['status', '-o', 'json'], { env, encoding: 'utf8' });
  const model = JSON.parse(check.stdout) as { services: unknown[] };
  if (model.services.length !== services) throw new Error(`portico status saw ${model.services.length} LoadBalancer Services, not ${services}: ${check.stderr}`);
  timed(kubectlGet, env, tmp); // the page cache warm for kubectl too
  if (baseline) timed(baseline, env, tmp);
  const series: { name: string; argv: string[]; runs: Run[] }[] = [
    { name: 'portico status', argv: status, runs: [] },
    { name: 'kubectl get svc -A', argv: kubectlGet, runs: [] },
    { name: 'portico help (start-up only)', argv: help, runs: [] },
    ...(baseline ? [{ name: `node ${path.relative(repoRoot, baselineFile!)} status (baseline)`, argv: baseline, runs: [] }] : []),
  ];
  // Interleaved, so all see the same load.
  for (let i = 0; i < runs; i++) for (const x of series) x.runs.push(timed(x.argv, env, tmp));
  figures('portico status (first run, empty compile cache)', [first]);
  for (const x of series) figures(x.name, x.runs);
} finally {
  await lab.stop();
  rmSync(tmp, { recursive: true, force: true });
}
