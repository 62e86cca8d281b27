// Pruning: which endpoints leave the dataplane when membership sees a node
// die, and the nftables dataplane rewriting its table on a verdict alone.
import { strict as assert } from 'node:assert';
import { createRegistry, type LogFields, type Logger } from '@portico/shared';
import type { NodeLiveness } from '../membership/membership.ts';
import { LivenessFeed, type LivenessSnapshot } from '../membership/liveness.ts';
import { desiredState } from './desired.ts';
import { createDataplaneMetrics } from './metrics.ts';
import { NftDataplane } from './nftables.ts';
import { PRUNE_VERDICTS, Pruner, deadNodes, pruneDesired, pruneVerdict, type PruneVerdict } from './prune.ts';
import { endpoint, service, world } from './testdata/world.ts';

const snap = (reasons: Record<string, NodeLiveness>, settled = true): LivenessSnapshot => ({ reasons: new Map(Object.entries(reasons)), settled });

/** Endpoints on three nodes, both families; this speaker is node-1. */
const EPS = [
  endpoint('100.64.1.5', 'node-1'), endpoint('100.64.2.5', 'node-2'), endpoint('100.64.3.5', 'node-3'),
  endpoint('2001:db8:64:1::5', 'node-1'), endpoint('2001:db8:64:2::5', 'node-2'), endpoint('2001:db8:64:3::5', 'node-3'),
];

const realsOf = (state: ReturnType<typeof desiredState>): string[] => [...state.services.values()].flatMap((vs) => vs.reals.map((r) => `${vs.address} ${r.address}`)).sort();

function recordingLogger(lines: { msg: string; fields: LogFields }[]): Logger {
  const l: Logger = {
    info: (msg, fields = {}) => lines.push({ msg, fields }), debug: () => {}, error: (msg, fields = {}) => lines.push({ msg, fields }),
    child: () => l, debugEnabled: false,
  };
  return l;
}

describe('pruning: the verdict per endpoint node', () => {
  const liveness = snap({ 'node-1': 'self', a: 'alive', j: 'joining', r: 'restarting', s: 'silent', n: 'never-heard', l: 'left', x: 'no-address' });
  const table: { name: string; node: string | undefined; liveness?: LivenessSnapshot; want: PruneVerdict }[] = [
    { name: 'this node', node: 'node-1', want: 'self' },
    { name: 'a node heard within dead-after', node: 'a', want: 'node-alive' },
    { name: 'a node just learnt of (its heartbeats were dropped as unknown until now)', node: 'j', want: 'node-alive' },
    { name: 'a node whose speaker announced a planned restart', node: 'r', want: 'node-alive' },
    { name: 'a node heard before and silent for dead-after: the only pruned case', node: 's', want: 'node-dead' },
    { name: 'a node never heard (may run no speaker: Kubernetes decides)', node: 'n', want: 'node-unknown' },
    { name: 'a node membership does not list at all', node: 'elsewhere', want: 'node-unknown' },
    { name: 'a node whose speaker left gracefully (the node may run on)', node: 'l', want: 'node-left' },
    { name: 'a node without an address to hear it on', node: 'x', want: 'no-address' },
    { name: 'an endpoint naming no node', node: undefined, want: 'no-node' },
    { name: 'a silent node before membership settled', node: 's', liveness: snap({ s: 'silent' }, false), want: 'not-settled' },
  ];
  for (const t of table) it(`${t.name}: ${t.want}`, () => assert.equal(pruneVerdict(t.node, t.liveness ?? liveness), t.want));

  it('every verdict is listed, and only node-dead prunes', () => {
    assert.deepEqual(new Set(table.map((t) => t.want)), new Set(PRUNE_VERDICTS));
    assert.deepEqual([...deadNodes(liveness)], ['s']);
    assert.deepEqual([...deadNodes(snap({ s: 'silent' }, false))], [], 'nothing is pruned before membership settled');
  });
});

describe('pruning: the desired state', () => {
  const scenarios: { name: string; services: Parameters<typeof world>[1]; dead: string[]; want: string[]; keptWhole?: number }[] = [
    {
      name: 'Cluster, node-2 dead: its endpoints leave both families, the others stay',
      services: [service('web', { ips: ['203.0.113.10', '2001:db8:10::a'], endpoints: EPS })], dead: ['node-2'],
      want: ['2001:db8:10::a 2001:db8:64:1::5', '2001:db8:10::a 2001:db8:64:3::5', '203.0.113.10 100.64.1.5', '203.0.113.10 100.64.3.5'],
    },
    {
      name: 'Cluster, two nodes dead: only this node\'s endpoints are left',
      services: [service('web', { endpoints: EPS })], dead: ['node-2', 'node-3'], want: ['203.0.113.10 100.64.1.5'],
    },
    {
      name: 'Local: this node programs its own endpoints only, pruning has nothing to take',
      services: [service('web', { endpoints: EPS, externalTrafficPolicy: 'Local' })], dead: ['node-2'], want: ['203.0.113.10 100.64.1.5'],
    },
    {
      name: 'every endpoint on the dead node: the service is kept whole (nothing better to send to)',
      services: [service('web', { endpoints: [endpoint('100.64.2.5', 'node-2'), endpoint('100.64.2.6', 'node-2')] })], dead: ['node-2'],
      want: ['203.0.113.10 100.64.2.5', '203.0.113.10 100.64.2.6'], keptWhole: 1,
    },
    {
      name: 'an endpoint that names no node is kept',
      services: [service('web', { endpoints: [endpoint('100.64.2.5', 'node-2'), endpoint('100.64.9.5', 'x', { node: undefined })] })], dead: ['node-2'],
      want: ['203.0.113.10 100.64.9.5'],
    },
    {
      name: 'a dead node another service does not use leaves that service alone',
      services: [service('web', { endpoints: EPS }), service('api', { ips: ['203.0.113.11'], endpoints: [endpoint('100.64.3.7', 'node-3')] })], dead: ['node-2'],
      want: ['203.0.113.10 100.64.1.5', '203.0.113.10 100.64.3.5', '203.0.113.11 100.64.3.7'],
    },
  ];
  for (const s of scenarios) {
    it(s.name, () => {
      const state = desiredState(world('node-1', s.services));
      const r = pruneDesired(state, new Set(s.dead));
      assert.deepEqual(realsOf(r.state), s.want);
      assert.equal(r.keptWhole.length, s.keptWhole ?? 0);
      assert.equal(r.pruned, realsOf(state).length - s.want.length);
    });
  }

  it('no dead node: the same state object, no work', () => {
    const state = desiredState(world('node-1', [service('web', { endpoints: EPS })]));
    assert.equal(pruneDesired(state, new Set()).state, state);
    assert.equal(pruneDesired(state, new Set(['node-9'])).state, state, 'a dead node without endpoints changes nothing');
  });
});

describe('pruning: the Pruner follows membership, logs and counts', () => {
  it('prunes on node-dead, restores when heard again, and says why each time', async () => {
    const feed = new LivenessFeed();
    const lines: { msg: string; fields: LogFields }[] = [];
    const registry = createRegistry(false);
    const metrics = createDataplaneMetrics(registry);
    let changes = 0;
    const p = new Pruner({ feed, dataplane: 'nftables', log: recordingLogger(lines), metrics, onChange: () => changes++ });
    const steps: { publish: LivenessSnapshot; dead: string[]; changes: number }[] = [
      { publish: snap({ 'node-2': 'silent', 'node-3': 'alive' }, false), dead: [], changes: 0 },
      { publish: snap({ 'node-2': 'alive', 'node-3': 'alive' }), dead: [], changes: 0 },
      { publish: snap({ 'node-2': 'silent', 'node-3': 'alive', 'node-4': 'never-heard' }), dead: ['node-2'], changes: 1 },
      { publish: snap({ 'node-2': 'silent', 'node-3': 'alive', 'node-4': 'never-heard' }), dead: ['node-2'], changes: 1 },
      { publish: snap({ 'node-2': 'silent', 'node-3': 'silent' }), dead: ['node-2', 'node-3'], changes: 2 },
      { publish: snap({ 'node-2': 'alive', 'node-3': 'left' }), dead: [], changes: 3 },
    ];
    for (const [i, s] of steps.entries()) {
      feed.publish(s.publish);
      assert.deepEqual([...p.dead].sort(), s.dead, `step ${i}`);
      assert.equal(changes, s.changes, `step ${i}: onChange only when the dead set changed`);
    }
    assert.deepEqual(lines.map((l) => `${l.msg} ${String(l.fields.node)} ${String(l.fields.reason)}`), [
      'endpoints of a dead node pruned node-2 node-dead',
      'endpoints of a dead node pruned node-3 node-dead',
      'endpoints of a node restored node-2 node-alive',
      'endpoints of a node restored node-3 node-left',
    ]);
    const text = await registry.metrics();
    assert.match(text, /portico_dataplane_prune_changes_total\{dataplane="nftables",reason="node-dead"\} 2/);
    assert.match(text, /portico_dataplane_prune_changes_total\{dataplane="nftables",reason="node-alive"\} 1/);
    assert.match(text, /portico_dataplane_pruned_nodes_count\{dataplane="nftables"\} 0/);
    p.stop();
    feed.publish(snap({ 'node-2': 'silent' }));
    assert.equal(changes, 3, 'a stopped Pruner no longer follows the feed');
  });

  it('without a feed (no layer 2, hence no membership) nothing is ever pruned', () => {
    const p = new Pruner({ feed: undefined, dataplane: 'ipvs', log: recordingLogger([]), metrics: undefined, onChange: () => assert.fail('no change without a feed') });
    const state = desiredState(world('node-1', [service('web', { endpoints: EPS })]));
    assert.equal(p.apply(state), state);
  });
});

describe('pruning: the nftables dataplane', () => {
  it('a death rewrites the table without that node\'s endpoints at once (no new World), and its return puts them back', async () => {
    const feed = new LivenessFeed();
    const written: string[] = [];
    const dp = new NftDataplane({ nft: (text) => { written.push(text); return Promise.resolve(); }, liveness: feed });
    feed.publish(snap({ 'node-1': 'self', 'node-2': 'alive', 'node-3': 'alive' }));
    await dp.update(world('node-1', [service('web', { endpoints: EPS.slice(0, 3) })]));
    assert.match(dp.table ?? '', /numgen random mod 3 map \{ 0 : 100\.64\.1\.5 \. 8080, 1 : 100\.64\.2\.5 \. 8080, 2 : 100\.64\.3\.5 \. 8080 \}/);
    feed.publish(snap({ 'node-1': 'self', 'node-2': 'silent', 'node-3': 'alive' }));
    await until('the table without node-2', () => /numgen random mod 2 map \{ 0 : 100\.64\.1\.5 \. 8080, 1 : 100\.64\.3\.5 \. 8080 \}/.test(dp.table ?? ''));
    assert.equal(written.length, 2);
    feed.publish(snap({ 'node-1': 'self', 'node-2': 'alive', 'node-3': 'alive' }));
    await until('node-2 back', () => /numgen random mod 3 map/.test(dp.table ?? ''));
    await dp.stop();
  });

  it('requests that arrive while a write runs are joined into one more write', async () => {
    const feed = new LivenessFeed();
    let release: () => void = () => {};
    const written: string[] = [];
    const dp = new NftDataplane({ nft: (text) => { written.push(text); return new Promise((r) => { release = r; }); }, liveness: feed });
    feed.publish(snap({ 'node-2': 'alive', 'node-3': 'alive' }));
    const first = dp.update(world('node-1', [service('web', { endpoints: EPS.slice(0, 3) })]));
    await until('the first write', () => written.length === 1);
    feed.publish(snap({ 'node-2': 'silent', 'node-3': 'alive' }));
    feed.publish(snap({ 'node-2': 'silent', 'node-3': 'silent' }));
    const second = dp.update(world('node-1', [service('web', { endpoints: EPS.slice(0, 3) })]));
    release();
    await first;
    await until('the second write', () => written.length === 2);
    release();
    await second;
    assert.equal(written.length, 2, 'two verdicts and a World while writing: one more write');
    assert.match(written[1] ?? '', /numgen random mod 1 map \{ 0 : 100\.64\.1\.5 \. 8080 \}/);
    await dp.stop();
  });
});

async function until(what: string, ok: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}
