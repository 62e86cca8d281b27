// Small statistics shared by the benchmarks: percentiles over repeated runs.
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))]!;
}

export function summary(values: readonly number[]): { p50: number; p99: number; min: number; max: number } {
  return { p50: percentile(values, 50), p99: percentile(values, 99), min: Math.min(...values), max: Math.max(...values) };
}

/** Prints one result line in the benchmarks' JSON format. */
export function report(bench: string, figures: Record<string, number | string>): void {
  process.stdout.write(`${JSON.stringify({ bench, ...figures })}\n`);
}
