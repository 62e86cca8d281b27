// Sends raw Ethernet frames from inside a test namespace:
// `node send-frame.ts IFNAME HEX...` (one frame per argument).
import { openPacketSocket } from '../../native/index.ts';

const [ifname, ...frames] = process.argv.slice(2);
if (!ifname || frames.length === 0) throw new Error('usage: send-frame.ts IFNAME HEX...');
const sock = openPacketSocket(ifname, { protocol: 0x0806 });
try {
  for (const hex of frames) {
    if (!sock.send(Buffer.from(hex, 'hex'))) throw new Error('socket buffer full');
  }
} finally {
  sock.close();
}
