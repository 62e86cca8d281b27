// The heartbeats' UDP transport: one IPv4 and one IPv6 socket on the
// membership port, so peers are reached over whichever family their Node
// address has.
import dgram from 'node:dgram';
import { isIPv4 } from 'node:net';
import type { HeartbeatTransport } from './membership.ts';

export async function openUdpTransport(port: number, opts: { onError?: (err: Error) => void } = {}): Promise<HeartbeatTransport & { port: number }> {
  const v4 = dgram.createSocket({ type: 'udp4', reuseAddr: false });
  const v6 = dgram.createSocket({ type: 'udp6', ipv6Only: true, reuseAddr: false });
  const bind = (s: dgram.Socket, address: string, p: number): Promise<void> => new Promise((resolve, reject) => {
    s.once('error', reject);
    s.bind({ port: p, address, exclusive: true }, () => { s.off('error', reject); resolve(); });
  });
  await bind(v4, '0.0.0.0', port);
  const bound = v4.address().port;
  try {
    await bind(v6, '::', bound);
  } catch (err) {
    v4.close();
    throw err;
  }
  for (const s of [v4, v6]) s.on('error', (err) => opts.onError?.(err));
  let handler: ((d: Buffer, from: string) => void) | undefined;
  // Sends complete asynchronously; closing with sends in flight cancels them,
  // and the goodbye heartbeats of a stopping speaker must get out.
  let inFlight = 0;
  let drained: (() => void) | undefined;
  for (const s of [v4, v6]) s.on('message', (msg, rinfo) => handler?.(msg, rinfo.address));
  return {
    port: bound,
    send(datagram, address) {
      inFlight++;
      (isIPv4(address) ? v4 : v6).send(datagram, bound, address, (err) => {
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
      await Promise.all([v4, v6].map((s) => new Promise<void>((resolve) => { try { s.close(() => resolve()); } catch { resolve(); } })));
    },
  };
}
