// bgp-failover: how fast a router stops sending a LoadBalancer VIP's traffic
// to a node that lost power, and what a client behind the router feels. FRR
// (bgpd + bfdd, ECMP over up to 4 paths) peers with the speakers of 3 nodes;
// a pod on every node; two Services, externalTrafficPolicy Local and Cluster,
// each with an IPv4 VIP announced by all three nodes. A client namespace
// behind FRR opens a new connection to both VIPs every 10 ms (300 ms timeout,
// no retry). The router hashes flows over the ECMP next hops by L4 ports
// (fib_multipath_hash_policy=1: the one client's connections spread over the
// nodes, as many clients' would); this bench sets that in its router.
//
// Per trial: settle, kill one node (the lab's killNode: its link down and
// SIGKILL of everything on it, a power cut), then bring it back. Figures from
// the kill: (a) rib_ms / fib_ms, until FRR's RIB (`show ip route bgp json`)
// and the router's kernel FIB (`ip -j route show proto bgp`) no longer use
// the node for either VIP, each polled back to back with timestamps (the
// figure is the end of the first query that saw it gone, an upper bound;
// *_res_ms is how long that query took: the one before it still saw the node,
// so the removal lies within about twice that before the figure); FRR's own
// logs (millisecond timestamps) give when bfdd declared the session down and
// when bgpd dropped the neighbor; (b) per Service, the start of the last
// failed request (0: none failed) and the failed-request count. On a loaded
// machine the queries and the client are starved too: *_res_ms and the
// client's skipped starts say how much.
// Variants: BFD 50 ms x 3 (target p99 <= 300 ms), BFD 300 ms x 3 (MetalLB's
// default profile), and no BFD with a hold time of 3 s. With BFD the hold time
// is 9 s, so BFD is what detects the loss. IPv4 only.
//
// Usage: npm run bench -- bgp-failover [trials=20] [--variants=bfd-50x3,bfd-300x3,hold-3s]
//   (root; lab prefix $PORTICO_LAB_PREFIX or pbgpfo). Fewer than 20 trials is
//   a quick run, and its summary lines say so.
// JSON lines: one per trial, then one summary per variant, each with the load
// average (/proc/loadavg, 1 min) at its start and end.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Lab, addRouter, run, sleep, waitFor, type Router } from '@portico/lab';
import { Cleanups, NODE_AS, NS, ROUTER_AS, addClientBehind, bgpPeer, frrBfdPeers, frrBgpConfig, frrNeighbors, installSpeakers } from '../test/e2e/bgp-env.ts';
import { apply, pool, service, type Obj } from '../test/e2e/objects.ts';
import { probeFrom } from '../test/e2e/service-failover-env.ts';
import { report, summary } from './stats.ts';

interface Variant { bfdMs?: number; holdS: number; probeMs: number }
const VARIANTS: Record<string, Variant> = {
  'bfd-300x3': { bfdMs: 300, holdS: 9, probeMs: 4000 },
  'hold-3s': { holdS: 3, probeMs: 6500 },
  'bfd-50x3': { bfdMs: 50, holdS: 9, probeMs: 3000 },
};
/** A variant whose sessions fail to settle this many trials in a row is given up (its summary says so). */
const GIVE_UP_AFTER = 3;
const MULT = 3;
const APP = 'bgp-failover';
const POOL = 'bgp-failover-pool';
const VIPS = { Local: '203.0.113.81', Cluster: '203.0.113.82' } as const;
type Policy = keyof typeof VIPS;
const POLICIES = Object.keys(VIPS) as Policy[];

let stopping = false;
const load1 = (): number => Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);

// ---- the router's view, sampled ---------------------------------------------

/** One query of a table: when it ran, and the next hops each VIP had. */
interface TableSample { t0: number; t1: number; hops: Record<string, string[]> }

/** The kernel FIB's BGP routes for the VIPs (`ip -j route`): next-hop gateways by VIP. */
function fibHops(json: string): Record<string, string[]> {
  const routes = JSON.parse(json || '[]') as { dst: string; gateway?: string; nexthops?: { gateway?: string }[] }[];
  const out: Record<string, string[]> = {};
  for (const r of routes) out[r.dst.replace(/\/32$/, '')] = r.nexthops ? r.nexthops.map((h) => h.gateway ?? '') : [r.gateway ?? ''];
  return out;
}

/** FRR's RIB (`show ip route bgp json`): the selected route's active next hops by VIP. */
function ribHops(json: string): Record<string, string[]> {
  const j = JSON.parse(json || '{}') as Record<string, { selected?: boolean; nexthops?: { ip?: string; active?: boolean }[] }[]>;
  const out: Record<string, string[]> = {};
  for (const [prefix, entries] of Object.entries(j)) {
    const sel = entries.find((e) => e.selected);
    out[prefix.replace(/\/32$/, '')] = (sel?.nexthops ?? []).filter((h) => h.active).map((h) => h.ip ?? '');
  }
  return out;
}

/**
 * When the table stopped using `gone` for every VIP in `vips` after `from`:
 * the end of the first query (started after `from`) that no longer lists it,
 * and that query's window. Undefined when it never did. Pure.
 */
function goneAt(samples: readonly TableSample[], from: number, gone: string, vips: readonly string[]): { ms: number; resMs: number } | undefined {
  const s = samples.find((x) => x.t0 >= from && vips.every((v) => !(x.hops[v] ?? []).includes(gone)));
  return s && { ms: s.t1 - from, resMs: s.t1 - s.t0 };
}

/** Queries `read` back to back until `stop()`; every sample with its start and end time. */
async function sampleTable(read: () => Promise<string>, parse: (s: string) => Record<string, string[]>, stop: () => boolean, gapMs: number): Promise<TableSample[]> {
  const out: TableSample[] = [];
  while (!stop()) {
    const t0 = Date.now();
    const text = await read().catch(() => '');
    out.push({ t0, t1: Date.now(), hops: text ? parse(text) : {} });
    await sleep(gapMs);
  }
  return out;
}

// ---- FRR's own account, from its logs --------------------------------------

/** FRR log lines as (time, text); FRR writes local time, which is UTC on the lab machines (TZ is honoured). */
function frrLog(file: string): { at: number; text: string }[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').flatMap((l) => {
    const m = /^(\d{4})\/(\d\d)\/(\d\d) (\d\d:\d\d:\d\d\.\d{3}) (.*)$/.exec(l);
    return m ? [{ at: new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}`).getTime(), text: m[5]! }] : [];
  });
}

/** The first line after `from` that says `peer` went down and matches `what`, as ms after `from`. Pure. */
function downAfter(lines: readonly { at: number; text: string }[], from: number, peer: string, what: RegExp): number | undefined {
  const l = lines.find((x) => x.at >= from - 1 && x.text.includes(peer) && /down/i.test(x.text) && what.test(x.text));
  return l && l.at - from;
}

// ---- the set-up ---------------------------------------------------------------

const logConf = (file: string): string => `log file ${file} debugging\nlog timestamp precision 3\n`;
const bfddConf = (dir: string): string => `${logConf(path.join(dir, 'bfdd.log'))}debug bfd peer
bfd
${Object.values(VARIANTS).filter((v) => v.bfdMs).map((v) => ` profile f${v.bfdMs}\n  transmit-interval ${v.bfdMs}\n  receive-interval ${v.bfdMs}\n  detect-multiplier ${MULT}\n !`).join('\n')}
!
`;

async function startRouter(lab: Lab): Promise<Router> {
  const nodes = lab.nodes.map((n) => n.ipv4);
  // Where addRouter puts the router's files (its logs go there too).
  const dir = path.join(lab.dir, 'router-f-frr');
  const frr = await addRouter(lab, {
    name: 'f-frr', kind: 'frr', bfdd: bfddConf(dir), config: logConf(path.join(dir, 'bgpd.log')) + frrBgpConfig('f-frr', ROUTER_AS, `
 neighbor NODES peer-group
 neighbor NODES remote-as ${NODE_AS}
 neighbor NODES passive
${nodes.map((ip) => ` neighbor ${ip} peer-group NODES`).join('\n')}
 address-family ipv4 unicast
  maximum-paths 4
  neighbor NODES activate
 exit-address-family
`),
  });
  // Hash flows by ports too: one client's new connections spread over the ECMP next hops.
  await lab.exec(frr.host.name, ['sysctl', '-qw', 'net.ipv4.fib_multipath_hash_policy=1']);
  return frr;
}

async function applyWorkload(lab: Lab, cleanups: Cleanups): Promise<void> {
  cleanups.push(() => lab.kubectlResult(['delete', 'bgppeers,bgpadvertisements,bfdprofiles', '-n', NS, '-l', `portico.dev/bench=${APP}`, '--ignore-not-found']));
  cleanups.push(() => lab.kubectlResult(['delete', 'ipaddresspools', POOL, '-n', NS, '--ignore-not-found']));
  const label = { 'portico.dev/bench': APP };
  await apply(lab,
    pool(POOL, { addresses: ['203.0.113.80/29'], autoAssign: false }),
    { apiVersion: 'portico.dev/v1beta1', kind: 'BGPAdvertisement', metadata: { name: APP, namespace: NS, labels: label }, spec: { ipAddressPools: [POOL] } },
    ...Object.values(VARIANTS).filter((v) => v.bfdMs).map((v): Obj => ({
      apiVersion: 'portico.dev/v1beta1', kind: 'BFDProfile', metadata: { name: `f${v.bfdMs}`, namespace: NS, labels: label },
      spec: { receiveInterval: v.bfdMs, transmitInterval: v.bfdMs, detectMultiplier: MULT },
    })),
  );
  await lab.kubectlResult(['create', 'namespace', APP]);
  cleanups.push(() => lab.kubectlResult(['delete', 'namespace', APP, '--wait=false']));
  await apply(lab, ...lab.nodes.map((n): Obj => ({
    apiVersion: 'v1', kind: 'Pod', metadata: { name: `web-${n.name}`, namespace: APP, labels: { app: 'web' } },
    spec: {
      nodeName: n.name,
      containers: [{ name: 'web', image: 'portico.dev/podserver', ports: [{ containerPort: 80 }], readinessProbe: { httpGet: { path: '/healthz', port: 80 }, periodSeconds: 1 } }],
    },
  })));
  await apply(lab, ...POLICIES.map((p) => service(`web-${p.toLowerCase()}`, APP,
    { selector: { app: 'web' }, externalTrafficPolicy: p, ipFamilyPolicy: 'SingleStack', ipFamilies: ['IPv4'] },
    { 'portico.dev/address-pool': POOL, 'portico.dev/loadBalancerIPs': VIPS[p] })));
}

/** Both ends to the variant's timers: FRR's peer group, the BGPPeer, then a reset of the sessions so the new hold time is negotiated. */
async function configure(lab: Lab, frr: Router, v: Variant): Promise<void> {
  await frr.cli(['configure terminal', `router bgp ${ROUTER_AS}`, `neighbor NODES timers ${Math.max(1, Math.floor(v.holdS / 3))} ${v.holdS}`,
    v.bfdMs ? `neighbor NODES bfd profile f${v.bfdMs}` : 'no neighbor NODES bfd']);
  await apply(lab, bgpPeer('frr', { myASN: NODE_AS, peerASN: ROUTER_AS, peerAddress: frr.ipv4, holdTime: `${v.holdS}s`, ...(v.bfdMs ? { bfdProfile: `f${v.bfdMs}` } : {}) }, { 'portico.dev/bench': APP }));
  await frr.cli(['clear bgp ipv4 unicast *']);
}

/** Why the router and the client are not in the variant's steady state yet, or undefined when they are. */
async function notSettled(lab: Lab, frr: Router, v: Variant): Promise<string | undefined> {
  const nodes = lab.nodes.map((n) => n.ipv4);
  const nb = await frrNeighbors(frr);
  const bad = nodes.find((ip) => nb[ip]?.bgpState !== 'Established' || nb[ip]?.bgpTimerHoldTimeMsecs !== v.holdS * 1000);
  if (bad) return `BGP with ${bad}: ${nb[bad]?.bgpState} hold ${nb[bad]?.bgpTimerHoldTimeMsecs} ms`;
  if (v.bfdMs) {
    const bfd = await frrBfdPeers(frr);
    const b = nodes.find((ip) => bfd.get(ip)?.status !== 'up' || bfd.get(ip)?.['remote-transmit-interval'] !== v.bfdMs || bfd.get(ip)?.['remote-receive-interval'] !== v.bfdMs);
    if (b) return `BFD with ${b}: ${JSON.stringify(bfd.get(b) ?? null)}`;
  }
  const fib = fibHops((await run(['ip', '-n', frr.ns, '-j', 'route', 'show', 'proto', 'bgp'])).stdout);
  const short = POLICIES.find((p) => (fib[VIPS[p]] ?? []).length !== nodes.length);
  if (short) return `${VIPS[short]} has ${fib[VIPS[short]]?.length ?? 0} next hops in the FIB`;
  // Every node's dataplane lists every pod (nothing left pruned from the last kill).
  const pods = JSON.parse(await lab.kubectl('get', 'pods', '-n', APP, '-o', 'json')) as { items: { status?: { podIP?: string; conditions?: { type: string; status: string }[] } }[] };
  const ips = pods.items.filter((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).map((p) => p.status?.podIP ?? '');
  if (ips.length !== nodes.length) return `${ips.length} ready pods`;
  for (const n of lab.nodes) {
    const t = (await lab.exec(n.name, ['nft', 'list', 'table', 'inet', 'portico'], { allowFail: true })).stdout;
    if (!ips.every((ip) => t.includes(ip))) return `${n.name}'s table lacks a pod`;
  }
  return undefined;
}

async function settle(lab: Lab, frr: Router, v: Variant, timeoutMs = 75_000): Promise<void> {
  let why: string | undefined = 'not checked';
  let before = false;
  await waitFor('the variant\'s steady state', async () => {
    if (stopping) throw new Error('stopped by a signal');
    why = await notSettled(lab, frr, v);
    // Twice in a row, half a second apart: not caught mid-change.
    const ok = why === undefined && before;
    before = why === undefined;
    return ok || undefined;
  }, timeoutMs, 500).catch((err: unknown) => { throw new Error(`${String(err)}; last: ${why}`); });
}

// ---- the trials -------------------------------------------------------------------

interface Trial {
  victim: string; rib?: { ms: number; resMs: number }; fib?: { ms: number; resMs: number };
  /** FRR's logs: bfdd's session down, bgpd's neighbor down (ms after the kill). */
  bfdDownMs?: number; bgpDownMs?: number;
  client: Record<Policy, { lastFailureMs: number; failed: number; requests: number; maxGapMs: number; skipped: number }>;
  loadStart: number; loadEnd: number;
}

async function trial(lab: Lab, frr: Router, client: string, v: Variant, victim: string): Promise<Trial> {
  const loadStart = load1();
  const vips = POLICIES.map((p) => VIPS[p]);
  let done = false;
  const fibRun = sampleTable(async () => (await run(['ip', '-n', frr.ns, '-j', 'route', 'show', 'proto', 'bgp'])).stdout, fibHops, () => done, 5);
  const ribRun = sampleTable(() => frr.cli(['show ip route bgp json']), ribHops, () => done, 20);
  let r: Awaited<ReturnType<typeof probeFrom>>;
  try {
    r = await probeFrom(lab, client, vips.map((ip) => `http://${ip}/`), v.probeMs, () => lab.killNode(victim));
  } finally {
    done = true;
  }
  const [fib, rib] = await Promise.all([fibRun, ribRun]);
  const ip = lab.node(victim).ipv4;
  const clientFigures = Object.fromEntries(POLICIES.map((p, i) => {
    const f = r.figures[i]!;
    return [p, { lastFailureMs: f.lastFailureMs, failed: f.failed, requests: f.requests, maxGapMs: f.maxGapMs, skipped: f.skipped }];
  })) as Trial['client'];
  return {
    victim, rib: goneAt(rib, r.from, ip, vips), fib: goneAt(fib, r.from, ip, vips), client: clientFigures, loadStart, loadEnd: load1(),
    bfdDownMs: v.bfdMs ? downAfter(frrLog(path.join(frr.dir, 'bfdd.log')), r.from, ip, /state|->/i) : undefined,
    bgpDownMs: downAfter(frrLog(path.join(frr.dir, 'bgpd.log')), r.from, ip, /ADJCHANGE|neighbor/i),
  };
}

const round = (x: number): number => Math.round(x);

function trialLine(name: string, i: number, t: Trial): Record<string, number | string> {
  const line: Record<string, number | string> = {
    variant: name, trial: i + 1, victim: t.victim,
    bfd_down_ms: t.bfdDownMs ?? -1, bgp_down_ms: t.bgpDownMs ?? -1, rib_ms: t.rib?.ms ?? -1, rib_res_ms: t.rib?.resMs ?? -1, fib_ms: t.fib?.ms ?? -1, fib_res_ms: t.fib?.resMs ?? -1,
  };
  for (const p of POLICIES) {
    const c = t.client[p];
    const k = p.toLowerCase();
    Object.assign(line, { [`${k}_last_failure_ms`]: c.lastFailureMs, [`${k}_failed`]: c.failed, [`${k}_requests`]: c.requests, [`${k}_gap_ms`]: c.maxGapMs, [`${k}_skipped`]: c.skipped });
  }
  return { ...line, load_start: t.loadStart, load_end: t.loadEnd };
}

function summaryLine(name: string, v: Variant, ts: Trial[], unsettled: number, flaps: number): Record<string, number | string> {
  const fig = (prefix: string, xs: number[]): Record<string, number> => {
    const s = summary(xs);
    return { [`${prefix}_p50`]: round(s.p50), [`${prefix}_p99`]: round(s.p99), [`${prefix}_max`]: round(s.max) };
  };
  // A table that never dropped the node within the probe counts as the probe's length (a floor, said by *_never).
  const or = (x: { ms: number } | undefined): number => x?.ms ?? v.probeMs;
  const line: Record<string, number | string> = {
    variant: name, detection: v.bfdMs ? `BFD ${v.bfdMs} ms x ${MULT}, hold ${v.holdS} s` : `no BFD, hold ${v.holdS} s`,
    ...(v.bfdMs ? fig('bfd_down_ms', ts.flatMap((t) => t.bfdDownMs ?? [])) : {}), ...fig('bgp_down_ms', ts.flatMap((t) => t.bgpDownMs ?? [])),
    ...fig('rib_ms', ts.map((t) => or(t.rib))), ...fig('fib_ms', ts.map((t) => or(t.fib))),
    rib_never: ts.filter((t) => !t.rib).length, fib_never: ts.filter((t) => !t.fib).length,
  };
  for (const p of POLICIES) {
    const k = p.toLowerCase();
    Object.assign(line, fig(`${k}_last_failure_ms`, ts.map((t) => t.client[p].lastFailureMs)), fig(`${k}_failed`, ts.map((t) => t.client[p].failed)));
  }
  if (v.bfdMs === 50) {
    line.target = 'p99 <= 300 ms (FIB and Local client)';
    line.target_met = String(summary(ts.map((t) => or(t.fib))).p99 <= 300 && summary(ts.map((t) => t.client.Local.lastFailureMs)).p99 <= 300);
  }
  return {
    ...line, runs: ts.length, ...(ts.length < 20 ? { quick: `only ${ts.length} trials (fewer than 20): a quick run, not the benchmark's figure` } : {}),
    // Trials skipped because the router and speakers did not reach the steady state in time (sessions flapping or damped).
    unsettled, ...(unsettled >= GIVE_UP_AFTER && ts.length < trials ? { given_up: `${GIVE_UP_AFTER} trials in a row could not settle` } : {}),
    // FRR bfdd's Up -> Down transitions outside the trials' probes: sessions lost with nothing killed (false failovers).
    ...(v.bfdMs ? { frr_bfd_flaps_unprovoked: flaps } : {}),
    load_start: ts[0]?.loadStart ?? NaN, load_end: ts.at(-1)?.loadEnd ?? NaN,
    path: 'process lab (lab kubelets, nftables dataplane), L4 ECMP hash at the router, IPv4',
  };
}

const { values, positionals } = parseArgs({ allowPositionals: true, options: { variants: { type: 'string', default: Object.keys(VARIANTS).join(',') } } });
const trials = Number(positionals[0] ?? 20);
const names = values.variants.split(',');
for (const n of names) if (!VARIANTS[n]) throw new Error(`--variants: no variant ${n}; there are ${Object.keys(VARIANTS).join(', ')}`);
if (!(trials >= 1)) throw new Error(`trials: a positive number, not ${positionals[0]}`);

// SIGINT/SIGTERM: finish the current trial, print the summaries so far, clean up.
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { stopping = true; process.stderr.write(`${sig}: stopping after this trial\n`); });

const lab = await Lab.start({ prefix: process.env.PORTICO_LAB_PREFIX ?? 'pbgpfo', nodes: 3, clients: ['client'] });
const cleanups = new Cleanups();
try {
  const frr = await startRouter(lab);
  const client = await addClientBehind(lab, frr, cleanups);
  await installSpeakers(lab, cleanups, { speakerArgs: ['--dataplane=nftables'] });
  await applyWorkload(lab, cleanups);
  for (const name of names) {
    if (stopping) break;
    const v = VARIANTS[name]!;
    await configure(lab, frr, v);
    const ts: Trial[] = [];
    const windows: [number, number][] = [];
    const began = Date.now();
    let unsettled = 0;
    let inARow = 0;
    for (let i = 0; i < trials && !stopping && inARow < GIVE_UP_AFTER; i++) {
      try {
        await settle(lab, frr, v);
        inARow = 0;
      } catch (err) {
        // Not a figure: the trial never started. Counted in the summary.
        unsettled++;
        inARow++;
        process.stderr.write(`${name} ${i + 1}/${trials}: skipped, ${String(err)}\n`);
        continue;
      }
      const victim = lab.nodes[i % lab.nodes.length]!.name;
      let t: Trial;
      try {
        const t0 = Date.now();
        t = await trial(lab, frr, client, v, victim);
        windows.push([t0, Date.now()]);
      } finally {
        await lab.restartNode(victim);
      }
      ts.push(t);
      report('bgp-failover', trialLine(name, i, t));
      process.stderr.write(`${name} ${i + 1}/${trials}: killed ${victim}; BFD down ${t.bfdDownMs ?? '-'} ms, BGP down ${t.bgpDownMs ?? '-'} ms, RIB ${t.rib?.ms ?? 'never'} ms, FIB ${t.fib?.ms ?? 'never'} ms; Local last failure +${t.client.Local.lastFailureMs} ms (${t.client.Local.failed} failed), Cluster +${t.client.Cluster.lastFailureMs} ms (${t.client.Cluster.failed} failed); load ${t.loadEnd}\n`);
    }
    const flaps = frrLog(path.join(frr.dir, 'bfdd.log')).filter((l) => l.at >= began && /up -> down/.test(l.text) && !windows.some(([a, b]) => l.at >= a && l.at <= b)).length;
    report('bgp-failover', summaryLine(name, v, ts, unsettled, flaps));
  }
} finally {
  await cleanups.run();
  await lab.stop();
}
