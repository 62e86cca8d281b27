// The speaker's dataplane factory on this machine's kernel, which has no ip_vs:
// asked for IPVS, it says why it cannot, counts it, and runs nftables instead.
import { strict as assert } from 'node:assert';
import { existsSync } from 'node:fs';
import { createRegistry, type LogFields } from '@portico/shared';
import type { SpeakerContext } from '../context.ts';
import { nativeAvailable } from '../native/index.ts';
import { createDataplane } from './index.ts';
import { quietLogger } from './log.ts';

describe('dataplane factory (a kernel without ip_vs)', function () {
  before(function () {
    const why = process.platform !== 'linux' ? 'needs Linux' : existsSync('/proc/net/ip_vs') ? 'this kernel has ip_vs (the VM test covers IPVS)' : !nativeAvailable() ? 'the native addon is not built' : null;
    if (why) {
      console.log(`    skipped: ${why}`);
      this.skip();
    }
  });

  it('--dataplane=ipvs without ip_vs: a clear log line, the missing-module problem, and the nftables dataplane', async () => {
    const lines: Array<{ msg: string; fields: LogFields }> = [];
    const log = { ...quietLogger, info: (msg: string, fields: LogFields = {}) => lines.push({ msg, fields }), error: (msg: string, fields: LogFields = {}) => lines.push({ msg, fields }) };
    const registry = createRegistry();
    const ctx = { self: 'node-1', log, registry, writer: { event: () => true }, dataplane: 'ipvs' } as unknown as SpeakerContext;
    const dp = await createDataplane(ctx);
    assert.equal(dp?.name, 'dataplane-nftables');
    const failed = lines.find((l) => l.msg === 'cannot open IPVS; using the nftables dataplane instead');
    assert.ok(failed, JSON.stringify(lines));
    assert.match(String((failed.fields.err as Error).message), /ENOENT/);
    const metrics = await registry.getMetricsAsJSON();
    const problem = metrics.find((m) => m.name === 'portico_dataplane_problem_state')?.values.find((v) => v.labels.problem === 'missing-module');
    assert.equal(problem?.value, 1);
    // none: nothing runs, and a table an earlier speaker left is removed (through a recording nft: not the host's).
    const scripts: string[] = [];
    assert.equal(await createDataplane({ ...ctx, registry: createRegistry(), dataplane: 'none' }, { nft: async (s) => { scripts.push(s); } }), undefined);
    assert.deepEqual(scripts, ['table inet portico\ndelete table inet portico\n']);
  });
});
