import { strict as assert } from 'node:assert';
import { memoryLogger, type LeaseRecord, type LeaseStore } from '@portico/shared';
import { NodeLease, nodeLeaseName } from './lease.ts';

class MemoryStore implements LeaseStore {
  record: LeaseRecord | undefined;
  version = 0;
  down = false;
  writes = 0;
  async get(): Promise<{ record: LeaseRecord; version: string } | undefined> {
    if (this.down) throw new TypeError('fetch failed');
    return this.record ? { record: this.record, version: String(this.version) } : undefined;
  }
  async create(r: LeaseRecord): Promise<boolean> {
    this.writes++;
    if (this.record) return false;
    this.record = r;
    this.version++;
    return true;
  }
  async update(r: LeaseRecord, version: string): Promise<boolean> {
    this.writes++;
    if (version !== String(this.version)) return false;
    this.record = r;
    this.version++;
    return true;
  }
}

describe('node lease', () => {
  it('is named after the node, created once, then renewed by the node with one write per renewal', async () => {
    const store = new MemoryStore();
    let t = 1_000_000;
    const lease = new NodeLease({ node: 'node-1', store, log: memoryLogger(), leaseDurationMs: 15_000, now: () => t });
    assert.equal(nodeLeaseName('node-1'), 'portico-speaker-node-1');
    assert.equal(await lease.renew(), true);
    const acquired = store.record!.acquireTime;
    t += 5000;
    assert.equal(await lease.renew(), true);
    assert.equal(store.writes, 2);
    assert.deepEqual({ ...store.record!, acquireTime: undefined }, { holderIdentity: 'node-1', leaseDurationSeconds: 15, acquireTime: undefined, renewTime: new Date(t), leaseTransitions: 0 });
    assert.deepEqual(store.record!.acquireTime, acquired);
  });

  it('an API outage fails renewals quietly (one log line) and the next success says so', async () => {
    const store = new MemoryStore();
    const log = memoryLogger();
    const lease = new NodeLease({ node: 'node-1', store, log });
    store.down = true;
    assert.equal(await lease.renew(), false);
    assert.equal(await lease.renew(), false);
    store.down = false;
    assert.equal(await lease.renew(), true);
    assert.deepEqual(log.records.map((r) => r.msg), ['node lease renewal failed', 'node lease renewed again']);
  });
});
