// One lab for the whole test run: the first end-to-end file that needs it
// starts it, later files reuse it, and the root hook stops it at the end
// (also after failures). Tests that cannot share (they stop the lab, or need
// another prefix) start their own.
import { Lab, isRoot } from '../lab/index.ts';

let shared: Promise<Lab> | undefined;

/** Why end-to-end tests cannot run here, or undefined when they can. */
export function e2eSkipReason(): string | undefined {
  if (process.platform !== 'linux') return 'end-to-end tests need Linux network namespaces';
  if (!isRoot()) return 'end-to-end tests need root (network namespaces); run npm test as root';
  return undefined;
}

/** Skips the calling suite with a reason when end-to-end tests cannot run. */
export function requireE2e(ctx: Mocha.Context): void {
  const reason = e2eSkipReason();
  if (reason) {
    if (ctx.test?.parent) ctx.test.parent.title += ` (skipped: ${reason})`;
    ctx.skip();
  }
}

export function sharedLab(): Promise<Lab> {
  shared ??= Lab.start({
    prefix: process.env.PORTICO_LAB_PREFIX ?? 'ptest',
    nodes: 3,
    clients: ['client'],
    log: process.env.PORTICO_LAB_VERBOSE ? (m) => console.log(`    [lab] ${m}`) : undefined,
  });
  return shared;
}

export async function stopSharedLab(): Promise<void> {
  if (!shared) return;
  const p = shared;
  shared = undefined;
  const lab = await p.catch(() => undefined);
  await lab?.stop();
}
