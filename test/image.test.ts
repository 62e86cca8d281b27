// Portico's image as scripts/image.sh built it (npm run image): what it holds
// and how big it is, read from the image's own store (no container started).
// Builds the image first when this tree's is not built (as root; skipped,
// with the reason, otherwise); the real-node suites are what run it.
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from './lab/index.ts';
import { porticoImage } from './lab/realnode-portico.ts';

const script = path.join(repoRoot, 'scripts', 'image.sh');
const sh = (...args: string[]) => spawnSync('bash', [script, ...args], { encoding: 'utf8' });

describe('the image (npm run image): contents and size', function () {
  this.timeout(60_000);
  let info: Record<string, string> = {};
  let root = '';
  // This tree's image by ID: another checkout sharing the cache may have moved the tag.
  let id = '';

  before(async function () {
    if (process.getuid?.() !== 0) {
      if (this.currentTest) this.currentTest.parent!.title += ' (skipped: needs root to build and read the image store)';
      this.skip();
    }
    // Built here when this tree's image is not (minutes the first time, cached by content after).
    this.timeout(3_700_000);
    const image = await porticoImage((m) => console.log(`    ${m}`));
    info = { image: image.name, archive: image.archive };
    id = readFileSync(`${info.archive!}.id`, 'utf8').trim();
    const m = sh('--podman', 'image', 'mount', id);
    assert.equal(m.status, 0, m.stderr);
    root = m.stdout.trim();
  });

  after(() => { if (id) sh('--podman', 'image', 'unmount', id); });

  it('is at most 150 MB uncompressed, and its archive is there for ctr/podman to import', () => {
    const size = Number(sh('--podman', 'image', 'inspect', '--format', '{{.Size}}', id).stdout.trim());
    assert.ok(size > 50e6 && size <= 150e6, `image size ${(size / 1e6).toFixed(1)} MB`);
    assert.ok(statSync(info.archive!).size > 50e6, info.archive);
    assert.match(info.image!, /^ghcr\.io\/portico-lb\/portico:\d+\.\d+\.\d+/);
  });

  it('holds what the components run: Node 24, nft with its libraries, the native addon, both entry points', () => {
    for (const f of ['usr/local/bin/node', 'usr/sbin/nft', 'lib64/ld-linux-x86-64.so.2', 'usr/lib/x86_64-linux-gnu/libnftables.so.1',
      'app/packages/speaker/native/build/Release/portico_native.node', 'app/packages/speaker/src/main.ts', 'app/packages/controller/src/main.ts']) {
      assert.ok(existsSync(path.join(root, f)), `${f} is in the image`);
    }
    assert.ok(readdirSync(path.join(root, 'app', '.cache', 'node')).length > 0, 'the compile cache was warmed');
  });

  it('and nothing else: no shell, no package manager, no modprobe, no build tools, no tests or dev dependencies', () => {
    for (const f of ['bin/sh', 'bin/bash', 'usr/bin/apt', 'usr/bin/dpkg', 'sbin/modprobe', 'usr/bin/gcc', 'usr/bin/python3', 'usr/local/bin/npm', 'usr/local/bin/pnpm', 'usr/share/doc']) {
      assert.ok(!existsSync(path.join(root, f)), `${f} is not in the image`);
    }
    const pnpm = readdirSync(path.join(root, 'app', 'node_modules', '.pnpm'));
    for (const dev of ['node-gyp', 'typescript', 'eslint', 'mocha', 'node@']) assert.ok(!pnpm.some((p) => p.startsWith(dev)), `no ${dev} in node_modules`);
    const tests: string[] = [];
    const walk = (d: string): void => { for (const e of readdirSync(d, { withFileTypes: true })) { const p = path.join(d, e.name); if (e.isDirectory()) { if (e.name === 'testdata') tests.push(p); else walk(p); } else if (e.name.endsWith('.test.ts')) tests.push(p); } };
    walk(path.join(root, 'app', 'packages'));
    assert.deepEqual(tests.map((t) => path.relative(root, t)), []);
  });
});
