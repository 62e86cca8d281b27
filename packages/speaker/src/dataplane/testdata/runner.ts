// Runs one Portico dataplane in the current network namespace, fed by a World
// in a JSON file: every time the file changes it is read and handed to the
// dataplane, and a status file says which generation was applied. The VM
// tests start it in the background, rewrite the world and read the kernel.
//   node runner.ts --world=FILE --status=FILE [--mode=ipvs|nftables] [--drain-ms=N] [--resync-ms=N]
import { readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { IpvsDataplane } from '../ipvs.ts';
import { lineLogger } from '../log.ts';
import { NftDataplane } from '../nftables.ts';
import type { ServiceState, World } from '../../world/types.ts';

export interface WorldFile {
  generation: number;
  self: string;
  services: ServiceState[];
}

const args = new Map(process.argv.slice(2).map((a) => { const i = a.indexOf('='); return [a.slice(2, i), a.slice(i + 1)] as const; }));
const worldPath = args.get('world')!;
const statusPath = args.get('status')!;
const mode = args.get('mode') ?? 'ipvs';
// Nothing from @portico/shared at run time (see log.ts): no metrics registry here; the dataplane's stats say what it did.
const log = lineLogger({ app: 'dataplane-runner' });
const events = { event: (_t: unknown, type: string, reason: string, message: string) => log.info('event', { type, reason, message }) };

const dp = mode === 'ipvs'
  ? await IpvsDataplane.open({ log, events, drainTimeoutMs: Number(args.get('drain-ms') ?? 30_000), drainCheckMs: 200, resyncMs: Number(args.get('resync-ms') ?? 60_000) })
  : new NftDataplane({ log, events });

function status(s: Record<string, unknown>): void {
  writeFileSync(`${statusPath}.tmp`, JSON.stringify(s));
  renameSync(`${statusPath}.tmp`, statusPath);
}

let seen = -1;
let busy = false;
async function poll(): Promise<void> {
  if (busy) return;
  busy = true;
  try {
    const m = statSync(worldPath, { throwIfNoEntry: false })?.mtimeMs;
    if (m === undefined || m === seen) return;
    seen = m;
    const w = JSON.parse(readFileSync(worldPath, 'utf8')) as WorldFile;
    const world: World = { self: w.self, config: undefined, services: new Map(w.services.map((s) => [s.key, s])), nodes: new Map() };
    const t0 = performance.now();
    let error: string | null = null;
    try {
      await dp.update(world);
    } catch (err) {
      error = (err as Error).message;
    }
    status({ generation: w.generation, ms: performance.now() - t0, error, stats: dp instanceof IpvsDataplane ? dp.stats : null });
  } finally {
    busy = false;
  }
}

const timer = setInterval(() => { void poll(); }, 50);
process.on('SIGTERM', () => {
  clearInterval(timer);
  void dp.stop().then(() => process.exit(0));
});
log.info('runner started', { mode, pid: process.pid });
