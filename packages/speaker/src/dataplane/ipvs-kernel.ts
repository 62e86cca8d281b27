// The kernel side of the IPVS dataplane, over Portico's netlink client: read
// the virtual services and real servers on the VIPs Portico owns, apply diff
// operations (many requests in flight on one socket: the kernel handles them
// in order, so a service is always created before its real servers), and keep
// the VIPs on the dummy link portico0.
import { IP_VS_SVC_F, IPVS_CMD } from '../netlink/constants.ts';
import { ipvsRequest, parseIpvsMessage, type IpvsDest, type IpvsService } from '../netlink/ipvs.ts';
import type { NlMessage } from '../netlink/message.ts';
import { addrRequest, delLinkRequest, dumpAddrsRequest, getLinkRequest, newLinkRequest, parseAddr, parseLink, PORTICO_LINK, setLinkUpRequest, type Address } from '../netlink/rtnl.ts';
import { NetlinkError, openIpvsClient, openRouteClient, type NetlinkClient } from '../netlink/socket.ts';
import { serviceKey } from './desired.ts';
import type { KernelReal, KernelService, Op, ServiceSpec } from './diff.ts';

type Genl = Extract<NlMessage, { kind: 'genl' }>;

/** How many requests may wait for their ACK at once (ACKs must fit the socket's receive buffer). */
const WINDOW = 128;
/** Sockets that read real servers in parallel in a full read, and the fewest services worth it. */
const DUMP_SOCKETS = 4;
const PARALLEL_FROM = 2;

export function toIpvsService(s: ServiceSpec): IpvsService {
  const persistent = s.persistenceSeconds !== undefined;
  return {
    family: s.family, protocol: s.protocol, address: s.address, port: s.port, scheduler: s.scheduler,
    flags: { flags: persistent ? IP_VS_SVC_F.PERSISTENT : 0, mask: 0xffffffff },
    timeout: s.persistenceSeconds ?? 0, netmask: s.family === 'inet' ? 32 : 128,
  };
}

function serviceId(s: Pick<ServiceSpec, 'family' | 'protocol' | 'address' | 'port'>): IpvsService {
  return { family: s.family, protocol: s.protocol, address: s.address, port: s.port };
}

export function fromIpvs(svc: IpvsService, dests: readonly IpvsDest[]): KernelService | undefined {
  if (svc.protocol === undefined || svc.address === undefined || svc.port === undefined) return undefined;
  const persistent = ((svc.flags?.flags ?? 0) & IP_VS_SVC_F.PERSISTENT) !== 0;
  return {
    key: serviceKey(svc.protocol, svc.address, svc.port), family: svc.family, protocol: svc.protocol, address: svc.address, port: svc.port,
    scheduler: svc.scheduler ?? '', persistenceSeconds: persistent ? svc.timeout ?? 0 : undefined,
    reals: dests.map((d): KernelReal => ({
      address: d.address, port: d.port, weight: d.weight ?? 0, forward: d.forward ?? 'masq',
      activeConns: d.activeConns ?? 0, inactiveConns: d.inactiveConns ?? 0,
    })),
  };
}

export interface OpFailure {
  op: Op;
  err: Error;
}

/** IPVS over generic netlink. */
export class IpvsKernel {
  readonly client: NetlinkClient;
  readonly familyId: number;

  private constructor(client: NetlinkClient, familyId: number) {
    this.client = client;
    this.familyId = familyId;
  }

  /** Fails with NetlinkError ENOENT when the kernel has no ip_vs. */
  static async open(): Promise<IpvsKernel> {
    const { client, family } = await openIpvsClient({ timeoutMs: 30_000 });
    return new IpvsKernel(client, family.id);
  }

  /** Extra sockets for reading many services' real servers in parallel (opened on the first full read). */
  #dumpers: NetlinkClient[] | undefined;

  #request(cmd: number, body: { service?: IpvsService; dest?: IpvsDest }, dump = false, client = this.client): Promise<NlMessage[]> {
    return client.request(ipvsRequest(cmd, body, { familyId: this.familyId, seq: 0, dump }), `IPVS ${Object.entries(IPVS_CMD).find(([, v]) => v === cmd)?.[0] ?? cmd}`);
  }

  /** Every virtual service the kernel has (Portico's and everyone else's). */
  async services(): Promise<IpvsService[]> {
    const msgs = await this.#request(IPVS_CMD.GET_SERVICE, {}, true);
    return msgs.flatMap((m) => { const s = parseIpvsMessage(m as Genl).service; return s ? [s] : []; });
  }

  async dests(svc: IpvsService, client = this.client): Promise<IpvsDest[]> {
    const msgs = await this.#request(IPVS_CMD.GET_DEST, { service: serviceId({ family: svc.family, protocol: svc.protocol!, address: svc.address!, port: svc.port! }) }, true, client);
    return msgs.flatMap((m) => { const d = parseIpvsMessage(m as Genl, svc.family).dest; return d ? [d] : []; });
  }

  /** The services on `owned` addresses, with their real servers. */
  async managed(owned: ReadonlySet<string>): Promise<Map<string, KernelService>> {
    const mine = (await this.services()).filter((s) => s.address !== undefined && s.fwmark === undefined && owned.has(s.address));
    return this.withDests(mine);
  }

  /**
   * The real servers of each service, one GET_DEST dump per service. The
   * kernel runs a single dump at a time per netlink socket (a second one is
   * refused with EBUSY), so a long list is read over DUMP_SOCKETS sockets at
   * once: the waits for the answers overlap instead of adding up.
   */
  async withDests(services: readonly IpvsService[]): Promise<Map<string, KernelService>> {
    const out = new Map<string, KernelService>();
    const clients = services.length >= PARALLEL_FROM ? await this.#dumpClients() : [this.client];
    let next = 0;
    await Promise.all(clients.map(async (client) => {
      while (next < services.length) {
        const s = services[next++]!;
        const k = fromIpvs(s, await this.dests(s, client));
        if (k) out.set(k.key, k);
      }
    }));
    return out;
  }

  async #dumpClients(): Promise<NetlinkClient[]> {
    if (!this.#dumpers) {
      const extra: NetlinkClient[] = [];
      try {
        for (let i = 1; i < DUMP_SOCKETS; i++) extra.push((await openIpvsClient({ timeoutMs: 30_000 })).client);
      } catch {
        // Fewer sockets only make the read slower; the main one always works.
      }
      this.#dumpers = [this.client, ...extra];
    }
    return this.#dumpers;
  }

  /** Applies the operations in order (pipelined); resolves with the ones the kernel refused. */
  async apply(ops: readonly Op[]): Promise<OpFailure[]> {
    const failed: OpFailure[] = [];
    await windowed(ops, async (op) => {
      try {
        await this.#one(op);
      } catch (err) {
        failed.push({ op, err: err as Error });
      }
    });
    return failed;
  }

  #one(op: Op): Promise<NlMessage[]> {
    switch (op.op) {
      case 'add-service': return this.#request(IPVS_CMD.NEW_SERVICE, { service: toIpvsService(op.service) });
      case 'update-service': return this.#request(IPVS_CMD.SET_SERVICE, { service: toIpvsService(op.service) });
      case 'delete-service': return this.#request(IPVS_CMD.DEL_SERVICE, { service: serviceId(op.service) });
      case 'add-real':
      case 'update-real':
        return this.#request(op.op === 'add-real' ? IPVS_CMD.NEW_DEST : IPVS_CMD.SET_DEST, {
          service: serviceId(op.service),
          dest: { address: op.real.address, port: op.real.port, forward: op.real.forward, weight: op.real.weight, upperThreshold: 0, lowerThreshold: 0 },
        });
      case 'delete-real': return this.#request(IPVS_CMD.DEL_DEST, { service: serviceId(op.service), dest: { address: op.real.address, port: op.real.port } });
      default: return Promise.reject(new Error('unknown operation'));
    }
  }

  close(): void {
    for (const c of this.#dumpers ?? []) if (c !== this.client) c.close();
    this.client.close();
  }
}

/**
 * Runs fn over items with at most WINDOW in flight, starting them in order.
 * Requests on one netlink socket reach the kernel in the order they are sent.
 */
export async function windowed<T>(items: readonly T[], fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(WINDOW, items.length) }, worker));
}

/** Portico's dummy link and the VIPs on it, over rtnetlink. */
export class VipLink {
  readonly client: NetlinkClient;
  readonly name: string;
  index = 0;

  constructor(name = PORTICO_LINK) {
    this.client = openRouteClient();
    this.name = name;
  }

  /** Creates the dummy link if missing and sets it up; fails with EOPNOTSUPP when the kernel has no dummy driver. */
  async ensure(): Promise<void> {
    let index = await this.#index();
    if (index === undefined) {
      try {
        await this.client.request(newLinkRequest(this.name, 'dummy', { seq: 0 }), `create ${this.name}`);
      } catch (err) {
        if (!(err instanceof NetlinkError && err.errnoName === 'EEXIST')) throw err;
      }
      index = await this.#index();
      if (index === undefined) throw new Error(`${this.name} is missing right after it was created`);
    }
    this.index = index;
    await this.client.request(setLinkUpRequest(index, true, { seq: 0 }), `set ${this.name} up`);
  }

  async #index(): Promise<number | undefined> {
    try {
      const [m] = await this.client.request(getLinkRequest(this.name, { seq: 0 }), `get ${this.name}`);
      return m && m.kind === 'link' ? parseLink(m).index : undefined;
    } catch (err) {
      if (err instanceof NetlinkError && err.errnoName === 'ENODEV') return undefined;
      throw err;
    }
  }

  /** Every address of every link (to see VIPs that another interface holds). */
  async addresses(): Promise<Address[]> {
    const msgs = await this.client.request(dumpAddrsRequest({ seq: 0 }), 'dump addresses');
    return msgs.flatMap((m) => (m.kind === 'addr' ? [parseAddr(m)] : []));
  }

  async add(address: string): Promise<void> {
    try {
      await this.client.request(addrRequest('add', { index: this.index, address }, { seq: 0 }), `add ${address} to ${this.name}`);
    } catch (err) {
      if (!(err instanceof NetlinkError && err.errnoName === 'EEXIST')) throw err;
    }
  }

  async remove(address: string): Promise<void> {
    try {
      await this.client.request(addrRequest('del', { index: this.index, address }, { seq: 0 }), `remove ${address} from ${this.name}`);
    } catch (err) {
      if (!(err instanceof NetlinkError && err.errnoName === 'EADDRNOTAVAIL')) throw err;
    }
  }

  /** Deletes the link (and so its addresses); gone already is fine. */
  async delete(): Promise<void> {
    try {
      await this.client.request(delLinkRequest({ name: this.name }, { seq: 0 }), `delete ${this.name}`);
    } catch (err) {
      if (!(err instanceof NetlinkError && err.errnoName === 'ENODEV')) throw err;
    }
  }

  close(): void {
    this.client.close();
  }
}
