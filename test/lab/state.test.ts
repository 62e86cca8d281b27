// The claim lock around a lab prefix: two starts at once take turns, and a lock
// left by a process that died is taken over. Runs on a temporary directory.
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LabBusyError, withClaimLock } from './state.ts';
import { startTicks } from './sh.ts';

describe('lab prefix claim lock', () => {
  let root = '';
  beforeEach(() => { root = mkdtempSync(path.join(tmpdir(), 'portico-claim-')); });
  afterEach(() => { rmSync(root, { recursive: true, force: true }); });

  const holdLock = (prefix: string, pid: number, ticks: number | undefined): void => {
    mkdirSync(path.join(root, `${prefix}.claim`));
    writeFileSync(path.join(root, `${prefix}.claim`, 'owner.json'), JSON.stringify({ pid, startTicks: ticks }));
  };

  it('a free prefix is claimed at once and the lock removed after', async () => {
    let ran = false;
    const p = withClaimLock('p', () => { ran = true; return 'claimed'; }, { root });
    assert.equal(ran, true, 'no other holder: the claim ran without waiting');
    assert.equal(await p, 'claimed');
    assert.equal(existsSync(path.join(root, 'p.claim')), false);
  });

  it('waits while a live process holds the lock, and claims once it is released', async () => {
    holdLock('p', process.pid, startTicks(process.pid));
    let ran = false;
    const p = withClaimLock('p', () => { ran = true; }, { root });
    assert.equal(ran, false, 'the claim waits for the holder');
    rmSync(path.join(root, 'p.claim'), { recursive: true, force: true });
    await p;
    assert.equal(ran, true);
  });

  it('takes over a lock whose holder has died', async () => {
    holdLock('p', spawnSync('true').pid, 1); // that process has exited
    assert.equal(await withClaimLock('p', () => 'claimed', { root, timeoutMs: 2000 }), 'claimed');
  });

  it('a lock held by a live process past the deadline is reported, naming the holder', async () => {
    holdLock('p', process.pid, startTicks(process.pid));
    await assert.rejects(withClaimLock('p', () => 'claimed', { root, timeoutMs: 200 }), (err: unknown) => err instanceof LabBusyError && err.message.includes(`process ${process.pid}`));
  });
});
