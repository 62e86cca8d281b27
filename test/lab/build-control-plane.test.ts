// Two control-plane builds of one cache entry at once take turns on its lock:
// the second says it waits, then finds the binaries the first built. A fake
// `go` on PATH stands in for the compiler (the build itself is not under test
// here): it records each call and holds the first build until the test has
// seen the second one waiting.
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'build-control-plane.sh');

const FAKE_GO = `#!/usr/bin/env bash
# go build [flags] -o OUT PKG...: writes one executable per package into OUT.
echo "GOFLAGS=$GOFLAGS $*" >> "$FAKE_GO_LOG"
[ -e "$FAKE_GO_STARTED" ] || { : > "$FAKE_GO_STARTED"; while [ ! -e "$FAKE_GO_GATE" ]; do sleep 0.05; done; }
out=""; pkgs=()
while [ $# -gt 0 ]; do
  case "$1" in
    -o) out="$2"; shift 2 ;;
    -ldflags) shift 2 ;;
    -*|build) shift ;;
    *) pkgs+=("$1"); shift ;;
  esac
done
if [[ "$out" == */ ]]; then for p in "\${pkgs[@]}"; do printf '#!/bin/sh\\n' > "$out/$(basename "$p")"; chmod +x "$out/$(basename "$p")"; done
else printf '#!/bin/sh\\n' > "$out"; chmod +x "$out"; fi
`;

interface Run { child: ChildProcess; stdout: string; stderr: string; done: Promise<number | null> }

describe('build-control-plane.sh: one builder per cache entry', function () {
  this.timeout(60_000);
  let dir = '';
  const runs: Run[] = [];

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'portico-cp-lock-'));
    writeFileSync(path.join(dir, 'go'), FAKE_GO);
    chmodSync(path.join(dir, 'go'), 0o755);
  });

  afterEach(async () => {
    writeFileSync(path.join(dir, 'gate'), ''); // never leave a fake build waiting
    for (const r of runs.splice(0)) {
      if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
      await r.done;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  const start = (ownGroup = false): Run => {
    const env = {
      ...process.env,
      PATH: `${dir}:${process.env.PATH ?? ''}`,
      PORTICO_CACHE: path.join(dir, 'cache'),
      FAKE_GO_LOG: path.join(dir, 'go.log'),
      FAKE_GO_STARTED: path.join(dir, 'started'),
      FAKE_GO_GATE: path.join(dir, 'gate'),
    };
    const child = spawn('bash', [script], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: ownGroup });
    const run: Run = { child, stdout: '', stderr: '', done: new Promise((resolve) => child.on('close', resolve)) };
    child.stdout.on('data', (d: Buffer) => { run.stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { run.stderr += d.toString(); });
    runs.push(run);
    return run;
  };

  /** Polls until `cond` holds or the deadline passes (the scripts' own progress, not a fixed sleep). */
  const until = async (cond: () => boolean, what: string, ms = 20_000): Promise<void> => {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  it('the second build waits, says so, and then finds what the first built', async () => {
    const first = start();
    await until(() => existsSync(path.join(dir, 'started')), 'the first build to start compiling');
    const second = start();
    await until(() => /another build of .* is running \(pid \d+\): waiting for it/.test(second.stderr), `the second build to say it waits (stderr: ${second.stderr})`);
    assert.equal(second.child.exitCode, null, 'the second build is still waiting');
    writeFileSync(path.join(dir, 'gate'), '');
    const [c1, c2] = await Promise.all([first.done, second.done]);
    assert.equal(c1, 0, `first build: ${first.stderr}`);
    assert.equal(c2, 0, `second build: ${second.stderr}`);
    assert.match(second.stderr, /the other build finished/);
    const bin = first.stdout.trim();
    assert.equal(second.stdout.trim(), bin, 'both print the same bin directory');
    for (const b of ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubectl']) {
      assert.ok(existsSync(path.join(bin, b)), `${b} is in ${bin}`);
    }
    const calls = readFileSync(path.join(dir, 'go.log'), 'utf8').trim().split('\n');
    assert.equal(calls.length, 2, `go ran once for Kubernetes and once for etcd, not again for the second build:\n${calls.join('\n')}`);
    assert.match(calls[0]!, /^GOFLAGS=-mod=readonly .*k8s\.io\/kubernetes\/cmd\/kube-apiserver/);
    assert.match(calls[1]!, /^GOFLAGS=-mod=readonly .*go\.etcd\.io\/etcd\/server\/v3/);
  });

  it('a build killed with its compiler (Ctrl-C) leaves no lock and no partial files: the next one builds at once', async () => {
    const first = start(true);
    await until(() => existsSync(path.join(dir, 'started')), 'the first build to start compiling');
    process.kill(-first.child.pid!, 'SIGKILL');
    await first.done;
    writeFileSync(path.join(dir, 'gate'), '');
    const second = start();
    assert.equal(await second.done, 0, second.stderr);
    assert.doesNotMatch(second.stderr, /waiting for it/);
    const bin = second.stdout.trim();
    assert.ok(existsSync(path.join(bin, 'kube-apiserver')));
    assert.deepEqual(readdirSync(path.dirname(bin)), ['bin'], 'the killed build\'s temporary directory was cleared');
  });
});
