// The controller process must not load @kubernetes/client-node: importing it
// costs about 87 MB of RSS (generated models and serializers), more than half
// of the controller's budget. A resolve hook in a child process records every
// module that resolves into client-node while the entry point loads its whole
// graph (`--help` returns before any connection is made).
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

const HOOK = `import { registerHooks } from 'node:module';
const hits = [];
registerHooks({
  resolve(specifier, context, next) {
    const r = next(specifier, context);
    if (r.url.includes('/@kubernetes/client-node/') || specifier === '@kubernetes/client-node') hits.push(r.url);
    return r;
  },
});
process.on('exit', () => process.stderr.write('CLIENT_NODE_MODULES ' + JSON.stringify(hits.slice(0, 3).concat(hits.length > 3 ? ['... ' + hits.length + ' in all'] : [])) + '\\n'));
`;

/** The client-node modules resolved while running `entry` with `args`. */
function clientNodeModules(dir: string, entry: string, args: string[]): string[] {
  const hook = path.join(dir, 'hook.mjs');
  writeFileSync(hook, HOOK);
  const r = spawnSync(process.execPath, ['--import', hook, entry, ...args], { encoding: 'utf8', timeout: 60_000 });
  const m = /CLIENT_NODE_MODULES (.*)/.exec(r.stderr);
  assert.ok(m, `no report from the hook (exit ${r.status}): ${r.stderr.slice(0, 500)}`);
  return JSON.parse(m[1]!) as string[];
}

describe('controller module graph', function () {
  this.timeout(60_000);
  let dir: string;
  before(function () { dir = mkdtempSync(path.join(os.tmpdir(), 'portico-graph-')); });
  after(function () { rmSync(dir, { recursive: true, force: true }); });

  it('the hook sees client-node where it is loaded (the portico CLI keeps it)', function () {
    const hits = clientNodeModules(dir, path.join(here, 'cli', 'status.ts'), []);
    assert.ok(hits.length > 0, 'the hook must detect client-node, or the next test proves nothing');
  });

  it('the controller entry point (main.ts and everything it imports) never loads client-node', function () {
    assert.deepEqual(clientNodeModules(dir, path.join(here, 'main.ts'), ['--help']), []);
  });

  it('neither does importing the package (index.ts), as test harnesses do', function () {
    const entry = path.join(dir, 'import-index.mjs');
    writeFileSync(entry, `await import(${JSON.stringify(path.join(here, 'index.ts'))});\n`);
    assert.deepEqual(clientNodeModules(dir, entry, []), []);
  });
});
