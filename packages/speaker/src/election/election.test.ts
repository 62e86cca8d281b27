import { strict as assert } from 'node:assert';
import { LABELS } from '@portico/shared';
import { electOwner, eligibility, rendezvousScore, type ElectionInput, type ElectionNode, type ElectionService } from './election.ts';

type Adv = ElectionInput['advertisements'][number];
const adv = (over: Partial<Adv> = {}): Adv => ({ name: 'l2', pools: [], poolSelectors: [], nodeSelectors: [], interfaces: [], ...over });
const node = (name: string, labels: Record<string, string> = {}, networkUnavailable = false): ElectionNode => ({ name, labels, networkUnavailable });
const names = (n: number): string[] => Array.from({ length: n }, (_, i) => `node-${i + 1}`);

function svc(i: number, over: Partial<ElectionService> = {}): ElectionService {
  return {
    key: `default/s${i}`,
    ips: [`203.0.113.${i % 256}`],
    pool: { name: 'default', labels: { tier: 'web' } },
    externalTrafficPolicy: 'Cluster',
    readyEndpointNodes: new Set(['node-1']),
    ...over,
  };
}

function input(over: Partial<ElectionInput> & { nodeNames?: string[] } = {}): ElectionInput {
  const nodeNames = over.nodeNames ?? names(3);
  return {
    service: over.service ?? svc(1),
    nodes: over.nodes ?? nodeNames.map((n) => node(n)),
    advertisements: over.advertisements ?? [adv()],
    live: over.live ?? new Set(nodeNames),
  };
}

const EXCLUDE_LABEL = LABELS.excludeFromLoadBalancers;

describe('layer-2 election: eligibility (every node with a reason)', () => {
  const cases: Array<{ name: string; in: ElectionInput; want: Record<string, string> }> = [
    {
      name: 'every node eligible under a catch-all advertisement',
      in: input(),
      want: { 'node-1': 'eligible', 'node-2': 'eligible', 'node-3': 'eligible' },
    },
    {
      name: 'the exclude-from-external-load-balancers label removes a node, whatever its value',
      in: input({ nodes: [node('node-1'), node('node-2', { [EXCLUDE_LABEL]: '' }), node('node-3', { [EXCLUDE_LABEL]: 'false' })] }),
      want: { 'node-1': 'eligible', 'node-2': 'excluded-by-label', 'node-3': 'excluded-by-label' },
    },
    {
      name: 'NetworkUnavailable removes a node',
      in: input({ nodes: [node('node-1'), node('node-2', {}, true), node('node-3')] }),
      want: { 'node-1': 'eligible', 'node-2': 'network-unavailable', 'node-3': 'eligible' },
    },
    {
      name: 'a node selector picks nodes (matchLabels and matchExpressions)',
      in: input({
        nodes: [node('node-1', { zone: 'a' }), node('node-2', { zone: 'b' }), node('node-3', { zone: 'c', edge: '' })],
        advertisements: [adv({ nodeSelectors: [{ matchLabels: { zone: 'a' } }, { matchExpressions: [{ key: 'edge', operator: 'Exists' }] }] })],
      }),
      want: { 'node-1': 'eligible', 'node-2': 'no-advertisement', 'node-3': 'eligible' },
    },
    {
      name: 'an advertisement for another pool selects no node',
      in: input({ advertisements: [adv({ pools: ['other'] })] }),
      want: { 'node-1': 'no-advertisement', 'node-2': 'no-advertisement', 'node-3': 'no-advertisement' },
    },
    {
      name: 'a pool selector on the pool labels',
      in: input({ advertisements: [adv({ poolSelectors: [{ matchExpressions: [{ key: 'tier', operator: 'In', values: ['web', 'db'] }] }], nodeSelectors: [{ matchLabels: { zone: 'a' } }] })], nodes: [node('node-1', { zone: 'a' }), node('node-2'), node('node-3')] }),
      want: { 'node-1': 'eligible', 'node-2': 'no-advertisement', 'node-3': 'no-advertisement' },
    },
    {
      name: 'externalTrafficPolicy Local: only nodes with a ready local endpoint',
      in: input({ service: svc(1, { externalTrafficPolicy: 'Local', readyEndpointNodes: new Set(['node-2', 'node-3']) }) }),
      want: { 'node-1': 'no-local-endpoint', 'node-2': 'eligible', 'node-3': 'eligible' },
    },
    {
      name: 'exclusion is reported before the advertisement and the endpoints',
      in: input({ nodes: [node('node-1', { [EXCLUDE_LABEL]: 'true' }, true), node('node-2'), node('node-3')], advertisements: [adv({ nodeSelectors: [{ matchLabels: { never: 'x' } }] })] }),
      want: { 'node-1': 'excluded-by-label', 'node-2': 'no-advertisement', 'node-3': 'no-advertisement' },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.deepEqual(Object.fromEntries(eligibility(c.in).map((e) => [e.node, e.reason])), c.want);
    });
  }

  it('interfaces: the union of the matching advertisements, and "all" wins over a list', () => {
    const listed = eligibility(input({ advertisements: [adv({ interfaces: ['eth1'] }), adv({ name: 'b', interfaces: ['bond0', 'eth1'] })] }));
    assert.deepEqual(listed[0]!.interfaces, ['bond0', 'eth1']);
    const all = eligibility(input({ advertisements: [adv({ interfaces: ['eth1'] }), adv({ name: 'b' })] }));
    assert.deepEqual(all[0]!.interfaces, []);
  });
});

describe('layer-2 election: the owner', () => {
  it('is the live eligible node with the highest rendezvous score, whatever the input order', () => {
    const i = input({ nodeNames: names(5) });
    const r = electOwner(i);
    const best = names(5).reduce((a, b) => (rendezvousScore(b, '203.0.113.1') > rendezvousScore(a, '203.0.113.1') ? b : a));
    assert.deepEqual([r.owner, r.reason, r.key], [best, 'elected', '203.0.113.1']);
    assert.equal(electOwner({ ...i, nodes: [...i.nodes].reverse() }).owner, best);
  });

  it('scenarios, in order', () => {
    const all = names(4);
    const base = input({ nodeNames: all });
    const first = electOwner(base).owner!;
    const others = all.filter((n) => n !== first);
    // s1: the owner dies -> another live eligible node takes over.
    const afterDeath = electOwner({ ...base, live: new Set(others) });
    assert.equal(afterDeath.reason, 'elected');
    assert.notEqual(afterDeath.owner, first);
    assert.equal(afterDeath.nodes.find((n) => n.node === first)!.live, false);
    // s2: it comes back -> it owns the IP again (no flapping state: same inputs, same answer).
    assert.equal(electOwner(base).owner, first);
    // s3: it gets the exclude label -> it loses the IP even though live.
    const excluded = electOwner({ ...base, nodes: base.nodes.map((n) => (n.name === first ? node(first, { [EXCLUDE_LABEL]: '' }) : n)) });
    assert.equal(excluded.owner, afterDeath.owner);
    // s4: every eligible node dead -> nobody, with the reason.
    assert.deepEqual([electOwner({ ...base, live: new Set() }).owner, electOwner({ ...base, live: new Set() }).reason], [null, 'no-live-eligible-node']);
    // s5: no ready endpoint anywhere -> nobody announces.
    assert.equal(electOwner({ ...base, service: svc(1, { readyEndpointNodes: new Set() }) }).reason, 'no-ready-endpoints');
    // s6: Local policy follows the endpoint.
    const local = electOwner({ ...base, service: svc(1, { externalTrafficPolicy: 'Local', readyEndpointNodes: new Set(['node-3']) }) });
    assert.deepEqual([local.owner, local.reason], ['node-3', 'elected']);
    // s7: no advertisement -> no eligible node.
    assert.equal(electOwner({ ...base, advertisements: [] }).reason, 'no-eligible-node');
    // s8: no IP yet.
    assert.equal(electOwner({ ...base, service: svc(1, { ips: [] }) }).reason, 'no-ip');
  });

  it('both families of a Service move together: the owner depends on the first IP only', () => {
    const nodes = names(7);
    for (let i = 0; i < 200; i++) {
      const v4 = `203.0.113.${i}`;
      const dual = electOwner(input({ nodeNames: nodes, service: svc(i, { ips: [v4, `2001:db8:113::${i}`] }) }));
      const single = electOwner(input({ nodeNames: nodes, service: svc(i, { ips: [v4] }) }));
      assert.equal(dual.owner, single.owner);
    }
  });

  const services = Array.from({ length: 2000 }, (_, i) => svc(i, { ips: [`198.51.${100 + (i >> 8)}.${i & 255}`] }));
  const owners = (nodeNames: string[]): string[] => services.map((s) => electOwner(input({ nodeNames, service: s })).owner!);

  it('spreads IPs across nodes', () => {
    const counts = new Map<string, number>();
    for (const o of owners(names(5))) counts.set(o, (counts.get(o) ?? 0) + 1);
    assert.equal(counts.size, 5);
    for (const [n, c] of counts) assert.ok(c > 300 && c < 500, `${n} owns ${c} of 2000`);
  });

  it('a node joining takes only IPs for itself, about 1/(n+1) of them', () => {
    const before = owners(names(5));
    const after = owners(names(6));
    const moved = before.map((o, i) => [o, after[i]] as const).filter(([a, b]) => a !== b);
    assert.ok(moved.every(([, to]) => to === 'node-6'), 'every moved IP went to the new node');
    assert.ok(moved.length > 2000 / 6 * 0.75 && moved.length < 2000 / 6 * 1.25, `moved ${moved.length}`);
  });

  it('a node leaving moves only the IPs it held', () => {
    const before = owners(names(5));
    const after = owners(names(5).filter((n) => n !== 'node-2'));
    before.forEach((o, i) => {
      if (o !== 'node-2') assert.equal(after[i], o, `service ${i} moved from ${o} though its owner stayed`);
      else assert.notEqual(after[i], 'node-2');
    });
  });
});

// Issue 16, point 9: L2Advertisement serviceSelectors and preferredNodeSelectors.
describe('layer-2 election: serviceSelectors and preferredNodeSelectors', () => {
  const web = { app: 'web' };
  const nodes = [node('node-1', { zone: 'a' }), node('node-2', { zone: 'b', fast: 'yes' }), node('node-3', { zone: 'b' })];
  const eligibleOf = (i: ElectionInput): string[] => eligibility(i).filter((n) => n.reason === 'eligible').map((n) => n.node);

  it('an advertisement with serviceSelectors covers only the Services it selects', () => {
    const advs = [adv({ name: 'web-only', serviceSelectors: [{ matchLabels: web }], nodeSelectors: [{ matchLabels: { zone: 'a' } }] }), adv({ name: 'zone-b', nodeSelectors: [{ matchLabels: { zone: 'b' } }] })];
    const table: [string, ElectionService, string[]][] = [
      ['a web Service: both advertisements', svc(1, { labels: web }), ['node-1', 'node-2', 'node-3']],
      ['another Service: only the unselective one', svc(1, { labels: { app: 'db' } }), ['node-2', 'node-3']],
      ['a Service without labels: likewise', svc(1), ['node-2', 'node-3']],
    ];
    for (const [why, service, want] of table) assert.deepEqual(eligibleOf(input({ service, nodes, advertisements: advs })), want, why);
    assert.equal(eligibility(input({ service: svc(1, { labels: { app: 'db' } }), nodes, advertisements: [advs[0]!] }))[0]!.reason, 'no-advertisement');
  });

  it('the live eligible node with the highest preference weight owns every IP; the hash decides among equals', () => {
    const prefer = adv({ preferredNodeSelectors: [{ weight: 10, preference: { matchLabels: { zone: 'b' } } }, { weight: 50, preference: { matchLabels: { fast: 'yes' } } }] });
    const owners = new Set<string | null>();
    for (let i = 0; i < 64; i++) owners.add(electOwner(input({ service: svc(i), nodes, advertisements: [prefer] })).owner);
    assert.deepEqual([...owners], ['node-2'], 'zone b + fast = 60 beats zone b = 10 and 0');
    // node-2 not live: node-3 (10) beats node-1 (0) for every IP.
    const without2 = new Set<string | null>();
    for (let i = 0; i < 64; i++) without2.add(electOwner(input({ service: svc(i), nodes, advertisements: [prefer], live: new Set(['node-1', 'node-3']) })).owner);
    assert.deepEqual([...without2], ['node-3']);
    // Equal weights: the rendezvous hash spreads the IPs over the preferred nodes only.
    const equal = adv({ preferredNodeSelectors: [{ weight: 1, preference: { matchLabels: { zone: 'b' } } }] });
    const spread = new Set<string | null>();
    for (let i = 0; i < 64; i++) spread.add(electOwner(input({ service: svc(i), nodes, advertisements: [equal] })).owner);
    assert.deepEqual([...spread].sort(), ['node-2', 'node-3']);
    // A preference never makes an ineligible node eligible.
    const onlyA = adv({ nodeSelectors: [{ matchLabels: { zone: 'a' } }], preferredNodeSelectors: [{ weight: 100, preference: { matchLabels: { fast: 'yes' } } }] });
    assert.equal(electOwner(input({ service: svc(1), nodes, advertisements: [onlyA] })).owner, 'node-1');
  });

  it('without preferences the owner is the plain rendezvous winner (unchanged behaviour)', () => {
    for (let i = 0; i < 32; i++) {
      const s = svc(i);
      const plain = electOwner(input({ service: s, nodes })).owner;
      const withEmpty = electOwner(input({ service: s, nodes, advertisements: [adv({ preferredNodeSelectors: [] })] })).owner;
      const best = ['node-1', 'node-2', 'node-3'].reduce((b, n) => (rendezvousScore(n, s.ips[0]!) > rendezvousScore(b, s.ips[0]!) ? n : b));
      assert.equal(plain, best);
      assert.equal(withEmpty, best);
    }
  });
});
