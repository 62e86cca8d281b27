// The `portico` command (also `kubectl portico`): status of pools, Services and
// peers; import of MetalLB configuration; the lab. Human tables with colour on
// a terminal, JSON with -o json.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { NAMESPACE, parseYAML, stringifyYAML } from '@portico/shared';
import { importMetalLB, type ImportResult } from './import.ts';
import { cliConnection } from './kube.ts';
import { buildStatus, fetchStatus, renderStatus } from './status.ts';
import { painter } from './table.ts';

const USAGE = `portico — Portico's command line (also usable as \`kubectl portico\`)

  portico status [-o table|json] [--kubeconfig PATH] [-n NAMESPACE] [--load-balancer-class CLASS]
      pools (used/total per family), LoadBalancer Services (IPs, pool, who announces them),
      BGP peers, and every problem found (pending Services and why, refused config, peers down)
  portico import [FILE...|-] [-o yaml|json] [-n NAMESPACE]
      MetalLB objects (metallb.io IPAddressPool, L2Advertisement, BGPAdvertisement, BGPPeer,
      Community, BFDProfile) or MetalLB's legacy ConfigMap -> portico.dev/v1beta1 YAML on stdout;
      fields Portico has no counterpart for are reported on stderr
  portico lab [up|down|status]
      the local lab (a real cluster on this machine; needs root and the source checkout)

  --no-color / --color   force colour off or on (default: on when stdout is a terminal, NO_COLOR unset)`;

export interface CliIO {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  stdin: () => string;
  isTTY: boolean;
  env: NodeJS.ProcessEnv;
}

const here = path.dirname(fileURLToPath(import.meta.url));
/** The repository root when running from a checkout (packages/controller/src/cli -> ../../../..). */
const repoRoot = path.resolve(here, '..', '..', '..', '..');

class UsageError extends Error {
  readonly code = 'PORTICO_USAGE';
}

/** Reads YAML or JSON documents from files, or stdin for '-' or no file. */
export function readDocuments(files: readonly string[], stdin: () => string): unknown[] {
  const texts = files.length === 0 || files.includes('-') ? [stdin()] : [];
  for (const f of files) if (f !== '-') texts.push(readFileSync(f, 'utf8'));
  const out: unknown[] = [];
  for (const t of texts) {
    // Documents split on '---' lines (the controller package has only yaml's single-document parse, via shared).
    for (const part of t.split(/^---[ \t]*(?:#.*)?$/m)) {
      try {
        out.push(parseYAML(part) as unknown);
      } catch (err) {
        throw new UsageError(`input is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
      }
    }
  }
  return out;
}

/** The YAML users apply: a header naming what was left out, then one document per object. */
export function renderImport(r: ImportResult): string {
  const head = ['# Converted from MetalLB by `portico import`. Review, then: kubectl apply -f <this file>'];
  if (r.warnings.length > 0) {
    head.push('# Left out or to do by hand:');
    for (const w of r.warnings) head.push(`#   ${w.source}${w.field ? ` ${w.field}` : ''}: ${w.message}`);
  }
  return `${head.join('\n')}\n${r.objects.map((o) => `---\n${stringifyYAML(o)}`).join('')}`;
}

export async function runCli(argv: readonly string[], io: CliIO): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === 'help' || cmd === '--help' || cmd === '-h') { io.stdout(`${USAGE}\n`); return cmd ? 0 : 2; }
  if (cmd === 'lab') {
    const cli = path.join(repoRoot, 'test', 'lab', 'cli.ts');
    if (!existsSync(cli)) throw new UsageError('portico lab runs from a source checkout (test/lab/cli.ts is not here)');
    const r = spawnSync(process.execPath, [cli, ...rest], { stdio: 'inherit', env: io.env });
    return r.status ?? 1;
  }
  const { values, positionals } = parseArgs({
    args: [...rest], allowPositionals: true,
    options: {
      output: { type: 'string', short: 'o' }, kubeconfig: { type: 'string' }, namespace: { type: 'string', short: 'n' },
      'load-balancer-class': { type: 'string' }, color: { type: 'boolean' }, 'no-color': { type: 'boolean' },
    },
  });
  const colour = values['no-color'] ? false : values.color ? true : io.isTTY && io.env.NO_COLOR === undefined;
  const paint = painter(colour);
  switch (cmd) {
    case 'status': {
      const output = values.output ?? 'table';
      if (output !== 'table' && output !== 'json') throw new UsageError('-o must be table or json');
      const conn = await cliConnection({ kubeconfig: values.kubeconfig, env: io.env, requestTimeoutMs: 20_000 });
      let input;
      try {
        input = await fetchStatus(conn, values.namespace ?? NAMESPACE);
      } finally {
        conn.close();
      }
      const model = buildStatus(input, { loadBalancerClass: values['load-balancer-class'] });
      io.stdout(output === 'json' ? `${JSON.stringify(model, null, 2)}\n` : renderStatus(model, paint));
      return model.problems.length === 0 ? 0 : 1;
    }
    case 'import': {
      const output = values.output ?? 'yaml';
      if (output !== 'yaml' && output !== 'json') throw new UsageError('-o must be yaml or json');
      const r = importMetalLB(readDocuments(positionals, io.stdin), { namespace: values.namespace ?? NAMESPACE });
      if (output === 'json') io.stdout(`${JSON.stringify(r, null, 2)}\n`);
      else io.stdout(renderImport(r));
      for (const w of r.warnings) io.stderr(`${paint('yellow', 'warning')}: ${w.source}${w.field ? ` ${w.field}` : ''}: ${w.message}\n`);
      if (r.objects.length === 0) { io.stderr('no MetalLB object found in the input\n'); return 1; }
      return 0;
    }
    default:
      throw new UsageError(`unknown command ${cmd}\n\n${USAGE}`);
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const io: CliIO = {
    stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s),
    stdin: () => readFileSync(0, 'utf8'), isTTY: process.stdout.isTTY === true, env: process.env,
  };
  // Exit explicitly once output is flushed, not when the last idle socket or timer goes.
  const exit = (code: number): void => { process.stdout.write('', () => process.exit(code)); };
  runCli(process.argv.slice(2), io).then(exit, (err: unknown) => {
    process.stderr.write(`portico: ${err instanceof Error ? err.message : String(err)}\n`);
    exit(err instanceof UsageError ? 2 : 1);
  });
}
