// The Dockerfile's steps, replayed without a container engine by
// scripts/check-dockerfile.sh: install, native addon build, production
// dependencies, the runtime stage's smoke tests. Slow (a real pnpm install).
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from './lab/index.ts';

describe('Dockerfile (slow): its build steps pass when replayed in a clean directory', function () {
  this.timeout(900_000);
  this.slow(120_000);

  it('scripts/check-dockerfile.sh replays every stage and the runtime smoke tests', function () {
    if (process.platform !== 'linux') this.skip();
    const r = spawnSync('bash', [path.join(repoRoot, 'scripts', 'check-dockerfile.sh')], { encoding: 'utf8', maxBuffer: 64 << 20 });
    const out = `${r.stdout}${r.stderr}`;
    if (r.status === 77) {
      const reason = /SKIP: (.*)/.exec(out)?.[1] ?? 'a tool is missing';
      if (this.test) this.test.title += ` (skipped: ${reason})`;
      this.skip();
    }
    assert.equal(r.status, 0, out.slice(-6000));
    assert.match(out, /\[deps\] RUN test -f packages\/speaker\/native\/build\/Release\/portico_native\.node/);
    assert.match(out, /\[runtime\] RUN node -e "require\('\.\/packages\/speaker\/native\/build\/Release\/portico_native\.node'\)"/);
    assert.match(out, /check-dockerfile: \d+ instructions replayed/);
  });
});
