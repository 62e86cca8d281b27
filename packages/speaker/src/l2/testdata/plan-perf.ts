// Times the layer-2 announcer's work per World and per membership change with
// many Services (fakes for links and membership): node plan-perf.ts [services]
import { createRegistry, memoryLogger, type Config } from '@portico/shared';
import type { ServiceState, World } from '../../world/types.ts';
import { L2Announcer, type MembershipView } from '../announcer.ts';
import { createL2Metrics } from '../metrics.ts';
import { Responder, type FrameTransport } from '../responder.ts';

const n = Number(process.argv[2] ?? 5000);
const NODES = ['node-1', 'node-2', 'node-3'];
const link = (ifname: string): FrameTransport => ({ ifname, mac: '02:00:5e:00:53:01', send: () => true, onFrame: () => undefined, joinMulticast: () => undefined, leaveMulticast: () => undefined, close: () => undefined });
let live = new Set(NODES);
let onChange = (): void => undefined;
const membership: MembershipView = { start: () => undefined, setPeers: () => undefined, live: () => live, reasons: () => new Map(), settled: () => true, ready: () => true, stop: async () => undefined };
const config: Config = {
  pools: [{ name: 'p', source: 'crd', ranges: [], autoAssign: true, avoidBuggyIPs: false, allowExternalIPs: false, priority: undefined, namespaces: [], namespaceSelectors: [], serviceSelectors: [], labels: {} }],
  l2Advertisements: [{ name: 'l2', source: 'crd', pools: ['p'], poolSelectors: [], nodeSelectors: [], interfaces: [] , serviceSelectors: [], preferredNodeSelectors: [] }],
  bgpAdvertisements: [], peers: [], communities: {}, bfdProfiles: [],
};
const svc = (i: number, annotations: Record<string, string> = {}): ServiceState => ({
  key: `app/load-${i}`, namespace: 'app', name: `load-${i}`, uid: `u${i}`, labels: {}, annotations, ips: [`2001:db8:1:2::${(i + 1).toString(16)}`], pool: 'p',
  externalTrafficPolicy: 'Cluster', sessionAffinity: { clientIP: false, timeoutSeconds: 0 }, ports: [],
  endpoints: NODES.map((node, k) => ({ ip: `100.64.1.${k}`, family: 'IPv4' as const, node, ready: true, serving: true, terminating: false, ports: {}, pod: `p${k}` })),
});
const nodes = (): World['nodes'] => new Map(NODES.map((name, i) => [name, { name, labels: {}, ready: true, networkUnavailable: false, excluded: false, addresses: [`198.51.100.${11 + i}`] }]));
let writes = 0;
const a = new L2Announcer({
  self: 'node-1', log: memoryLogger(), metrics: createL2Metrics(createRegistry(false)),
  membership: (cb) => { onChange = cb; return membership; },
  openResponder: (ifname) => new Responder(link(ifname)),
  interfaces: () => new Map([['eth0', ['198.51.100.11']]]), linkUp: () => true, sysctl: () => undefined,
  sink: { event: async () => { writes++; }, annotate: async () => { writes++; } },
  timers: { setTimeout: () => 0, clearTimeout: () => undefined },
});
const services = new Map<string, ServiceState>();
for (let i = 0; i < n; i++) { const s = svc(i); services.set(s.key, s); }
const time = (what: string, fn: () => void): void => { const t = performance.now(); fn(); console.log(`${what}: ${(performance.now() - t).toFixed(1)} ms`); };
time('first World', () => a.update({ self: 'node-1', config, services: new Map(services), nodes: nodes() }));
for (let k = 0; k < 3; k++) time('same World again (new Node objects)', () => a.update({ self: 'node-1', config, services: new Map(services), nodes: nodes() }));
const w = { self: 'node-1', config, services: new Map(services), nodes: nodes() };
for (let k = 0; k < 3; k++) time('one Service changed', () => { const s = svc(k, { x: String(k) }); services.set(s.key, s); w.services = new Map(services); a.update({ ...w }); });
time('a node dies', () => { live = new Set(['node-1', 'node-2']); onChange(); });
time('it comes back', () => { live = new Set(NODES); onChange(); });
console.log(`status writes asked: ${writes}; owned ${[...a.owned().values()].reduce((x, y) => x + y.length, 0)}`);
void a.stop();
