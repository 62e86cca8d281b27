// ipvs-sync-10k: in the IPVS VM, Portico's IPVS dataplane programs 10,000
// virtual services x 10 real servers from empty, then applies single endpoint
// changes; `ipvsadm -R` restores the same rules in a fresh namespace of the
// same VM for comparison. Targets: full sync <= 1.5x ipvsadm -R, one change <= 10 ms.
//   npm run bench -- ipvs-sync-10k [--services=N] [--reals=M] [--changes=K] [--resync=1]
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Vm, vmUnavailableReason } from '../test/vm/vm.ts';
import { report, summary } from './stats.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const INSIDE = path.join(here, '..', 'packages', 'speaker', 'src', 'dataplane', 'testdata', 'bench-sync.ts');
const args = new Map(process.argv.slice(2).map((a) => { const i = a.indexOf('='); return [a.slice(2, i), a.slice(i + 1)] as const; }));
const services = Number(args.get('services') ?? 10_000);
const reals = Number(args.get('reals') ?? 10);
const changes = Number(args.get('changes') ?? 20);
const resync = args.get('resync') === '1' ? 1 : 0;

const reason = vmUnavailableReason();
if (reason) {
  process.stderr.write(`ipvs-sync-10k cannot run: ${reason}\n`);
  process.exit(2);
}

const vm = await Vm.start({ modules: ['ip_vs', 'ip_vs_rr', 'dummy'], log: (m) => process.stderr.write(`${m}\n`) });
try {
  const r = await vm.run(`set -e
    ip netns add pdp-bench; ip -n pdp-bench link set lo up
    ip netns exec pdp-bench "${process.execPath}" "${INSIDE}" --services=${services} --reals=${reals} --changes=${changes} --resync=${resync} --rules=$PORTICO_OUT/rules > result.json
    ip netns del pdp-bench
    # The same rules restored by ipvsadm in a fresh namespace of the same VM.
    ip netns add pdp-bench-r; ip -n pdp-bench-r link set lo up
    s=$(date +%s%N); ip netns exec pdp-bench-r ipvsadm -R < $PORTICO_OUT/rules; e=$(date +%s%N)
    echo $(( (e - s) / 1000 )) > restore-us
    ip netns exec pdp-bench-r ipvsadm -Ln | grep -c '^TCP' > restored-services
    # One change by hand, for reference: a real server added and one deleted, with two ipvsadm processes as a script would.
    for i in $(seq 1 ${changes}); do
      s=$(date +%s%N)
      ip netns exec pdp-bench-r ipvsadm -a -t 203.0.113.1:1000 -r 100.66.0.$i:8080 -m -w 1
      ip netns exec pdp-bench-r ipvsadm -d -t 203.0.113.1:1000 -r 100.66.0.$i:8080
      e=$(date +%s%N); echo $(( (e - s) / 1000 )) >> change-us
    done
    ip netns del pdp-bench-r
    rm $PORTICO_OUT/rules`, { timeoutMs: 1_800_000 });
  if (r.exitCode !== 0) throw new Error(`the benchmark failed in the VM (${r.exitCode}): ${r.stderr}\n${r.stdout}`);
  const res = JSON.parse(r.files['result.json']!.toString()) as { services: number; reals: number; fullMs: number; fullOps: number; changeMs: number[]; steps: Array<Record<string, number>>; resyncMs: number | null; resyncOps: number };
  const restoreMs = Number(r.files['restore-us']!.toString()) / 1000;
  const restored = Number(r.files['restored-services']!.toString());
  if (restored !== res.services) throw new Error(`ipvsadm -R restored ${restored} services, Portico programmed ${res.services}`);
  const change = summary(res.changeMs);
  const byHand = summary(r.files['change-us']!.toString().trim().split('\n').map((us) => Number(us) / 1000));
  // Where one change's time goes: the median of each step over the changes.
  const stepNames = Object.keys(res.steps[0] ?? {});
  process.stderr.write(`one change, median per step (ms): ${stepNames.map((k) => `${k} ${summary(res.steps.map((st) => st[k]!)).p50.toFixed(2)}`).join(', ')}\n`);
  // The slowest changes, step by step (gc: garbage collection within the change).
  const slowest = res.changeMs.map((ms, i) => ({ ms, st: res.steps[i]! })).sort((a, b) => b.ms - a.ms).slice(0, 3);
  for (const { ms, st } of slowest) process.stderr.write(`slow change ${ms.toFixed(1)} ms: ${stepNames.map((k) => `${k} ${st[k]!.toFixed(1)}`).join(', ')}\n`);
  process.stderr.write(`VM kernel ${vm.kernel.version}; ${res.services} services, ${res.reals} real servers, ${res.fullOps} operations${res.resyncMs !== null ? `; a full resync of that state made ${res.resyncOps} changes` : ''}\n`);
  report('ipvs-sync-10k', {
    services: res.services, reals: res.reals,
    full_sync_ms: Math.round(res.fullMs), ipvsadm_restore_ms: Math.round(restoreMs), ratio: Number((res.fullMs / restoreMs).toFixed(2)),
    change_p50_ms: Number(change.p50.toFixed(2)), change_p99_ms: Number(change.p99.toFixed(2)), changes: res.changeMs.length,
    ipvsadm_change_p50_ms: Number(byHand.p50.toFixed(2)), ipvsadm_change_p99_ms: Number(byHand.p99.toFixed(2)),
    change_ratio_p50: Number((change.p50 / byHand.p50).toFixed(3)),
    ...(res.resyncMs !== null ? { resync_ms: Math.round(res.resyncMs) } : {}),
  });
} finally {
  await vm.stop();
}
