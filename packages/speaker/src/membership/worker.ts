// The heartbeat thread: runs Membership with its UDP sockets and timers in a
// worker_thread, so a main thread busy with a large World (or a long GC)
// delays neither the heartbeats this speaker sends nor the reading of its
// peers'. Keys and peers arrive as messages (protocol.ts); every change of
// the live set or of a node's reason, and the counters once a second, go back.
import { readlinkSync } from 'node:fs';
import os from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { Membership } from './membership.ts';
import type { FromWorker, ToWorker, WorkerSettings } from './protocol.ts';
import { openUdpTransport } from './udp.ts';

const port = parentPort;
if (!port) throw new Error('membership/worker.ts runs as a worker_thread');
const settings = workerData as WorkerSettings;
const post = (m: FromWorker): void => port.postMessage(m);

let keys: readonly Uint8Array[] = [];

/**
 * On a busy machine a thread can wait for a CPU longer than a peer's
 * dead-after time; a lower nice value for this thread alone (not the main
 * thread) makes the scheduler run it first when a heartbeat is due.
 */
function raisePriority(nice: number | undefined): { tid: number; nice: number } | { error: string } | undefined {
  if (nice === undefined) return undefined;
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    os.setPriority(tid, nice);
    return { tid, nice: os.getPriority(tid) };
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
}
let lastState = '';

try {
  const transport = await openUdpTransport(settings.port, {
    ...(settings.host4 !== undefined ? { host4: settings.host4 } : {}),
    ...(settings.host6 !== undefined ? { host6: settings.host6 } : {}),
  });
  const m = new Membership({
    self: settings.self, transport, keys: () => keys,
    intervalMs: settings.intervalMs, deadAfterMs: settings.deadAfterMs, restartHoldMs: settings.restartHoldMs,
    ...(settings.maxDeadAfterMs !== undefined ? { maxDeadAfterMs: settings.maxDeadAfterMs } : {}),
    ...(settings.maxSkewMs !== undefined ? { maxSkewMs: settings.maxSkewMs } : {}),
    onChange: () => report(),
    onDrop: (reason, detail, from) => post({ type: 'drop', reason, detail, from }),
    onSilent: (v) => post({ type: 'silent', ...v }),
  });
  const report = (): void => {
    // The last judgement, made after the queued heartbeats were read (not a fresh one before they are).
    const snapshot = { live: [...m.live()].sort(), reasons: [...m.verdict()], settled: m.settled() };
    const text = JSON.stringify(snapshot);
    if (text === lastState) return;
    lastState = text;
    post({ type: 'state', ...snapshot });
  };
  const counters = setInterval(() => post({ type: 'counters', ...m.counters, dropped: { ...m.counters.dropped } }), 1000);
  let settleTimer: NodeJS.Timeout | undefined;
  port.on('message', (msg: ToWorker) => {
    switch (msg.type) {
      case 'keys':
        keys = msg.keys.map((k) => Buffer.from(k));
        break;
      case 'peers':
        m.setPeers(new Map(msg.nodes));
        report();
        break;
      case 'start':
        m.start();
        report();
        // settled() turns true with time alone: say so when it does.
        settleTimer = setTimeout(report, settings.deadAfterMs + 1);
        break;
      case 'stop':
        clearInterval(counters);
        clearTimeout(settleTimer);
        void m.stop(msg.mode).finally(() => {
          post({ type: 'counters', ...m.counters, dropped: { ...m.counters.dropped } });
          post({ type: 'stopped' });
          port.close();
        });
        break;
    }
  });
  post({ type: 'ready', port: transport.port, priority: raisePriority(settings.nice) });
} catch (err) {
  post({ type: 'failed', message: err instanceof Error ? err.message : String(err), code: (err as { code?: string }).code });
  port.close();
}
