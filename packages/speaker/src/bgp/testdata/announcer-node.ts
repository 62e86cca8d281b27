// Portico's BGP announcer as a process of its own, fed World snapshots from a
// JSON file, for the bgp-10k benchmark, which runs it
// inside a lab node's network namespace (a process lives in one namespace).
//   node announcer-node.ts --world FILE [--state-dir DIR] [--kubeconfig FILE] [--namespace NS]
// The file is re-read whenever it changes (write it atomically: tmp + rename).
// With --kubeconfig, passwordSecret is read from the API server and Events are
// recorded there. Prints one JSON line per milestone on stdout.
import { readFileSync, statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { NAMESPACE, StatusWriter, createLogger, createRegistry, parseRange, type Config, type Pool } from '@portico/shared';
import type { NodeState, ServiceState, World } from '../../world/types.ts';
import { BgpAnnouncer, type EventSink } from '../announcer.ts';
import { kubernetesSecretSource } from '../secrets.ts';
import type { AdvSettings, PeerSettings } from '../policy.ts';

const { values } = parseArgs({
  options: {
    world: { type: 'string' }, 'state-dir': { type: 'string' }, kubeconfig: { type: 'string' }, namespace: { type: 'string', default: NAMESPACE },
    debug: { type: 'boolean', default: false },
  },
});
if (!values.world) throw new Error('--world FILE is required');
const worldFile = values.world;

/** The JSON form: pools' ranges as CIDR text, maps as arrays, and defaults for what a test does not care about. */
interface WorldJson {
  self: string;
  config?: {
    pools: ({ name: string; ranges: string[] } & Partial<Omit<Pool, 'ranges'>>)[];
    peers: (Partial<PeerSettings> & Pick<PeerSettings, 'name' | 'myASN' | 'peerASN' | 'peerAddress'>)[];
    bgpAdvertisements: (Partial<AdvSettings> & { name: string })[];
  };
  services: (Partial<ServiceState> & Pick<ServiceState, 'namespace' | 'name' | 'ips'>)[];
  nodes: (Partial<NodeState> & Pick<NodeState, 'name' | 'addresses'>)[];
}

function toWorld(j: WorldJson): World {
  let config: Config | undefined;
  if (j.config) {
    config = {
      pools: j.config.pools.map((p): Pool => ({
        source: 'crd', autoAssign: true, avoidBuggyIPs: false, allowExternalIPs: false, priority: undefined, namespaces: [], namespaceSelectors: [], serviceSelectors: [], labels: {},
        ...p, ranges: p.ranges.map(parseRange),
      })),
      peers: j.config.peers.map((p): PeerSettings => ({
        source: 'crd', sourceAddress: undefined, peerPort: 179, holdTime: 9, keepaliveTime: undefined, routerID: undefined, nodeSelectors: [], password: undefined,
        passwordSecret: undefined, bfdProfile: undefined, ebgpMultiHop: false, enableGracefulRestart: false, vrf: undefined, dynamicASN: undefined, localASN: undefined, interface: undefined, families: 'both', connectTime: 1, ...p,
      })),
      bgpAdvertisements: j.config.bgpAdvertisements.map((a): AdvSettings => ({
        source: 'crd', aggregationLength: 32, aggregationLengthV6: 128, localPref: undefined, communities: [], pools: [], poolSelectors: [], nodeSelectors: [], peers: [], serviceSelectors: [], ...a,
      })),
      l2Advertisements: [], communities: {}, bfdProfiles: [],
    };
  }
  const services = j.services.map((s): ServiceState => ({
    key: `${s.namespace}/${s.name}`, uid: `${s.namespace}/${s.name}`, labels: {}, annotations: {}, pool: undefined, externalTrafficPolicy: 'Cluster',
    sessionAffinity: { clientIP: false, timeoutSeconds: 0 }, ports: [], endpoints: [], ...s,
  }));
  const nodes = j.nodes.map((n): NodeState => ({ labels: { 'kubernetes.io/hostname': n.name }, ready: true, networkUnavailable: false, excluded: false, ...n }));
  return { self: j.self, config, services: new Map(services.map((s) => [s.key, s])), nodes: new Map(nodes.map((n) => [n.name, n])) };
}

const log = createLogger({ debug: values.debug, fields: { app: 'portico-bgp-node' } });
const say = (o: Record<string, unknown>): void => { process.stdout.write(`${JSON.stringify({ t: Date.now(), ...o })}\n`); };
let events: EventSink = { event: (target, type, reason, message) => say({ event: reason, type, kind: target.kind, name: target.name, message }) };
let secrets;
if (values.kubeconfig) {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(values.kubeconfig);
  const writer = new StatusWriter({ kc, component: 'portico-speaker', log });
  const print = events;
  events = { event: (target, type, reason, message) => { print.event(target, type, reason, message); return writer.event(target, type, reason, message); } };
  secrets = kubernetesSecretSource(kc, values.namespace, { log });
}
const announcer = new BgpAnnouncer({ log, registry: createRegistry(false), events, secrets, stateDir: values['state-dir'], namespace: values.namespace });

let lastMtime = -1;
let busy = false;
async function reload(): Promise<void> {
  if (busy) return;
  busy = true;
  try {
    for (;;) {
      let mtime: number;
      try { mtime = statSync(worldFile).mtimeMs; } catch { return; }
      if (mtime === lastMtime) return;
      lastMtime = mtime;
      const t0 = performance.now();
      const world = toWorld(JSON.parse(readFileSync(worldFile, 'utf8')) as WorldJson);
      await announcer.update(world);
      say({ msg: 'world applied', services: world.services.size, ms: Math.round(performance.now() - t0) });
    }
  } catch (err) {
    say({ msg: 'world failed', error: err instanceof Error ? err.message : String(err) });
  } finally {
    busy = false;
  }
}

// Polling keeps the process alive and catches every atomic rename.
setInterval(() => { void reload(); }, 50);
void reload();
process.on('SIGTERM', () => {
  void announcer.stop().then(() => { say({ msg: 'stopped' }); process.exit(0); });
});
