// The native addon against the real kernel: errors carry errno names, netlink
// answers a dump through the libuv poll, TCP_MD5SIG gates a real connection.
// AF_PACKET is exercised in namespaces by l2/responder.root.test.ts.
import { strict as assert } from 'node:assert';
import net from 'node:net';
import { once } from 'node:events';
import { loadNative, openNetlinkSocket, NativeUnavailableError, type Datagram } from './index.ts';

const NLMSG_DONE = 3;
const RTM_GETLINK = 18;
const NLM_F_REQUEST = 0x1;
const NLM_F_DUMP = 0x300;

/** RTM_GETLINK dump request: nlmsghdr (16) + ifinfomsg (16), host byte order. */
function getlinkDump(seq: number): Buffer {
  const b = Buffer.alloc(32);
  b.writeUInt32LE(32, 0); // nlmsg_len
  b.writeUInt16LE(RTM_GETLINK, 4); // nlmsg_type
  b.writeUInt16LE(NLM_F_REQUEST | NLM_F_DUMP, 6); // nlmsg_flags
  b.writeUInt32LE(seq, 8); // nlmsg_seq
  return b; // pid 0, ifinfomsg all zero = every family
}

describe('native addon', function () {
  if (process.platform !== 'linux') {
    it('throws one clear error off Linux', () => {
      assert.throws(() => loadNative(), (err: unknown) => err instanceof NativeUnavailableError && /needs Linux/.test(err.message));
    });
    return;
  }

  const native = loadNative();

  it('reports the loopback interface and ENODEV for a missing one', () => {
    const lo = native.interfaceInfo('lo');
    assert.equal(lo.index, 1);
    assert.equal(lo.hwType, native.constants.ARPHRD_LOOPBACK);
    assert.equal(lo.mac.length, 6);
    assert.ok(lo.flags & native.constants.IFF_LOOPBACK);
    assert.throws(() => native.interfaceInfo('pl2-missing0'), (err: NodeJS.ErrnoException) =>
      err.code === 'ENODEV' && err.errno === -19 && err.syscall === 'ioctl' && /pl2-missing0/.test(err.message));
    assert.throws(() => native.interfaceInfo('x'.repeat(20)), { code: 'ENAMETOOLONG' });
  });

  it('rejects bad arguments with TypeErrors and bad fds with EBADF', () => {
    assert.throws(() => native.send(-1, Buffer.alloc(1)), { code: 'EBADF' });
    assert.throws(() => native.recv('3' as unknown as number, Buffer.alloc(1), null), TypeError);
    assert.throws(() => native.send(0, 'text' as unknown as Buffer), TypeError);
    assert.throws(() => native.tcpSocket(5 as 4), { code: 'EAFNOSUPPORT' });
  });

  it('dumps links over rtnetlink, reading only when libuv reports the socket readable', async () => {
    const sock = openNetlinkSocket(native.constants.NETLINK_ROUTE);
    try {
      assert.ok(sock.portId > 0, 'kernel assigned a port id');
      const types: number[] = [];
      const senders = new Set<number>();
      const done = new Promise<void>((resolve) => {
        sock.onDatagram((d: Datagram) => {
          senders.add(d.ifindexOrPortId);
          for (let off = 0; off + 16 <= d.data.length;) {
            const len = d.data.readUInt32LE(off);
            const type = d.data.readUInt16LE(off + 4);
            assert.equal(d.data.readUInt32LE(off + 8), 7, 'sequence number echoed');
            types.push(type);
            if (type === NLMSG_DONE) resolve();
            if (len < 16) break;
            off += (len + 3) & ~3;
          }
        });
      });
      // Nothing was sent yet: a synchronous drain finds nothing queued.
      assert.equal(sock.drain(() => assert.fail('no datagram expected yet')), 0);
      assert.ok(sock.send(getlinkDump(7)));
      await done;
      assert.ok(types.includes(16), 'at least one RTM_NEWLINK (the loopback)');
      assert.deepEqual([...senders], [0], 'every message came from the kernel (port 0)');
      assert.equal(sock.counters.truncated, 0);
    } finally {
      sock.close();
    }
  });

  it('close() stops the poll and a second close is EBADF', () => {
    const fd = native.netlinkOpen(native.constants.NETLINK_ROUTE, 0);
    native.pollStart(fd, () => {});
    assert.throws(() => native.pollStart(fd, () => {}), { code: 'EBUSY' });
    native.close(fd);
    assert.throws(() => native.close(fd), { code: 'EBADF' });
  });

  it('an exception thrown by a poll handler reaches uncaughtException, and polling goes on', async () => {
    const sock = openNetlinkSocket(native.constants.NETLINK_ROUTE);
    const listeners = process.listeners('uncaughtException');
    process.removeAllListeners('uncaughtException');
    try {
      const caught = new Promise<Error>((resolve) => process.once('uncaughtException', resolve));
      let calls = 0;
      sock.onDatagram(() => {
        calls++;
        if (calls === 1) throw new Error('handler failed');
      });
      sock.send(getlinkDump(1));
      assert.equal((await caught).message, 'handler failed');
      sock.send(getlinkDump(2));
      await new Promise((r) => setTimeout(r, 50));
      assert.ok(calls >= 2, `handler called again after the throw (${calls})`);
    } finally {
      sock.close();
      for (const l of listeners) process.on('uncaughtException', l);
    }
  });

  it('sets and reads integer socket options', () => {
    const fd = native.netlinkOpen(native.constants.NETLINK_ROUTE, 0);
    try {
      const c = native.constants;
      native.setIntOption(fd, c.SOL_NETLINK, c.NETLINK_EXT_ACK, 1);
      assert.equal(native.getIntOption(fd, c.SOL_NETLINK, c.NETLINK_EXT_ACK), 1);
      assert.throws(() => native.setIntOption(fd, c.SOL_NETLINK, 9999, 1), { code: 'ENOPROTOOPT' });
    } finally {
      native.close(fd);
    }
  });

  describe('TCP_MD5SIG on sockets net adopts', function () {
    this.timeout(5000);
    const key = Buffer.from('portico-test-key');

    async function md5Server(serverKey: Buffer | null): Promise<{ server: net.Server; port: number }> {
      const fd = native.tcpSocket(4);
      native.bindAddress(fd, '127.0.0.1', 0);
      if (serverKey) native.tcpMd5Sig(fd, '127.0.0.1', -1, serverKey);
      const server = net.createServer((s) => s.end('hello from portico'));
      server.listen({ fd });
      await once(server, 'listening');
      return { server, port: (server.address() as net.AddressInfo).port };
    }

    function connect(port: number, clientKey: Buffer | null, family: 4 | 6 = 4): net.Socket {
      const fd = native.tcpSocket(family);
      if (clientKey) native.tcpMd5Sig(fd, family === 4 ? '127.0.0.1' : '::ffff:127.0.0.1', -1, clientKey);
      return new net.Socket({ fd }).connect({ port, host: family === 4 ? '127.0.0.1' : '::ffff:127.0.0.1' });
    }

    it('connects when both ends share the key and data flows', async () => {
      const { server, port } = await md5Server(key);
      try {
        const client = connect(port, key);
        const chunks: Buffer[] = [];
        client.on('data', (c: Buffer) => chunks.push(c));
        await once(client, 'end');
        assert.equal(Buffer.concat(chunks).toString(), 'hello from portico');
      } finally {
        server.close();
      }
    });

    it('keys an IPv4 peer on an IPv6 socket as a mapped address', async () => {
      const { server, port } = await md5Server(key);
      try {
        const client = connect(port, key, 6);
        const chunks: Buffer[] = [];
        client.on('data', (c: Buffer) => chunks.push(c));
        await once(client, 'end');
        assert.equal(Buffer.concat(chunks).toString(), 'hello from portico');
      } finally {
        server.close();
      }
    });

    it('a client without the key never completes the handshake', async () => {
      const { server, port } = await md5Server(key);
      try {
        const client = connect(port, null);
        const outcome = await Promise.race([
          once(client, 'connect').then(() => 'connected'),
          new Promise((r) => setTimeout(r, 600, 'no handshake')),
        ]);
        client.destroy();
        assert.equal(outcome, 'no handshake');
      } finally {
        server.close();
      }
    });

    it('a wrong key on one side also blocks the handshake; an empty key deletes it', async () => {
      const { server, port } = await md5Server(key);
      try {
        const fd = native.tcpSocket(4);
        native.tcpMd5Sig(fd, '127.0.0.1', -1, Buffer.from('wrong'));
        const client = new net.Socket({ fd }).connect({ port, host: '127.0.0.1' });
        const outcome = await Promise.race([
          once(client, 'connect').then(() => 'connected'),
          new Promise((r) => setTimeout(r, 600, 'no handshake')),
        ]);
        client.destroy();
        assert.equal(outcome, 'no handshake');
        const fd2 = native.tcpSocket(4);
        native.tcpMd5Sig(fd2, '127.0.0.1', 8, key);
        native.tcpMd5Sig(fd2, '127.0.0.1', 8, Buffer.alloc(0));
        native.close(fd2);
        const fd3 = native.tcpSocket(4);
        assert.throws(() => native.tcpMd5Sig(fd3, '2001:db8::1', -1, key), { code: 'EINVAL' });
        assert.throws(() => native.tcpMd5Sig(fd3, '198.51.100.1', -1, Buffer.alloc(81)), { code: 'EINVAL' });
        native.close(fd3);
      } finally {
        server.close();
      }
    });
  });
});
