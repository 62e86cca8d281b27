// The session's socket factory with TCP MD5 (RFC 2385) and the session TTL: the
// native addon makes the socket and sets TCP_MD5SIG for the peer and IP_TTL
// (IPV6_UNICAST_HOPS) before the SYN leaves, then node:net adopts the fd and
// connects. Without a password or a TTL it is plain node:net.
import { createConnection, isIPv6, Socket } from 'node:net';
import { loadNative } from '../native/index.ts';
import type { SocketFactory } from './session.ts';

export const md5SocketFactory: SocketFactory = (o) => {
  if (!o.password && o.ttl === undefined) return createConnection({ host: o.host, port: o.port, localAddress: o.localAddress });
  const native = loadNative();
  const v6 = isIPv6(o.host);
  const fd = native.tcpSocket(v6 ? 6 : 4);
  try {
    // A key longer than 80 bytes is refused by the kernel (TCP_MD5SIG_MAXKEYLEN); the error names it.
    if (o.password) native.tcpMd5Sig(fd, o.host, -1, Buffer.from(o.password, 'utf8'));
    if (o.ttl !== undefined) {
      const c = native.constants;
      if (v6) native.setIntOption(fd, c.IPPROTO_IPV6, c.IPV6_UNICAST_HOPS, o.ttl);
      else native.setIntOption(fd, c.IPPROTO_IP, c.IP_TTL, o.ttl);
    }
    if (o.localAddress) native.bindAddress(fd, o.localAddress, 0);
  } catch (err) {
    native.close(fd);
    throw err;
  }
  return new Socket({ fd, readable: true, writable: true }).connect({ host: o.host, port: o.port });
};
