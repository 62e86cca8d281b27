import { strict as assert } from 'node:assert';
import type { Config } from '@portico/shared';
import { electOwner } from '../election/election.ts';
import type { ServiceState, World } from '../world/types.ts';
import { PlanCache, planLayer2 } from './plan.ts';

const NODES = ['node-1', 'node-2', 'node-3', 'node-4'];
const config: Config = {
  pools: ['a', 'b'].map((name) => ({ name, source: 'crd' as const, ranges: [], autoAssign: true, avoidBuggyIPs: false, allowExternalIPs: false, priority: undefined, namespaces: [], namespaceSelectors: [], serviceSelectors: [], labels: {} })),
  l2Advertisements: [
    { name: 'all', source: 'crd', pools: ['a'], poolSelectors: [], nodeSelectors: [], interfaces: [] , serviceSelectors: [], preferredNodeSelectors: [] },
    { name: 'b-on-two', source: 'crd', pools: ['b'], poolSelectors: [], nodeSelectors: [{ matchLabels: { b: 'yes' } }], interfaces: [], serviceSelectors: [], preferredNodeSelectors: [] },
  ],
  bgpAdvertisements: [], peers: [], communities: {}, bfdProfiles: [],
};
const svc = (i: number): ServiceState => ({
  key: `app/s${String(i).padStart(3, '0')}`, namespace: 'app', name: `s${i}`, uid: `u${i}`, labels: {}, annotations: {}, ips: [`203.0.113.${i}`], pool: i % 3 === 0 ? 'b' : 'a',
  externalTrafficPolicy: i % 4 === 0 ? 'Local' : 'Cluster', sessionAffinity: { clientIP: false, timeoutSeconds: 0 }, ports: [],
  endpoints: [{ ip: '100.64.1.5', family: 'IPv4', node: NODES[(i >> 1) % NODES.length], ready: i % 7 !== 0, serving: true, terminating: false, ports: {}, pod: 'p' }],
});
const nodeLabels = (i: number): Record<string, string> => (i < 2 ? { b: 'yes' } : {});
const world = (services: ServiceState[]): World => ({
  self: 'node-1', config, services: new Map(services.map((s) => [s.key, s])),
  nodes: new Map(NODES.map((name, i) => [name, { name, labels: nodeLabels(i), ready: true, networkUnavailable: false, excluded: false, addresses: [`198.51.100.${11 + i}`] }])),
});
const interfaces = new Map([['eth0', ['198.51.100.11']]]);

describe('layer-2 plan', () => {
  const services = Array.from({ length: 60 }, (_, i) => svc(i + 1));

  it('elects every Service as electOwner does, with per-pool eligibility shared across Cluster Services', () => {
    const live = new Set(['node-1', 'node-2', 'node-4']);
    const w = world(services);
    const plan = planLayer2({ world: w, live, interfaces });
    const pools = new Map(config.pools.map((p) => [p.name, p.labels]));
    for (const s of services) {
      const expected = electOwner({
        service: { key: s.key, ips: s.ips, pool: { name: s.pool!, labels: pools.get(s.pool!)! }, externalTrafficPolicy: s.externalTrafficPolicy, readyEndpointNodes: new Set(s.endpoints.filter((e) => e.ready).map((e) => e.node!)) },
        nodes: [...w.nodes.values()], advertisements: config.l2Advertisements, live,
      });
      assert.deepEqual(plan.services.find((p) => p.key === s.key)?.election, expected, s.key);
    }
    assert.ok(new Set(plan.services.map((p) => p.election.reason)).size >= 3, 'the table covers several outcomes');
  });

  it('with a cache, elects again only the Services whose state changed, and all of them when the live set, Nodes or config change; the result is the same as without', () => {
    const cache = new PlanCache();
    const live = new Set(NODES);
    const current = [...services];
    const plain = (w: World, l: ReadonlySet<string>): unknown => planLayer2({ world: w, live: l, interfaces });
    planLayer2({ world: world(current), live, interfaces, cache });
    assert.equal(cache.elected, 60);
    let p = planLayer2({ world: world(current), live, interfaces, cache });
    assert.equal(cache.elected, 0, 'same states, Node objects rebuilt with the same content');
    assert.deepEqual(p, plain(world(current), live));
    current[5] = { ...current[5]!, endpoints: [] };
    p = planLayer2({ world: world(current), live, interfaces, cache });
    assert.equal(cache.elected, 1);
    assert.equal(p.services.find((s) => s.key === current[5]!.key)?.election.reason, 'no-ready-endpoints');
    assert.deepEqual(p, plain(world(current), live));
    const fewer = new Set(['node-1', 'node-3']);
    p = planLayer2({ world: world(current), live: fewer, interfaces, cache });
    assert.equal(cache.elected, 60, 'a live-set change elects everything again');
    assert.deepEqual(p, plain(world(current), fewer));
    p = planLayer2({ world: { ...world(current), config: { ...config, l2Advertisements: [] } }, live: fewer, interfaces, cache });
    assert.deepEqual(p.services, []);
    planLayer2({ world: world(current.slice(1)), live: fewer, interfaces, cache });
    assert.equal(cache.elected, 59, 'a new config elects everything again');
    assert.ok(!cache.byKey.has(current[0]!.key), 'a deleted Service leaves the cache');
  });
});
