// `portico status`: what Portico did and what is wrong, from what the
// components write to the API server: pool status (used/free per family),
// Service status and the pool annotation, Events (AllocationFailed, the
// speakers' announcement and BGP session Events) and the Valid conditions on
// the configuration objects. Gathering is one function, the model a pure one,
// the rendering another.
import { SPEAKER_ANNOTATIONS, apiMessage, httpStatus, isNotFound, kubeConnection, listJSON, type KubeSource, isOurService, ANNOTATIONS, GROUP, KINDS, LEGACY_CONFIGMAP, NAMESPACE, PLURALS, VERSION, anySelectorMatches, buildConfig, parseLegacyConfig, type Config, type ConfigProblem, type PorticoKind } from '@portico/shared';
import { table, type Painter } from './table.ts';

type Meta = { name?: string; namespace?: string; annotations?: Record<string, string>; creationTimestamp?: string | Date };
type Cond = { type?: string; status?: string; reason?: string; message?: string };
export interface RawObject { kind?: string; metadata?: Meta; spec?: Record<string, unknown>; status?: Record<string, unknown> & { conditions?: Cond[] }; data?: Record<string, string> }
export interface RawEvent {
  type?: string; reason?: string; message?: string;
  involvedObject?: { kind?: string; name?: string; namespace?: string };
  lastTimestamp?: string | Date | null; eventTime?: string | Date | null; firstTimestamp?: string | Date | null;
  metadata?: { creationTimestamp?: string | Date };
  source?: { component?: string; host?: string };
}

/** What `portico status` reads, as plain JSON. */
export interface StatusInput {
  namespace: string;
  services: RawObject[];
  /** portico.dev objects by kind. */
  config: Partial<Record<PorticoKind, RawObject[]>>;
  /** The legacy ConfigMap's `config` text, when the ConfigMap exists. */
  legacyConfig?: string;
  /** Events on Services (all namespaces) and on objects in Portico's namespace. */
  events: RawEvent[];
  /** ServiceBGPStatus objects the speakers write (one per node and Service announced over BGP), when the kind exists. */
  bgpStatuses?: RawObject[];
}

export interface FamilyUsage { used: number; free: number }
export interface PoolRow { name: string; source: 'crd' | 'configmap'; ipv4: FamilyUsage | undefined; ipv6: FamilyUsage | undefined; valid: boolean | undefined; message: string }
export interface ServiceRow {
  namespace: string; name: string; ips: string[]; pool: string;
  state: 'allocated' | 'pending' | 'other-class';
  /** Who announces it: the node (layer 2) or the BGP peers, from the speakers' Events. */
  announcedBy: string;
  problem: string;
}
export interface PeerRow { name: string; address: string; asn: string; state: 'up' | 'down' | 'unknown'; detail: string }
export interface StatusModel { namespace: string; pools: PoolRow[]; services: ServiceRow[]; peers: PeerRow[]; problems: string[] }

/** Written on a Service by the speaker that answers for it in layer 2 (packages/speaker/src/l2/announcer.ts). */
export const LAYER2_NODE = SPEAKER_ANNOTATIONS.layer2Node;
export const LAYER2_INTERFACES = SPEAKER_ANNOTATIONS.layer2Interfaces;

/** Event reasons the speakers use to say where an IP is announced. */
export const ANNOUNCE_REASONS = ['nodeAssigned', 'NodeAssigned', 'IPAnnounced', 'BGPAnnounced'] as const;

const time = (e: RawEvent): number => new Date(e.lastTimestamp ?? e.eventTime ?? e.firstTimestamp ?? e.metadata?.creationTimestamp ?? 0).getTime();
const latest = (events: readonly RawEvent[]): RawEvent | undefined => [...events].sort((a, b) => time(b) - time(a))[0];
const str = (v: unknown, fallback: string): string => (typeof v === 'string' || typeof v === 'number' ? String(v) : fallback);
const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);
const isLB = (s: RawObject): boolean => s.spec?.type === 'LoadBalancer';

function usage(status: RawObject['status'], family: '4' | '6'): FamilyUsage | undefined {
  const used = num(status?.[`assignedIPv${family}`]);
  const free = num(status?.[`availableIPv${family}`]);
  if (used === undefined && free === undefined) return undefined;
  if ((used ?? 0) === 0 && (free ?? 0) === 0) return undefined;
  return { used: used ?? 0, free: free ?? 0 };
}

function validity(o: RawObject): { valid: boolean | undefined; message: string; reason: string } {
  const c = o.status?.conditions?.find((x) => x.type === 'Valid');
  if (!c) return { valid: undefined, message: 'not reported yet', reason: '' };
  return { valid: c.status === 'True', message: c.message ?? '', reason: c.reason ?? '' };
}

/** The layer-2 owner's annotations when present (kept current by the owner), else the latest announcement Event. */
function announcedBy(annotations: Record<string, string>, event: RawEvent | undefined): string {
  const node = annotations[LAYER2_NODE];
  if (node) return `${node} (layer 2${annotations[LAYER2_INTERFACES] ? `, ${annotations[LAYER2_INTERFACES]}` : ''})`;
  return event?.message ?? '';
}

/** The BGP peers a pool is advertised to (its BGPAdvertisements' peers; none listed = every peer), sorted. */
export function bgpPeersOf(config: Config, pool: string): string[] {
  const p = config.pools.find((x) => x.name === pool);
  if (!p) return [];
  const out = new Set<string>();
  for (const ad of config.bgpAdvertisements) {
    const selects = (ad.pools.length === 0 && ad.poolSelectors.length === 0) || ad.pools.includes(p.name) || anySelectorMatches(ad.poolSelectors, p.labels);
    if (!selects) continue;
    for (const peer of ad.peers.length > 0 ? ad.peers : config.peers.map((x) => x.name)) out.add(peer);
  }
  return [...out].sort();
}

/** The model: pure, so tests give it objects and compare rows. */
export function buildStatus(input: StatusInput, opts: { loadBalancerClass?: string } = {}): StatusModel {
  const problems: string[] = [];
  const pools: PoolRow[] = [];
  for (const p of input.config.IPAddressPool ?? []) {
    const v = validity(p);
    pools.push({ name: p.metadata?.name ?? '', source: 'crd', ipv4: usage(p.status, '4'), ipv6: usage(p.status, '6'), valid: v.valid, message: v.message });
  }
  if (input.legacyConfig !== undefined) {
    const legacyProblems: ConfigProblem[] = [];
    const legacy = parseLegacyConfig(input.legacyConfig, legacyProblems);
    for (const p of legacy.pools) pools.push({ name: p.name, source: 'configmap', ipv4: undefined, ipv6: undefined, valid: legacyProblems.length === 0, message: `from ConfigMap ${input.namespace}/${LEGACY_CONFIGMAP.name}` });
    for (const p of legacyProblems) problems.push(`ConfigMap ${input.namespace}/${LEGACY_CONFIGMAP.name}: ${p.field}: ${p.message}`);
  }
  pools.sort((a, b) => a.name.localeCompare(b.name));

  let refused = false;
  for (const kind of KINDS) {
    for (const o of input.config[kind] ?? []) {
      const v = validity(o);
      if (v.valid === false && v.reason !== 'NotApplied') {
        refused = true;
        problems.push(`${kind} ${o.metadata?.name}: ${v.reason}: ${v.message}`);
      }
    }
  }
  if (refused || input.legacyConfig !== undefined && problems.some((p) => p.startsWith('ConfigMap '))) {
    problems.unshift('configuration refused: the last good one stays in force (stale) until the problems below are fixed');
  }

  const byObject = new Map<string, RawEvent[]>();
  for (const e of input.events) {
    const k = `${e.involvedObject?.kind}/${e.involvedObject?.namespace ?? ''}/${e.involvedObject?.name}`;
    let l = byObject.get(k);
    if (!l) byObject.set(k, (l = []));
    l.push(e);
  }

  // The configuration as the components parse it (problems aside: this is for display), to map pools to BGP peers.
  const { config } = buildConfig({
    pools: input.config.IPAddressPool ?? [], l2Advertisements: input.config.L2Advertisement ?? [], bgpAdvertisements: input.config.BGPAdvertisement ?? [],
    peers: input.config.BGPPeer ?? [], communities: input.config.Community ?? [], bfdProfiles: input.config.BFDProfile ?? [], legacy: input.legacyConfig,
  });
  const peerState = new Map<string, string>();
  for (const p of input.config.BGPPeer ?? []) {
    const name = p.metadata?.name ?? '';
    const ev = latest((byObject.get(`BGPPeer/${input.namespace}/${name}`) ?? []).filter((e) => (e.reason ?? '').startsWith('BGP')));
    peerState.set(name, !ev ? 'unknown' : ev.type === 'Warning' ? 'down' : 'up');
  }

  const services: ServiceRow[] = [];
  for (const s of input.services.filter(isLB)) {
    const ns = s.metadata?.namespace ?? '';
    const name = s.metadata?.name ?? '';
    const events = byObject.get(`Service/${ns}/${name}`) ?? [];
    const ingress = (s.status?.loadBalancer as { ingress?: { ip?: string; hostname?: string }[] } | undefined)?.ingress ?? [];
    const ips = ingress.map((i) => i.ip ?? i.hostname ?? '').filter(Boolean);
    const ours = isOurService(s, opts.loadBalancerClass);
    const announce = latest(events.filter((e) => (ANNOUNCE_REASONS as readonly string[]).includes(e.reason ?? '')));
    const row: ServiceRow = {
      namespace: ns, name, ips, pool: s.metadata?.annotations?.[ANNOTATIONS.allocatedFromPool] ?? '',
      state: !ours ? 'other-class' : ips.length > 0 ? 'allocated' : 'pending',
      announcedBy: announcedBy(s.metadata?.annotations ?? {}, announce), problem: '',
    };
    const reported = (input.bgpStatuses ?? []).map((o) => o.status as { node?: string; serviceName?: string; serviceNamespace?: string; peers?: string[] } | undefined)
      .filter((st) => st?.serviceName === name && st.serviceNamespace === ns);
    if (row.state === 'allocated' && reported.length > 0) {
      // What the speakers say they announce: nodes and the peers they announce to.
      const nodes = [...new Set(reported.map((st) => st!.node ?? '?'))].sort();
      const peers = [...new Set(reported.flatMap((st) => st!.peers ?? []))].sort();
      const bgp = `BGP from ${nodes.join(', ')} to ${peers.map((p) => (peerState.get(p) === 'up' ? p : `${p} (${peerState.get(p) ?? 'unknown'})`)).join(', ')}`;
      row.announcedBy = row.announcedBy ? `${row.announcedBy}; ${bgp}` : bgp;
    } else if (row.state === 'allocated' && row.pool) {
      // No status objects (yet): the peers the configuration advertises the pool to.
      const peers = bgpPeersOf(config, row.pool);
      if (peers.length > 0) {
        const bgp = `BGP to ${peers.map((p) => (peerState.get(p) === 'up' ? p : `${p} (${peerState.get(p) ?? 'unknown'})`)).join(', ')}`;
        row.announcedBy = row.announcedBy ? `${row.announcedBy}; ${bgp}` : bgp;
      }
    }
    if (row.state === 'pending') {
      const failed = latest(events.filter((e) => e.reason === 'AllocationFailed'));
      row.problem = failed?.message ?? 'no allocation yet (is the controller running?)';
      problems.push(`Service ${ns}/${name} pending: ${row.problem}`);
    }
    services.push(row);
  }
  services.sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`));

  const peers: PeerRow[] = [];
  for (const p of input.config.BGPPeer ?? []) {
    const name = p.metadata?.name ?? '';
    const spec = p.spec ?? {};
    const ev = latest((byObject.get(`BGPPeer/${input.namespace}/${name}`) ?? []).filter((e) => (e.reason ?? '').startsWith('BGP')));
    const state: PeerRow['state'] = !ev ? 'unknown' : ev.type === 'Warning' ? 'down' : 'up';
    const detail = ev ? `${ev.reason}${ev.source?.host ? ` (${ev.source.host})` : ''}: ${ev.message ?? ''}` : 'no session Event yet';
    // localASN replaces myASN on the session; dynamicASN stands where peerASN would; an interface where the address would.
    const local = str(spec.localASN, str(spec.myASN, '?'));
    const remote = str(spec.peerASN, spec.dynamicASN === undefined ? '?' : `${str(spec.dynamicASN, '?')} (dynamic)`);
    const address = str(spec.peerAddress, spec.interface === undefined ? '' : `interface ${str(spec.interface, '?')}`);
    peers.push({ name, address, asn: `${local} -> ${remote}`, state, detail });
    if (state === 'down') problems.push(`BGPPeer ${name} down: ${detail}`);
  }
  peers.sort((a, b) => a.name.localeCompare(b.name));
  return { namespace: input.namespace, pools, services, peers, problems };
}

const fam = (u: FamilyUsage | undefined): string => (u ? `${u.used}/${u.used + u.free}` : '-');

/** The human view: three tables and the problems, coloured when `paint` is enabled. */
export function renderStatus(m: StatusModel, paint: Painter): string {
  const out: string[] = [];
  out.push(paint('cyan', `Pools (${m.namespace})`));
  out.push(m.pools.length === 0 ? paint('yellow', '  no address pools: nothing can be allocated') : table(['NAME', 'SOURCE', 'IPV4 USED/TOTAL', 'IPV6 USED/TOTAL', 'VALID'], m.pools.map((p) => [
    p.name, p.source, fam(p.ipv4), fam(p.ipv6),
    p.valid === undefined ? paint('dim', 'unknown') : p.valid ? paint('green', 'yes') : paint('red', 'no'),
  ]), paint));
  out.push('');
  out.push(paint('cyan', 'LoadBalancer Services'));
  out.push(m.services.length === 0 ? '  none' : table(['SERVICE', 'IPS', 'POOL', 'ANNOUNCED BY', 'STATE'], m.services.map((s) => [
    `${s.namespace}/${s.name}`, s.ips.join(',') || '-', s.pool || '-', s.announcedBy || '-',
    s.state === 'allocated' ? paint('green', 'allocated') : s.state === 'pending' ? paint('red', 'pending') : paint('dim', 'other class'),
  ]), paint));
  if (m.peers.length > 0) {
    out.push('');
    out.push(paint('cyan', 'BGP peers'));
    out.push(table(['PEER', 'ADDRESS', 'ASN', 'STATE', 'LAST EVENT'], m.peers.map((p) => [
      p.name, p.address, p.asn, p.state === 'up' ? paint('green', 'up') : p.state === 'down' ? paint('red', 'down') : paint('dim', 'unknown'), p.detail,
    ]), paint));
  }
  out.push('');
  if (m.problems.length === 0) out.push(paint('green', 'No problems.'));
  else {
    out.push(paint('red', `Problems (${m.problems.length})`));
    for (const p of m.problems) out.push(`  - ${p}`);
  }
  return `${out.join('\n')}\n`;
}

/** A read as an error names it: `list services (all namespaces)`, `read configmap portico-system/config`. */
type What = string;

/**
 * The API server refused a read `portico status` needs, or could not be
 * reached: says which server, what was being read and why.
 */
export class StatusFetchError extends Error {
  override readonly name = 'StatusFetchError';
  readonly code = 'PORTICO_STATUS_FETCH';
  /** The HTTP status, when the API server answered. */
  readonly status: number | undefined;

  constructor(message: string, status: number | undefined, cause: unknown) {
    super(message, { cause });
    this.status = status;
  }
}

/**
 * Reads everything buildStatus needs from the API server: every GET at once
 * (Promise.all) over one connection (the CLI's, cli/kube.ts, makes them
 * streams of one HTTP/2 connection), lists in pages. Errors are read as the
 * client-node version read them: a kind whose CRD is not installed (404) has
 * no objects, and ServiceBGPStatus absent leaves `bgpStatuses` unset; the
 * legacy ConfigMap is absent on any API error (404, or 403 for a user who may
 * not read ConfigMaps); any other refusal (a 403 on Services or a portico.dev
 * kind) or an unreachable server fails with StatusFetchError.
 */
export async function fetchStatus(src: KubeSource, namespace: string = NAMESPACE): Promise<StatusInput> {
  const conn = kubeConnection(src);
  const server = (await conn.server()).origin;
  const fail = (what: What, err: unknown): never => {
    const code = httpStatus(err);
    if (code === undefined) throw new StatusFetchError(`cannot reach the API server ${server}: ${err instanceof Error ? err.message : String(err)}`, undefined, err);
    const why = code === 401 ? 'unauthorized (are the kubeconfig\'s credentials current?)' : `HTTP ${code}: ${apiMessage(err)}`;
    throw new StatusFetchError(`API server ${server} refused to ${what}: ${why}`, code, err);
  };
  const list = async (what: What, path: string, opts: { absentOn404?: boolean } = {}): Promise<RawObject[] | undefined> => {
    try {
      return (await listJSON(conn, path)()).items as RawObject[];
    } catch (err) {
      if (opts.absentOn404 && isNotFound(err)) return undefined; // the kind is not installed
      return fail(what, err);
    }
  };
  const nsPath = `/api/v1/namespaces/${encodeURIComponent(namespace)}`;
  const custom = (plural: string): string => `/apis/${GROUP}/${VERSION}/namespaces/${encodeURIComponent(namespace)}/${plural}`;
  const [services, svcEvents, nsEvents, cm, bgpStatuses, ...kinds] = await Promise.all([
    list('list services (all namespaces)', '/api/v1/services'),
    list('list Service events (all namespaces)', `/api/v1/events?${new URLSearchParams({ fieldSelector: 'involvedObject.kind=Service' })}`),
    list(`list events in ${namespace}`, `${nsPath}/events`),
    conn.request<RawObject>('GET', `${nsPath}/configmaps/${LEGACY_CONFIGMAP.name}`).catch((err: unknown) => {
      if (httpStatus(err) !== undefined) return undefined; // absent, or not ours to read: no legacy configuration
      return fail(`read configmap ${namespace}/${LEGACY_CONFIGMAP.name}`, err);
    }),
    list(`list servicebgpstatuses.${GROUP} in ${namespace}`, custom('servicebgpstatuses'), { absentOn404: true }),
    ...KINDS.map((kind) => list(`list ${PLURALS[kind]}.${GROUP} in ${namespace}`, custom(PLURALS[kind]), { absentOn404: true })),
  ]);
  const config: StatusInput['config'] = {};
  for (const [i, kind] of KINDS.entries()) {
    const items = kinds[i];
    if (items) config[kind] = items;
  }
  const input: StatusInput = {
    namespace, services: services ?? [], config,
    events: [...(svcEvents ?? []), ...(nsEvents ?? []).filter((e) => (e as RawEvent).involvedObject?.kind !== 'Service')] as RawEvent[],
  };
  if (bgpStatuses) input.bgpStatuses = bgpStatuses;
  const text = cm?.data?.[LEGACY_CONFIGMAP.key];
  if (text !== undefined) input.legacyConfig = text;
  return input;
}
