// The whole workspace typechecks and lints cleanly: run as part of `npm test`
// so a type error or a deep import fails CI, not just an editor.
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name: string): string => path.join(root, 'node_modules', '.bin', name);

function run(cmd: string, args: string[]): { code: number | null; out: string } {
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('workspace checks', function () {
  this.timeout(300_000);
  it('tsc --noEmit reports no type error', function () {
    const r = run(bin('tsc'), ['-p', 'tsconfig.json', '--noEmit']);
    assert.equal(r.code, 0, `tsc failed:\n${r.out.slice(0, 8000)}`);
  });
  it('eslint reports no problem', function () {
    const r = run(bin('eslint'), ['--max-warnings=0', '.']);
    assert.equal(r.code, 0, `eslint failed:\n${r.out.slice(0, 8000)}`);
  });
});
