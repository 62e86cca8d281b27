// bfd-cpu: the CPU one speaker spends on N BFD sessions (default 100) at a
// given interval (default 50 ms x 3). The speaker side is this process: one
// BfdManager with N sessions to 127.0.1.1..N; the N peers run in a child
// process (another BfdManager), so only the speaker's work is measured. UDP
// on loopback, high ports (not 3784/4784). Once every session is Up, CPU time
// (user + system) is sampled over several windows and reported as a percent
// of one core, with the packets per second actually sent and received.
// Usage: npm run bench -- bfd-cpu [sessions=100] [intervalMs=50] [windows=10] [windowMs=3000]
import { fork } from 'node:child_process';
import os from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { bfd, bgp } from '@portico/speaker';
import { report, summary } from './stats.ts';

const [n, interval, windows, windowMs] = [100, 50, 10, 3000].map((d, i) => Number(process.argv[i + 2] ?? d)) as [number, number, number, number];
const peerAddr = (i: number): string => `127.0.1.${i + 1}`;
const cfg = { desiredMinTxUs: interval * 1000, requiredMinRxUs: interval * 1000, detectMult: 3, passive: false };

if (process.env.PORTICO_BFD_BENCH_PEERS) {
  // The peers: one manager listening on every address, each session from its own 127.0.1.x.
  const port = Number(process.env.PORTICO_BFD_BENCH_PEERS);
  const m = new bfd.BfdManager({ network: new bfd.UdpEndpoint({ singleHopPort: port, multihopPort: port + 1, bind: { 4: '0.0.0.0' } }), clock: bgp.systemClock });
  m.set(Array.from({ length: n }, (_, i) => ({ key: `p${i}`, path: { peer: '127.0.0.1', local: peerAddr(i), multihop: false }, config: cfg })));
  process.on('message', () => { m.close(); process.exit(0); });
  setInterval(() => undefined, 1 << 30);
} else {
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  // The speaker's socket is bound to 127.0.0.1, so the kernel hands it the peers' packets and the peers' wildcard socket the speaker's.
  const speaker = new bfd.BfdManager({ network: new bfd.UdpEndpoint({ singleHopPort: port, multihopPort: port + 1, bind: { 4: '127.0.0.1' } }), clock: bgp.systemClock });
  const child = fork(fileURLToPath(import.meta.url), process.argv.slice(2), { env: { ...process.env, PORTICO_BFD_BENCH_PEERS: String(port) }, stdio: 'inherit' });
  try {
    speaker.set(Array.from({ length: n }, (_, i) => ({ key: `p${i}`, path: { peer: peerAddr(i), local: '127.0.0.1', multihop: false }, config: cfg })));
    const deadline = Date.now() + 60_000;
    const allFast = (): boolean => speaker.sessions().every((s) => s.snapshot.state === 'Up' && s.snapshot.transmitIntervalMs === interval);
    while (!allFast()) {
      if (Date.now() > deadline) throw new Error(`only ${speaker.sessions().filter((s) => s.snapshot.state === 'Up').length} of ${n} sessions Up after 60 s`);
      await new Promise((r) => setTimeout(r, 50));
    }
    // The speaker's event-loop delay: a stall longer than the detection time (3 x interval) is a flap that no code path can avoid.
    const lag = monitorEventLoopDelay({ resolution: 5 });
    lag.enable();
    const flaps0 = speaker.sessions().reduce((a, s) => a + s.snapshot.flaps, 0);
    const cpu: number[] = [];
    let sent = 0;
    let received = 0;
    const count = () => speaker.sessions().reduce((a, s) => [a[0]! + s.snapshot.packetsSent, a[1]! + s.snapshot.packetsReceived], [0, 0]);
    for (let w = 0; w < windows; w++) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const [s0, r0] = count();
      await new Promise((r) => setTimeout(r, windowMs));
      const c1 = process.cpuUsage(c0);
      const dt = performance.now() - t0;
      const [s1, r1] = count();
      cpu.push(((c1.user + c1.system) / 1000 / dt) * 100);
      sent += s1! - s0!;
      received += r1! - r0!;
    }
    lag.disable();
    const flaps = speaker.sessions().reduce((a, s) => a + s.snapshot.flaps, 0) - flaps0;
    const st = summary(cpu);
    const secs = (windows * windowMs) / 1000;
    report('bfd-cpu', {
      sessions: n, interval_ms: interval, cpu_pct_p50: +st.p50.toFixed(2), cpu_pct_p99: +st.p99.toFixed(2),
      tx_pps: Math.round(sent / secs), rx_pps: Math.round(received / secs), flaps,
      loop_delay_p99_ms: +(lag.percentile(99) / 1e6).toFixed(1), loop_delay_max_ms: +(lag.max / 1e6).toFixed(1), runs: windows, window_ms: windowMs, load: +os.loadavg()[0]!.toFixed(2),
    });
  } finally {
    speaker.close();
    child.send('stop');
    await new Promise((r) => child.once('exit', r));
  }
}
