// The addresses of one pool and one family as a dense index space [0, total):
// index i is the i-th usable address in address order. With avoidBuggyIPs the
// .0 and .255 addresses simply have no index, so the free-set never sees them.
import { buggyCount, isBuggyIP, nthNonBuggy, type Family, type IPRange } from '@portico/shared';

interface Segment { start: bigint; end: bigint; base: bigint; count: bigint }

export class FamilySpace {
  readonly family: Family;
  readonly total: bigint;
  private readonly segments: Segment[];
  private readonly avoidBuggy: boolean;

  constructor(family: Family, ranges: readonly IPRange[], avoidBuggy: boolean) {
    this.family = family;
    this.avoidBuggy = avoidBuggy && family === 'IPv4';
    // Merge overlapping or touching ranges so every address has one index.
    const sorted = ranges.filter((r) => r.family === family).map((r) => ({ start: r.start, end: r.end })).sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    const merged: { start: bigint; end: bigint }[] = [];
    for (const r of sorted) {
      const last = merged.at(-1);
      if (last && r.start <= last.end + 1n) { if (r.end > last.end) last.end = r.end; } else merged.push({ ...r });
    }
    this.segments = [];
    let base = 0n;
    for (const r of merged) {
      const count = r.end - r.start + 1n - (this.avoidBuggy ? buggyCount(r.start, r.end) : 0n);
      if (count <= 0n) continue;
      this.segments.push({ start: r.start, end: r.end, base, count });
      base += count;
    }
    this.total = base;
  }

  /** True when the address is inside the pool's ranges (buggy or not). */
  contains(value: bigint): boolean {
    const s = this.segmentByValue(value);
    return s !== undefined;
  }

  /** The index of an address, or undefined when it is outside the pool or unusable. */
  indexOf(value: bigint): bigint | undefined {
    const s = this.segmentByValue(value);
    if (!s) return undefined;
    if (!this.avoidBuggy) return s.base + (value - s.start);
    if (isBuggyIP(this.family, value)) return undefined;
    const before = value === s.start ? 0n : value - s.start - buggyCount(s.start, value - 1n);
    return s.base + before;
  }

  valueAt(index: bigint): bigint {
    let lo = 0;
    let hi = this.segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.segments[mid]!.base <= index) lo = mid; else hi = mid - 1;
    }
    const s = this.segments[lo]!;
    const k = index - s.base;
    return this.avoidBuggy ? nthNonBuggy(s.start, k) : s.start + k;
  }

  private segmentByValue(value: bigint): Segment | undefined {
    let lo = 0;
    let hi = this.segments.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const s = this.segments[mid]!;
      if (value < s.start) hi = mid - 1;
      else if (value > s.end) lo = mid + 1;
      else return s;
    }
    return undefined;
  }
}
