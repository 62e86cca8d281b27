// The inside of bench/ipvs-sync-10k, run in a network namespace of the IPVS VM:
// programs N virtual services x M real servers from empty with the IPVS
// dataplane, applies single endpoint changes, runs a full resync of the
// programmed state, and writes the same rules out as `ipvsadm -S` for the
// host side to time `ipvsadm -R` against. Prints one JSON object.
//   node bench-sync.ts --services=10000 --reals=10 --changes=20 --rules=FILE [--resync=1]
import { writeFileSync } from 'node:fs';
import { PerformanceObserver } from 'node:perf_hooks';
import type { EndpointState, ServiceState, World } from '../../world/types.ts';
import { IpvsDataplane } from '../ipvs.ts';

const args = new Map(process.argv.slice(2).map((a) => { const i = a.indexOf('='); return [a.slice(2, i), a.slice(i + 1)] as const; }));
const SERVICES = Number(args.get('services') ?? 10_000);
const REALS = Number(args.get('reals') ?? 10);
const CHANGES = Number(args.get('changes') ?? 20);
const RULES = args.get('rules');
const RESYNC = args.get('resync') === '1';
const PORTS_PER_VIP = 100;

function endpoint(ip: string): EndpointState {
  return { ip, family: 'IPv4', node: 'other', ready: true, serving: true, terminating: false, ports: { http: { port: 8080, protocol: 'TCP' } }, pod: undefined };
}

function service(i: number, generation = 0): ServiceState {
  const vip = `203.0.113.${1 + Math.floor(i / PORTS_PER_VIP)}`;
  const eps: EndpointState[] = [];
  for (let j = 0; j < REALS; j++) eps.push(endpoint(`100.64.${(i * REALS + j) >> 8 & 0xff}.${(i * REALS + j) & 0xff}`));
  // A change replaces the last endpoint by one from 100.65/16.
  if (generation) eps[REALS - 1] = endpoint(`100.65.${generation >> 8 & 0xff}.${generation & 0xff}`);
  return {
    key: `bench/s${i}`, namespace: 'bench', name: `s${i}`, uid: `u${i}`, labels: {}, annotations: {}, ips: [vip], pool: 'bench',
    externalTrafficPolicy: 'Cluster', sessionAffinity: { clientIP: false, timeoutSeconds: 0 },
    ports: [{ name: 'http', protocol: 'TCP', port: 1000 + (i % PORTS_PER_VIP), targetPort: 'http', nodePort: undefined }], endpoints: eps,
  };
}

if (SERVICES > PORTS_PER_VIP * 250) throw new Error('too many services for the VIP range');
const services = new Map<string, ServiceState>();
for (let i = 0; i < SERVICES; i++) { const s = service(i); services.set(s.key, s); }
let generation = 0;
/** A World as the speaker's watcher builds it: numbered, naming the Services changed since the one before. */
const world = (changed?: string): World => {
  generation++;
  return {
    self: 'bench-node', config: undefined, services: new Map(services), nodes: new Map(), generation,
    ...(changed === undefined ? {} : { changed: { from: generation - 1, services: new Set([changed]) } }),
  };
};

// No periodic resync or drain check during the measurement: a removed endpoint stays at weight 0 until the resync below.
const dp = await IpvsDataplane.open({ resyncMs: 3_600_000, drainCheckMs: 3_600_000, sysctls: false });
let t0 = performance.now();
await dp.update(world());
const fullMs = performance.now() - t0;
const fullOps = dp.stats.ops;
if (dp.stats.failed) throw new Error(`${dp.stats.failed} operations failed in the full sync`);

// Garbage collections during each change (their time is part of the change's, when they fall in it).
const gcs: Array<{ start: number; end: number }> = [];
const gcObserver = new PerformanceObserver((list) => { for (const e of list.getEntries()) gcs.push({ start: e.startTime, end: e.startTime + e.duration }); });
gcObserver.observe({ entryTypes: ['gc'] });
const gcWithin = (from: number, to: number): number => gcs.reduce((ms, g) => ms + Math.max(0, Math.min(to, g.end) - Math.max(from, g.start)), 0);
const changeMs: number[] = [];
/** Where each change's time went (IpvsDataplane.lastSync), step by step. */
const steps: Array<Record<string, number>> = [];
for (let c = 1; c <= CHANGES; c++) {
  const i = (c * 7919) % SERVICES;
  const s = service(i, c);
  services.set(s.key, s);
  const before = dp.stats.ops;
  // The speaker hands the dataplane a World it built; building this one (a copy of 10,000 entries) is the benchmark's own work.
  const w = world(s.key);
  t0 = performance.now();
  await dp.update(w);
  const t1 = performance.now();
  changeMs.push(t1 - t0);
  const { kind: _kind, ...tm } = dp.lastSync!;
  await new Promise((r) => setImmediate(r)); // let the observer deliver the entries of this change
  steps.push({ ...tm, gc: gcWithin(t0, t1) });
  if (dp.stats.ops - before !== 2) throw new Error(`a change took ${dp.stats.ops - before} operations, not 2 (add + weight 0)`);
}

// A full resync of the programmed state (reads every service's real servers, so it deletes
// the CHANGES real servers left at weight 0): optional, it takes minutes under TCG.
t0 = performance.now();
if (RESYNC) await dp.resync();
const resyncMs = RESYNC ? performance.now() - t0 : null;
let reals = 0;
for (const s of dp.snapshot().values()) reals += s.reals.length;
const resyncOps = dp.stats.ops - fullOps - 2 * CHANGES;
if (RESYNC && (resyncOps !== CHANGES || reals !== SERVICES * REALS)) {
  throw new Error(`the full resync left ${reals} real servers (want ${SERVICES * REALS}) and made ${resyncOps} changes (want ${CHANGES} deletes)`);
}

if (RULES) {
  // The same rules for `ipvsadm -R` (what `ipvsadm -Sn` prints).
  const lines: string[] = [];
  for (const s of dp.snapshot().values()) {
    lines.push(`-A -t ${s.address}:${s.port} -s ${s.scheduler}`);
    for (const r of s.reals) lines.push(`-a -t ${s.address}:${s.port} -r ${r.address}:${r.port} -m -w ${r.weight}`);
  }
  writeFileSync(RULES, `${lines.join('\n')}\n`);
}
await dp.stop();
process.stdout.write(`${JSON.stringify({ services: dp.snapshot().size, reals, fullMs, fullOps, changeMs, steps, resyncMs, resyncOps })}\n`);
