// The legacy ConfigMap (portico-system/config, key `config`) in MetalLB's old
// YAML format, turned into the same domain objects as the CRDs. Each legacy
// pool also yields the advertisement its `protocol` implied, named after it.
import { parse as parseYAML } from 'yaml';
import { FieldReader, isObject } from './fields.ts';
import { bfdCommon, parseAddresses, peerCommon } from './crd.ts';
import type { BFDProfileConfig, BGPAdv, ConfigProblem, L2Adv, Peer, Pool } from './model.ts';

export interface LegacyConfig {
  pools: Pool[];
  l2Advertisements: L2Adv[];
  bgpAdvertisements: BGPAdv[];
  peers: Peer[];
  communities: Record<string, string>;
  bfdProfiles: BFDProfileConfig[];
}

const NAME = 'portico-system/config';

/** Parses the `config` key; every problem names its path inside the YAML (`address-pools[0].addresses[1]`). */
export function parseLegacyConfig(text: string, problems: ConfigProblem[]): LegacyConfig {
  const out: LegacyConfig = { pools: [], l2Advertisements: [], bgpAdvertisements: [], peers: [], communities: {}, bfdProfiles: [] };
  const top = new FieldReader('ConfigMap', NAME, problems);
  let doc: unknown;
  try {
    doc = parseYAML(text);
  } catch (err) {
    top.invalid('config', `not valid YAML: ${(err as Error).message.split('\n')[0]}`);
    return out;
  }
  if (doc === null || doc === undefined) return out;
  if (!isObject(doc)) { top.invalid('config', 'must be a YAML mapping'); return out; }
  top.noUnknown(doc, '', ['address-pools', 'peers', 'bgp-communities', 'bfd-profiles']);

  const communities = top.stringMap(doc, '', 'bgp-communities');
  Object.assign(out.communities, communities);

  listOf(top, doc, 'bfd-profiles').forEach(([p, entry]) => {
    const name = typeof entry.name === 'string' ? entry.name : '';
    const r = new FieldReader('ConfigMap', NAME, problems);
    if (name === '') { r.invalid(`${p}.name`, 'is required'); return; }
    const profile = bfdCommon(r, entry, p, {
      receiveInterval: 'receive-interval', transmitInterval: 'transmit-interval', detectMultiplier: 'detect-multiplier', echoInterval: 'echo-interval',
      echoMode: 'echo-mode', passiveMode: 'passive-mode', minimumTtl: 'minimum-ttl',
    }, 'configmap', ['name']);
    if (profile) out.bfdProfiles.push({ ...profile, name });
  });

  listOf(top, doc, 'peers').forEach(([p, entry], i) => {
    const r = new FieldReader('ConfigMap', NAME, problems);
    r.noUnknown(entry, p, ['my-asn', 'peer-asn', 'peer-address', 'source-address', 'peer-port', 'hold-time', 'keepalive-time', 'connect-time', 'router-id',
      'node-selectors', 'password', 'bfd-profile', 'ebgp-multihop', 'enable-graceful-restart', 'vrf']);
    const peer = peerCommon(r, entry, p, {
      myASN: 'my-asn', peerASN: 'peer-asn', peerAddress: 'peer-address', sourceAddress: 'source-address', peerPort: 'peer-port',
      holdTime: 'hold-time', keepaliveTime: 'keepalive-time', connectTime: 'connect-time', routerID: 'router-id', nodeSelectors: 'node-selectors', password: 'password',
      bfdProfile: 'bfd-profile', ebgpMultiHop: 'ebgp-multihop', enableGracefulRestart: 'enable-graceful-restart', vrf: 'vrf',
    }, 'configmap', true);
    if (peer) out.peers.push({ ...peer, name: `configmap-peer-${i}` });
  });

  listOf(top, doc, 'address-pools').forEach(([p, entry]) => {
    const r = new FieldReader('ConfigMap', NAME, problems);
    r.noUnknown(entry, p, ['name', 'protocol', 'addresses', 'auto-assign', 'avoid-buggy-ips', 'bgp-advertisements']);
    const name = r.string(entry, p, 'name', true);
    const protocol = r.string(entry, p, 'protocol', true);
    if (protocol !== undefined && protocol !== 'layer2' && protocol !== 'bgp') r.invalid(`${p}.protocol`, 'must be layer2 or bgp');
    const addresses = r.strings(entry, p, 'addresses');
    if (addresses.length === 0 && !r.failed) r.invalid(`${p}.addresses`, 'must list at least one CIDR or range');
    const ranges = parseAddresses(r, addresses, `${p}.addresses`);
    const autoAssign = r.bool(entry, p, 'auto-assign') ?? true;
    const avoidBuggyIPs = r.bool(entry, p, 'avoid-buggy-ips') ?? false;
    const ads: BGPAdv[] = [];
    if (protocol === 'layer2' && entry['bgp-advertisements'] !== undefined) r.invalid(`${p}.bgp-advertisements`, 'only allowed with protocol bgp');
    if (protocol === 'bgp' && name !== undefined) {
      const list = listOf(r, entry, 'bgp-advertisements', p);
      // A bgp pool without advertisements is announced with the defaults, as before.
      if (list.length === 0 && !Array.isArray(entry['bgp-advertisements'])) list.push([`${p}.bgp-advertisements[0]`, {}]);
      list.forEach(([ap, ad], j) => {
        r.noUnknown(ad, ap, ['aggregation-length', 'aggregation-length-v6', 'localpref', 'communities']);
        ads.push({
          name: `configmap-${name}-bgp-${j}`,
          source: 'configmap',
          aggregationLength: r.int(ad, ap, 'aggregation-length', 0, 32) ?? 32,
          aggregationLengthV6: r.int(ad, ap, 'aggregation-length-v6', 0, 128) ?? 128,
          localPref: r.int(ad, ap, 'localpref', 0, 0xffffffff),
          communities: r.strings(ad, ap, 'communities'),
          pools: [name],
          poolSelectors: [],
          nodeSelectors: [],
          peers: [],
          serviceSelectors: [],
        });
      });
    }
    if (r.failed || name === undefined) return;
    out.pools.push({
      name, source: 'configmap', ranges, autoAssign, avoidBuggyIPs, allowExternalIPs: false,
      priority: undefined, namespaces: [], namespaceSelectors: [], serviceSelectors: [], labels: {},
    });
    if (protocol === 'layer2') {
      out.l2Advertisements.push({ name: `configmap-${name}-l2`, source: 'configmap', pools: [name], poolSelectors: [], nodeSelectors: [], interfaces: [], serviceSelectors: [], preferredNodeSelectors: [] });
    }
    out.bgpAdvertisements.push(...ads);
  });
  return out;
}

function listOf(r: FieldReader, obj: Record<string, unknown>, key: string, path = ''): [string, Record<string, unknown>][] {
  const v = obj[key];
  const p = path === '' ? key : `${path}.${key}`;
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) { r.invalid(p, 'must be a list'); return []; }
  const out: [string, Record<string, unknown>][] = [];
  v.forEach((e, i) => {
    if (!isObject(e)) r.invalid(`${p}[${i}]`, 'must be a mapping');
    else out.push([`${p}[${i}]`, e]);
  });
  return out;
}
