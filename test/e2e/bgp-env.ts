// The BGP set-up the BGP suites and the BGP benchmark share: FRR's bgpd
// preamble, BGPPeer objects with short timers, the speakers installed from the
// manifests, a client namespace routed through a router, the FRR queries they
// all read, and the before/after life cycle of a suite on the shared lab.
// Used by test/e2e/bgp.test.ts, test/e2e/bfd.test.ts and bench/bgp-failover.ts.
import { installPortico, PORTICO_NAMESPACE as NS, run, type InstallOptions, type Lab, type PorticoInstall, type Router } from '../lab/index.ts';
import type { Obj } from './objects.ts';
import { requireE2e, sharedLab } from './shared-lab.ts';

export const NODE_AS = 64512;
export const ROUTER_AS = 64513;
export { NS };

/** Cleanups run last-in first-out; each one's failure is ignored so the rest still run. */
export class Cleanups {
  readonly #fns: (() => Promise<unknown>)[] = [];
  push(...fns: (() => Promise<unknown>)[]): void { this.#fns.push(...fns); }
  async run(): Promise<void> {
    while (this.#fns.length > 0) await this.#fns.pop()!().catch(() => undefined);
  }
}

/**
 * An FRR bgpd config: the lab's preamble (no policy required, no import
 * check, no implicit IPv4 activation; `{{ipv4}}` is the router id) and then
 * `body`, the neighbors and address families, indented as under `router bgp`.
 */
export function frrBgpConfig(hostname: string, asn: number, body: string): string {
  return `
frr defaults datacenter
hostname ${hostname}
router bgp ${asn}
 bgp router-id {{ipv4}}
 no bgp ebgp-requires-policy
 no bgp network import-check
 no bgp default ipv4-unicast
${body.replace(/^\n+/, '')}`;
}

/** A BGPPeer in portico-system with short timers (connectTime is the retry base); `spec` overrides them. */
export function bgpPeer(name: string, spec: Obj, labels?: Record<string, string>): Obj {
  return {
    apiVersion: 'portico.dev/v1beta1', kind: 'BGPPeer', metadata: { name, namespace: NS, ...(labels ? { labels } : {}) },
    spec: { holdTime: '9s', connectTime: '1s', ...spec },
  };
}

/** A nodeSelectors list that picks one node by hostname. */
export const onlyNode = (node: string): Obj[] => [{ matchLabels: { 'kubernetes.io/hostname': node } }];

/** Creates portico-system and installs Portico (one controller); the cleanup stops it and drops the nftables tables it leaves. */
export async function installSpeakers(lab: Lab, cleanups: Cleanups, opts: InstallOptions = {}): Promise<PorticoInstall> {
  await lab.kubectlResult(['create', 'namespace', NS]);
  const install = await installPortico(lab, { replicas: 1, ...opts });
  cleanups.push(async () => {
    await install.stop();
    // The dataplane leaves its table in place on stop (traffic keeps flowing across a restart); the suite is done with it.
    for (const n of lab.nodes) await lab.exec(n.name, ['nft', 'delete', 'table', 'inet', 'portico'], { allowFail: true });
  });
  return install;
}

export const BEHIND = { net: '100.64.200.0/24', router: '100.64.200.1', client: '100.64.200.2' } as const;

/**
 * A namespace `short` behind `router` (on a veth of its own, 100.64.200.0/24),
 * forwarding on at the router, and the nodes routing that network back
 * through the router (the lab's routing, not Portico's). Returns its short name for lab.exec.
 */
export async function addClientBehind(lab: Lab, router: Router, cleanups: Cleanups, short = 'bhd'): Promise<string> {
  const ns = lab.nsName(short);
  await run(['ip', 'netns', 'add', ns]);
  cleanups.push(() => run(['ip', 'netns', 'del', ns], { allowFail: true }));
  await run(['ip', 'link', 'add', 'eth1', 'netns', router.ns, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
  await lab.exec(router.host.name, ['sh', '-c', `ip addr add ${BEHIND.router}/24 dev eth1 && ip link set eth1 up && sysctl -qw net.ipv4.ip_forward=1`]);
  await lab.exec(short, ['sh', '-c', `ip link set lo up && ip addr add ${BEHIND.client}/24 dev eth0 && ip link set eth0 up && ip route add default via ${BEHIND.router}`]);
  for (const node of lab.nodes) {
    await lab.exec(node.name, ['ip', 'route', 'replace', BEHIND.net, 'via', router.ipv4]);
    cleanups.push(() => lab.exec(node.name, ['ip', 'route', 'del', BEHIND.net], { allowFail: true }));
  }
  return short;
}

export interface FrrNeighbor { bgpState?: string; lastResetDueTo?: string; lastNotificationReason?: string; bgpTimerHoldTimeMsecs?: number }

/** FRR's `show bgp neighbors json`: neighbor address -> its state. */
export async function frrNeighbors(r: Router): Promise<Record<string, FrrNeighbor>> {
  return JSON.parse((await r.cli(['show bgp neighbors json'])) || '{}') as Record<string, FrrNeighbor>;
}

export interface FrrBfdPeer {
  peer: string; status: string; multihop?: boolean; uptime?: number; diagnostic?: string; 'remote-diagnostic'?: string;
  'remote-receive-interval'?: number; 'remote-transmit-interval'?: number; 'remote-detect-multiplier'?: number;
  'transmit-interval'?: number; 'receive-interval'?: number; 'detect-multiplier'?: number;
}

/** FRR bfdd's `show bfd peers json`: peer address -> session. */
export async function frrBfdPeers(r: Router): Promise<Map<string, FrrBfdPeer>> {
  return new Map((JSON.parse((await r.cli(['show bfd peers json'])) || '[]') as FrrBfdPeer[]).map((p) => [p.peer, p]));
}

/**
 * The life cycle of a suite on the shared lab: skip without root, set up in
 * `before` (tearing down what was made if that fails), tear down in `after`.
 * Call inside `describe`; `setUp` registers its cleanups on the one it gets.
 */
export function onSharedLab(setUp: (lab: Lab, cleanups: Cleanups) => Promise<void>): Cleanups {
  let lab: Lab | undefined;
  const cleanups = new Cleanups();
  before(async function () {
    requireE2e(this);
    lab = await sharedLab();
    try {
      await setUp(lab, cleanups);
    } catch (err) {
      await cleanups.run();
      throw err;
    }
  });
  after(async function () {
    this.timeout(90_000);
    if (lab) await cleanups.run();
  });
  return cleanups;
}
