// Runs a Responder inside a test namespace (started by responder.root.test.ts
// through `ip netns exec`): `node responder-child.ts IFNAME IP...`.
// Prints one JSON line per event; reads commands on stdin:
//   announce IP   -> one round of gratuitous ARP / unsolicited NA
//   counters      -> prints the counters
//   own IP...     -> replaces the owned set
import { createInterface } from 'node:readline';
import { openResponder } from '../responder.ts';

const [ifname, ...ips] = process.argv.slice(2);
if (!ifname) throw new Error('usage: responder-child.ts IFNAME IP...');
const out = (o: object): void => { process.stdout.write(JSON.stringify(o) + '\n'); };

const responder = openResponder(ifname, {
  onDecision: (d) => out({ event: 'decision', action: d.action, reason: d.reason, ip: d.ip ?? null, protocol: d.protocol ?? null, detail: d.action === 'ignore' ? d.detail ?? null : null }),
  onError: (err) => out({ event: 'error', message: err.message }),
});
responder.setOwned(ips);
out({ event: 'ready', mac: responder.mac, owned: responder.owned() });

createInterface({ input: process.stdin }).on('line', (line) => {
  const [cmd, ...args] = line.trim().split(/\s+/);
  if (cmd === 'announce') out({ event: 'announced', ip: args[0], frames: responder.announce(args[0] ?? '') });
  else if (cmd === 'counters') out({ event: 'counters', counters: responder.counters });
  else if (cmd === 'own') out({ event: 'owned', ...responder.setOwned(args) });
}).on('close', () => {
  responder.close();
  process.exit(0);
});
