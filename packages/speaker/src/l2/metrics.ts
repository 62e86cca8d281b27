// Layer 2's Prometheus metrics: the responder's frames, announcements, owned
// IPs, and the membership the election runs on.
import { counter, gauge, type Registry } from '@portico/shared';

export function createL2Metrics(registry: Registry) {
  return {
    requestsReceived: counter(registry, { name: 'portico_l2_requests_received_total', help: 'ARP requests and Neighbor Solicitations read from the interface', labelNames: ['interface'] as const }),
    repliesSent: counter(registry, { name: 'portico_l2_replies_sent_total', help: 'ARP replies and Neighbor Advertisements sent in answer', labelNames: ['interface'] as const }),
    gratuitousSent: counter(registry, { name: 'portico_l2_gratuitous_sent_total', help: 'Gratuitous ARP and unsolicited NA frames sent', labelNames: ['interface'] as const }),
    sendFailures: counter(registry, { name: 'portico_l2_send_failures_total', help: 'Frames the socket refused', labelNames: ['interface'] as const }),
    framesByReason: counter(registry, { name: 'portico_l2_frames_total', help: 'Received frames by decision reason (reply, not-owner, gratuitous, malformed, ...)', labelNames: ['interface', 'reason'] as const }),
    ownedIPs: gauge(registry, { name: 'portico_l2_owned_addresses', help: 'IPs this node answers ARP/NDP for', labelNames: ['interface'] as const }),
    ownedServices: gauge(registry, { name: 'portico_l2_owned_services_count', help: 'Services whose layer-2 owner is this node' }),
    ownershipChanges: counter(registry, { name: 'portico_l2_ownership_changes_total', help: 'Services this node started or stopped announcing', labelNames: ['change'] as const }),
    statusWritesDeferred: counter(registry, { name: 'portico_l2_status_writes_deferred_total', help: 'Status writes (annotations, clears of stale annotations, nodeAssigned Events) held back by the speaker\'s rate limit, each counted once however long it waits' }),
    statusWritesPending: gauge(registry, { name: 'portico_l2_status_writes_pending_count', help: 'Status writes this speaker owes the API server now, by what they wait for: settle (ownership not held long enough yet), backoff (written, the World does not show it yet), rate-limit', labelNames: ['wait'] as const }),
    liveNodes: gauge(registry, { name: 'portico_membership_live_nodes_count', help: 'Nodes whose speaker is live, this one included' }),
    membershipChanges: counter(registry, { name: 'portico_membership_changes_total', help: 'Changes of the live set or of a node\'s liveness reason seen by this speaker (each may move IPs)' }),
    heartbeatsSent: counter(registry, { name: 'portico_membership_heartbeats_sent_total', help: 'Heartbeats sent to peers' }),
    heartbeatsAccepted: counter(registry, { name: 'portico_membership_heartbeats_accepted_total', help: 'Heartbeats that passed authentication' }),
    heartbeatsLate: counter(registry, { name: 'portico_membership_heartbeats_late_total', help: 'Heartbeats more than one interval late: sent (this speaker\'s heartbeat thread waited for a CPU) or received (after the timestamp the sender put in it)', labelNames: ['direction'] as const }),
    heartbeatsLost: counter(registry, { name: 'portico_membership_heartbeats_lost_total', help: 'Heartbeats never received (gaps in the peers\' sequence numbers)' }),
    heartbeatsDropped: counter(registry, { name: 'portico_membership_heartbeats_dropped_total', help: 'Heartbeats dropped, by reason (malformed, bad-mac, replay, stale, unknown-node, self, no-key)', labelNames: ['reason'] as const }),
    apiWrites: counter(registry, { name: 'portico_l2_api_writes_total', help: 'Writes to the API server by layer 2 and membership (lease, annotation, event): grows with nodes and ownership changes, never with time per Service', labelNames: ['kind'] as const }),
    leaseRenewals: counter(registry, { name: 'portico_membership_lease_renewals_total', help: 'Writes of this node\'s Lease, by result', labelNames: ['result'] as const }),
  };
}
export type L2Metrics = ReturnType<typeof createL2Metrics>;
