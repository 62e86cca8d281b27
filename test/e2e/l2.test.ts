// Layer 2 end to end: the controller and a speaker per node installed from the
// manifests (each as its ServiceAccount, under the API server's RBAC) on the
// lab's real API server, a dual-stack LoadBalancer Service, and a client on the segment.
// The client's own kernel resolves the VIPs (ARP and NDP) and its HTTP
// requests must reach a pod; then the properties of DESIGN.md decision 9:
// a killed or disconnected owner is replaced within 1 s, an API outage and a
// speaker restart change nothing, and exactly one node answers.
import { strict as assert } from 'node:assert';
import * as k8s from '@kubernetes/client-node';
import { sleep, waitFor, type Lab } from '../lab/index.ts';
import { APP, SPEAKER, captureAnswers, metric, neighbour, settled, startL2, type L2Env, type ProbeResult } from './l2-env.ts';
import { requireE2e, sharedLab } from './shared-lab.ts';

/** The e2e budget for an API outage (the issue asks for a minute; CI time is shared). */
const OUTAGE_MS = 25_000;

describe('layer 2 (e2e, root): ARP/NDP ownership, failover and stability in the lab', function () {
  this.timeout(180_000);
  let env: L2Env;
  let lab: Lab;

  before(async function () {
    requireE2e(this);
    this.timeout(240_000);
    lab = await sharedLab();
    env = await startL2(lab);
    await settled(lab, env);
  });

  after(async function () {
    this.timeout(120_000);
    await env?.stop();
  });

  const assertFlows = (results: ProbeResult[], maxGapMs: number, what: string): void => {
    console.log(`      ${what}: longest silence ${results.map((r) => `${r.url} ${r.maxGapMs} ms (${r.failed} failed of ${r.ok + r.failed})`).join(', ')}`);
    for (const r of results) {
      assert.ok(r.ok > 0, `${what}: ${r.url} never answered (${r.lastError})`);
      assert.ok(r.maxGapMs <= maxGapMs, `${what}: ${r.url} went silent for ${r.maxGapMs} ms (${r.gapFromMs}-${r.gapToMs} ms into the probe; ok ${r.ok}, failed ${r.failed}, last error ${r.lastError})`);
    }
  };

  it('the client resolves both VIPs to the owner\'s MAC and HTTP reaches the pods over IPv4 and IPv6 (through the speakers\' dataplane)', async () => {
    const owner = await env.owner();
    const dataplane = await lab.exec(owner, ['nft', 'list', 'table', 'inet', 'portico'], { allowFail: true });
    assert.equal(dataplane.code, 0, 'the speaker\'s nftables dataplane programs table inet portico');
    const pods = (await lab.kc.makeApiClient(k8s.CoreV1Api).listNamespacedPod({ namespace: APP, labelSelector: 'app=web' })).items.map((p) => p.metadata?.name);
    for (const url of [`http://${env.vip4}/`, `http://[${env.vip6}]/`]) {
      const body = JSON.parse(await waitFor(`${url} to answer`, () => lab.curl('client', url, { timeoutS: 2 }).catch(() => undefined), 20_000, 200)) as { pod: string };
      assert.ok(pods.includes(body.pod), `${body.pod} is one of ${pods.join(', ')}`);
    }
    const mac = await env.macOf(owner);
    assert.equal(await neighbour(lab, env.vip4), mac, 'ARP resolved to the owner');
    assert.equal(await neighbour(lab, env.vip6), mac, 'NDP resolved to the owner');
    const events = await lab.kc.makeApiClient(k8s.CoreV1Api).listNamespacedEvent({ namespace: APP, fieldSelector: 'involvedObject.name=web' });
    assert.ok(events.items.some((e) => e.reason === 'nodeAssigned' && e.message?.includes(`node "${owner}"`) && e.message.includes('layer2')), 'a nodeAssigned Event names the owner');
    assert.equal(await metric(lab, owner, 'portico_l2_owned_addresses'), 2);
    assert.equal(await metric(lab, owner, 'portico_membership_live_nodes_count'), 3);
  });

  it('exactly one node answers ARP and NDP for the VIPs once settled (capture on the client)', async () => {
    const owner = await env.owner();
    const cap = await captureAnswers(lab, env.vip4, env.vip6, async () => {
      await lab.exec('client', ['ip', 'neigh', 'flush', 'dev', 'eth0']);
      await lab.curl('client', `http://${env.vip4}/`, { timeoutS: 2 });
      await lab.curl('client', `http://[${env.vip6}]/`, { timeoutS: 2 });
    });
    const mac = await env.macOf(owner);
    assert.deepEqual([...cap.arp], [mac], `ARP answers: ${cap.lines.join('\n')}`);
    assert.deepEqual([...cap.ndp], [mac], `NDP answers: ${cap.lines.join('\n')}`);
    for (const n of lab.nodes.filter((x) => x.name !== owner)) assert.equal(await metric(lab, n.name, 'portico_l2_owned_addresses'), 0, `${n.name} owns nothing`);
  });

  it('a speaker restart on the owner does not move the IPs and traffic keeps flowing', async () => {
    const owner = await env.owner();
    const mac = await env.macOf(owner);
    await env.forwardTo(owner);
    const others = await Promise.all(lab.nodes.filter((n) => n.name !== owner).map((n) => metric(lab, n.name, 'portico_l2_gratuitous_sent_total')));
    const results = await env.probe(6000, () => lab.restartOnNode(SPEAKER, owner), { intervalMs: 50 });
    assertFlows(results, 1000, 'speaker restart');
    assert.equal(await env.owner(), owner);
    await waitFor('the restarted speaker to answer again', async () => (await metric(lab, owner, 'portico_l2_owned_addresses')) === 2, 20_000, 200);
    const after = await Promise.all(lab.nodes.filter((n) => n.name !== owner).map((n) => metric(lab, n.name, 'portico_l2_gratuitous_sent_total')));
    assert.deepEqual(after, others, 'no other node announced the VIPs');
    assert.equal(await neighbour(lab, env.vip4), mac);
  });

  for (const how of ['killed', 'disconnected'] as const) {
    it(`the owner ${how}: another node answers and traffic flows again within 1 s (IPv4 and IPv6)`, async () => {
      const owner = await env.owner();
      await env.forwardTo(owner);
      const changesBefore = new Map(await Promise.all(lab.nodes.filter((n) => n.name !== owner).map(async (n) => [n.name, await metric(lab, n.name, 'portico_membership_changes_total')] as const)));
      let results: ProbeResult[];
      try {
        results = await env.probe(4000, () => (how === 'killed' ? lab.killNode(owner) : lab.disconnectNode(owner)));
        const heir = await waitFor('a new owner in the Service\'s annotations', async () => { const o = await env.owner(); return o !== owner && o !== '' ? o : undefined; }, 20_000, 200);
        assert.ok(await metric(lab, heir, 'portico_membership_changes_total') > changesBefore.get(heir)!, 'the heir counted the membership change');
        assert.equal(await neighbour(lab, env.vip4), await env.macOf(heir), 'the client\'s ARP entry points at the new owner');
        assert.equal(await neighbour(lab, env.vip6), await env.macOf(heir), 'the client\'s NDP entry points at the new owner');
        if (how === 'disconnected') assert.equal(await metric(lab, owner, 'portico_l2_owned_addresses'), 0, 'the cut-off node claims nothing');
      } finally {
        if (how === 'killed') await lab.restartNode(owner);
        else await lab.reconnectNode(owner);
      }
      assertFlows(results, 1000, `owner ${how}`);
      // Settle again before the next test: the returning node takes back what the hash gives it.
      await settled(lab, env);
    });
  }

  it(`the API server stopped for ${OUTAGE_MS / 1000} s changes no announcement and traffic keeps flowing`, async () => {
    // From an agreed owner (annotation and every speaker's metrics), not the annotation alone: a test before that failed ends unsettled.
    const owner = await settled(lab, env);
    await env.forwardTo(owner);
    // A node that took the VIPs in the previous test is still repeating its announcements (for 2.2 s): let them finish.
    const gratuitous = (): Promise<number[]> => Promise.all(lab.nodes.map((n) => metric(lab, n.name, 'portico_l2_gratuitous_sent_total')));
    let prev = await gratuitous();
    const before = await waitFor('the announcement rounds to finish', async () => {
      await sleep(2500);
      const now = await gratuitous();
      const same = now.every((v, i) => v === prev[i]);
      prev = now;
      return same ? now : undefined;
    }, 30_000, 0);
    let results: ProbeResult[];
    try {
      results = await env.probe(OUTAGE_MS, async () => {
        await lab.stopApiServer();
        await sleep(OUTAGE_MS - 3000);
        assert.equal(await metric(lab, owner, 'portico_membership_live_nodes_count'), 3, 'membership unchanged without the API server');
      }, { intervalMs: 100 });
    } finally {
      await lab.startApiServer();
    }
    assertFlows(results, 1000, 'API outage');
    const after = await Promise.all(lab.nodes.map((n) => metric(lab, n.name, 'portico_l2_gratuitous_sent_total')));
    assert.deepEqual(after, before, 'no node sent an announcement');
    assert.equal(await env.owner(), owner);
    // Lab limitation (left as is, this test being last): after the outage
    // kube-controller-manager marks the pods NotReady (their nodes missed
    // heartbeats) and the lab kubelet re-reports readiness only when its own
    // probe changes, so the pods stay NotReady until deleted.
  });

  it('no component was refused by the API server (kills, restarts and the outage included): the manifests\' roles cover layer 2', async () => {
    assert.deepEqual(await env.install.refusals(), []);
  });
});
