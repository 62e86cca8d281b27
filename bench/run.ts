// `npm run bench -- NAME [args]` runs bench/NAME.ts; without a name it lists them.
// Every benchmark prints one JSON line per result as its last output.
import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const benches = readdirSync(here).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && f !== 'run.ts' && !f.startsWith('_')).map((f) => f.slice(0, -3)).sort();
const [name, ...args] = process.argv.slice(2);
if (!name) {
  process.stdout.write(`benchmarks (npm run bench -- NAME):\n${benches.map((b) => `  ${b}`).join('\n')}\n`);
} else if (!benches.includes(name)) {
  process.stderr.write(`no benchmark named ${name}; there are: ${benches.join(', ')}\n`);
  process.exitCode = 2;
} else {
  const r = spawnSync(process.execPath, [path.join(here, `${name}.ts`), ...args], { stdio: 'inherit' });
  process.exitCode = r.status ?? 1;
}
