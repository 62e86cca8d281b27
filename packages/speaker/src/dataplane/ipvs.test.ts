// The IPVS dataplane's sync over a model of the kernel (IpvsKernelApi): the
// model keeps its own connection counts, which change between syncs as
// clients come and go, so a decision made on the dataplane's cached counts
// instead of the kernel's current ones shows up as a wrong operation.
import { strict as assert } from 'node:assert';
import type { IpvsService } from '../netlink/ipvs.ts';
import { applyOps, type KernelService, type Op } from './diff.ts';
import { LivenessFeed } from '../membership/liveness.ts';
import { IpvsDataplane, type IpvsKernelApi } from './ipvs.ts';
import { endpoint, service, world } from './testdata/world.ts';

/** IPVS as the kernel would hold it; every read hands out copies, as a netlink dump does. */
class KernelModel implements IpvsKernelApi {
  readonly services = new Map<string, KernelService>();
  readonly applied: Op[] = [];
  reads = 0;

  static #copy(s: KernelService): KernelService {
    return { ...s, reals: s.reals.map((r) => ({ ...r })) };
  }

  managed(owned: ReadonlySet<string>): Promise<Map<string, KernelService>> {
    this.reads++;
    return Promise.resolve(new Map([...this.services].filter(([, s]) => owned.has(s.address)).map(([k, s]) => [k, KernelModel.#copy(s)])));
  }

  withDests(ids: readonly IpvsService[]): Promise<Map<string, KernelService>> {
    this.reads++;
    const out = new Map<string, KernelService>();
    for (const s of this.services.values()) if (ids.some((i) => i.address === s.address && i.port === s.port && i.protocol === s.protocol)) out.set(s.key, KernelModel.#copy(s));
    return Promise.resolve(out);
  }

  apply(ops: readonly Op[]): Promise<[]> {
    this.applied.push(...ops);
    applyOps(this.services, ops);
    return Promise.resolve([]);
  }

  close(): void {}

  /** Sets the connection counts IPVS reports for a real server of the (single) service. */
  conns(address: string, active: number, inactive: number): void {
    for (const s of this.services.values()) for (const r of s.reals) if (r.address === address) { r.activeConns = active; r.inactiveConns = inactive; }
  }

  reals(): string[] {
    return [...this.services.values()].flatMap((s) => s.reals.map((r) => `${r.address} w${r.weight}`)).sort();
  }
}

function text(ops: readonly Op[]): string[] {
  return ops.map((o) => ('real' in o ? `${o.op} ${o.real.address} w${o.real.weight}${'why' in o ? ` ${o.why}` : ''}` : `${o.op} ${o.service.key}`));
}

const web = (ips: string[]) => world('node-1', [service('web', { endpoints: ips.map((ip) => endpoint(ip, 'node-2')) })]);

async function until(what: string, ok: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('IPVS dataplane sync (a model of the kernel)', () => {
  let clock = 0;
  let kernel: KernelModel;
  let dp: IpvsDataplane;
  beforeEach(() => {
    clock = 1_000_000;
    kernel = new KernelModel();
    dp = IpvsDataplane.over(kernel, undefined, { sysctls: false, nft: () => Promise.resolve(), now: () => clock, drainTimeoutMs: 60_000, inactiveHoldMs: 5000, drainCheckMs: 5, resyncMs: 3_600_000 });
  });
  afterEach(() => dp.stop());

  it('a removed endpoint whose connection opened after the last read drains at weight 0 instead of being deleted', async () => {
    await dp.update(web(['100.64.2.5', '100.64.2.6', '100.64.2.7']));
    assert.deepEqual(kernel.reals(), ['100.64.2.5 w1', '100.64.2.6 w1', '100.64.2.7 w1']);
    // A client connects to .6 after the full sync: only the kernel knows.
    kernel.conns('100.64.2.6', 1, 0);
    kernel.applied.length = 0;
    await dp.update(web(['100.64.2.5', '100.64.2.7']));
    assert.deepEqual(text(kernel.applied), ['update-real 100.64.2.6 w0 drain'], 'drained, not deleted with its connection');
    assert.deepEqual(kernel.reals(), ['100.64.2.5 w1', '100.64.2.6 w0', '100.64.2.7 w1']);
    assert.deepEqual([...dp.draining.keys()], ['tcp/203.0.113.10/80>100.64.2.6/8080']);
    // The connection closes (TIME_WAIT: inactive): deleted once the hold for inactive connections has passed.
    kernel.conns('100.64.2.6', 0, 1);
    clock += 4000;
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(kernel.reals(), ['100.64.2.5 w1', '100.64.2.6 w0', '100.64.2.7 w1'], 'inactive connections hold it for inactiveHoldMs');
    clock += 1000;
    await until('the drained real server to go', () => kernel.reals().length === 2);
    assert.deepEqual(text(kernel.applied.slice(1)), ['delete-real 100.64.2.6 w0 drained']);
    assert.equal(dp.draining.size, 0);
  });

  it('an endpoint change reads nothing from the kernel: the removed one goes to weight 0, the next drain check deletes it', async () => {
    await dp.update(web(['100.64.2.5', '100.64.2.6']));
    const reads = kernel.reads;
    kernel.applied.length = 0;
    await dp.update(web(['100.64.2.5', '100.64.2.8']));
    assert.deepEqual(text(kernel.applied), ['add-real 100.64.2.8 w1', 'update-real 100.64.2.6 w0 drain']);
    assert.equal(kernel.reads, reads, 'no kernel read in the change');
    clock += 1;
    await until('the drain check to delete it', () => kernel.reals().length === 2);
    assert.deepEqual(text(kernel.applied.slice(2)), ['delete-real 100.64.2.6 w0 drained']);
    assert.equal(kernel.reads - reads, 1, 'one read of its service, by the drain check');
    assert.equal(dp.draining.size, 0);
  });

  it('syncs closer together than drainCheckMs do not put the drain check off', async () => {
    await dp.stop();
    dp = IpvsDataplane.over(kernel, undefined, { sysctls: false, nft: () => Promise.resolve(), now: () => clock, drainTimeoutMs: 60_000, drainCheckMs: 100, resyncMs: 3_600_000 });
    await dp.update(web(['100.64.2.5', '100.64.2.6']));
    await dp.update(web(['100.64.2.5']));
    clock += 1;
    // An unrelated change every 20 ms for 400 ms: the drain check (every 100 ms) still runs.
    for (let i = 0; i < 20 && kernel.reals().length === 2; i++) {
      await dp.update(web(['100.64.2.5'])); // a new ServiceState object: the service is diffed again
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.deepEqual(kernel.reals(), ['100.64.2.5 w1']);
  });

  it('a handshake under way (inactive) when the endpoint goes keeps it at weight 0; established, it holds the drain up to the bound', async () => {
    await dp.update(web(['100.64.2.5', '100.64.2.6']));
    kernel.conns('100.64.2.6', 0, 1);
    kernel.applied.length = 0;
    await dp.update(web(['100.64.2.5']));
    assert.deepEqual(text(kernel.applied), ['update-real 100.64.2.6 w0 drain']);
    kernel.conns('100.64.2.6', 1, 0);
    clock += 30_000;
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(kernel.reals(), ['100.64.2.5 w1', '100.64.2.6 w0'], 'an active connection holds it past the inactive hold');
    clock += 30_000;
    await until('the drain bound', () => kernel.reals().length === 1);
    assert.deepEqual(text(kernel.applied.slice(1)), ['delete-real 100.64.2.6 w0 drain-timeout']);
  });

  it('pruning: a dead node\'s real servers go to weight 0 on the verdict alone (no new World), and come back when it is heard again', async () => {
    const feed = new LivenessFeed();
    const pdp = IpvsDataplane.over(kernel, undefined, { sysctls: false, nft: () => Promise.resolve(), now: () => clock, drainTimeoutMs: 60_000, inactiveHoldMs: 5000, drainCheckMs: 5, resyncMs: 3_600_000, liveness: feed });
    try {
      const live = (node3: 'alive' | 'silent'): void => feed.publish({ reasons: new Map([['node-1', 'self'], ['node-2', 'alive'], ['node-3', node3]]), settled: true });
      live('alive');
      await pdp.update(world('node-1', [service('web', { endpoints: [endpoint('100.64.2.5', 'node-2'), endpoint('100.64.3.5', 'node-3')] })]));
      assert.deepEqual(kernel.reals(), ['100.64.2.5 w1', '100.64.3.5 w1']);
      kernel.conns('100.64.3.5', 1, 0);
      kernel.applied.length = 0;
      live('silent');
      await until('node-3 drained', () => kernel.reals().includes('100.64.3.5 w0'));
      assert.deepEqual(text(kernel.applied), ['update-real 100.64.3.5 w0 drain']);
      live('alive');
      await until('node-3 back', () => kernel.reals().includes('100.64.3.5 w1'));
      assert.deepEqual(text(kernel.applied.slice(1)), ['update-real 100.64.3.5 w1 undrain']);
    } finally {
      await pdp.stop();
    }
  });
});
