import { strict as assert } from 'node:assert';
import { desiredState, type VirtualService } from './desired.ts';
import { applyOps, diff, type KernelService, type Op } from './diff.ts';
import { endpoint, service, world } from './testdata/world.ts';

const OPTS = { drainTimeoutMs: 60_000 };

function desired(endpoints: string[], opts: Parameters<typeof service>[1] = {}): ReadonlyMap<string, VirtualService> {
  return desiredState(world('node-1', [service('web', { endpoints: endpoints.map((ip) => endpoint(ip, 'node-1')), ...opts })])).services;
}

function text(ops: readonly Op[]): string[] {
  return ops.map((o) => {
    switch (o.op) {
      case 'add-service': case 'delete-service': return `${o.op} ${o.service.key}`;
      case 'update-service': return `${o.op} ${o.service.key} ${o.why}`;
      case 'add-real': return `${o.op} ${o.real.address}:${o.real.port} w${o.real.weight}`;
      case 'update-real': return `${o.op} ${o.real.address}:${o.real.port} w${o.real.weight} ${o.why}`;
      case 'delete-real': return `${o.op} ${o.real.address}:${o.real.port} ${o.why}`;
      default: return 'unknown';
    }
  });
}

/** One step of a scenario: what is desired, the connections the kernel then counts per real server (a read of the counts at `at`), and the ops expected. */
interface Step {
  at: number;
  want: string[] | null;
  conns?: Record<string, [active: number, inactive: number]>;
  opts?: Parameters<typeof service>[1];
  ops: string[];
}

function scenario(steps: Step[]): void {
  const kernel = new Map<string, KernelService>();
  let draining = new Map<string, number>();
  for (const [i, s] of steps.entries()) {
    for (const k of kernel.values()) {
      for (const r of k.reals) {
        const c = s.conns?.[r.address];
        if (c) { r.activeConns = c[0]; r.inactiveConns = c[1]; r.countsAt = s.at; }
      }
    }
    const d = s.want === null ? new Map<string, VirtualService>() : desired(s.want, s.opts);
    const r = diff(d, kernel, draining, s.at, OPTS);
    assert.deepEqual(text(r.ops), s.ops, `step ${i} (t=${s.at})`);
    applyOps(kernel, r.ops);
    draining = r.draining;
    // Applying the ops converges: diffing again at the same time finds nothing more to do.
    assert.deepEqual(text(diff(d, kernel, draining, s.at, OPTS).ops), [], `step ${i} converged`);
  }
}

describe('dataplane diff (scenario tables)', () => {
  it('from empty: one service and its real servers; the same state again: nothing', () => scenario([
    { at: 0, want: ['100.64.1.5', '100.64.1.6'], ops: ['add-service tcp/203.0.113.10/80', 'add-real 100.64.1.5:8080 w1', 'add-real 100.64.1.6:8080 w1'] },
    { at: 1, want: ['100.64.1.5', '100.64.1.6'], ops: [] },
  ]));

  it('an endpoint added: one add-real; a scheduler change: one update-service, real servers untouched', () => scenario([
    { at: 0, want: ['100.64.1.5'], ops: ['add-service tcp/203.0.113.10/80', 'add-real 100.64.1.5:8080 w1'] },
    { at: 1, want: ['100.64.1.5', '100.64.1.7'], ops: ['add-real 100.64.1.7:8080 w1'] },
    { at: 2, want: ['100.64.1.5', '100.64.1.7'], opts: { annotations: { 'portico.dev/ipvs-scheduler': 'lc' } }, ops: ['update-service tcp/203.0.113.10/80 scheduler'] },
    { at: 3, want: ['100.64.1.5', '100.64.1.7'], opts: { annotations: { 'portico.dev/ipvs-scheduler': 'lc' }, sessionAffinity: { clientIP: true, timeoutSeconds: 30 } }, ops: ['update-service tcp/203.0.113.10/80 persistence'] },
  ]));

  it('a removed endpoint goes to weight 0 at once and is deleted once counts read after that show no connection', () => scenario([
    { at: 0, want: ['100.64.1.5', '100.64.1.6'], ops: ['add-service tcp/203.0.113.10/80', 'add-real 100.64.1.5:8080 w1', 'add-real 100.64.1.6:8080 w1'] },
    { at: 1, want: ['100.64.1.5'], conns: { '100.64.1.6': [0, 0] }, ops: ['update-real 100.64.1.6:8080 w0 drain'] },
    // No read since the drain began: the counts in hand may miss connections opened before the weight went to 0.
    { at: 2, want: ['100.64.1.5'], ops: [] },
    { at: 3, want: ['100.64.1.5'], conns: { '100.64.1.6': [0, 0] }, ops: ['delete-real 100.64.1.6:8080 drained'] },
  ]));

  it('a removed endpoint with connections drains at weight 0 until they end', () => scenario([
    { at: 0, want: ['100.64.1.5', '100.64.1.6'], ops: ['add-service tcp/203.0.113.10/80', 'add-real 100.64.1.5:8080 w1', 'add-real 100.64.1.6:8080 w1'] },
    { at: 1000, want: ['100.64.1.5'], conns: { '100.64.1.6': [2, 1] }, ops: ['update-real 100.64.1.6:8080 w0 drain'] },
    { at: 2000, want: ['100.64.1.5'], conns: { '100.64.1.6': [1, 1] }, ops: [] },
    { at: 3000, want: ['100.64.1.5'], conns: { '100.64.1.6': [0, 0] }, ops: ['delete-real 100.64.1.6:8080 drained'] },
  ]));

  it('a drain ends at the time bound even with connections left', () => scenario([
    { at: 0, want: ['100.64.1.5', '100.64.1.6'], ops: ['add-service tcp/203.0.113.10/80', 'add-real 100.64.1.5:8080 w1', 'add-real 100.64.1.6:8080 w1'] },
    { at: 1000, want: ['100.64.1.5'], conns: { '100.64.1.6': [5, 0] }, ops: ['update-real 100.64.1.6:8080 w0 drain'] },
    { at: 60_999, want: ['100.64.1.5'], ops: [] },
    { at: 61_000, want: ['100.64.1.5'], ops: ['delete-real 100.64.1.6:8080 drain-timeout'] },
  ]));

  it('inactive connections (a handshake under way, TIME_WAIT, UDP flows) hold a drain for inactiveHoldMs only; active ones up to the bound', () => {
    const kernel = new Map<string, KernelService>([['tcp/203.0.113.10/80', {
      key: 'tcp/203.0.113.10/80', family: 'inet', protocol: 'tcp', address: '203.0.113.10', port: 80, scheduler: 'rr', persistenceSeconds: undefined,
      reals: [{ address: '100.64.1.5', port: 8080, weight: 1, forward: 'masq', activeConns: 0, inactiveConns: 0 }, { address: '100.64.1.6', port: 8080, weight: 1, forward: 'masq', activeConns: 0, inactiveConns: 4 }],
    }]]);
    const hold = { ...OPTS, inactiveHoldMs: 5000 };
    // Just removed, only inactive connections: weight 0 first (a handshake may be under way), not deleted.
    const r = diff(desired(['100.64.1.5']), kernel, new Map(), 1000, hold);
    assert.deepEqual(text(r.ops), ['update-real 100.64.1.6:8080 w0 drain']);
    applyOps(kernel, r.ops);
    kernel.get('tcp/203.0.113.10/80')!.reals[1]!.countsAt = 1500;
    assert.deepEqual(text(diff(desired(['100.64.1.5']), kernel, r.draining, 5999, hold).ops), []);
    assert.deepEqual(text(diff(desired(['100.64.1.5']), kernel, r.draining, 6000, hold).ops), ['delete-real 100.64.1.6:8080 drained']);
    // Without a hold for them, inactive connections never keep a real server; by default they hold it as active ones do.
    assert.deepEqual(text(diff(desired(['100.64.1.5']), kernel, r.draining, 1000, { ...OPTS, inactiveHoldMs: 0 }).ops), ['delete-real 100.64.1.6:8080 drained']);
    assert.deepEqual(text(diff(desired(['100.64.1.5']), kernel, r.draining, 30_000, OPTS).ops), []);
    // The handshake became an established connection: held past inactiveHoldMs.
    kernel.get('tcp/203.0.113.10/80')!.reals[1]!.activeConns = 1;
    assert.deepEqual(text(diff(desired(['100.64.1.5']), kernel, r.draining, 6000, hold).ops), []);
    assert.deepEqual(text(diff(desired(['100.64.1.5']), kernel, r.draining, 61_000, hold).ops), ['delete-real 100.64.1.6:8080 drain-timeout']);
  });

  it('zero counts read before the drain began never delete; those read after it do', () => {
    const kernel = new Map<string, KernelService>();
    let r = diff(desired(['100.64.1.5', '100.64.1.6']), kernel, new Map(), 0, OPTS);
    applyOps(kernel, r.ops);
    const removed = (): NonNullable<ReturnType<typeof kernel.get>>['reals'][number] => kernel.get('tcp/203.0.113.10/80')!.reals[1]!;
    removed().countsAt = 5; // read at 5: no connection then
    r = diff(desired(['100.64.1.5']), kernel, new Map(), 10, OPTS);
    assert.deepEqual(text(r.ops), ['update-real 100.64.1.6:8080 w0 drain']);
    applyOps(kernel, r.ops);
    assert.equal(removed().countsAt, 5, 'a weight change keeps the time of the counts it did not read');
    assert.deepEqual(text(diff(desired(['100.64.1.5']), kernel, r.draining, 20, OPTS).ops), []);
    removed().countsAt = 10; // read in the same millisecond as the drain began: not after it
    assert.deepEqual(text(diff(desired(['100.64.1.5']), kernel, r.draining, 20, OPTS).ops), []);
    removed().countsAt = 11;
    assert.deepEqual(text(diff(desired(['100.64.1.5']), kernel, r.draining, 20, OPTS).ops), ['delete-real 100.64.1.6:8080 drained']);
    // An added real server has no counts yet.
    r = diff(desired(['100.64.1.5', '100.64.1.7']), kernel, r.draining, 30, OPTS);
    applyOps(kernel, r.ops);
    assert.equal(kernel.get('tcp/203.0.113.10/80')!.reals.find((x) => x.address === '100.64.1.7')!.countsAt, undefined);
  });

  it('an endpoint that comes back while draining gets its weight back', () => scenario([
    { at: 0, want: ['100.64.1.5', '100.64.1.6'], ops: ['add-service tcp/203.0.113.10/80', 'add-real 100.64.1.5:8080 w1', 'add-real 100.64.1.6:8080 w1'] },
    { at: 1, want: ['100.64.1.5'], conns: { '100.64.1.6': [1, 0] }, ops: ['update-real 100.64.1.6:8080 w0 drain'] },
    { at: 2, want: ['100.64.1.5', '100.64.1.6'], ops: ['update-real 100.64.1.6:8080 w1 undrain'] },
    { at: 3, want: ['100.64.1.5'], conns: { '100.64.1.6': [1, 0] }, ops: ['update-real 100.64.1.6:8080 w0 drain'] },
  ]));

  it('the Service gone: the virtual service is deleted whole (its VIP goes too), drains forgotten', () => scenario([
    { at: 0, want: ['100.64.1.5', '100.64.1.6'], ops: ['add-service tcp/203.0.113.10/80', 'add-real 100.64.1.5:8080 w1', 'add-real 100.64.1.6:8080 w1'] },
    { at: 1, want: ['100.64.1.5'], conns: { '100.64.1.6': [1, 0] }, ops: ['update-real 100.64.1.6:8080 w0 drain'] },
    { at: 2, want: null, ops: ['delete-service tcp/203.0.113.10/80'] },
  ]));

  it('forwarding changed from masq to tunnel: the real server moves to the VIP port, so it is replaced', () => scenario([
    { at: 0, want: ['100.64.1.5'], opts: { ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 80, nodePort: undefined }] }, ops: ['add-service tcp/203.0.113.10/80', 'add-real 100.64.1.5:8080 w1'] },
    { at: 1, want: ['100.64.1.5'], opts: { annotations: { 'portico.dev/ipvs-forward': 'tunnel' } }, ops: ['add-real 100.64.1.5:80 w1', 'update-real 100.64.1.5:8080 w0 drain'] },
  ]));

  it('a restart finds a weight-0 real server it no longer wants: it drains from now', () => {
    const kernel = new Map<string, KernelService>([['tcp/203.0.113.10/80', {
      key: 'tcp/203.0.113.10/80', family: 'inet', protocol: 'tcp', address: '203.0.113.10', port: 80, scheduler: 'rr', persistenceSeconds: undefined,
      reals: [{ address: '100.64.1.6', port: 8080, weight: 0, forward: 'masq', activeConns: 3, inactiveConns: 0 }],
    }]]);
    const r = diff(desired(['100.64.1.5']), kernel, new Map(), 5000, OPTS);
    assert.deepEqual(text(r.ops), ['add-real 100.64.1.5:8080 w1']);
    assert.deepEqual([...r.draining], [['tcp/203.0.113.10/80>100.64.1.6/8080', 5000]]);
    assert.equal(r.nextDrainCheck, 65_000);
  });

  it('keys limits the diff to the services named (incremental sync)', () => {
    const d = desiredState(world('node-1', [service('a', { endpoints: [endpoint('100.64.1.5', 'node-1')] }), service('b', { ips: ['203.0.113.11'], endpoints: [endpoint('100.64.1.6', 'node-1')] })])).services;
    assert.deepEqual(text(diff(d, new Map(), new Map(), 0, OPTS, ['tcp/203.0.113.11/80']).ops), ['add-service tcp/203.0.113.11/80', 'add-real 100.64.1.6:8080 w1']);
  });
});
