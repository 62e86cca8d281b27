// Messages between the speaker's main thread and its heartbeat thread
// (thread.ts <-> worker.ts). The main thread owns what comes from the API
// server (the key, the peers); the heartbeat thread owns the sockets, the
// timers and the table of who is alive, and reports every change of it.
import type { DropReason, NodeLiveness, SilentVerdict } from './membership.ts';

export interface WorkerSettings {
  self: string;
  port: number;
  intervalMs: number;
  deadAfterMs: number;
  restartHoldMs: number;
  /** Longest grace of a peer seen sending late (Membership's maxDeadAfterMs). */
  maxDeadAfterMs?: number;
  maxSkewMs?: number;
  /**
   * Nice value for the heartbeat thread alone (Linux: setpriority on its
   * thread id); undefined leaves it as it is. Needs CAP_SYS_NICE to go below 0.
   */
  nice?: number;
  /** Addresses to bind (tests bind loopback only; host6 null = no IPv6 socket). */
  host4?: string;
  host6?: string | null;
}

export type ToWorker =
  | { type: 'keys'; keys: Uint8Array[] }
  | { type: 'peers'; nodes: [string, string[]][] }
  | { type: 'start' }
  | { type: 'stop'; mode: 'leave' | 'restart' | 'silent' };

export interface MembershipSnapshot {
  live: string[];
  reasons: [string, NodeLiveness][];
  settled: boolean;
}

export type FromWorker =
  | { type: 'ready'; port: number; priority: { tid: number; nice: number } | { error: string } | undefined }
  | { type: 'failed'; message: string; code: string | undefined }
  | ({ type: 'state' } & MembershipSnapshot)
  | { type: 'counters'; sent: number; sendErrors: number; accepted: number; lost: number; lateSent: number; lateReceived: number; starvedPeer: number; selfStalls: number; dropped: Record<DropReason, number> }
  | ({ type: 'silent' } & SilentVerdict)
  | { type: 'drop'; reason: DropReason; detail: string; from: string }
  | { type: 'stopped' };
