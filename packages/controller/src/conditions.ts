// The Valid condition each configuration object should carry, and the memory
// of what was written so that only changes are written again. Pure: the
// controller does the writes.
import type { ConfigProblem } from '@portico/shared';

export interface Condition { readonly type: 'Valid'; readonly status: 'True' | 'False'; readonly reason: string; readonly message: string }

interface ObjLike { readonly metadata?: { readonly name?: string; readonly uid?: string; readonly generation?: number } }

/** One object at one generation: what a written condition is valid for. */
export const objectKey = (kind: string, o: ObjLike): string =>
  `${kind}/${o.metadata?.name ?? ''}/${o.metadata?.uid ?? ''}/${o.metadata?.generation ?? 0}`;

/** The Valid condition of one object given every problem of the configuration. */
export function validCondition(kind: string, name: string, problems: readonly ConfigProblem[]): { condition: Condition; mine: ConfigProblem[] } {
  const mine = problems.filter((p) => p.kind === kind && p.name === name);
  const condition: Condition = mine.length === 0
    ? { type: 'Valid', status: 'True', reason: 'Valid', message: problems.length ? 'this object is valid, but the configuration has problems elsewhere' : 'configuration applied' }
    : { type: 'Valid', status: 'False', reason: mine[0]!.code, message: mine.map((p) => p.message).join('; ').slice(0, 1000) };
  return { condition, mine };
}

/**
 * What was last written, per object key (uid and generation included): an
 * object deleted and created again under its name, or edited, is another key
 * and is written again, although its name and condition are the same.
 */
export class Written {
  private readonly last = new Map<string, string>();

  /** True when `value` must be written for the object; it is then taken as written (call `forget` if the write fails). */
  claim(key: string, value: unknown): boolean {
    const sig = JSON.stringify(value);
    if (this.last.get(key) === sig) return false;
    this.last.set(key, sig);
    return true;
  }

  forget(key: string): void {
    this.last.delete(key);
  }

  /** Drops what is known of objects that are gone. */
  prune(present: ReadonlySet<string>): void {
    for (const k of this.last.keys()) if (!present.has(k)) this.last.delete(k);
  }

  get size(): number {
    return this.last.size;
  }
}
