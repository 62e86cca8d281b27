// Prometheus metrics of the speaker's BFD sessions, one series per BGP peer.
import { Gauge, counter, type Counter, type Registry } from '@portico/shared';
import type { BfdSnapshot } from './session.ts';
import type { BfdState } from './packet.ts';

/** RFC 5880 §4.1 state codes, as the state gauge reports them. */
export const STATE_CODE: Readonly<Record<BfdState, number>> = { AdminDown: 0, Down: 1, Init: 2, Up: 3 };

export interface BfdMetrics {
  /** RFC 5880 state code: 0 AdminDown, 1 Down, 2 Init, 3 Up. */
  state: Gauge<'peer'>;
  flaps: Counter<'peer'>;
  /** Packets dropped before reaching a session, by reason (ttl-too-low, no-session, ...). */
  dropped: Counter<'reason'>;
  /** BGP resets held back by flap damping. */
  damped: Counter<'peer'>;
}

/** `sessions` is read at scrape time for uptime and detection time. */
export function createBfdMetrics(registry: Registry, sessions: () => { peer: string; snapshot: BfdSnapshot; now: number }[]): BfdMetrics {
  new Gauge<'peer'>({
    name: 'portico_bfd_session_uptime_seconds', help: 'Seconds the BFD session with the peer has been Up (0 when not Up)', labelNames: ['peer'], registers: [registry],
    collect() {
      this.reset();
      for (const s of sessions()) this.set({ peer: s.peer }, s.snapshot.upSince === undefined ? 0 : (s.now - s.snapshot.upSince) / 1000);
    },
  });
  new Gauge<'peer'>({
    name: 'portico_bfd_detection_time_seconds', help: 'Current BFD detection time: remote Detect Mult x agreed interval', labelNames: ['peer'], registers: [registry],
    collect() {
      this.reset();
      for (const s of sessions()) this.set({ peer: s.peer }, s.snapshot.detectionTimeMs / 1000);
    },
  });
  return {
    state: new Gauge<'peer'>({ name: 'portico_bfd_session_state', help: 'BFD session state (RFC 5880 code: 0 AdminDown, 1 Down, 2 Init, 3 Up)', labelNames: ['peer'], registers: [registry] }),
    flaps: counter(registry, { name: 'portico_bfd_session_flaps_total', help: 'Times the BFD session left Up', labelNames: ['peer'] }),
    dropped: counter(registry, { name: 'portico_bfd_packets_dropped_total', help: 'BFD packets dropped before reaching a session, by reason', labelNames: ['reason'] }),
    damped: counter(registry, { name: 'portico_bfd_damped_resets_total', help: 'BFD flaps after which the BGP session was held down by damping', labelNames: ['peer'] }),
  };
}
