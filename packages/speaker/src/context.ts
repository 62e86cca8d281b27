// What every part of the speaker gets at start-up: who and where it is, the
// API client, logging, metrics, and the way to tell users things (Events).
import type * as k8s from '@kubernetes/client-node';
import type { Logger, Registry, SharedMetrics, StatusWriter } from '@portico/shared';
import type { LivenessFeed } from './membership/liveness.ts';

export interface SpeakerContext {
  /** This node's name. */
  self: string;
  /** Namespace of Portico's configuration, Leases and Secrets. */
  namespace: string;
  kc: k8s.KubeConfig;
  log: Logger;
  registry: Registry;
  sharedMetrics: SharedMetrics;
  /** Events and status objects. */
  writer: StatusWriter;
  /** Where state that must survive a restart lives (e.g. BGP graceful restart). */
  stateDir: string;
  /** --dataplane: ipvs, nftables, none, or auto (ipvs where the kernel has ip_vs, else nftables). */
  dataplane?: 'ipvs' | 'nftables' | 'none' | 'auto';
  /** Membership's verdicts, published by layer 2 (which runs the heartbeats), read by the dataplane to prune dead nodes' endpoints. */
  liveness?: LivenessFeed;
  /** --strict-arp: sysctl, nftables, or auto (default: the sysctls where /proc/sys is writable, else nftables). */
  strictArp?: 'auto' | 'sysctl' | 'nftables';
}
