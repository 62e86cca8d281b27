import { strict as assert } from 'node:assert';
import { createServer, type Server } from 'node:net';
import { BgpSession, type SessionOptions } from './session.ts';
import type { Negotiated } from './fsm.ts';

/** Waits (bounded) until `cond` holds. */
async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('bgp session over loopback TCP (two Portico speakers)', () => {
  let server: Server;
  let a: BgpSession;
  let b: BgpSession;
  afterEach(() => {
    a?.stop();
    b?.stop();
    server?.close();
  });

  async function pair(extra: Partial<SessionOptions> = {}): Promise<{ upA: Negotiated; upB: Negotiated }> {
    const common = { holdTime: 9, connectRetryTime: 1, peerPort: 0 };
    a = new BgpSession({ ...common, localAsn: 64512, peerAsn: 64513, bgpId: '198.51.100.1', peerAddress: '127.0.0.1', passive: true, nextHop: { ipv4: '198.51.100.1', ipv6: '2001:db8::1' } });
    server = createServer((s) => a.accept(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    b = new BgpSession({ ...common, localAsn: 64513, peerAsn: 64512, bgpId: '198.51.100.2', peerAddress: '127.0.0.1', peerPort: port, passive: false, nextHop: { ipv6: '2001:db8::2' }, ...extra });
    const upA = new Promise<Negotiated>((r) => a.once('established', r));
    const upB = new Promise<Negotiated>((r) => b.once('established', r));
    a.start();
    b.start();
    return { upA: await upA, upB: await upB };
  }

  it('comes up, announces the set in few UPDATEs with End-of-RIB, and withdraws what leaves the set', async () => {
    const { upA, upB } = await pair();
    assert.deepEqual([a.state, b.state], ['Established', 'Established']);
    assert.deepEqual([upA.holdTime, upA.keepaliveTime, upA.fourOctetAs, upB.families.length], [9, 3, true, 2]);
    await until(() => a.stats.updatesReceived === 2, 'End-of-RIB for both families');
    const baseline = 2;
    const ads = Array.from({ length: 2000 }, (_, i) => ({ prefix: `100.64.${i >> 8}.${i & 0xff}/32`, communities: ['64513:100'] }));
    b.set([...ads, { prefix: '2001:db8:ffff::1/128', largeCommunities: ['64513:1:2'] }]);
    await until(() => b.stats.prefixesAnnounced === 2001 && a.stats.updatesReceived >= baseline + 4, 'the announcements');
    // 2000 /32s fit in 3 messages of 4096 bytes, plus one for the IPv6 prefix.
    assert.equal(a.stats.updatesReceived - baseline, 4);
    b.set(ads.slice(0, 10));
    await until(() => b.announced.length === 10, 'the withdrawals');
    await until(() => a.stats.updatesReceived >= baseline + 6, 'the withdrawals to arrive');
    assert.equal(a.stats.malformedUpdates, 0);
    // A changed attribute re-announces just that prefix.
    const before = a.stats.updatesReceived;
    b.set([...ads.slice(0, 9), { prefix: ads[9]!.prefix, med: 5 }]);
    await until(() => a.stats.updatesReceived === before + 1, 'the re-announcement');
  });

  it('a stop sends Cease and the other side reports it in words', async () => {
    await pair();
    const down = new Promise<string>((r) => a.once('down', (_reason: string, detail: string) => r(detail)));
    b.stop('maintenance');
    assert.equal(await down, 'Cease / Administrative Shutdown: "maintenance"');
  });

  it('a wrong peer AS is refused with Bad Peer AS', async () => {
    a = new BgpSession({ holdTime: 9, connectRetryTime: 1, localAsn: 64512, peerAsn: 64999, bgpId: '198.51.100.1', peerAddress: '127.0.0.1', passive: true });
    server = createServer((s) => a.accept(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    b = new BgpSession({ holdTime: 9, connectRetryTime: 1, localAsn: 64513, peerAsn: 64512, bgpId: '198.51.100.2', peerAddress: '127.0.0.1', passive: false, peerPort: port });
    const rejected = new Promise<string>((r) => a.on('state', (_s: string, reason: string) => { if (reason === 'open-rejected') r(reason); }));
    const told = new Promise<string>((r) => b.on('state', (_s: string, reason: string) => { if (reason === 'notification-received') r(reason); }));
    a.start();
    b.start();
    assert.equal(await rejected, 'open-rejected');
    assert.equal(await told, 'notification-received');
    assert.equal(b.state, 'Idle');
  });
});
