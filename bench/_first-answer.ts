// The client side of install-to-traffic and create-to-traffic, run inside the
// client's network namespace: it prints "ready" once it runs, then requests
// URL every --interval-ms (a new connection each time, --timeout-ms each)
// until the first good answer from a pod, and prints one JSON line with the
// wall-clock time of that answer (Date.now(), the same clock as the caller's)
// and the tries it took. Gives up after --max-ms ({"at":null}).
//   node _first-answer.ts URL [--interval-ms 10] [--timeout-ms 200] [--max-ms 60000]
import { parseArgs } from 'node:util';
import { get } from '../test/e2e/l2-probe.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { 'interval-ms': { type: 'string', default: '10' }, 'timeout-ms': { type: 'string', default: '200' }, 'max-ms': { type: 'string', default: '60000' } },
});
const url = positionals[0];
if (!url) throw new Error('usage: _first-answer.ts URL [--interval-ms N] [--timeout-ms N] [--max-ms N]');
const interval = Number(values['interval-ms']);
const until = Date.now() + Number(values['max-ms']);
process.stdout.write('ready\n');
let tries = 0;
let last: string | undefined;
while (Date.now() < until) {
  tries++;
  const r = await get(url, Number(values['timeout-ms']));
  if (r.ok && r.pod) {
    process.stdout.write(`${JSON.stringify({ at: Date.now(), pod: r.pod, tries })}\n`);
    process.exit(0);
  }
  last = r.error;
  await new Promise((res) => setTimeout(res, interval));
}
process.stdout.write(`${JSON.stringify({ at: null, tries, lastError: last })}\n`);
