// lab-start: time for a warm lab start (control plane ready + 3 nodes Ready),
// over several runs, with the control-plane binaries already built.
// Target: under 20 s. Usage: npm run bench -- lab-start [runs=5]
import { Lab } from '@portico/lab';
import { report, summary } from './stats.ts';

const runs = Number(process.argv[2] ?? 5);
const total: number[] = [];
const controlPlane: number[] = [];
for (let i = 0; i < runs; i++) {
  const t0 = performance.now();
  let cpReady = 0;
  const lab = await Lab.start({
    prefix: 'pbench', nodes: 3, clients: ['client'],
    log: (m) => { if (m.startsWith('control plane ready')) cpReady = performance.now() - t0; },
  });
  const took = performance.now() - t0;
  await lab.stop();
  total.push(took);
  controlPlane.push(cpReady);
  process.stderr.write(`run ${i + 1}/${runs}: ${Math.round(took)} ms (control plane ${Math.round(cpReady)} ms)\n`);
}
const t = summary(total);
const c = summary(controlPlane);
report('lab-start', { p50_ms: Math.round(t.p50), p99_ms: Math.round(t.p99), max_ms: Math.round(t.max), control_plane_p50_ms: Math.round(c.p50), runs });
