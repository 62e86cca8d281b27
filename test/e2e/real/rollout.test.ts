// A rolling update of the speaker DaemonSet on real nodes with traffic
// flowing: a client requests a layer-2 VIP every 10 ms (a new connection each
// time) while `kubectl rollout restart daemonset/portico-speaker` replaces the
// speakers one node at a time (maxSurge 0, minReadySeconds 10). Each stopping
// speaker tells its peers it restarts (they hold its IPs for 15 s) and keeps
// the table arp portico; the new one takes its IPs back. What must hold:
// - no request fails, but those in flight when the VIP moves to another node
//   (the new node has no conntrack entry for them): at most 2 per move, at one
//   request per 10 ms, each over in a few ms. The restart touches neither
//   kube-proxy's rules nor the pods, and the client keeps its neighbour entry
//   for the VIP reachable through its own traffic, so a speaker briefly down
//   breaks nothing by itself;
// - the VIP never moves to a node without a ready speaker: every ARP answer
//   for it (replies, gratuitous announcements, by capture on the client) that
//   changes the answering node comes from a node whose speaker pod is Ready,
//   give or take the readiness probe's period.
import { strict as assert } from 'node:assert';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { type Lab, repoRoot, sleep, waitFor } from '../../lab/index.ts';
import { manifestWorkload, PORTICO_NAMESPACE } from '../../lab/portico.ts';
import type { ProbeResult } from '../l2-probe.ts';
import { manifestInstall } from './install.ts';
import { exposeWeb, nodeMac, reach } from './layer2.ts';

const PROBE = path.join(repoRoot, 'test', 'e2e', 'l2-probe.ts');
const SPEAKERS = 'app.kubernetes.io/component=speaker';

/** One look at the speakers: per node, whether its speaker pod is Ready and not being deleted. */
interface Sample { at: number; ready: Map<string, boolean>; pods: Map<string, string> }

/** An ARP packet about the VIP from a node: a reply, or a gratuitous request (who-has VIP tell VIP). */
interface ArpAnswer { at: number; mac: string }

/** `tcpdump -tt -e -n` lines -> the answers for `vip` (the client's own requests are left out). */
function arpAnswers(text: string, vip: string): ArpAnswer[] {
  const out: ArpAnswer[] = [];
  for (const line of text.split('\n')) {
    if (!line.includes(`Reply ${vip} is-at`) && !line.includes(`who-has ${vip} tell ${vip},`)) continue;
    const [ts, mac] = line.split(' ');
    if (ts && mac) out.push({ at: Math.round(Number(ts) * 1000), mac });
  }
  return out;
}

/** The answers whose MAC differs from the one before (the first compared with the owner's): the VIP moving. */
function moves(answers: readonly ArpAnswer[], ownerMac: string): ArpAnswer[] {
  let last = ownerMac;
  const out: ArpAnswer[] = [];
  for (const a of answers) {
    if (a.mac !== last) out.push(a);
    last = a.mac;
  }
  return out;
}

describe('Portico on real nodes (e2e, root): a rolling update of the speaker DaemonSet with traffic flowing', function () {
  this.timeout(480_000);
  const portico = manifestInstall(['service/roll', 'deployment/roll']);
  let lab: Lab;
  const core = (): k8s.CoreV1Api => lab.kc.makeApiClient(k8s.CoreV1Api);

  before(function () { lab = portico.lab; });

  it('kubectl rollout restart: every speaker replaced, no request lost but at a move of the VIP, which goes only to nodes with a ready speaker', async function () {
    const svc = await exposeWeb(lab, 'roll');
    await reach(lab, `http://${svc.v4}/`);
    const macs = new Map<string, string>();
    for (const n of lab.nodes) macs.set(await nodeMac(lab, n.name), n.name);
    const ownerMac = [...macs].find(([, n]) => n === svc.owner)![0];
    const before = new Set((await core().listNamespacedPod({ namespace: PORTICO_NAMESPACE, labelSelector: SPEAKERS })).items.map((p) => p.metadata!.uid!));

    const base = path.join(lab.dir, `rollout-${process.pid}-${Date.now()}`);
    const [ready, stop, capFile] = [`${base}.ready`, `${base}.stop`, `${base}.arp`];
    const capture = lab.exec('client', ['sh', '-c',
      `tcpdump -tt -l -n -e -i eth0 arp > ${capFile} 2>/dev/null & p=$!; while [ ! -e ${stop} ]; do sleep 0.1; done; kill -INT $p; wait $p; true`], { allowFail: true, timeoutMs: 600_000 });
    const probe = lab.exec('client', [process.execPath, PROBE, '--duration-ms', '400000', '--interval-ms', '10', '--timeout-ms', '1000',
      '--ready-file', ready, '--stop-file', stop, `http://${svc.v4}/`], { timeoutMs: 600_000 });
    const samples: Sample[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const pods = (await core().listNamespacedPod({ namespace: PORTICO_NAMESPACE, labelSelector: SPEAKERS }).catch(() => undefined))?.items;
        if (pods) {
          const s: Sample = { at: Date.now(), ready: new Map(), pods: new Map() };
          for (const p of pods) {
            const node = p.spec?.nodeName ?? '';
            const ok = !p.metadata?.deletionTimestamp && p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
            s.ready.set(node, (s.ready.get(node) ?? false) || ok);
            s.pods.set(p.metadata!.name!, node);
          }
          samples.push(s);
        }
        await sleep(200);
      }
    })();
    let result: ProbeResult | undefined;
    let rolloutMs: number;
    try {
      await waitFor('the probe to start measuring', () => existsSync(ready) || undefined, 30_000, 20);
      await sleep(2000);
      const t0 = Date.now();
      await lab.kubectl('rollout', 'restart', '-n', PORTICO_NAMESPACE, 'daemonset/portico-speaker');
      const st = await lab.kubectlResult(['rollout', 'status', '-n', PORTICO_NAMESPACE, 'daemonset/portico-speaker', '--timeout=360s'], undefined, { timeoutMs: 380_000 });
      assert.equal(st.code, 0, `rollout status: ${st.stderr}`);
      rolloutMs = Date.now() - t0;
      await sleep(3000);
    } finally {
      writeFileSync(stop, 'stop\n');
      sampling = false;
      const out = (await probe).stdout.trim().split('\n').pop();
      result = out ? (JSON.parse(out) as ProbeResult[])[0] : undefined;
      await capture;
      await sampler;
    }
    const text = existsSync(capFile) ? readFileSync(capFile, 'utf8') : '';
    for (const f of [ready, stop, capFile]) rmSync(f, { force: true });

    const after = (await core().listNamespacedPod({ namespace: PORTICO_NAMESPACE, labelSelector: SPEAKERS })).items;
    assert.equal(after.length, lab.nodes.length);
    assert.ok(after.every((p) => !before.has(p.metadata!.uid!)), 'every speaker pod was replaced');
    const ds = manifestWorkload('DaemonSet', 'portico-speaker') as unknown as { spec: { minReadySeconds?: number } };
    assert.ok(rolloutMs >= (lab.nodes.length - 1) * (ds.spec.minReadySeconds ?? 0) * 1000, `one node at a time, each ready ${ds.spec.minReadySeconds} s before the next: ${rolloutMs} ms`);

    assert.ok(result, 'the probe reported');
    const answers = arpAnswers(text, svc.v4);
    const moved = moves(answers, ownerMac);
    const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    console.log(`      (rollout ${rolloutMs} ms; ${result.ok} good, ${result.failed} failed requests, longest gap ${result.maxGapMs} ms; ${answers.length} ARP answers for the VIP, ${moved.length} moves: ${moved.map((m) => macs.get(m.mac) ?? m.mac).join(', ') || 'none'}; load ${load})`);
    for (const m of moved) {
      const node = macs.get(m.mac);
      assert.ok(node, `an ARP answer for ${svc.v4} from ${m.mac}, no node's MAC`);
      // The kubelet marks a pod Ready on its readiness probe (every 2 s): a speaker ready a moment before its pod says so is ready.
      const near = samples.filter((s) => Math.abs(s.at - m.at) <= 3000);
      assert.ok(near.some((s) => s.ready.get(node)), `the VIP moved to ${node} at ${new Date(m.at).toISOString()} without a ready speaker there`);
    }
    const bound = 2 * moved.length;
    assert.ok(result.failed <= bound, `${result.failed} requests failed (bound ${bound}: 2 per move of the VIP); at ms ${result.failedAtMs.join(', ')} after ${new Date(result.startedAtMs).toISOString()}; last error ${result.lastError}`);
  });
});
