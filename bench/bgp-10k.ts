// bgp-10k: time from 10,000 Services allocated (a World holding them handed to
// the node's BGP announcer) to all 10,000 /32s in FRR's RIB, the time to
// withdraw them all, and the announcer process's peak RSS (VmHWM).
// The announcer runs in a lab node's namespace (packages/speaker/src/bgp/
// testdata/announcer-node.ts), FRR in a router namespace; both real.
// Target: <= 2 s, RSS <= 200 MB. Usage: npm run bench -- bgp-10k [runs=3] [services=10000]
// The announcer's node runs with the speaker's flags from manifests/speaker.yaml
// (--optimize-for-size); PORTICO_BENCH_NODE_FLAGS replaces them (e.g. '' or
// --max-semi-space-size=1) to see what each costs in RSS and time.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Lab, addRouter, repoRoot, waitFor } from '@portico/lab';
import { report, summary } from './stats.ts';

const runs = Number(process.argv[2] ?? 3);
const count = Number(process.argv[3] ?? 10_000);
const NODE_FLAGS = (process.env.PORTICO_BENCH_NODE_FLAGS ?? '--optimize-for-size').split(/\s+/).filter(Boolean);
const RUNNER = path.join(repoRoot, 'packages/speaker/src/bgp/testdata/announcer-node.ts');
// 100.64.64.0/18: inside the lab-only 100.64.0.0/16, clear of pod networks (100.64.1-3.0/24) and Service CIDR (100.64.240.0/20).
const POOL_BASE = (100 << 24) + (64 << 16) + (64 << 8);
const ipOf = (i: number): string => { const v = POOL_BASE + i; return [v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff].join('.'); };

const lab = await Lab.start({ prefix: 'pbgpbench', nodes: 1, clients: [] });
try {
  const node = lab.nodes[0]!;
  const frr = await addRouter(lab, {
    name: 'bench-frr', kind: 'frr', config: `
frr defaults datacenter
hostname bench-frr
router bgp 64513
 bgp router-id {{ipv4}}
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 neighbor ${node.ipv4} remote-as 64512
 neighbor ${node.ipv4} passive
 neighbor ${node.ipv4} timers 3 9
 address-family ipv4 unicast
  neighbor ${node.ipv4} activate
 exit-address-family
`,
  });
  const dir = path.join(lab.dir, 'bgp-10k');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'world.json');
  const publish = (n: number): void => {
    const services = Array.from({ length: n }, (_, i) => ({
      namespace: 'bench', name: `s${i}`, ips: [ipOf(i)], pool: 'bench',
      endpoints: [{ ip: '100.64.1.10', family: 'IPv4', node: node.name, ready: true, serving: true, terminating: false, ports: {}, pod: 'p' }],
    }));
    const world = {
      self: node.name,
      config: {
        pools: [{ name: 'bench', ranges: ['100.64.64.0/18'] }],
        peers: [{ name: 'frr', myASN: 64512, peerASN: 64513, peerAddress: frr.ipv4 }],
        bgpAdvertisements: [{ name: 'all', pools: ['bench'], communities: ['64512:100'] }],
      },
      services, nodes: [{ name: node.name, addresses: [node.ipv4, node.ipv6] }],
    };
    writeFileSync(`${file}.tmp`, JSON.stringify(world));
    renameSync(`${file}.tmp`, file);
  };
  const received = async (): Promise<number> => {
    const j = JSON.parse(await frr.cli(['show bgp ipv4 unicast summary json'])) as { peers?: Record<string, { pfxRcd?: number; state?: string }> };
    return j.peers?.[node.ipv4]?.pfxRcd ?? -1;
  };

  publish(0);
  const speaker = lab.spawn('bgp-bench-speaker', node.name, [process.execPath, ...NODE_FLAGS, RUNNER, '--world', file]);
  await waitFor('the session Established', async () => (await received()) === 0, 30_000, 100);

  const announce: number[] = [];
  const withdraw: number[] = [];
  for (let r = 0; r < runs; r++) {
    let t0 = performance.now();
    publish(count);
    await waitFor(`${count} prefixes in FRR`, async () => (await received()) === count, 60_000, 20);
    announce.push(performance.now() - t0);
    t0 = performance.now();
    publish(0);
    await waitFor('every prefix withdrawn', async () => (await received()) === 0, 60_000, 20);
    withdraw.push(performance.now() - t0);
    process.stderr.write(`run ${r + 1}/${runs}: announce ${Math.round(announce[r]!)} ms, withdraw ${Math.round(withdraw[r]!)} ms\n`);
  }
  // The RIB, not just the counter: spot-check the last prefix and its attributes.
  publish(count);
  await waitFor(`${count} prefixes in FRR`, async () => (await received()) === count, 60_000, 50);
  const last = JSON.parse(await frr.cli([`show bgp ipv4 unicast ${ipOf(count - 1)}/32 json`])) as { paths?: { nexthops?: { ip?: string }[]; community?: { string?: string } }[] };
  if (last.paths?.[0]?.nexthops?.[0]?.ip !== node.ipv4 || last.paths[0].community?.string !== '64512:100') throw new Error(`unexpected path in FRR: ${JSON.stringify(last)}`);
  const status = readFileSync(`/proc/${speaker.pid}/status`, 'utf8');
  const hwmKb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  const a = summary(announce);
  const w = summary(withdraw);
  report('bgp-10k', { prefixes: count, p50_ms: Math.round(a.p50), max_ms: Math.round(a.max), withdraw_p50_ms: Math.round(w.p50), speaker_peak_rss_mb: Math.round(hwmKb / 1024), runs, ...(NODE_FLAGS.length ? { node_flags: NODE_FLAGS.join(' ') } : {}) });
} finally {
  await lab.stop();
}
