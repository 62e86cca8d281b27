// The nftables dataplane in the lab (the machines' own kernel, which has no
// ip_vs): the controller gives a dual-stack Service its IPs on the segment,
// speakers run on every node with --dataplane=nftables, the layer-2
// announcer draws the client's traffic to the owner, and the owner's table
// inet portico DNATs it to pods on every node. Checked: which pods answer and
// which client address each one saw, for Cluster and Local policies.
import { strict as assert } from 'node:assert';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { PORTICO_NAMESPACE as NS, installPortico, waitFor, type Lab, type PorticoInstall } from '../lab/index.ts';
import { FAST_LEASE, SPEAKER_PROCESS } from '../lab/portico.ts';
import { metric, neighbour } from './l2-env.ts';
import { apply as applyTo, l2Advertisement, pool, service as lbService, type Obj } from './objects.ts';
import { requireE2e, sharedLab } from './shared-lab.ts';

const APP = 'pdp-nft';
const POOL = 'pdp-nft-pool';

interface Answer { pod: string; node: string; client: string }

/** The chain the speaker names for a virtual service (packages/speaker/src/dataplane/nft.ts: sha256 of its key). */
const chainOf = (vip: string): string => `svc-${createHash('sha256').update(`tcp/${vip}/80`).digest('hex').slice(0, 12)}`;

/** What a node's table does with VIP:80: the numgen modulus and the endpoints of its DNAT map, or why it does not. */
function dnatOf(table: string, vip: string): { mod: number; targets: string[] } | string {
  const chain = chainOf(vip);
  if (!table.includes(`${vip} . tcp . 80 : goto ${chain}`)) return `no map element for ${vip}`;
  const at = table.indexOf(`chain ${chain} {`);
  if (at < 0) return `no chain ${chain}`;
  const body = table.slice(at, table.indexOf('\n\t}', at));
  const m = /numgen random mod (\d+) map \{ ([^}]*) \}/.exec(body);
  if (!m) return `chain ${chain} has no numgen DNAT: ${body.replace(/\s+/g, ' ')}`;
  const targets = m[2]!.split(',').map((t) => t.trim().replace(/^\d+ : /, '').replace(/ \. 80$/, '')).sort();
  return { mod: Number(m[1]), targets };
}

describe('nftables dataplane in the lab (e2e, root)', function () {
  this.timeout(240_000);
  let lab: Lab;
  let core: k8s.CoreV1Api;
  let install: PorticoInstall | undefined;
  const cleanups: Array<() => Promise<unknown>> = [];

  const apply = (...objs: Obj[]): Promise<void> => applyTo(lab, ...objs);
  const service = (name: string, policy: 'Cluster' | 'Local'): Obj => lbService(name, APP, {
    externalTrafficPolicy: policy, ipFamilyPolicy: 'RequireDualStack', ipFamilies: ['IPv4', 'IPv6'], selector: { app: 'pdp-web' },
  }, { 'portico.dev/address-pool': POOL });
  const ipsOf = (name: string): Promise<string[]> => waitFor(`${name} to get two IPs`, async () => {
    const s = await core.readNamespacedService({ name, namespace: APP });
    const ips = (s.status?.loadBalancer?.ingress ?? []).map((i) => i.ip ?? '');
    return ips.length === 2 ? ips : undefined;
  }, 60_000, 200);
  const annotatedOwner = async (name: string): Promise<string> => {
    const s = await core.readNamespacedService({ name, namespace: APP });
    return s.metadata?.annotations?.['portico.dev/layer2-node'] ?? '';
  };
  /** The node whose MAC the client's kernel resolved `ip` to, after forgetting what it knew. */
  const arpOwner = async (ip: string): Promise<string> => {
    await lab.exec('client', ['ip', 'neigh', 'flush', 'to', ip, 'dev', 'eth0'], { allowFail: true });
    await lab.exec('client', ['ping', '-c', '1', '-W', '1', ip], { allowFail: true });
    const mac = await neighbour(lab, ip);
    for (const n of lab.nodes) {
      if ((await lab.exec(n.name, ['cat', '/sys/class/net/eth0/address'])).stdout.trim() === mac) return n.name;
    }
    return '';
  };
  /**
   * The node that answers for the Service's IPs. The portico.dev/layer2-node
   * annotation is only a report, written by the owner after it takes over: while
   * the speakers are still meeting (each first sees only itself), it can name a
   * node that has since handed over. So the owner is the node the client's ARP
   * resolves both IPs to, agreeing with the annotation and with every speaker
   * seeing all three, twice in a row.
   */
  const ownerOf = async (name: string): Promise<string> => {
    const ips = await ipsOf(name);
    let last = '';
    return waitFor(`${name} to have one settled layer-2 owner`, async () => {
      const live = await Promise.all(lab.nodes.map((n) => metric(lab, n.name, 'portico_membership_live_nodes_count')));
      const annotated = await annotatedOwner(name);
      const byArp = await Promise.all(ips.filter((ip) => !ip.includes(':')).map(arpOwner));
      const v = live.every((x) => x === lab.nodes.length) && annotated !== '' && byArp.every((o) => o === annotated) ? annotated : '';
      const stable = v !== '' && v === last;
      last = v;
      return stable ? v : undefined;
    }, 60_000, 500);
  };
  /** The ready endpoints of the Service's EndpointSlices, by family. */
  const readyEndpoints = async (name: string): Promise<{ v4: string[]; v6: string[] }> => {
    const ready = (await lab.endpoints(name, APP)).filter((e) => e.ready);
    const of = (family: string): string[] => ready.filter((e) => e.family === family).map((e) => e.ip).sort();
    return { v4: of('IPv4'), v6: of('IPv6') };
  };
  /** n requests from the client, each a new connection. */
  const ask = async (url: string, n: number): Promise<Answer[]> => {
    const out: Answer[] = [];
    for (let i = 0; i < n; i++) out.push(JSON.parse(await lab.curl('client', url, { timeoutS: 3 })) as Answer);
    return out;
  };
  const url = (ip: string): string => (ip.includes(':') ? `http://[${ip}]/` : `http://${ip}/`);

  before(async function () {
    requireE2e(this);
    this.timeout(600_000);
    lab = await sharedLab();
    core = lab.kc.makeApiClient(k8s.CoreV1Api);
    await lab.kubectlResult(['create', 'namespace', NS]);
    await lab.kubectlResult(['create', 'secret', 'generic', 'portico-heartbeat', '-n', NS, `--from-literal=key=${randomBytes(32).toString('hex')}`]);
    // Portico from the manifests, its speakers told to use nftables.
    install = await installPortico(lab, {
      replicas: 1, controllerArgs: FAST_LEASE, speakerArgs: ['--dataplane=nftables'], stateDir: path.join(lab.dir, 'portico-nft'),
    });
    const started = install;
    cleanups.push(() => started.stop());
    // Portico leaves its table in place when the speaker stops (traffic keeps flowing across a restart): remove it here.
    cleanups.push(async () => { for (const n of lab.nodes) await lab.exec(n.name, ['nft', 'delete', 'table', 'inet', 'portico'], { allowFail: true }); });
    await apply(pool(POOL, { addresses: ['198.51.100.176/28', '2001:db8:1::b0/124'], autoAssign: false }), l2Advertisement(POOL, { ipAddressPools: [POOL] }));
    cleanups.push(() => lab.kubectlResult(['delete', 'l2advertisements,ipaddresspools', POOL, '-n', NS, '--ignore-not-found']));
    await lab.kubectlResult(['create', 'namespace', APP]);
    cleanups.push(() => lab.kubectlResult(['delete', 'namespace', APP, '--wait=false']));
    // One pod per node, placed by name so every node has one.
    await apply(...lab.nodes.map((n): Obj => ({
      apiVersion: 'v1', kind: 'Pod', metadata: { name: `web-${n.name}`, namespace: APP, labels: { app: 'pdp-web' } },
      spec: { nodeName: n.name, containers: [{ name: 'web', image: 'portico.dev/podserver', ports: [{ containerPort: 80, name: 'http' }] }] },
    })));
    await apply(service('cluster', 'Cluster'), service('local', 'Local'));
  });

  after(async function () {
    this.timeout(60_000);
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  // Once skipped as intermittent: it waited 60 s for "numgen random mod 3" in the
  // table of the node the layer2-node annotation named, and timed out once right
  // after the lab suite's node kills. Every node programs every Service
  // (dataplane/desired.ts), so a stale annotation could not leave the VIP out of
  // the table read; the fixed "mod 3" could: the table DNATs to the *ready*
  // endpoints only, so one pod not (yet) Ready, e.g. on a node that had just come
  // back, keeps it at "mod 2" (the traffic checks below need only two nodes' pods,
  // and passed in that run). Now the expected DNAT is the EndpointSlices' ready
  // endpoints, after waiting for all three, checked on every node, and a timeout
  // says what the table and the endpoints held.
  it('the speaker chose nftables because it was asked, and wrote table inet portico with DNAT for the VIPs to the ready endpoints', async () => {
    const [vip4, vip6] = await ipsOf('cluster') as [string, string];
    let seen = '';
    await waitFor('the three pods\' endpoints to be ready', async () => {
      const r = await readyEndpoints('cluster');
      seen = `IPv4 ${r.v4.join(', ') || '-'}; IPv6 ${r.v6.join(', ') || '-'}`;
      return r.v4.length === lab.nodes.length && r.v6.length === lab.nodes.length;
    }, 90_000, 250).catch((err: unknown) => { throw new Error(`${String(err)}; ready endpoints: ${seen}`); });
    for (const n of lab.nodes) {
      let why = '';
      await waitFor(`${n.name}'s table portico to DNAT the VIPs to the ready endpoints`, async () => {
        const want = await readyEndpoints('cluster');
        const r = await lab.exec(n.name, ['nft', 'list', 'table', 'inet', 'portico'], { allowFail: true });
        if (r.code !== 0) { why = `nft: ${r.stderr.trim()}`; return false; }
        for (const [vip, eps] of [[vip4, want.v4], [vip6, want.v6]] as const) {
          const got = dnatOf(r.stdout, vip);
          if (typeof got === 'string') { why = got; return false; }
          if (got.mod !== eps.length || got.targets.join(',') !== eps.join(',')) {
            why = `${vip}: mod ${got.mod} over ${got.targets.join(', ')}; ready endpoints ${eps.join(', ')}`;
            return false;
          }
        }
        return want.v4.length === lab.nodes.length && want.v6.length === lab.nodes.length;
      }, 30_000, 250).catch((err: unknown) => { throw new Error(`${String(err)}; last: ${why}`); });
      // Every speaker logs its choice; the log gathers every suite's speakers on this node, so the last choice counts.
      const log = readFileSync(path.join(lab.logDir, `${SPEAKER_PROCESS}-${n.name}.log`), 'utf8').split('\n').filter((l) => l.includes('"msg":"dataplane chosen"'));
      assert.match(log.at(-1) ?? '', /"dataplane":"nftables","why":"--dataplane=nftables"/, `${n.name}'s speaker chose: ${log.at(-1)}`);
    }
  });

  it('Cluster: the client reaches pods on every node; pods elsewhere see the owner\'s address, the owner\'s pod sees the client (IPv4 and IPv6)', async () => {
    const ips = await ipsOf('cluster');
    const owner = lab.node(await ownerOf('cluster'));
    const client = lab.clients[0]!;
    for (const ip of ips) {
      const six = ip.includes(':');
      await waitFor(`${ip} to answer`, () => lab.curl('client', url(ip), { timeoutS: 2 }).then(() => true, () => false), 60_000, 250);
      const got = await ask(url(ip), 15);
      const nodes = new Set(got.map((a) => a.node));
      assert.ok(nodes.size >= 2 && [...nodes].some((n) => n !== owner.name), `${ip}: answers came from ${[...nodes].join(', ')} (owner ${owner.name})`);
      for (const a of got) {
        const want = a.node === owner.name ? (six ? client.ipv6 : client.ipv4) : (six ? owner.ipv6 : owner.ipv4);
        assert.equal(a.client, want, `${ip}: ${a.pod} on ${a.node} saw ${a.client}`);
      }
    }
  });

  it('Local: only the owner\'s own pod answers and it sees the client\'s address (IPv4 and IPv6)', async () => {
    const ips = await ipsOf('local');
    const owner = await ownerOf('local');
    const client = lab.clients[0]!;
    for (const ip of ips) {
      await waitFor(`${ip} to answer`, () => lab.curl('client', url(ip), { timeoutS: 2 }).then(() => true, () => false), 60_000, 250);
      const got = await ask(url(ip), 8);
      assert.deepEqual([...new Set(got.map((a) => a.pod))], [`web-${owner}`], `${ip}: owner ${owner}`);
      assert.deepEqual([...new Set(got.map((a) => a.client))], [ip.includes(':') ? client.ipv6 : client.ipv4]);
    }
  });

  it('no component was refused by the API server with the nftables dataplane', async () => {
    assert.deepEqual(await install!.refusals(), []);
  });
});
