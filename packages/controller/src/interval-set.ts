// A set of disjoint free intervals over [0, size) of BigInt indices, kept in a
// treap keyed by interval start. Taking the lowest free index, taking a given
// index and giving one back are O(log n) in the number of intervals, which is
// at most one more than the number of used indices: nothing is ever enumerated.
import { strict as assert } from 'node:assert';

interface Node {
  start: bigint;
  end: bigint; // inclusive
  pri: number;
  left: Node | undefined;
  right: Node | undefined;
}

export class IntervalSet {
  private root: Node | undefined;
  private seed = 0x2545f491;
  /** Number of free indices. */
  free: bigint;

  constructor(size: bigint) {
    this.free = size > 0n ? size : 0n;
    if (size > 0n) this.insert(0n, size - 1n);
  }

  /** Removes and returns the lowest free index, or undefined when none is left. */
  takeFirst(): bigint | undefined {
    let n = this.root;
    if (!n) return undefined;
    while (n.left) n = n.left;
    const i = n.start;
    this.take(i);
    return i;
  }

  /** Lowest free index, without taking it. */
  first(): bigint | undefined {
    let n = this.root;
    if (!n) return undefined;
    while (n.left) n = n.left;
    return n.start;
  }

  has(i: bigint): boolean {
    const n = this.floor(i);
    return n !== undefined && i <= n.end;
  }

  /** Marks `i` used; false when it was not free. */
  take(i: bigint): boolean {
    const n = this.floor(i);
    if (!n || i > n.end) return false;
    const { start, end } = n;
    this.remove(start);
    if (start < i) this.insert(start, i - 1n);
    if (i < end) this.insert(i + 1n, end);
    this.free -= 1n;
    return true;
  }

  /** Marks `i` free again, merging with its neighbours; false when it was already free. */
  give(i: bigint): boolean {
    const below = this.floor(i);
    if (below && i <= below.end) return false;
    let start = i;
    let end = i;
    if (below && below.end === i - 1n) {
      start = below.start;
      this.remove(below.start);
    }
    const above = this.floor(i + 1n);
    if (above && above.start === i + 1n) {
      end = above.end;
      this.remove(above.start);
    }
    this.insert(start, end);
    this.free += 1n;
    return true;
  }

  /** Free intervals in order (for tests and debugging). */
  intervals(): [bigint, bigint][] {
    const out: [bigint, bigint][] = [];
    const walk = (n: Node | undefined): void => {
      if (!n) return;
      walk(n.left);
      out.push([n.start, n.end]);
      walk(n.right);
    };
    walk(this.root);
    return out;
  }

  private floor(key: bigint): Node | undefined {
    let n = this.root;
    let best: Node | undefined;
    while (n) {
      if (n.start <= key) {
        best = n;
        n = n.right;
      } else {
        n = n.left;
      }
    }
    return best;
  }

  // Deterministic priorities (xorshift) keep runs reproducible.
  private nextPri(): number {
    let x = this.seed;
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    this.seed = x;
    return x;
  }

  /** Inserts an interval; callers keep intervals disjoint and `free` up to date. */
  private insert(start: bigint, end: bigint): void {
    assert.ok(start <= end, 'interval start after end');
    const node: Node = { start, end, pri: this.nextPri(), left: undefined, right: undefined };
    const [l, r] = split(this.root, start);
    this.root = merge(merge(l, node), r);
  }

  private remove(start: bigint): void {
    const [l, r] = split(this.root, start); // l < start <= r
    const [mid, rest] = split(r, start + 1n); // mid holds exactly the node starting at `start`
    assert.ok(mid && !mid.left && !mid.right, 'interval to remove not found');
    this.root = merge(l, rest);
  }
}

/** Splits into (keys < key, keys >= key). */
function split(n: Node | undefined, key: bigint): [Node | undefined, Node | undefined] {
  if (!n) return [undefined, undefined];
  if (n.start < key) {
    const [l, r] = split(n.right, key);
    n.right = l;
    return [n, r];
  }
  const [l, r] = split(n.left, key);
  n.left = r;
  return [l, n];
}

function merge(a: Node | undefined, b: Node | undefined): Node | undefined {
  if (!a) return b;
  if (!b) return a;
  if (a.pri > b.pri) {
    a.right = merge(a.right, b);
    return a;
  }
  b.left = merge(a, b.left);
  return b;
}
