// Wires the layer-2 announcer into the speaker: the heartbeat transport and
// key, this node's Lease, the responders on the native AF_PACKET socket, and
// Events/annotations through the StatusWriter. Settings come from the
// environment (the DaemonSet's env), each with a production default.
import * as k8s from '@kubernetes/client-node';
import { kubeLeaseStore } from '@portico/shared';
import type { SpeakerContext } from '../context.ts';
import { HeartbeatKeys, type SecretDataReader } from '../membership/key.ts';
import { nodeLeaseName, NodeLease } from '../membership/lease.ts';
import { HEARTBEAT_PORT } from '../membership/membership.ts';
import { MembershipThread } from '../membership/thread.ts';
import { L2Announcer, STATUS_DEFAULTS } from './announcer.ts';
import { createL2Metrics } from './metrics.ts';
import { openResponder } from './responder.ts';

export interface Layer2Settings {
  port: number;
  intervalMs: number;
  deadAfterMs: number;
  restartHoldMs: number;
  /** Longest grace of a peer seen sending late (PORTICO_HEARTBEAT_MAX_DEAD_AFTER_MS; = deadAfterMs turns it off). */
  maxDeadAfterMs: number;
  refreshMs: number;
  stopMode: 'leave' | 'restart';
  /** Nice value of the heartbeat thread (PORTICO_HEARTBEAT_NICE; empty: unchanged). */
  heartbeatNice: number | undefined;
  /** Status writes (annotations, clears, nodeAssigned): the settle, the burst and the rate (L2AnnouncerOptions). */
  statusSettleMs: number;
  statusBurst: number;
  statusWritesPerSecond: number;
}

function num(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const v = env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a non-negative number, got ${JSON.stringify(v)}`);
  return n;
}

/**
 * PORTICO_HEARTBEAT_PORT, PORTICO_HEARTBEAT_INTERVAL_MS, PORTICO_HEARTBEAT_DEAD_AFTER_MS, PORTICO_HEARTBEAT_MAX_DEAD_AFTER_MS, PORTICO_RESTART_HOLD_MS, PORTICO_L2_REFRESH_SECONDS, PORTICO_STOP_MODE, PORTICO_HEARTBEAT_NICE,
 * PORTICO_L2_STATUS_SETTLE_MS, PORTICO_L2_STATUS_BURST, PORTICO_L2_STATUS_WRITES_PER_SECOND (0: no limit).
 */
export function layer2Settings(env: NodeJS.ProcessEnv = process.env): Layer2Settings {
  const intervalMs = num(env, 'PORTICO_HEARTBEAT_INTERVAL_MS', 100);
  const stopMode = env.PORTICO_STOP_MODE ?? 'restart';
  if (stopMode !== 'leave' && stopMode !== 'restart') throw new Error(`PORTICO_STOP_MODE must be leave or restart, got ${JSON.stringify(stopMode)}`);
  return {
    port: num(env, 'PORTICO_HEARTBEAT_PORT', HEARTBEAT_PORT),
    intervalMs,
    deadAfterMs: num(env, 'PORTICO_HEARTBEAT_DEAD_AFTER_MS', intervalMs * 4),
    restartHoldMs: num(env, 'PORTICO_RESTART_HOLD_MS', 15_000),
    maxDeadAfterMs: num(env, 'PORTICO_HEARTBEAT_MAX_DEAD_AFTER_MS', num(env, 'PORTICO_HEARTBEAT_DEAD_AFTER_MS', intervalMs * 4) * 4),
    refreshMs: num(env, 'PORTICO_L2_REFRESH_SECONDS', 0) * 1000,
    stopMode,
    heartbeatNice: heartbeatNice(env.PORTICO_HEARTBEAT_NICE),
    statusSettleMs: num(env, 'PORTICO_L2_STATUS_SETTLE_MS', STATUS_DEFAULTS.statusSettleMs),
    statusBurst: atLeastOne(env, 'PORTICO_L2_STATUS_BURST', STATUS_DEFAULTS.statusBurst),
    statusWritesPerSecond: num(env, 'PORTICO_L2_STATUS_WRITES_PER_SECOND', STATUS_DEFAULTS.statusWritesPerSecond),
  };
}

function atLeastOne(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const n = num(env, name, fallback);
  if (n < 1) throw new Error(`${name} must be at least 1, got ${JSON.stringify(env[name])}`);
  return n;
}

function heartbeatNice(v: string | undefined): number | undefined {
  if (v === undefined) return -10;
  if (v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < -20 || n > 19) throw new Error(`PORTICO_HEARTBEAT_NICE must be an integer from -20 to 19 (or empty), got ${JSON.stringify(v)}`);
  return n;
}

export function kubeSecretData(kc: k8s.KubeConfig): SecretDataReader {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  return async (namespace, name) => {
    try {
      const s = await core.readNamespacedSecret({ name, namespace });
      return Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')]));
    } catch (err) {
      if ((err as { code?: number }).code === 404) return undefined;
      throw err;
    }
  };
}

/** The layer-2 announcer of this speaker; always on (idle without L2Advertisements, but membership and the Lease run). */
export async function createLayer2Announcer(ctx: SpeakerContext, settings: Layer2Settings = layer2Settings()): Promise<L2Announcer> {
  const log = ctx.log.child({ component: 'layer2' });
  const metrics = createL2Metrics(ctx.registry);
  // Heartbeats run in their own thread (membership/thread.ts): a main thread
  // busy with thousands of Services must not make this node look dead.
  let onMembershipChange: () => void = () => undefined;
  // What the dataplane prunes by: settled only once a key is loaded too (without one no peer is heard).
  let hasKey = (): boolean => false;
  const publish = (): void => ctx.liveness?.publish({ reasons: m.reasons(), settled: m.settled() && hasKey() });
  const m = await MembershipThread.start({
    self: ctx.self, port: settings.port, intervalMs: settings.intervalMs, deadAfterMs: settings.deadAfterMs, restartHoldMs: settings.restartHoldMs, maxDeadAfterMs: settings.maxDeadAfterMs,
    ...(settings.heartbeatNice !== undefined ? { nice: settings.heartbeatNice } : {}),
    onChange: () => {
      metrics.membershipChanges.inc();
      log.info('membership changed', { live: [...m.live()].sort(), reasons: Object.fromEntries(m.reasons()) });
      publish();
      onMembershipChange();
    },
    onDrop: (reason, detail, from) => {
      metrics.heartbeatsDropped.inc({ reason });
      log.debug('heartbeat dropped', { reason, detail, from });
    },
    onSilent: (v) => log.info('peer judged silent', { peer: v.node, sinceHeardMs: v.sinceHeardMs, selfStalledMs: v.selfStalledMs, allowedMs: v.allowedMs, worstLateMs: v.worstLateMs }),
    onFailure: (err) => {
      // Without heartbeats the peers take this node for dead while it keeps answering: stop answering, let the DaemonSet restart it.
      log.error('heartbeat thread failed; exiting', { err });
      process.exit(1);
    },
  });
  if (m.priority && 'error' in m.priority) log.info('heartbeat thread priority unchanged (needs CAP_SYS_NICE)', { nice: settings.heartbeatNice, err: m.priority.error });
  else if (m.priority) log.info('heartbeat thread priority raised', m.priority);
  const keys = new HeartbeatKeys({ read: kubeSecretData(ctx.kc), namespace: ctx.namespace, log, onChange: (k) => { m.setKeys(k); publish(); } });
  hasKey = () => keys.current().length > 0;
  await keys.start();
  const lease = new NodeLease({
    node: ctx.self, store: kubeLeaseStore(ctx.kc, ctx.namespace, nodeLeaseName(ctx.self)), log,
    leaseDurationMs: settings.restartHoldMs, renewEveryMs: Math.max(1000, settings.restartHoldMs / 3),
    onRenew: (ok) => metrics.leaseRenewals.inc({ result: ok ? 'ok' : 'failed' }),
    onWrite: () => metrics.apiWrites.inc({ kind: 'lease' }),
  });
  lease.start();
  const core = ctx.kc.makeApiClient(k8s.CoreV1Api);
  const mergePatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
  let last = { sent: 0, accepted: 0, lost: 0, lateSent: 0, lateReceived: 0, starvedPeer: 0 };
  const announcer = new L2Announcer({
    self: ctx.self, log, metrics, refreshMs: settings.refreshMs, stopMode: settings.stopMode, strictArp: ctx.strictArp ?? 'auto',
    statusSettleMs: settings.statusSettleMs, statusBurst: settings.statusBurst, statusWritesPerSecond: settings.statusWritesPerSecond,
    openResponder: (ifname) => openResponder(ifname, { onError: (err) => log.debug('responder send failed', { interface: ifname, err }) }),
    sink: {
      event: async (target, type, reason, message) => {
        if (await ctx.writer.event(target, type, reason, message)) metrics.apiWrites.inc({ kind: 'event' });
      },
      annotate: async (namespace, name, annotations) => {
        metrics.apiWrites.inc({ kind: 'annotation' });
        await core.patchNamespacedService({ name, namespace, body: { metadata: { annotations } } }, mergePatch);
      },
    },
    membership: (onChange) => {
      onMembershipChange = onChange;
      // Counters move on every heartbeat; the thread reports them once a second.
      const t = setInterval(() => {
        const c = m.counters;
        metrics.heartbeatsSent.inc(c.sent - last.sent);
        metrics.heartbeatsAccepted.inc(c.accepted - last.accepted);
        metrics.heartbeatsLost.inc(c.lost - last.lost);
        metrics.heartbeatsLate.inc({ direction: 'sent' }, c.lateSent - last.lateSent);
        metrics.heartbeatsLate.inc({ direction: 'received' }, c.lateReceived - last.lateReceived);
        // Sent late by the peer itself (its sequence consecutive, its clock far apart): that peer gets a longer grace for a while.
        metrics.heartbeatsLate.inc({ direction: 'peer-sent' }, c.starvedPeer - last.starvedPeer);
        last = { sent: c.sent, accepted: c.accepted, lost: c.lost, lateSent: c.lateSent, lateReceived: c.lateReceived, starvedPeer: c.starvedPeer };
      }, 1000);
      t.unref();
      let started = false;
      return {
        start: () => { if (!started) { started = true; m.start(); } },
        setPeers: (nodes) => m.setPeers(nodes),
        live: () => m.live(),
        reasons: () => m.reasons(),
        settled: () => m.settled(),
        ready: () => keys.current().length > 0,
        stop: async (mode) => {
          clearInterval(t);
          keys.stop();
          lease.stop();
          await m.stop(mode);
        },
      };
    },
  });
  log.info('layer 2 ready', {
    heartbeatPort: m.port, intervalMs: settings.intervalMs, deadAfterMs: settings.deadAfterMs, restartHoldMs: settings.restartHoldMs, stopMode: settings.stopMode,
    statusSettleMs: settings.statusSettleMs, statusBurst: settings.statusBurst, statusWritesPerSecond: settings.statusWritesPerSecond,
  });
  return announcer;
}
