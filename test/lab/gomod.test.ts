// The lab's Go builds (test/lab/gomod/*) resolve exactly as committed, checked
// the way a fresh machine would see them: against an empty module cache, with
// -mod=readonly, so neither a warm cache nor built binaries can hide a pin that
// no longer holds. Only go.mod files are fetched (a few MB); nothing is built.
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const gomod = path.join(here, 'gomod');
const modules = readdirSync(gomod).filter((d) => existsSync(path.join(gomod, d, 'go.mod')));

interface ListedModule { Path: string; Version?: string; Main?: boolean; Replace?: { Path: string; Version?: string } }

/** `require` entries of a go.mod file: path -> version. */
function requires(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let inBlock = false;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\/\/.*$/, '').trim();
    if (line === 'require (') { inBlock = true; continue; }
    if (inBlock && line === ')') { inBlock = false; continue; }
    const m = (inBlock ? line : line.startsWith('require ') ? line.slice(8).trim() : '').match(/^(\S+)\s+(v\S+)$/);
    if (m) out.set(m[1]!, m[2]!);
  }
  return out;
}

/** Makes a module cache deletable (Go writes it read-only). */
function removeModCache(dir: string): void {
  const walk = (p: string): void => {
    const st = statSync(p, { throwIfNoEntry: false });
    if (!st) return;
    if (st.isDirectory()) {
      chmodSync(p, 0o755);
      for (const e of readdirSync(p)) walk(path.join(p, e));
    }
  };
  walk(dir);
  rmSync(dir, { recursive: true, force: true });
}

describe('pinned Go modules of the lab (fresh module cache, -mod=readonly)', function () {
  this.timeout(300_000);
  let cache = '';
  const listed = new Map<string, ListedModule[]>();

  before(function () {
    if (spawnSync('go', ['version']).status !== 0) {
      console.log('      skipped: no Go toolchain on PATH (scripts/setup.sh needs one to build the lab)');
      this.skip();
    }
    cache = mkdtempSync(path.join(tmpdir(), 'portico-gomodcache-'));
  });

  after(() => {
    if (cache) removeModCache(cache);
  });

  const goEnv = (): NodeJS.ProcessEnv => ({
    ...process.env, GOMODCACHE: cache, GOFLAGS: '-mod=readonly', GOWORK: 'off', GOTOOLCHAIN: 'local', GOPATH: path.join(cache, 'gopath'),
  });

  for (const name of modules) {
    it(`${name}: go list -m all succeeds without changing go.mod or go.sum`, () => {
      const dir = path.join(gomod, name);
      const before = readFileSync(path.join(dir, 'go.mod'), 'utf8') + readFileSync(path.join(dir, 'go.sum'), 'utf8');
      const r = spawnSync('go', ['list', '-m', '-json', 'all'], { cwd: dir, env: goEnv(), encoding: 'utf8', maxBuffer: 64 << 20 });
      assert.equal(r.status, 0, `go list -m all failed in ${dir}; the pins would not resolve on a fresh machine (regenerate with test/lab/gomod/pin.sh):\n${r.stderr.slice(0, 4000)}`);
      const after = readFileSync(path.join(dir, 'go.mod'), 'utf8') + readFileSync(path.join(dir, 'go.sum'), 'utf8');
      assert.equal(after, before, 'go.mod/go.sum were changed by the check');
      // `go list -m -json` prints one JSON object after another.
      const mods = JSON.parse(`[${r.stdout.trim().replace(/\}\n\{/g, '},{')}]`) as ListedModule[];
      listed.set(name, mods);
      // Every version go.mod writes down is the one the build list selects.
      const byPath = new Map(mods.map((m) => [m.Path, m]));
      const req = requires(readFileSync(path.join(dir, 'go.mod'), 'utf8'));
      assert.ok(req.size > 10, `${req.size} requirements read from go.mod`);
      for (const [p, v] of req) {
        assert.equal(byPath.get(p)?.Version, v, `${p}: go.mod says ${v}, the build list selects ${byPath.get(p)?.Version ?? 'nothing'}`);
      }
    });
  }

  it('kubernetes: every dependency at the version upstream pins, staging modules at the matching v0 release', function () {
    const mods = listed.get('kubernetes');
    if (!mods) this.skip(); // the go list test above failed and said why
    const byPath = new Map(mods.map((m) => [m.Path, m]));
    const k8s = byPath.get('k8s.io/kubernetes');
    assert.ok(k8s?.Version, 'k8s.io/kubernetes is in the build list');
    const upstreamMod = path.join(cache, 'cache', 'download', 'k8s.io', 'kubernetes', '@v', `${k8s.Version}.mod`);
    const upstream = requires(readFileSync(upstreamMod, 'utf8'));
    const staging = `v0.${k8s.Version.slice('v1.'.length)}`;
    let compared = 0;
    for (const [p, v] of upstream) {
      const ours = byPath.get(p);
      assert.ok(ours, `${p} (upstream ${v}) is missing from the build list`);
      if (v === 'v0.0.0') {
        assert.equal(ours.Replace?.Version, staging, `staging module ${p} is replaced by the published ${staging}`);
      } else {
        assert.equal(ours.Version, v, `${p}: upstream ${k8s.Version} pins ${v}`);
        assert.equal(ours.Replace, undefined, `${p} is not replaced`);
      }
      compared++;
    }
    assert.ok(compared > 100, `compared ${compared} requirements`);
  });

  it('build-control-plane.sh reads the versions from these go.mod files and finds them consistent', () => {
    // --check resolves nothing and needs no Go: exit 0 (built) or 1 (not built), never a parse error.
    const r = spawnSync('bash', [path.join(here, 'build-control-plane.sh'), '--check'], { encoding: 'utf8', env: { ...process.env, PORTICO_CACHE: cache } });
    assert.equal(r.status, 1, `an empty cache has no binaries: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /cannot read the pinned versions/);
  });
});
