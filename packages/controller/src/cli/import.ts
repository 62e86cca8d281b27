// `portico import`: MetalLB's configuration turned into Portico's. The
// metallb.io/v1beta1 kinds (and BGPPeer v1beta2) map field for field onto
// portico.dev/v1beta1 (Portico kept MetalLB's field names); the legacy
// ConfigMap (`config` key: address-pools, peers, bgp-communities, bfd-profiles)
// becomes the equivalent objects. A field Portico does not have is reported
// with its path and left out, never dropped silently.
import { API_VERSION, NAMESPACE, formatIP, parseIP, parseYAML } from '@portico/shared';

export interface ImportWarning {
  /** Where it came from: `BGPPeer metallb-system/tor`, `ConfigMap metallb-system/config`. */
  source: string;
  /** Field path inside that object, or '' for the whole object. */
  field: string;
  message: string;
}

export interface PorticoObject {
  apiVersion: typeof API_VERSION;
  kind: string;
  metadata: { name: string; namespace: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: Record<string, unknown>;
}

export interface ImportResult {
  objects: PorticoObject[];
  warnings: ImportWarning[];
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
/** A scalar as text; anything else as ''. */
const str = (v: unknown, fallback = ''): string => (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : fallback);

/** Fields Portico has, per kind (the portico.dev/v1beta1 spec). */
const FIELDS: Record<string, readonly string[]> = {
  IPAddressPool: ['addresses', 'autoAssign', 'avoidBuggyIPs', 'serviceAllocation'],
  L2Advertisement: ['ipAddressPools', 'ipAddressPoolSelectors', 'nodeSelectors', 'interfaces', 'serviceSelectors', 'preferredNodeSelectors'],
  BGPAdvertisement: ['aggregationLength', 'aggregationLengthV6', 'localPref', 'communities', 'ipAddressPools', 'ipAddressPoolSelectors', 'nodeSelectors', 'peers', 'serviceSelectors'],
  BGPPeer: ['myASN', 'peerASN', 'peerAddress', 'sourceAddress', 'peerPort', 'holdTime', 'keepaliveTime', 'connectTime', 'routerID', 'nodeSelectors', 'password', 'passwordSecret', 'bfdProfile', 'ebgpMultiHop', 'enableGracefulRestart', 'vrf',
    'dynamicASN', 'localASN', 'interface', 'disableMP', 'dualStackAddressFamily'],
  Community: ['communities'],
  BFDProfile: ['receiveInterval', 'transmitInterval', 'detectMultiplier', 'echoInterval', 'echoMode', 'passiveMode', 'minimumTtl'],
};
const SERVICE_ALLOCATION = ['priority', 'namespaces', 'namespaceSelectors', 'serviceSelectors'];
const SELECTOR = ['matchLabels', 'matchExpressions'];

/** Portico refuses echoMode: true, so an imported profile runs without it. */
const ECHO_NOTE = 'Portico\'s BFD has no echo mode (asynchronous mode only); echoMode: true left out';

/** Notes on MetalLB fields that have no Portico counterpart, for the warning text. */
const WHY: Record<string, string> = {};

/**
 * Notes on BGPPeer fields that are carried over but behave differently, or
 * that the speaker refuses (so the user hears it now, not from an Event).
 */
function peerNotes(spec: Json, apiVersion: string, source: string, warnings: ImportWarning[]): void {
  if (spec.interface !== undefined) {
    warnings.push({ source, field: 'spec.interface', message: 'carried over, but Portico\'s speaker does not peer over an interface (BGP unnumbered) and refuses the peer (Warning BGPPeerUnsupported); set peerAddress instead' });
  }
  if (spec.vrf !== undefined) {
    warnings.push({ source, field: 'spec.vrf', message: 'carried over, but Portico\'s speaker peers from the default VRF only and refuses the peer (Warning BGPPeerUnsupported)' });
  }
  if (spec.disableMP === true && spec.dualStackAddressFamily === true) {
    // MetalLB v0.15+ ignores disableMP; Portico's schema refuses the pair.
    delete spec.disableMP;
    warnings.push({ source, field: 'spec.disableMP', message: 'MetalLB ignores disableMP since v0.15 and dualStackAddressFamily true wins; disableMP left out' });
  }
  // v1beta1 predates both fields (MetalLB then sent both families over each session, as Portico does).
  if (apiVersion === 'metallb.io/v1beta2' && spec.disableMP === undefined && spec.dualStackAddressFamily === undefined) {
    warnings.push({
      source, field: 'spec.dualStackAddressFamily',
      message: 'not set: Portico announces IPv4 and IPv6 over this one session (as MetalLB before v0.15); MetalLB v0.15+ sends each family only over a session of its own family, so set dualStackAddressFamily: false for that',
    });
  }
}

export interface ImportOptions {
  /** Namespace of the produced objects (default portico-system). */
  namespace?: string;
}

/** Converts every document (MetalLB objects, a ConfigMap, or a List of them). */
export function importMetalLB(docs: readonly unknown[], opts: ImportOptions = {}): ImportResult {
  const ns = opts.namespace ?? NAMESPACE;
  const res: ImportResult = { objects: [], warnings: [] };
  const visit = (doc: unknown): void => {
    if (doc === null || doc === undefined) return;
    if (!isObj(doc)) { res.warnings.push({ source: 'input', field: '', message: 'a document that is not an object was skipped' }); return; }
    const kind = str(doc.kind);
    const apiVersion = str(doc.apiVersion);
    if (kind === 'List' || kind.endsWith('List')) { for (const i of Array.isArray(doc.items) ? doc.items : []) visit(i); return; }
    const meta = isObj(doc.metadata) ? doc.metadata : {};
    const name = str(meta.name);
    const source = `${kind} ${meta.namespace ? `${str(meta.namespace)}/` : ''}${name}`;
    if (kind === 'ConfigMap' && apiVersion === 'v1') { convertLegacy(doc, source, ns, res); return; }
    if (!apiVersion.startsWith('metallb.io/')) { res.warnings.push({ source, field: '', message: `${apiVersion} ${kind} is not a MetalLB object; skipped` }); return; }
    if (!FIELDS[kind]) { res.warnings.push({ source, field: '', message: `MetalLB kind ${kind} has no Portico counterpart; skipped` }); return; }
    const spec = isObj(doc.spec) ? doc.spec : {};
    const out: Json = {};
    for (const [k, v] of Object.entries(spec)) {
      if (kind === 'BFDProfile' && k === 'echoMode' && v === true) {
        res.warnings.push({ source, field: 'spec.echoMode', message: ECHO_NOTE });
        continue;
      }
      if (!FIELDS[kind].includes(k)) {
        const why = WHY[`${kind}.${k}`];
        res.warnings.push({ source, field: `spec.${k}`, message: `Portico has no field ${k}${why ? `: ${why}` : ''}; left out` });
        continue;
      }
      out[k] = v;
    }
    if (kind === 'IPAddressPool') out.addresses = normaliseAddresses(out.addresses, source, 'spec.addresses', res.warnings);
    if (kind === 'IPAddressPool' && isObj(out.serviceAllocation)) {
      for (const k of Object.keys(out.serviceAllocation)) {
        if (!SERVICE_ALLOCATION.includes(k)) {
          res.warnings.push({ source, field: `spec.serviceAllocation.${k}`, message: `Portico has no field serviceAllocation.${k}; left out` });
          delete out.serviceAllocation[k];
        }
      }
    }
    for (const key of ['nodeSelectors', 'ipAddressPoolSelectors', 'serviceSelectors']) {
      if (Array.isArray(out[key])) {
        (out[key] as unknown[]).forEach((sel, i) => {
          if (!isObj(sel)) return;
          for (const k of Object.keys(sel)) if (!SELECTOR.includes(k)) res.warnings.push({ source, field: `spec.${key}[${i}].${k}`, message: `not a label selector field; left out` });
          for (const k of Object.keys(sel)) if (!SELECTOR.includes(k)) delete sel[k];
        });
      }
    }
    if (kind === 'BGPPeer') peerNotes(out, apiVersion, source, res.warnings);
    if (kind === 'BGPPeer' && isObj(out.passwordSecret)) {
      const secret = out.passwordSecret;
      const from = str(secret.namespace, str(meta.namespace, 'metallb-system'));
      out.passwordSecret = { name: secret.name, namespace: ns };
      res.warnings.push({ source, field: 'spec.passwordSecret', message: `copy Secret ${from}/${str(secret.name)} to ${ns} (the speakers read Secrets only there)` });
    }
    const labels = isObj(meta.labels) ? meta.labels as Record<string, string> : undefined;
    res.objects.push({ apiVersion: API_VERSION, kind, metadata: { name, namespace: ns, ...(labels ? { labels } : {}) }, spec: out });
  };
  for (const d of docs) visit(d);
  return res;
}

const camel = (k: string): string => k.replace(/-([a-z0-9])/g, (_m, c: string) => c.toUpperCase());

/** Copies known keys (kebab-case -> camelCase), reporting the rest. */
function take(src: Json, known: readonly string[], source: string, at: string, warnings: ImportWarning[], rename: Record<string, string> = {}): Json {
  const out: Json = {};
  for (const [k, v] of Object.entries(src)) {
    if (!known.includes(k)) {
      warnings.push({ source, field: `${at}.${k}`, message: `Portico has no counterpart for ${k}; left out` });
      continue;
    }
    out[rename[k] ?? camel(k)] = v;
  }
  return out;
}

function selectors(v: unknown, source: string, at: string, warnings: ImportWarning[]): Json[] {
  if (!Array.isArray(v)) return [];
  return v.filter(isObj).map((s, i) => {
    const sel = take(s, ['match-labels', 'match-expressions'], source, `${at}[${i}]`, warnings);
    return sel;
  });
}

/**
 * A CIDR with host bits (203.0.113.40/24), which MetalLB takes as its
 * network, is refused by Portico's CRD: the network it stands for, or
 * undefined when the entry is not such a CIDR.
 */
export function networkOf(entry: string): string | undefined {
  const m = /^\s*([^/\s]+)\/(\d+)\s*$/.exec(entry);
  if (!m) return undefined;
  let ip;
  try { ip = parseIP(m[1]!); } catch { return undefined; }
  const bits = ip.family === 'IPv4' ? 32 : 128;
  const len = Number(m[2]);
  if (len > bits) return undefined;
  const mask = ((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - len)) - 1n);
  const net = ip.value & mask;
  if (net === ip.value) return undefined;
  return `${formatIP(ip.family, net)}/${len}`;
}

/** Rewrites host-bit CIDRs of a pool's addresses to their network, saying so for each. */
function normaliseAddresses(addresses: unknown, source: string, at: string, warnings: ImportWarning[]): unknown {
  if (!Array.isArray(addresses)) return addresses;
  return addresses.map((a, i) => {
    if (typeof a !== 'string') return a;
    const net = networkOf(a);
    if (net === undefined) return a;
    warnings.push({ source, field: `${at}[${i}]`, message: `${a.trim()} has host bits set: written as its network ${net}, the addresses MetalLB served from it` });
    return net;
  });
}

/** Kubernetes object names: lower case, digits, '-' and '.'. */
function objectName(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9.-]+/g, '-').replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '') || 'unnamed';
}

function convertLegacy(cm: Json, source: string, ns: string, res: ImportResult): void {
  const data = isObj(cm.data) ? cm.data : {};
  const text = data.config;
  if (typeof text !== 'string') { res.warnings.push({ source, field: 'data.config', message: 'no config key: not MetalLB\'s ConfigMap; skipped' }); return; }
  let doc: unknown;
  try { doc = parseYAML(text); } catch (err) { res.warnings.push({ source, field: 'data.config', message: `not valid YAML: ${(err as Error).message.split('\n')[0]}` }); return; }
  if (!isObj(doc)) return;
  const w = res.warnings;
  const push = (kind: string, name: string, spec: Json): void => { res.objects.push({ apiVersion: API_VERSION, kind, metadata: { name, namespace: ns }, spec }); };
  for (const k of Object.keys(doc)) {
    if (!['address-pools', 'peers', 'bgp-communities', 'bfd-profiles'].includes(k)) w.push({ source, field: `config.${k}`, message: `unknown section ${k}; left out` });
  }

  const communities = isObj(doc['bgp-communities']) ? doc['bgp-communities'] : {};
  if (Object.keys(communities).length > 0) {
    push('Community', 'communities', { communities: Object.entries(communities).map(([name, value]) => ({ name, value: String(value) })) });
  }

  (Array.isArray(doc['bfd-profiles']) ? doc['bfd-profiles'] : []).filter(isObj).forEach((p, i) => {
    const spec = take(p, ['name', 'receive-interval', 'transmit-interval', 'detect-multiplier', 'echo-interval', 'echo-mode', 'passive-mode', 'minimum-ttl'], source, `config.bfd-profiles[${i}]`, w);
    const name = objectName(str(spec.name, `bfd-${i}`));
    delete spec.name;
    for (const k of ['echoMode', 'echo-mode']) {
      if (spec[k] === true) { delete spec[k]; w.push({ source, field: `config.bfd-profiles[${i}].echo-mode`, message: ECHO_NOTE }); }
    }
    push('BFDProfile', name, spec);
  });

  (Array.isArray(doc.peers) ? doc.peers : []).filter(isObj).forEach((p, i) => {
    const at = `config.peers[${i}]`;
    const spec = take(p, ['my-asn', 'peer-asn', 'peer-address', 'source-address', 'peer-port', 'hold-time', 'keepalive-time', 'connect-time', 'router-id', 'node-selectors', 'password', 'bfd-profile', 'ebgp-multihop', 'enable-graceful-restart', 'vrf'], source, at, w,
      { 'my-asn': 'myASN', 'peer-asn': 'peerASN', 'router-id': 'routerID', 'ebgp-multihop': 'ebgpMultiHop' });
    if (spec.nodeSelectors !== undefined) spec.nodeSelectors = selectors(p['node-selectors'], source, `${at}.node-selectors`, w);
    if (typeof spec.bfdProfile === 'string') spec.bfdProfile = objectName(spec.bfdProfile);
    push('BGPPeer', objectName(`peer-${str(p['peer-address'], String(i))}`), spec);
  });

  (Array.isArray(doc['address-pools']) ? doc['address-pools'] : []).filter(isObj).forEach((p, i) => {
    const at = `config.address-pools[${i}]`;
    const known = ['name', 'protocol', 'addresses', 'auto-assign', 'avoid-buggy-ips', 'bgp-advertisements'];
    const spec = take(p, known, source, at, w, { 'avoid-buggy-ips': 'avoidBuggyIPs' });
    const name = objectName(str(spec.name, `pool-${i}`));
    if (name !== spec.name) w.push({ source, field: `${at}.name`, message: `renamed to ${name} (a Kubernetes object name)` });
    const protocol = spec.protocol;
    delete spec.name; delete spec.protocol; delete spec.bgpAdvertisements;
    spec.addresses = normaliseAddresses(spec.addresses, source, `${at}.addresses`, w);
    push('IPAddressPool', name, spec);
    if (protocol === 'layer2') push('L2Advertisement', name, { ipAddressPools: [name] });
    else if (protocol === 'bgp') {
      const ads = Array.isArray(p['bgp-advertisements']) ? p['bgp-advertisements'].filter(isObj) : [{}];
      ads.forEach((ad, j) => {
        const a = take(ad, ['aggregation-length', 'aggregation-length-v6', 'localpref', 'communities'], source, `${at}.bgp-advertisements[${j}]`, w, { localpref: 'localPref' });
        push('BGPAdvertisement', ads.length === 1 ? name : `${name}-${j}`, { ...a, ipAddressPools: [name] });
      });
    } else w.push({ source, field: `${at}.protocol`, message: `protocol ${str(protocol, 'unset')} is neither layer2 nor bgp: no advertisement made` });
  });
}
