// The portico.dev/v1beta1 API: what users write in the CRDs. Field names follow
// MetalLB's (metallb.io) so that migrating is a rename of group and kind.

export const GROUP = 'portico.dev';
export const VERSION = 'v1beta1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const NAMESPACE = 'portico-system';

/** Legacy ConfigMap in MetalLB's old format: portico-system/config, key `config`. */
export const LEGACY_CONFIGMAP = { namespace: NAMESPACE, name: 'config', key: 'config' } as const;

/** Annotations Portico reads or writes (prefix portico.dev/). */
export const ANNOTATIONS = {
  /** Comma-separated IPs requested for a Service (one per family for dual-stack). */
  loadBalancerIPs: 'portico.dev/loadBalancerIPs',
  /** Name of the pool a Service asks for. */
  addressPool: 'portico.dev/address-pool',
  /** Services with the same key may share an IP. */
  allowSharedIP: 'portico.dev/allow-shared-ip',
  /** Written by the controller: the pool the Service's IPs came from. */
  allocatedFromPool: 'portico.dev/ip-allocated-from-pool',
  /** Written by the controller: the Service's spec.externalIPs it accepted (comma-separated), which the speakers announce. */
  externalIPs: 'portico.dev/external-ips',
} as const;

/**
 * MetalLB's Service annotations, read as aliases of Portico's so that a
 * migrated Service keeps asking for what it asked MetalLB. Portico's own
 * annotation wins when both are set (and a Warning Event says so).
 */
export const METALLB_ANNOTATIONS = {
  loadBalancerIPs: 'metallb.io/loadBalancerIPs',
  addressPool: 'metallb.io/address-pool',
  allowSharedIP: 'metallb.io/allow-shared-ip',
  /** Written by MetalLB's controller; read once, to adopt a Service's IPs that Portico did not write. */
  allocatedFromPool: 'metallb.io/ip-allocated-from-pool',
} as const;

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface LabelSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export interface ServiceAllocation {
  /** Lower number = tried first. Pools without a priority come after those with one. */
  priority?: number;
  namespaces?: string[];
  namespaceSelectors?: LabelSelector[];
  serviceSelectors?: LabelSelector[];
}

export interface IPAddressPoolSpec {
  /** CIDRs (`203.0.113.0/24`) or inclusive ranges (`203.0.113.10-203.0.113.20`), IPv4 and IPv6. */
  addresses: string[];
  autoAssign?: boolean;
  avoidBuggyIPs?: boolean;
  serviceAllocation?: ServiceAllocation;
  /** Portico addition: Services may use spec.externalIPs inside this pool. */
  allowExternalIPs?: boolean;
}

export interface IPAddressPoolStatus {
  assignedIPv4?: number;
  assignedIPv6?: number;
  availableIPv4?: number;
  availableIPv6?: number;
  conditions?: Condition[];
}

export interface IPAddressPool {
  apiVersion: typeof API_VERSION;
  kind: 'IPAddressPool';
  metadata: ObjectMeta;
  spec: IPAddressPoolSpec;
  status?: IPAddressPoolStatus;
}

export interface L2AdvertisementSpec {
  ipAddressPools?: string[];
  ipAddressPoolSelectors?: LabelSelector[];
  nodeSelectors?: LabelSelector[];
  interfaces?: string[];
  /** Only Services one of these selects (all when empty). */
  serviceSelectors?: LabelSelector[];
  /** Nodes preferred as the layer-2 owner, weight 1-100. */
  preferredNodeSelectors?: { weight: number; preference: LabelSelector }[];
}

export interface BGPAdvertisementSpec {
  aggregationLength?: number;
  aggregationLengthV6?: number;
  localPref?: number;
  /** Community values (`64512:100`, `large:64512:1:2`) or names from a Community object. */
  communities?: string[];
  ipAddressPools?: string[];
  ipAddressPoolSelectors?: LabelSelector[];
  nodeSelectors?: LabelSelector[];
  /** Names of BGPPeers; empty means all peers. */
  peers?: string[];
  /** Only Services whose labels match one of these are advertised by it; empty means every Service. */
  serviceSelectors?: LabelSelector[];
}

export interface SecretReference { name: string; namespace?: string }

export interface BGPPeerSpec {
  myASN: number;
  /** Exactly one of peerASN and dynamicASN. */
  peerASN?: number;
  /** Learn the peer's AS from its OPEN: `internal` must equal the local AS, `external` must differ. */
  dynamicASN?: 'internal' | 'external';
  /** The AS this session uses instead of myASN (OPEN and AS_PATH). */
  localASN?: number;
  /** Exactly one of peerAddress and interface. */
  peerAddress?: string;
  /** BGP unnumbered (MetalLB): accepted by the schema, refused by the speaker. */
  interface?: string;
  /** true: each family only over a session of its own family (as dualStackAddressFamily false). */
  disableMP?: boolean;
  /** true or unset: both families over the one session; false: only the session's own family. */
  dualStackAddressFamily?: boolean;
  sourceAddress?: string;
  peerPort?: number;
  holdTime?: string;
  keepaliveTime?: string;
  connectTime?: string;
  routerID?: string;
  nodeSelectors?: LabelSelector[];
  password?: string;
  passwordSecret?: SecretReference;
  bfdProfile?: string;
  ebgpMultiHop?: boolean;
  enableGracefulRestart?: boolean;
  vrf?: string;
}

export interface CommunityAlias { name: string; value: string }
export interface CommunitySpec { communities?: CommunityAlias[] }

export interface BFDProfileSpec {
  receiveInterval?: number;
  transmitInterval?: number;
  detectMultiplier?: number;
  echoInterval?: number;
  echoMode?: boolean;
  passiveMode?: boolean;
  minimumTtl?: number;
}

export interface ConditionsStatus { conditions?: Condition[] }

interface Resource<K extends string, S> {
  apiVersion: typeof API_VERSION;
  kind: K;
  metadata: ObjectMeta;
  spec: S;
  status?: ConditionsStatus;
}

export type L2Advertisement = Resource<'L2Advertisement', L2AdvertisementSpec>;
export type BGPAdvertisement = Resource<'BGPAdvertisement', BGPAdvertisementSpec>;
export type BGPPeer = Resource<'BGPPeer', BGPPeerSpec>;
export type Community = Resource<'Community', CommunitySpec>;
export type BFDProfile = Resource<'BFDProfile', BFDProfileSpec>;

export type PorticoKind = 'IPAddressPool' | 'L2Advertisement' | 'BGPAdvertisement' | 'BGPPeer' | 'Community' | 'BFDProfile';

/** Plural resource names, as used in API paths and CRD names. */
export const PLURALS: Record<PorticoKind, string> = {
  IPAddressPool: 'ipaddresspools',
  L2Advertisement: 'l2advertisements',
  BGPAdvertisement: 'bgpadvertisements',
  BGPPeer: 'bgppeers',
  Community: 'communities',
  BFDProfile: 'bfdprofiles',
};

export const KINDS: readonly PorticoKind[] = ['IPAddressPool', 'L2Advertisement', 'BGPAdvertisement', 'BGPPeer', 'Community', 'BFDProfile'];
