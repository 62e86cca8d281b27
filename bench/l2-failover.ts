// l2-failover: how long a client's traffic stops when the layer-2 owner of a
// VIP dies. Per trial: settle, then kill the owner node abruptly (SIGKILL of
// everything on it and its link down) while the client sends an HTTP request
// every 10 ms (new connection each, 150 ms timeout); the figure is the longest
// gap between good answers, for the IPv4 and the IPv6 VIP. The node comes back
// between trials. Target: p99 <= 1000 ms.
// Usage: npm run bench -- l2-failover [trials=20]   (root; lab prefix $PORTICO_LAB_PREFIX or pl2fo)
import { Lab } from '@portico/lab';
import { settled, startL2 } from '../test/e2e/l2-env.ts';
import { report, summary } from './stats.ts';

const trials = Number(process.argv[2] ?? 20);
const lab = await Lab.start({ prefix: process.env.PORTICO_LAB_PREFIX ?? 'pl2fo', nodes: 3, clients: ['client'] });
const v4: number[] = [];
const v6: number[] = [];
try {
  const env = await startL2(lab);
  try {
    for (let i = 0; i < trials; i++) {
      const owner = await settled(lab, env);
      await env.forwardTo(owner);
      const [r4, r6] = await env.probe(3000, () => lab.killNode(owner));
      await lab.restartNode(owner);
      v4.push(r4!.maxGapMs);
      v6.push(r6!.maxGapMs);
      process.stderr.write(`trial ${i + 1}/${trials}: killed ${owner}, IPv4 gap ${r4!.maxGapMs} ms, IPv6 gap ${r6!.maxGapMs} ms\n`);
    }
  } finally {
    await env.stop();
  }
} finally {
  await lab.stop();
}
const a = summary(v4);
const b = summary(v6);
report('l2-failover', { p50_ms: a.p50, p99_ms: a.p99, max_ms: a.max, v6_p50_ms: b.p50, v6_p99_ms: b.p99, v6_max_ms: b.max, runs: v4.length });
