import { strict as assert } from 'node:assert';
import { runCli, type CliIO } from './portico.ts';

function io(stdin = '', isTTY = false): CliIO & { out: string; err: string } {
  const x = {
    out: '', err: '', isTTY, env: { ...process.env, NO_COLOR: undefined } as NodeJS.ProcessEnv,
    stdout: (s: string) => { x.out += s; }, stderr: (s: string) => { x.err += s; }, stdin: () => stdin,
  };
  return x;
}

describe('portico (command line)', function () {
  it('help prints the commands; no command is a usage error', async function () {
    const a = io();
    assert.equal(await runCli(['help'], a), 0);
    for (const cmd of ['portico status', 'portico import', 'portico lab']) assert.ok(a.out.includes(cmd), cmd);
    assert.equal(await runCli([], io()), 2);
  });

  it('an unknown command or flag is refused', async function () {
    await assert.rejects(runCli(['frobnicate'], io()), /unknown command frobnicate/);
    await assert.rejects(runCli(['import', '--bogus'], io()), /Unknown option '--bogus'/);
    await assert.rejects(runCli(['status', '-o', 'xml'], io()), /-o must be table or json/);
  });

  it('import reads stdin, -o json gives objects and warnings, warnings go to stderr', async function () {
    const a = io('apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p, namespace: metallb-system}\nspec: {addresses: [203.0.113.0/30], extra: 1}\n');
    assert.equal(await runCli(['import', '-o', 'json'], a), 0);
    const r = JSON.parse(a.out) as { objects: { kind: string; metadata: { namespace: string } }[]; warnings: { field: string }[] };
    assert.deepEqual(r.objects.map((o) => `${o.kind} ${o.metadata.namespace}`), ['IPAddressPool portico-system']);
    assert.deepEqual(r.warnings.map((w) => w.field), ['spec.extra']);
    assert.match(a.err, /^warning: IPAddressPool metallb-system\/p spec\.extra: Portico has no field extra; left out$/m);
  });

  it('import: colour only on a terminal (or --color), never with NO_COLOR or --no-color', async function () {
    const text = 'apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\nspec: {addresses: [203.0.113.0/30], extra: 1}\n';
    const tty = io(text, true);
    await runCli(['import'], tty);
    assert.ok(tty.err.includes('\u001b[33mwarning\u001b[0m'));
    const off = io(text, true);
    await runCli(['import', '--no-color'], off);
    assert.ok(!off.err.includes('\u001b['));
    const pipe = io(text, false);
    await runCli(['import'], pipe);
    assert.ok(!pipe.err.includes('\u001b['));
    const forced = io(text, false);
    await runCli(['import', '--color'], forced);
    assert.ok(forced.err.includes('\u001b[33m'));
  });

  it('import of input with no MetalLB object exits 1', async function () {
    const a = io('apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n');
    assert.equal(await runCli(['import'], a), 1);
    assert.match(a.err, /no MetalLB object found/);
  });
});
