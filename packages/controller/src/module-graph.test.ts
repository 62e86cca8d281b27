// The controller process must not load @kubernetes/client-node: importing it
// costs about 87 MB of RSS (generated models and serializers), more than half
// of the controller's budget. A resolve hook in a child process records every
// module that resolves into client-node while the entry point loads its whole
// graph (`--help` returns before any connection is made). The `portico status`
// CLI is held to the same (its start-up is most of its wall time); it loads
// client-node only for a kubeconfig exec plugin or auth provider (cli/kube.ts).
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
// undici (behind fetch, and behind an ESM import of node:http: see shared k8s/connection.ts) costs start-up too.
process.on('exit', () => process.stderr.write('UNDICI_LOADED ' + process.moduleLoadList.some((m) => m.includes('undici')) + '\\n'));
`;

/** The client-node modules resolved while running `entry` with `args`, and the child's stderr. */
function clientNodeRun(dir: string, entry: string, args: string[]): { hits: string[]; stderr: string } {
  const hook = path.join(dir, 'hook.mjs');
  writeFileSync(hook, HOOK);
  const r = spawnSync(process.execPath, ['--import', hook, entry, ...args], { encoding: 'utf8', timeout: 60_000 });
  const m = /CLIENT_NODE_MODULES (.*)/.exec(r.stderr);
  assert.ok(m, `no report from the hook (exit ${r.status}): ${r.stderr.slice(0, 500)}`);
  return { hits: JSON.parse(m[1]!) as string[], stderr: r.stderr };
}
const clientNodeModules = (dir: string, entry: string, args: string[]): string[] => clientNodeRun(dir, entry, args).hits;

/**
 * A kubeconfig for a server that refuses connections (nothing listens on
 * 127.0.0.1:1), so `portico status` loads and runs its whole path and fails
 * at the first request. `user` is the kubeconfig user.
 */
function refusedKubeconfig(dir: string, name: string, user: string): string {
  const f = path.join(dir, name);
  writeFileSync(f, `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]\nusers: [{name: u, user: ${user}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`);
  return f;
}

describe('controller module graph', function () {
  this.timeout(60_000);
  let dir: string;
  before(function () { dir = mkdtempSync(path.join(os.tmpdir(), 'portico-graph-')); });
  after(function () { rmSync(dir, { recursive: true, force: true }); });

  it('the hook sees client-node where it is loaded: `portico status` with an exec plugin, the one case that needs it', function () {
    const cred = JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token: 't' } });
    const plugin = path.join(dir, 'plugin.cjs');
    writeFileSync(plugin, `process.stdout.write(${JSON.stringify(cred)});\n`);
    const kc = refusedKubeconfig(dir, 'exec.yaml', `{exec: {apiVersion: client.authentication.k8s.io/v1, command: ${JSON.stringify(process.execPath)}, args: [${JSON.stringify(plugin)}], interactiveMode: Never}}`);
    const { hits, stderr } = clientNodeRun(dir, path.join(here, 'cli', 'portico.ts'), ['status', '--kubeconfig', kc]);
    assert.match(stderr, /cannot reach the API server https:\/\/127\.0\.0\.1:1/);
    assert.ok(hits.length > 0, 'the hook must detect client-node, or the next tests prove nothing');
  });

  it('`portico status` (the CLI entry, its kubeconfig loading and every request) never loads client-node, nor undici', function () {
    const kc = refusedKubeconfig(dir, 'token.yaml', '{token: t}');
    const { hits, stderr } = clientNodeRun(dir, path.join(here, 'cli', 'portico.ts'), ['status', '--kubeconfig', kc]);
    assert.match(stderr, /portico: cannot reach the API server https:\/\/127\.0\.0\.1:1: connect ECONNREFUSED/);
    assert.deepEqual(hits, []);
    assert.match(stderr, /UNDICI_LOADED false/, 'nor undici');
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
