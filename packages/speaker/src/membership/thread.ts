// The main thread's side of the heartbeat thread (worker.ts): starts it, hands
// it the key and the peers, and keeps the last membership it reported, so the
// announcer reads the live set synchronously and is called back on a change.
// Heartbeats go on while this thread is busy; only acting on a change waits
// for it.
import { Worker } from 'node:worker_threads';
import type { DropReason, MembershipCounters, NodeLiveness, SilentVerdict } from './membership.ts';
import type { FromWorker, ToWorker, WorkerSettings } from './protocol.ts';

export interface MembershipThreadOptions extends WorkerSettings {
  /** Called when the live set, a node's reason or settled() changed. */
  onChange?: () => void;
  onDrop?: (reason: DropReason, detail: string, from: string) => void;
  /** A peer that was alive was judged silent (what the rule saw). */
  onSilent?: (v: SilentVerdict) => void;
  /** The thread failed after it started (it is not restarted: the speaker exits). */
  onFailure?: (err: Error) => void;
}

export class MembershipThread {
  readonly port: number;
  /** What raising the thread's priority gave (WorkerSettings.nice). */
  readonly priority: { tid: number; nice: number } | { error: string } | undefined;
  readonly counters: MembershipCounters = { sent: 0, sendErrors: 0, accepted: 0, lost: 0, lateSent: 0, lateReceived: 0, starvedPeer: 0, selfStalls: 0, dropped: { malformed: 0, 'bad-mac': 0, replay: 0, stale: 0, 'unknown-node': 0, self: 0, 'no-key': 0 } };
  private readonly worker: Worker;
  private readonly o: MembershipThreadOptions;
  private liveSet: ReadonlySet<string>;
  private reasonMap: ReadonlyMap<string, NodeLiveness>;
  private isSettled = false;
  private stopping: Promise<void> | undefined;

  private constructor(worker: Worker, ready: { port: number; priority: MembershipThread['priority'] }, o: MembershipThreadOptions) {
    this.worker = worker;
    this.port = ready.port;
    this.priority = ready.priority;
    this.o = o;
    this.liveSet = new Set([o.self]);
    this.reasonMap = new Map([[o.self, 'self']]);
    worker.on('message', (m: FromWorker) => this.receive(m));
    worker.on('error', (err) => { if (!this.stopping) o.onFailure?.(err); });
    worker.on('exit', (code) => { if (!this.stopping) o.onFailure?.(new Error(`heartbeat thread exited (${code})`)); });
  }

  /** Starts the thread and waits until its sockets are bound. */
  static async start(o: MembershipThreadOptions): Promise<MembershipThread> {
    const { onChange: _c, onDrop: _d, onSilent: _s, onFailure: _f, ...settings } = o;
    const worker = new Worker(new URL('./worker.ts', import.meta.url), { workerData: settings });
    const ready = await new Promise<{ port: number; priority: MembershipThread['priority'] }>((resolve, reject) => {
      const onMessage = (m: FromWorker): void => {
        if (m.type === 'ready') { done(); resolve({ port: m.port, priority: m.priority }); }
        if (m.type === 'failed') { done(); reject(Object.assign(new Error(`heartbeat sockets: ${m.message}`), { code: m.code })); }
      };
      const onError = (err: Error): void => { done(); reject(err); };
      const onExit = (code: number): void => { done(); reject(new Error(`heartbeat thread exited (${code}) before it was ready`)); };
      const done = (): void => { worker.off('message', onMessage); worker.off('error', onError); worker.off('exit', onExit); };
      worker.on('message', onMessage);
      worker.once('error', onError);
      worker.once('exit', onExit);
    }).catch(async (err: unknown) => { await worker.terminate(); throw err; });
    return new MembershipThread(worker, ready, o);
  }

  private post(m: ToWorker): void {
    if (!this.stopping) this.worker.postMessage(m);
  }

  setKeys(keys: readonly Uint8Array[]): void {
    this.post({ type: 'keys', keys: keys.map((k) => Uint8Array.from(k)) });
  }

  setPeers(nodes: ReadonlyMap<string, readonly string[]>): void {
    this.post({ type: 'peers', nodes: [...nodes].map(([n, a]) => [n, [...a]]) });
  }

  start(): void {
    this.post({ type: 'start' });
  }

  live(): ReadonlySet<string> {
    return this.liveSet;
  }

  reasons(): ReadonlyMap<string, NodeLiveness> {
    return this.reasonMap;
  }

  settled(): boolean {
    return this.isSettled;
  }

  /** Sends the goodbye heartbeats (per `mode`) and ends the thread. */
  stop(mode: 'leave' | 'restart' | 'silent'): Promise<void> {
    this.stopping ??= (async () => {
      const stopped = new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 2000);
        this.worker.on('message', (m: FromWorker) => { if (m.type === 'stopped') { clearTimeout(t); resolve(); } });
        this.worker.once('exit', () => { clearTimeout(t); resolve(); });
      });
      this.worker.postMessage({ type: 'stop', mode } satisfies ToWorker);
      await stopped;
      await this.worker.terminate();
    })();
    return this.stopping;
  }

  private receive(m: FromWorker): void {
    switch (m.type) {
      case 'state': {
        this.liveSet = new Set(m.live);
        this.reasonMap = new Map(m.reasons);
        this.isSettled = m.settled;
        if (!this.stopping) this.o.onChange?.();
        break;
      }
      case 'counters':
        Object.assign(this.counters, { sent: m.sent, sendErrors: m.sendErrors, accepted: m.accepted, lost: m.lost, lateSent: m.lateSent, lateReceived: m.lateReceived, starvedPeer: m.starvedPeer, selfStalls: m.selfStalls, dropped: m.dropped });
        break;
      case 'drop':
        this.o.onDrop?.(m.reason, m.detail, m.from);
        break;
      case 'silent': {
        const { type: _t, ...v } = m;
        this.o.onSilent?.(v);
        break;
      }
      default:
        break;
    }
  }
}
