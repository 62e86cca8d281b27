// One real-node lab for the real-node suite (test/e2e/real): the first file
// that needs it starts it, later files reuse it, and the root hook stops it.
// Its prefix is the shared lab's with an "r" appended, so both can be up in
// one test run without one clearing the other.
import { Lab } from '../../lab/index.ts';

let shared: Promise<Lab> | undefined;

export function realLabPrefix(): string {
  return `${process.env.PORTICO_LAB_PREFIX ?? 'ptest'}r`;
}

export function realLab(): Promise<Lab> {
  shared ??= Lab.start({
    prefix: realLabPrefix(),
    nodes: 3,
    clients: ['client'],
    realNodes: true,
    log: process.env.PORTICO_LAB_VERBOSE ? (m) => console.log(`    [real lab] ${m}`) : undefined,
  });
  return shared;
}

export async function stopRealLab(): Promise<void> {
  if (!shared) return;
  const p = shared;
  shared = undefined;
  const lab = await p.catch(() => undefined);
  await lab?.stop();
}
