// A Portico BGP session in a child process, for tests that run it inside a
// network namespace (`ip netns exec NS node session-peer.ts OPTIONS_JSON`).
// Reads one JSON command per line on stdin ({"set": [...]}, {"stop": "msg"}),
// writes one JSON event per line on stdout.
import { createInterface } from 'node:readline';
import { BgpSession, type Advertisement, type SessionOptions } from '../session.ts';

const session = new BgpSession(JSON.parse(process.argv[2]!) as SessionOptions);
const say = (o: Record<string, unknown>): void => { process.stdout.write(`${JSON.stringify(o)}\n`); };
session.on('state', (state: string, reason: string) => say({ event: 'state', state, reason }));
session.on('established', () => say({ event: 'established' }));
session.on('down', (reason: string, detail: string) => say({ event: 'down', reason, detail }));
createInterface({ input: process.stdin }).on('line', (line) => {
  const cmd = JSON.parse(line) as { set?: Advertisement[]; stop?: string };
  if (cmd.set) session.set(cmd.set);
  if (cmd.stop !== undefined) { session.stop(cmd.stop); setTimeout(() => process.exit(0), 200); }
});
session.start();
