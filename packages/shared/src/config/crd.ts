// Parses portico.dev/v1beta1 objects (plain JSON from the API server) into the
// domain model. The CRD schema already refuses most mistakes at apply time; this
// checks again because objects may predate a schema change or come from a test.
import type { PorticoKind } from '../api/types.ts';
import { parseIP, parseRange, type IPRange } from '../ip/ipmath.ts';
import { FieldReader, isCommunityValue, isObject, parseDuration } from './fields.ts';
import type { BFDProfileConfig, BGPAdv, ConfigProblem, ConfigSource, L2Adv, Peer, Pool, PreferredNodeSelector } from './model.ts';

function header(kind: PorticoKind, raw: unknown, problems: ConfigProblem[]): { r: FieldReader; spec: Record<string, unknown>; labels: Record<string, string> } | undefined {
  const meta = isObject(raw) && isObject(raw.metadata) ? raw.metadata : undefined;
  const name = meta && typeof meta.name === 'string' ? meta.name : '';
  const r = new FieldReader(kind, name, problems);
  if (!isObject(raw) || name === '') { r.invalid('metadata.name', 'is required'); return undefined; }
  const labels = meta ? r.stringMap(meta, 'metadata', 'labels') : {};
  const spec = raw.spec ?? {};
  if (!isObject(spec)) { r.invalid('spec', 'must be an object'); return undefined; }
  return { r, spec, labels };
}

/** Parses a list of address strings at `path` into ranges, reporting each bad entry. */
export function parseAddresses(r: FieldReader, list: readonly string[], path: string): IPRange[] {
  const ranges: IPRange[] = [];
  list.forEach((text, i) => {
    try { ranges.push(parseRange(text)); } catch (err) { r.invalid(`${path}[${i}]`, (err as Error).message); }
  });
  return ranges;
}

export function poolFromCRD(raw: unknown, problems: ConfigProblem[], source: ConfigSource = 'crd'): Pool | undefined {
  const h = header('IPAddressPool', raw, problems);
  if (!h) return undefined;
  const { r, spec, labels } = h;
  r.noUnknown(spec, 'spec', ['addresses', 'autoAssign', 'avoidBuggyIPs', 'serviceAllocation', 'allowExternalIPs']);
  const addresses = r.strings(spec, 'spec', 'addresses');
  if (addresses.length === 0 && !r.failed) r.invalid('spec.addresses', 'must list at least one CIDR or range');
  const ranges = parseAddresses(r, addresses, 'spec.addresses');
  const alloc = r.object(spec, 'spec', 'serviceAllocation') ?? {};
  r.noUnknown(alloc, 'spec.serviceAllocation', ['priority', 'namespaces', 'namespaceSelectors', 'serviceSelectors']);
  const pool: Pool = {
    name: r.name,
    source,
    ranges,
    autoAssign: r.bool(spec, 'spec', 'autoAssign') ?? true,
    avoidBuggyIPs: r.bool(spec, 'spec', 'avoidBuggyIPs') ?? false,
    allowExternalIPs: r.bool(spec, 'spec', 'allowExternalIPs') ?? false,
    priority: r.int(alloc, 'spec.serviceAllocation', 'priority', 0, 2 ** 31 - 1),
    namespaces: r.strings(alloc, 'spec.serviceAllocation', 'namespaces'),
    namespaceSelectors: r.selectors(alloc, 'spec.serviceAllocation', 'namespaceSelectors'),
    serviceSelectors: r.selectors(alloc, 'spec.serviceAllocation', 'serviceSelectors'),
    labels,
  };
  return r.failed ? undefined : pool;
}

export function l2AdvFromCRD(raw: unknown, problems: ConfigProblem[]): L2Adv | undefined {
  const h = header('L2Advertisement', raw, problems);
  if (!h) return undefined;
  const { r, spec } = h;
  r.noUnknown(spec, 'spec', ['ipAddressPools', 'ipAddressPoolSelectors', 'nodeSelectors', 'interfaces', 'serviceSelectors', 'preferredNodeSelectors']);
  const preferred: PreferredNodeSelector[] = [];
  const prefs = spec.preferredNodeSelectors;
  if (prefs !== undefined && prefs !== null) {
    if (!Array.isArray(prefs)) r.invalid('spec.preferredNodeSelectors', 'must be a list of {weight, preference}');
    else {
      prefs.forEach((entry: unknown, i) => {
        const p = `spec.preferredNodeSelectors[${i}]`;
        if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) { r.invalid(p, 'must be {weight, preference}'); return; }
        const e = entry as Record<string, unknown>;
        r.noUnknown(e, p, ['weight', 'preference']);
        const weight = r.int(e, p, 'weight', 1, 100, true);
        const [preference] = r.selectors({ preference: [e.preference ?? {}] }, p, 'preference');
        if (weight !== undefined && preference) preferred.push({ weight, preference });
      });
    }
  }
  const adv: L2Adv = {
    name: r.name,
    source: 'crd',
    pools: r.strings(spec, 'spec', 'ipAddressPools'),
    poolSelectors: r.selectors(spec, 'spec', 'ipAddressPoolSelectors'),
    nodeSelectors: r.selectors(spec, 'spec', 'nodeSelectors'),
    interfaces: r.strings(spec, 'spec', 'interfaces'),
    serviceSelectors: r.selectors(spec, 'spec', 'serviceSelectors'),
    preferredNodeSelectors: preferred,
  };
  return r.failed ? undefined : adv;
}

/** Community entries are checked later, once Community names are known. */
export function bgpAdvFromCRD(raw: unknown, problems: ConfigProblem[]): BGPAdv | undefined {
  const h = header('BGPAdvertisement', raw, problems);
  if (!h) return undefined;
  const { r, spec } = h;
  r.noUnknown(spec, 'spec', ['aggregationLength', 'aggregationLengthV6', 'localPref', 'communities', 'ipAddressPools', 'ipAddressPoolSelectors', 'nodeSelectors', 'peers', 'serviceSelectors']);
  const adv: BGPAdv = {
    name: r.name,
    source: 'crd',
    aggregationLength: r.int(spec, 'spec', 'aggregationLength', 0, 32) ?? 32,
    aggregationLengthV6: r.int(spec, 'spec', 'aggregationLengthV6', 0, 128) ?? 128,
    localPref: r.int(spec, 'spec', 'localPref', 0, 0xffffffff),
    communities: r.strings(spec, 'spec', 'communities'),
    pools: r.strings(spec, 'spec', 'ipAddressPools'),
    poolSelectors: r.selectors(spec, 'spec', 'ipAddressPoolSelectors'),
    nodeSelectors: r.selectors(spec, 'spec', 'nodeSelectors'),
    peers: r.strings(spec, 'spec', 'peers'),
    serviceSelectors: r.selectors(spec, 'spec', 'serviceSelectors'),
  };
  return r.failed ? undefined : adv;
}

export function peerFromCRD(raw: unknown, problems: ConfigProblem[]): Peer | undefined {
  const h = header('BGPPeer', raw, problems);
  if (!h) return undefined;
  const { r, spec } = h;
  r.noUnknown(spec, 'spec', ['myASN', 'peerASN', 'peerAddress', 'sourceAddress', 'peerPort', 'holdTime', 'keepaliveTime', 'connectTime', 'routerID',
    'nodeSelectors', 'password', 'passwordSecret', 'bfdProfile', 'ebgpMultiHop', 'enableGracefulRestart', 'vrf',
    'dynamicASN', 'localASN', 'interface', 'disableMP', 'dualStackAddressFamily']);
  const secret = r.object(spec, 'spec', 'passwordSecret');
  let passwordSecret: Peer['passwordSecret'];
  if (secret) {
    r.noUnknown(secret, 'spec.passwordSecret', ['name', 'namespace']);
    const name = r.string(secret, 'spec.passwordSecret', 'name', true);
    if (name !== undefined) passwordSecret = { name, namespace: r.string(secret, 'spec.passwordSecret', 'namespace') ?? 'portico-system' };
  }
  const peer = peerCommon(r, spec, 'spec', {
    myASN: 'myASN', peerASN: 'peerASN', peerAddress: 'peerAddress', sourceAddress: 'sourceAddress', peerPort: 'peerPort',
    holdTime: 'holdTime', keepaliveTime: 'keepaliveTime', connectTime: 'connectTime', routerID: 'routerID', nodeSelectors: 'nodeSelectors', password: 'password',
    bfdProfile: 'bfdProfile', ebgpMultiHop: 'ebgpMultiHop', enableGracefulRestart: 'enableGracefulRestart', vrf: 'vrf',
    dynamicASN: 'dynamicASN', localASN: 'localASN', interface: 'interface', disableMP: 'disableMP', dualStackAddressFamily: 'dualStackAddressFamily',
  }, 'crd', false, passwordSecret);
  if (peer && peer.password !== undefined && peer.passwordSecret !== undefined) return r.invalid('spec.password', 'set either password or passwordSecret, not both');
  return peer;
}

/**
 * Field names of a peer in one spelling (CRD camelCase or legacy kebab-case).
 * The optional ones are MetalLB v0.13+ BGPPeer fields that the legacy
 * ConfigMap never had: a spelling that leaves one out never reads it.
 */
export type PeerKeys = Record<'myASN' | 'peerASN' | 'peerAddress' | 'sourceAddress' | 'peerPort' | 'holdTime' | 'keepaliveTime' | 'connectTime' | 'routerID' | 'nodeSelectors' | 'password' | 'bfdProfile' | 'ebgpMultiHop' | 'enableGracefulRestart' | 'vrf', string>
  & Partial<Record<'dynamicASN' | 'localASN' | 'interface' | 'disableMP' | 'dualStackAddressFamily', string>>;

export function peerCommon(r: FieldReader, spec: Record<string, unknown>, path: string, k: PeerKeys, source: ConfigSource, legacy: boolean,
  passwordSecret?: Peer['passwordSecret']): Peer | undefined {
  const addr = (key: string, required: boolean): string | undefined => {
    const s = r.string(spec, path, key, required);
    if (s === undefined) return undefined;
    try { parseIP(s); return s; } catch { return r.invalid(`${path}.${key}`, `"${s}" is not an IP address`); }
  };
  const duration = (key: string): number | undefined => {
    const s = r.string(spec, path, key);
    if (s === undefined) return undefined;
    const secs = parseDuration(s);
    return secs === undefined ? r.invalid(`${path}.${key}`, `"${s}" is not a duration like 90s`) : secs;
  };
  const holdTime = duration(k.holdTime) ?? 90;
  const keepaliveTime = duration(k.keepaliveTime);
  const connectTime = duration(k.connectTime);
  if (connectTime !== undefined && (connectTime < 1 || connectTime > 65535)) r.invalid(`${path}.${k.connectTime}`, 'must be between 1s and 65535s');
  if (holdTime !== 0 && (holdTime < 3 || holdTime > 65535)) r.invalid(`${path}.${k.holdTime}`, 'must be 0 or between 3s and 65535s (RFC 4271 §4.2)');
  if (keepaliveTime !== undefined && keepaliveTime > holdTime) r.invalid(`${path}.${k.keepaliveTime}`, 'must not exceed the hold time');
  const routerID = r.string(spec, path, k.routerID);
  if (routerID !== undefined) {
    try { if (parseIP(routerID).family !== 'IPv4') r.invalid(`${path}.${k.routerID}`, 'must be an IPv4 address'); } catch { r.invalid(`${path}.${k.routerID}`, 'must be an IPv4 address'); }
  }
  // Exactly one of peerASN and dynamicASN, exactly one of peerAddress and interface (as MetalLB).
  let dynamicASN: Peer['dynamicASN'];
  if (k.dynamicASN !== undefined) {
    const d = r.string(spec, path, k.dynamicASN);
    if (d === 'internal' || d === 'external') dynamicASN = d;
    else if (d !== undefined) r.invalid(`${path}.${k.dynamicASN}`, `"${d}" must be internal or external`);
  }
  const dynamicSet = k.dynamicASN !== undefined && spec[k.dynamicASN] !== undefined && spec[k.dynamicASN] !== null;
  const peerASNSet = spec[k.peerASN] !== undefined && spec[k.peerASN] !== null;
  if (dynamicSet && peerASNSet) r.invalid(`${path}.${k.dynamicASN ?? ''}`, `set exactly one of ${k.peerASN} and ${k.dynamicASN ?? ''}`);
  const iface = k.interface === undefined ? undefined : r.string(spec, path, k.interface);
  const peerAddressSet = spec[k.peerAddress] !== undefined && spec[k.peerAddress] !== null;
  if (iface !== undefined && peerAddressSet) r.invalid(`${path}.${k.interface ?? ''}`, `set exactly one of ${k.peerAddress} and ${k.interface ?? ''}`);
  const disableMP = k.disableMP === undefined ? undefined : r.bool(spec, path, k.disableMP);
  const dualStack = k.dualStackAddressFamily === undefined ? undefined : r.bool(spec, path, k.dualStackAddressFamily);
  if (disableMP === true && dualStack === true) r.invalid(`${path}.${k.disableMP ?? ''}`, `disableMP true contradicts ${k.dualStackAddressFamily ?? ''} true`);
  const peer: Peer = {
    name: r.name,
    source,
    myASN: r.int(spec, path, k.myASN, 1, 0xffffffff, true) ?? 0,
    peerASN: dynamicSet && !peerASNSet ? undefined : r.int(spec, path, k.peerASN, 1, 0xffffffff, true),
    dynamicASN,
    localASN: k.localASN === undefined ? undefined : r.int(spec, path, k.localASN, 1, 0xffffffff),
    peerAddress: iface !== undefined && !peerAddressSet ? '' : addr(k.peerAddress, true) ?? '',
    interface: iface,
    sourceAddress: addr(k.sourceAddress, false),
    peerPort: r.int(spec, path, k.peerPort, 1, 65535) ?? 179,
    holdTime,
    keepaliveTime,
    connectTime,
    routerID,
    nodeSelectors: r.selectors(spec, path, k.nodeSelectors, legacy),
    password: r.string(spec, path, k.password),
    passwordSecret,
    bfdProfile: r.string(spec, path, k.bfdProfile),
    ebgpMultiHop: r.bool(spec, path, k.ebgpMultiHop) ?? false,
    enableGracefulRestart: r.bool(spec, path, k.enableGracefulRestart) ?? false,
    vrf: r.string(spec, path, k.vrf),
    families: disableMP === true || dualStack === false ? 'session' : 'both',
  };
  return r.failed ? undefined : peer;
}

export function communitiesFromCRD(raw: unknown, problems: ConfigProblem[]): Record<string, string> | undefined {
  const h = header('Community', raw, problems);
  if (!h) return undefined;
  const { r, spec } = h;
  r.noUnknown(spec, 'spec', ['communities']);
  const list = spec.communities ?? [];
  const out: Record<string, string> = {};
  if (!Array.isArray(list)) return r.invalid('spec.communities', 'must be a list');
  list.forEach((c, i) => {
    const p = `spec.communities[${i}]`;
    if (!isObject(c)) { r.invalid(p, 'must be an object'); return; }
    r.noUnknown(c, p, ['name', 'value']);
    const name = r.string(c, p, 'name', true);
    const value = r.string(c, p, 'value', true);
    if (name === undefined || value === undefined) return;
    if (!isCommunityValue(value)) { r.invalid(`${p}.value`, `"${value}" is not a community (AS:value or large:A:B:C)`); return; }
    if (Object.hasOwn(out, name)) { r.invalid(`${p}.name`, `"${name}" is defined twice`); return; }
    out[name] = value;
  });
  return r.failed ? undefined : out;
}

export function bfdProfileFromCRD(raw: unknown, problems: ConfigProblem[]): BFDProfileConfig | undefined {
  const h = header('BFDProfile', raw, problems);
  if (!h) return undefined;
  const { r, spec } = h;
  return bfdCommon(r, spec, 'spec', {
    receiveInterval: 'receiveInterval', transmitInterval: 'transmitInterval', detectMultiplier: 'detectMultiplier', echoInterval: 'echoInterval',
    echoMode: 'echoMode', passiveMode: 'passiveMode', minimumTtl: 'minimumTtl',
  }, 'crd');
}

export function bfdCommon(r: FieldReader, spec: Record<string, unknown>, path: string, k: Record<keyof Omit<BFDProfileConfig, 'name' | 'source'>, string>,
  source: ConfigSource, alsoKnown: readonly string[] = []): BFDProfileConfig | undefined {
  r.noUnknown(spec, path, [...Object.values(k), ...alsoKnown]);
  const profile: BFDProfileConfig = {
    name: r.name,
    source,
    receiveInterval: r.int(spec, path, k.receiveInterval, 10, 60000),
    transmitInterval: r.int(spec, path, k.transmitInterval, 10, 60000),
    detectMultiplier: r.int(spec, path, k.detectMultiplier, 2, 255),
    echoInterval: r.int(spec, path, k.echoInterval, 10, 60000),
    echoMode: r.bool(spec, path, k.echoMode),
    passiveMode: r.bool(spec, path, k.passiveMode),
    minimumTtl: r.int(spec, path, k.minimumTtl, 1, 254),
  };
  // The speaker's BFD runs asynchronous mode only (RFC 5880 §6.4 echo is optional): say so rather than run without it.
  if (profile.echoMode === true) r.invalid(`${path}.${k.echoMode}`, 'echo mode is not implemented by Portico\'s BFD (asynchronous mode only); remove it or set it to false');
  return r.failed ? undefined : profile;
}
