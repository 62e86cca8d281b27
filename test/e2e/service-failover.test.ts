// The failover a client feels (e2e, root, the process lab, nftables
// dataplane): a pod on every node, the VIP's owner killed with its pod, and
// nothing pinning the traffic. The new owner's dataplane balances over every
// endpoint the EndpointSlices list as ready, the dead node's included, until
// Portico's membership prunes them; the test checks that every request
// succeeds again within a bound, before Kubernetes marks the dead pods not
// ready, that one node at a time answers ARP/NDP for the VIPs (a capture on
// the client), and that the node's endpoints come back when it does.
import { strict as assert } from 'node:assert';
import { sleep, waitFor, type Lab } from '../lab/index.ts';
import { metric } from './l2-env.ts';
import { requireE2e, sharedLab } from './shared-lab.ts';
import { BOUND_MS, FO_APP, PRUNED, expectFailover, killOwner, showFigures, startFailover, urlsOf, type FailoverEnv, type Policy } from './service-failover-env.ts';


/** The API-server outage the issue asks to ride out (a node crash inside it included). */
const OUTAGE_MS = 60_000;
/** When, into the outage, the owner is killed: long enough for a quiet stretch to mean something. */
const CRASH_AT_MS = 45_000;

describe('service failover (e2e, root): the client\'s requests all succeed again soon after the owner dies with its pod', function () {
  this.timeout(240_000);
  let env: FailoverEnv;
  let lab: Lab;

  before(async function () {
    requireE2e(this);
    this.timeout(300_000);
    lab = await sharedLab();
    env = await startFailover(lab);
    await env.settle();
  });

  after(async function () {
    this.timeout(120_000);
    await env?.stop();
  });

  for (const policy of ['Cluster', 'Local'] as const satisfies readonly Policy[]) {
    it(`${policy}: kill the owner (and its pod): all requests succeed again within ${BOUND_MS} ms, before Kubernetes marks its pods not ready; one ARP/NDP answerer at a time`, async () => {
      const k = await killOwner(env, policy, { counters: [PRUNED('node-dead'), PRUNED('node-alive')] });
      await expectFailover(env, k, BOUND_MS);
    });
  }

  it(`the API server stopped for ${OUTAGE_MS / 1000} s: no announcement, nothing pruned; the owner killed ${CRASH_AT_MS / 1000} s into it still fails over within ${BOUND_MS} ms`, async function () {
    this.timeout(OUTAGE_MS + 180_000);
    const owner = (await env.settle()).Cluster;
    const names = lab.nodes.map((n) => n.name);
    const counters = async (): Promise<number[][]> => Promise.all(['portico_l2_gratuitous_sent_total', PRUNED('node-dead'), 'portico_membership_changes_total']
      .map((m) => Promise.all(names.map((n) => metric(lab, n, m)))));
    // A node that took VIPs in the tests before may still repeat its announcements (2.2 s): start from quiet.
    let prev = await counters();
    const before = await waitFor('the announcement rounds to finish', async () => {
      await sleep(2500);
      const now = await counters();
      const same = JSON.stringify(now) === JSON.stringify(prev);
      prev = now;
      return same ? now : undefined;
    }, 30_000, 0);
    const outageFrom = Date.now();
    let result: Awaited<ReturnType<FailoverEnv['probe']>> | undefined;
    let quiet: number[][] | undefined;
    let killed = false;
    try {
      await lab.stopApiServer();
      await sleep(CRASH_AT_MS - (Date.now() - outageFrom));
      quiet = await counters();
      for (const n of names) assert.equal(await metric(lab, n, 'portico_membership_live_nodes_count'), 3, `${n}: membership unchanged without the API server`);
      result = await env.probe(urlsOf(env.vips.Cluster), 3500, async () => { killed = true; await lab.killNode(owner); });
      await sleep(OUTAGE_MS - (Date.now() - outageFrom));
    } finally {
      // The kubelet comes back while the API server does (each waits for the other).
      await Promise.all([lab.startApiServer(), killed ? lab.restartNode(owner) : Promise.resolve()]);
    }
    const [gratuitous, pruned, changes] = quiet;
    assert.deepEqual({ gratuitous, pruned, changes }, { gratuitous: before[0], pruned: before[1], changes: before[2] }, `${CRASH_AT_MS / 1000} s without the API server: no announcement, no prune, no membership change`);
    const r = result;
    showFigures(`API server down ${Math.round((Date.now() - outageFrom) / 1000)} s, owner ${owner} killed at +${CRASH_AT_MS / 1000} s`, r.figures);
    for (const f of r.figures) {
      assert.equal(f.failedBefore, 0, `${f.url}: every request succeeded before the kill, ${CRASH_AT_MS / 1000} s into the outage`);
      assert.ok(f.lastFailureMs <= BOUND_MS, `${f.url}: requests still failed ${f.lastFailureMs} ms after the kill (errors ${JSON.stringify(r.samples.find((x) => x.url === f.url)!.errors)})`);
      assert.ok(f.pods.length >= 2, `${f.url}: the live nodes' pods answered once recovered, the dead node's pruned without the API server (${f.pods.join(', ')})`);
    }
    const heirs = await Promise.all(names.filter((n) => n !== owner).map(async (n) => [n, await metric(lab, n, PRUNED('node-dead'))] as const));
    assert.ok(heirs.every(([n, v]) => v > before[1]![names.indexOf(n)]!), `every live node pruned ${owner}'s endpoints during the outage (${JSON.stringify(heirs)})`);
    // The outage left every pod NotReady in the lab (its kubelet reports readiness only when a probe changes): new pods, then settle.
    await lab.kubectlResult(['delete', 'pods', '-n', FO_APP, '-l', 'app=web', '--wait=false']);
    await env.settle();
  });

  it('no component was refused by the API server: the manifests\' roles cover pruning', async () => {
    assert.deepEqual(await env.install.refusals(), []);
  });
});
