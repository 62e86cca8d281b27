// The configuration Portico runs on, after parsing and merging the CRDs and the
// legacy ConfigMap. Everything here is validated; addresses are BigInt ranges.
import type { BFDProfileSpec, LabelSelector, PorticoKind } from '../api/types.ts';
import type { IPRange } from '../ip/ipmath.ts';

export type ConfigSource = 'crd' | 'configmap';

export interface Pool {
  readonly name: string;
  readonly source: ConfigSource;
  readonly ranges: readonly IPRange[];
  readonly autoAssign: boolean;
  readonly avoidBuggyIPs: boolean;
  readonly allowExternalIPs: boolean;
  /** Undefined when the pool sets no priority (tried after every pool that sets one). */
  readonly priority: number | undefined;
  readonly namespaces: readonly string[];
  readonly namespaceSelectors: readonly LabelSelector[];
  readonly serviceSelectors: readonly LabelSelector[];
  readonly labels: Readonly<Record<string, string>>;
}

export interface L2Adv {
  readonly name: string;
  readonly source: ConfigSource;
  readonly pools: readonly string[];
  readonly poolSelectors: readonly LabelSelector[];
  readonly nodeSelectors: readonly LabelSelector[];
  readonly interfaces: readonly string[];
  /** Empty: every Service of the selected pools; else only Services one of these selects. */
  readonly serviceSelectors: readonly LabelSelector[];
  /** Nodes preferred as the owner: the live eligible node with the highest sum of matching weights wins, the hash breaks ties. */
  readonly preferredNodeSelectors: readonly PreferredNodeSelector[];
}

export interface PreferredNodeSelector {
  /** 1-100. */
  readonly weight: number;
  readonly preference: LabelSelector;
}

export interface BGPAdv {
  readonly name: string;
  readonly source: ConfigSource;
  readonly aggregationLength: number;
  readonly aggregationLengthV6: number;
  readonly localPref: number | undefined;
  /** Community values with names already resolved (`64512:100`, `large:1:2:3`). */
  readonly communities: readonly string[];
  readonly pools: readonly string[];
  readonly poolSelectors: readonly LabelSelector[];
  readonly nodeSelectors: readonly LabelSelector[];
  readonly peers: readonly string[];
  /** Empty: every Service of the selected pools; else only Services one of these selects. */
  readonly serviceSelectors: readonly LabelSelector[];
}

export interface Peer {
  readonly name: string;
  readonly source: ConfigSource;
  readonly myASN: number;
  /** Undefined exactly when dynamicASN is set. */
  readonly peerASN: number | undefined;
  /** The peer's AS comes from its OPEN: `internal` must equal the session's local AS, `external` must differ. */
  readonly dynamicASN: 'internal' | 'external' | undefined;
  /** The AS this session speaks as, in place of myASN (OPEN, AS_PATH, iBGP or eBGP). */
  readonly localASN: number | undefined;
  /** '' exactly when `interface` is set. */
  readonly peerAddress: string;
  /** BGP unnumbered: peer with the IPv6 link-local neighbour on this interface (the speaker refuses it). */
  readonly interface: string | undefined;
  readonly sourceAddress: string | undefined;
  readonly peerPort: number;
  /** Seconds. */
  readonly holdTime: number;
  readonly keepaliveTime: number | undefined;
  /** Seconds between connection attempts (the base of the backoff); undefined: the speaker's default. */
  readonly connectTime: number | undefined;
  readonly routerID: string | undefined;
  readonly nodeSelectors: readonly LabelSelector[];
  readonly password: string | undefined;
  readonly passwordSecret: { readonly name: string; readonly namespace: string } | undefined;
  readonly bfdProfile: string | undefined;
  readonly ebgpMultiHop: boolean;
  /** Advertise the graceful restart capability (RFC 4724), so routers keep the routes while the speaker restarts. */
  readonly enableGracefulRestart: boolean;
  readonly vrf: string | undefined;
  /**
   * Which families the session carries: 'both' (IPv4 and IPv6 over the one
   * session, RFC 4760; Portico's default and dualStackAddressFamily true) or
   * 'session' (only the family of the peer's address; dualStackAddressFamily
   * false or disableMP true).
   */
  readonly families: 'both' | 'session';
}

export interface BFDProfileConfig extends Readonly<BFDProfileSpec> {
  readonly name: string;
  readonly source: ConfigSource;
}

export interface Config {
  /** Sorted by name. */
  readonly pools: readonly Pool[];
  readonly l2Advertisements: readonly L2Adv[];
  readonly bgpAdvertisements: readonly BGPAdv[];
  readonly peers: readonly Peer[];
  /** Community name -> value. */
  readonly communities: Readonly<Record<string, string>>;
  readonly bfdProfiles: readonly BFDProfileConfig[];
}

export const EMPTY_CONFIG: Config = { pools: [], l2Advertisements: [], bgpAdvertisements: [], peers: [], communities: {}, bfdProfiles: [] };

/** Why a configuration cannot be used; these become conditions and Events. */
export type ProblemCode = 'Invalid' | 'Overlap' | 'UnknownReference' | 'Conflict' | 'StrandsIPs';

export interface ConfigProblem {
  readonly kind: PorticoKind | 'ConfigMap';
  readonly name: string;
  /** The field at fault, as a path (`spec.addresses[1]`). */
  readonly field?: string;
  readonly code: ProblemCode;
  readonly message: string;
}
