// The heartbeats' UDP transport: one IPv4 and one IPv6 socket on the
// membership port, so peers are reached over whichever family their Node
// address has.
import dgram from 'node:dgram';
import { isIPv4 } from 'node:net';
import type { HeartbeatTransport } from './membership.ts';

export interface UdpTransportOptions {
  onError?: (err: Error) => void;
  /** IPv4 address to bind (default 0.0.0.0). */
  host4?: string;
  /** IPv6 address to bind (default ::); null: no IPv6 socket (tests on loopback). */
  host6?: string | null;
}

export async function openUdpTransport(port: number, opts: UdpTransportOptions = {}): Promise<HeartbeatTransport & { port: number }> {
  const v4 = dgram.createSocket({ type: 'udp4', reuseAddr: false });
  const v6 = opts.host6 === null ? undefined : dgram.createSocket({ type: 'udp6', ipv6Only: true, reuseAddr: false });
  const bind = (s: dgram.Socket, address: string, p: number): Promise<void> => new Promise((resolve, reject) => {
    s.once('error', reject);
    s.bind({ port: p, address, exclusive: true }, () => { s.off('error', reject); resolve(); });
  });
  await bind(v4, opts.host4 ?? '0.0.0.0', port);
  const bound = v4.address().port;
  try {
    if (v6) await bind(v6, opts.host6 ?? '::', bound);
  } catch (err) {
    v4.close();
    throw err;
  }
  const sockets = v6 ? [v4, v6] : [v4];
  for (const s of sockets) s.on('error', (err) => opts.onError?.(err));
  let handler: ((d: Buffer, from: string) => void) | undefined;
  // Sends complete asynchronously; closing with sends in flight cancels them,
  // and the goodbye heartbeats of a stopping speaker must get out.
  let inFlight = 0;
  let drained: (() => void) | undefined;
  for (const s of sockets) s.on('message', (msg, rinfo) => handler?.(msg, rinfo.address));
  return {
    port: bound,
    send(datagram, address) {
      const s = isIPv4(address) ? v4 : v6;
      if (!s) throw new Error(`no IPv6 heartbeat socket for ${address}`);
      inFlight++;
      s.send(datagram, bound, address, (err) => {
        inFlight--;
        if (inFlight === 0) drained?.();
        if (err) opts.onError?.(err);
      });
    },
    onMessage(h) {
      handler = h;
    },
    close: async () => {
      if (inFlight > 0) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, 500);
          drained = () => { clearTimeout(t); resolve(); };
        });
      }
      await Promise.all(sockets.map((s) => new Promise<void>((resolve) => { try { s.close(() => resolve()); } catch { resolve(); } })));
    },
  };
}
