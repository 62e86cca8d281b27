// Exercises Portico's netlink client against the kernel of the current network
// namespace and prints what happened as JSON; the root-only tests run it in a
// namespace of their own (and in the IPVS VM) and compare with ip/ipvsadm.
//   node probe.ts route-setup | route-teardown | ipvs-setup | ipvs-teardown
import { IPVS_CMD } from './constants.ts';
import { ipvsRequest, parseIpvsMessage, type IpvsService } from './ipvs.ts';
import { NetlinkError, type NlMessage } from './message.ts';
import { addrRequest, delLinkRequest, dumpAddrsRequest, dumpLinksRequest, getLinkRequest, newLinkRequest, parseAddr, parseLink, PORTICO_LINK, setLinkUpRequest } from './rtnl.ts';
import { openIpvsClient, openRouteClient } from './socket.ts';

const VIPS = ['203.0.113.20', '2001:db8::20'];
const SERVICE: IpvsService = { family: 'inet', protocol: 'tcp', address: '203.0.113.10', port: 80, scheduler: 'rr', flags: { flags: 0, mask: 0xffffffff }, timeout: 0, netmask: 32 };

function failure(err: unknown): { errno: string; message: string | null } {
  if (err instanceof NetlinkError) return { errno: err.errnoName, message: err.kernelMessage ?? null };
  throw err;
}

async function attempt<T>(fn: () => Promise<T>): Promise<{ ok: T } | { error: { errno: string; message: string | null } }> {
  try {
    return { ok: await fn() };
  } catch (err) {
    return { error: failure(err) };
  }
}

const phase = process.argv[2];
const out: Record<string, unknown> = { phase };

if (phase === 'route-setup' || phase === 'route-teardown') {
  const c = openRouteClient();
  try {
    const links = async (): Promise<string[]> => (await c.request(dumpLinksRequest({ seq: 0 }), 'dump links')).map((m) => parseLink(m as Extract<NlMessage, { kind: 'link' }>).name);
    const index = async (name: string): Promise<number> => parseLink((await c.request(getLinkRequest(name, { seq: 0 }), `get ${name}`))[0] as Extract<NlMessage, { kind: 'link' }>).index;
    if (phase === 'route-setup') {
      out.create = await attempt(() => c.request(newLinkRequest(PORTICO_LINK, 'dummy', { seq: 0 }), 'create portico0').then(() => true));
      out.createAgain = await attempt(() => c.request(newLinkRequest(PORTICO_LINK, 'dummy', { seq: 0 }), 'create portico0 again').then(() => true));
      // Without the dummy module the VIPs go on this namespace's lo instead.
      const dev = 'ok' in (out.create as object) ? PORTICO_LINK : 'lo';
      const ifindex = await index(dev);
      out.device = dev;
      await c.request(setLinkUpRequest(ifindex, true, { seq: 0 }), 'set up');
      for (const address of VIPS) await c.request(addrRequest('add', { index: ifindex, address }, { seq: 0 }), `add ${address}`);
      out.addAgain = await attempt(() => c.request(addrRequest('add', { index: ifindex, address: VIPS[0]! }, { seq: 0 }), 'add again').then(() => true));
      out.addrs = (await c.request(dumpAddrsRequest({ seq: 0 }, { index: ifindex }), 'dump addresses'))
        .map((m) => parseAddr(m as Extract<NlMessage, { kind: 'addr' }>)).filter((a) => a.index === ifindex).map((a) => `${a.address}/${a.prefixLength}`);
      out.links = await links();
    } else {
      const dev = (await links()).includes(PORTICO_LINK) ? PORTICO_LINK : 'lo';
      const ifindex = await index(dev);
      for (const address of VIPS) await c.request(addrRequest('del', { index: ifindex, address }, { seq: 0 }), `delete ${address}`);
      if (dev === PORTICO_LINK) await c.request(delLinkRequest({ index: ifindex }, { seq: 0 }), 'delete portico0');
      out.deleteMissing = await attempt(() => c.request(delLinkRequest({ name: PORTICO_LINK }, { seq: 0 }), 'delete portico0 again').then(() => true));
      out.links = await links();
    }
  } finally {
    c.close();
  }
} else if (phase === 'ipvs-setup' || phase === 'ipvs-teardown') {
  const opened = await attempt(() => openIpvsClient());
  if ('error' in opened) {
    out.family = opened;
  } else {
    const { client: c, family } = opened.ok;
    out.family = { id: family.id, name: family.name, version: family.version };
    const req = (cmd: number, body: Parameters<typeof ipvsRequest>[1], dump = false): Promise<NlMessage[]> =>
      c.request(ipvsRequest(cmd, body, { familyId: family.id, seq: 0, dump }), `IPVS command ${cmd}`);
    try {
      if (phase === 'ipvs-setup') {
        await req(IPVS_CMD.NEW_SERVICE, { service: SERVICE });
        for (const [i, address] of ['198.51.100.21', '198.51.100.22'].entries()) {
          await req(IPVS_CMD.NEW_DEST, { service: SERVICE, dest: { address, port: 8080, forward: 'masq', weight: 1 + i, upperThreshold: 0, lowerThreshold: 0 } });
        }
        out.addAgain = await attempt(() => req(IPVS_CMD.NEW_SERVICE, { service: SERVICE }).then(() => true));
      } else {
        await req(IPVS_CMD.DEL_SERVICE, { service: SERVICE });
        out.deleteAgain = await attempt(() => req(IPVS_CMD.DEL_SERVICE, { service: SERVICE }).then(() => true));
      }
      out.services = (await req(IPVS_CMD.GET_SERVICE, {}, true)).map((m) => parseIpvsMessage(m as Extract<NlMessage, { kind: 'genl' }>).service);
      out.dests = phase === 'ipvs-setup'
        ? (await req(IPVS_CMD.GET_DEST, { service: { family: 'inet', protocol: 'tcp', address: SERVICE.address!, port: SERVICE.port! } }, true)).map((m) => parseIpvsMessage(m as Extract<NlMessage, { kind: 'genl' }>, 'inet').dest)
        : [];
    } finally {
      c.close();
    }
  }
} else {
  console.error('usage: node probe.ts route-setup|route-teardown|ipvs-setup|ipvs-teardown');
  process.exit(2);
}
console.log(JSON.stringify(out));
