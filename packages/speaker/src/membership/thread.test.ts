import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { sealHeartbeat, verifyHeartbeat, type Heartbeat } from './heartbeat.ts';
import { MembershipThread } from './thread.ts';

const until = async (what: string, ok: () => boolean, ms = 3000): Promise<void> => {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('heartbeat thread', () => {
  it('sends heartbeats while the main thread is blocked, sees a peer alive then silent, and says goodbye on stop', async function () {
    this.timeout(15_000);
    const key = randomBytes(32);
    // The peer is a plain socket on 127.0.0.2; the thread binds the same port on 127.0.0.1.
    const peer = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => peer.bind(0, '127.0.0.2', resolve));
    const port = peer.address().port;
    const heard: Heartbeat[] = [];
    peer.on('message', (d) => {
      const v = verifyHeartbeat(d, { keys: [key], now: Date.now(), maxSkewMs: 60_000, state: new Map() });
      assert.ok(v.ok, 'every heartbeat of the thread verifies with the key');
      heard.push(v.heartbeat);
    });
    let changes = 0;
    const t = await MembershipThread.start({ self: 'node-a', port, intervalMs: 50, deadAfterMs: 200, restartHoldMs: 5000, host4: '127.0.0.1', host6: null, onChange: () => { changes++; } });
    let seq = 0;
    const beat = setInterval(() => peer.send(sealHeartbeat({ node: 'node-b', incarnation: 1, sequence: ++seq, timestamp: Date.now(), leaving: false }, key), port, '127.0.0.1'), 50);
    try {
      assert.equal(t.port, port);
      t.setKeys([key]);
      t.setPeers(new Map([['node-a', ['127.0.0.1']], ['node-b', ['127.0.0.2']]]));
      t.start();
      await until('node-b alive and membership settled', () => t.reasons().get('node-b') === 'alive' && t.settled());
      assert.deepEqual([...t.live()].sort(), ['node-a', 'node-b']);
      assert.ok(changes > 0);

      // Block this thread for a second: the heartbeat thread keeps its pace.
      const from = Date.now();
      const end = performance.now() + 1000;
      while (performance.now() < end) { /* busy: a long World update */ }
      const to = Date.now();
      await new Promise((r) => setTimeout(r, 100));
      const during = heard.filter((h) => h.timestamp >= from && h.timestamp <= to && h.node === 'node-a');
      assert.ok(during.length >= 12, `heartbeats sent during the 1 s block: ${during.length} (one per 50 ms expected)`);
      const gaps = during.slice(1).map((h, i) => h.timestamp - during[i]!.timestamp);
      // Sent from the main thread, one gap would span the whole 1 s block. The
      // bound leaves room for a loaded machine delaying the thread itself.
      assert.ok(Math.max(...gaps) < 500, `largest gap between heartbeats during the 1 s block: ${Math.max(...gaps)} ms`);

      clearInterval(beat);
      await until('node-b silent', () => t.reasons().get('node-b') === 'silent');
      assert.deepEqual([...t.live()], ['node-a']);
      await until('counters reported', () => t.counters.accepted > 0 && t.counters.sent > 0);
    } finally {
      clearInterval(beat);
      const n = heard.length;
      await t.stop('leave');
      await new Promise((r) => setTimeout(r, 100));
      peer.close();
      assert.ok(heard.slice(n).some((h) => h.leaving), 'a leaving heartbeat on stop');
    }
  });

  it('sets the nice value of the heartbeat thread alone', async () => {
    const before = os.getPriority();
    const t = await MembershipThread.start({ self: 'node-a', port: 0, intervalMs: 50, deadAfterMs: 200, restartHoldMs: 5000, host4: '127.0.0.1', host6: null, nice: 7 });
    try {
      assert.ok(t.priority && 'tid' in t.priority, JSON.stringify(t.priority));
      assert.equal(t.priority.nice, 7);
      assert.notEqual(t.priority.tid, process.pid);
      assert.equal(Number(readFileSync(`/proc/self/task/${t.priority.tid}/stat`, 'utf8').split(') ')[1]!.split(' ')[16]), 7, 'the kernel shows nice 7 on that thread');
      assert.equal(os.getPriority(), before, 'the main thread keeps its priority');
    } finally {
      await t.stop('silent');
    }
  });

  it('fails to start with the socket error when the port is taken', async () => {
    const taken = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => taken.bind(0, '127.0.0.1', resolve));
    try {
      await assert.rejects(MembershipThread.start({ self: 'node-a', port: taken.address().port, intervalMs: 50, deadAfterMs: 200, restartHoldMs: 5000, host4: '127.0.0.1', host6: null }), /EADDRINUSE/);
    } finally {
      taken.close();
    }
  });
});
