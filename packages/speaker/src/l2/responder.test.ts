import { strict as assert } from 'node:assert';
import { arp } from './arp.ts';
import { ethernet } from './ethernet.ts';
import { Responder, type FrameTransport } from './responder.ts';
import { vector } from './testdata/vectors.ts';

class FakeLink implements FrameTransport {
  readonly ifname = 'fake0';
  readonly mac = '02:00:5e:00:53:01';
  sent: Buffer[] = [];
  groups = new Set<string>();
  joins = 0;
  full = false;
  closed = false;
  handler: ((frame: Buffer, vlanTci: number) => void) | undefined;
  send(frame: Uint8Array): boolean {
    if (this.full) return false;
    this.sent.push(Buffer.from(frame));
    return true;
  }
  onFrame(handler: (frame: Buffer, vlanTci: number) => void): void { this.handler = handler; }
  joinMulticast(mac: string): void { assert.ok(!this.groups.has(mac), `joined ${mac} twice`); this.groups.add(mac); this.joins++; }
  leaveMulticast(mac: string): void { assert.ok(this.groups.delete(mac), `left ${mac} without joining`); }
  close(): void { this.closed = true; }
}

describe('responder', () => {
  it('answers what it owns through the transport and counts by reason', () => {
    const link = new FakeLink();
    const r = new Responder(link);
    r.setOwned(['198.51.100.2']);
    link.handler!(vector('kernel-arp-request'), -1);
    link.handler!(vector('kernel-arp-gratuitous-request'), -1);
    link.handler!(vector('kernel-arp-request'), 100);
    assert.equal(link.sent.length, 1);
    const reply = arp.decode(ethernet.decode(link.sent[0]!).payload);
    assert.ok(reply.kind === 'ethernet-ipv4' && reply.senderMac === link.mac && reply.senderIp === '198.51.100.2');
    assert.equal(r.counters.received, 3);
    assert.equal(r.counters.replies, 1);
    assert.equal(r.counters.byReason.reply, 1);
    assert.equal(r.counters.byReason.gratuitous, 1);
    assert.equal(r.counters.byReason.tagged, 1);
  });

  it('stops answering an IP the moment it is no longer owned', () => {
    const link = new FakeLink();
    const r = new Responder(link);
    r.setOwned(['198.51.100.2']);
    assert.equal(r.handle(vector('kernel-arp-request')).reason, 'reply');
    assert.deepEqual(r.setOwned([]), { added: [], removed: ['198.51.100.2'] });
    assert.equal(r.handle(vector('kernel-arp-request')).reason, 'not-owner');
    assert.equal(link.sent.length, 1);
  });

  it('joins each solicited-node group once however many owned IPs share it, and leaves it with the last', () => {
    const link = new FakeLink();
    const r = new Responder(link);
    // 2001:db8:4::2 and 2001:db8:5::2 share ff02::1:ff00:2.
    r.setOwned(['2001:db8:4::2', '2001:DB8:5:0::2', '2001:db8:4::3', '198.51.100.9']);
    assert.deepEqual([...link.groups].sort(), ['33:33:ff:00:00:02', '33:33:ff:00:00:03']);
    assert.equal(link.joins, 2);
    assert.deepEqual(r.owned().sort(), ['198.51.100.9', '2001:db8:4::2', '2001:db8:4::3', '2001:db8:5::2']);
    r.setOwned(['2001:db8:5::2']);
    assert.deepEqual([...link.groups], ['33:33:ff:00:00:02']);
    assert.equal(r.handle(vector('kernel-ndp-ns-multicast')).reason, 'not-owner');
    r.setOwned([]);
    assert.equal(link.groups.size, 0);
  });

  it('announces an owned IPv4 with both gratuitous forms and an IPv6 with one unsolicited NA; nothing for an IP it does not own', () => {
    const link = new FakeLink();
    const r = new Responder(link);
    r.setOwned(['203.0.113.10', '2001:db8:4::10']);
    assert.equal(r.announce('203.0.113.10'), 2);
    assert.equal(r.announce('2001:db8:4:0::10'), 1);
    assert.equal(r.announce('203.0.113.11'), 0);
    assert.equal(r.counters.gratuitousSent, 3);
    const ops = link.sent.slice(0, 2).map((f) => { const p = arp.decode(ethernet.decode(f).payload); return p.kind === 'ethernet-ipv4' ? [p.operation, p.senderIp, p.targetIp] : []; });
    assert.deepEqual(ops, [[1, '203.0.113.10', '203.0.113.10'], [2, '203.0.113.10', '203.0.113.10']]);
    assert.equal(ethernet.decode(link.sent[2]!).destination, '33:33:00:00:00:01');
  });

  it('counts a refused send and keeps going; errors thrown by the link are reported', () => {
    const link = new FakeLink();
    const errors: Error[] = [];
    const r = new Responder(link, { onError: (e) => errors.push(e) });
    r.setOwned(['198.51.100.2']);
    link.full = true;
    r.handle(vector('kernel-arp-request'));
    link.full = false;
    link.send = () => { throw Object.assign(new Error('ENETDOWN: network is down'), { code: 'ENETDOWN' }); };
    r.handle(vector('kernel-arp-request'));
    assert.equal(r.counters.sendFailures, 2);
    assert.equal(r.counters.replies, 0);
    assert.equal(errors.length, 1);
    r.close();
    assert.ok(link.closed);
  });
});
