// Prometheus metrics of the speaker's BGP announcer, one series per peer.
import { Gauge, counter, gauge, type Counter, type Registry } from '@portico/shared';
import type { UpdateMessage } from './message.ts';

export interface BgpMetrics {
  /** 1 while the session with the peer is Established. */
  sessionUp: Gauge<'peer'>;
  /** Prefixes the peer has from this node (the Adj-RIB-Out). */
  prefixesAnnounced: Gauge<'peer'>;
  updatesSent: Counter<'peer'>;
  /** NOTIFICATIONs from the peer; `reason` is the code / subcode in words (describeNotification without data). */
  notificationsReceived: Counter<'peer' | 'reason'>;
  notificationsSent: Counter<'peer' | 'reason'>;
  /** Sessions that left Established, by FSM reason ('hold-timer-expired', 'notification-received', 'tcp-failed', ...). */
  sessionDrops: Counter<'peer' | 'reason'>;
  /** Outgoing connection attempts that failed or timed out. */
  connectFailures: Counter<'peer'>;
  updatesReceived: Counter<'peer'>;
  /** Prefixes announced to us in those UPDATEs (NLRI and MP_REACH_NLRI). */
  prefixesReceived: Counter<'peer'>;
  /** Malformed UPDATEs the session survived (RFC 7606), by treatment: treat-as-withdraw or attribute-discard. */
  malformedUpdates: Counter<'peer' | 'treatment'>;
}

/** Prefixes an UPDATE announces: its NLRI field and every MP_REACH_NLRI (RFC 4760). */
export function announcedPrefixes(u: UpdateMessage): number {
  let n = u.nlri.length;
  for (const a of u.attributes) if (a.type === 'mp-reach') n += a.nlri.length;
  return n;
}

export function createBgpMetrics(registry: Registry): BgpMetrics {
  return {
    // The one name outside portico_<area>_<thing>_<unit>: the issue and
    // every MetalLB dashboard know a boolean `..._bgp_session_up`, like Prometheus' own `up`.
    sessionUp: new Gauge<'peer'>({ name: 'portico_bgp_session_up', help: '1 while the BGP session with the peer is Established', labelNames: ['peer'], registers: [registry] }),
    prefixesAnnounced: gauge(registry, { name: 'portico_bgp_announced_prefixes_count', help: 'Prefixes this node currently announces to the peer', labelNames: ['peer'] }),
    updatesSent: counter(registry, { name: 'portico_bgp_updates_sent_total', help: 'BGP UPDATE messages sent to the peer (End-of-RIB included)', labelNames: ['peer'] }),
    notificationsReceived: counter(registry, { name: 'portico_bgp_notifications_received_total', help: 'NOTIFICATIONs received from the peer, by code/subcode', labelNames: ['peer', 'reason'] }),
    notificationsSent: counter(registry, { name: 'portico_bgp_notifications_sent_total', help: 'NOTIFICATIONs sent to the peer, by code/subcode', labelNames: ['peer', 'reason'] }),
    sessionDrops: counter(registry, { name: 'portico_bgp_session_drops_total', help: 'Times the session left Established, by reason', labelNames: ['peer', 'reason'] }),
    connectFailures: counter(registry, { name: 'portico_bgp_connect_failures_total', help: 'Outgoing TCP connections to the peer that failed or timed out', labelNames: ['peer'] }),
    updatesReceived: counter(registry, { name: 'portico_bgp_updates_received_total', help: 'BGP UPDATE messages received from the peer (well formed)', labelNames: ['peer'] }),
    prefixesReceived: counter(registry, { name: 'portico_bgp_received_prefixes_total', help: 'Prefixes announced by the peer in its UPDATEs (NLRI and MP_REACH_NLRI)', labelNames: ['peer'] }),
    malformedUpdates: counter(registry, { name: 'portico_bgp_malformed_updates_total', help: 'Malformed UPDATEs from the peer that the session survived (RFC 7606), by treatment', labelNames: ['peer', 'treatment'] }),
  };
}
