// Order statistics, and the median across repeated runs.

export interface Summary {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] as number;
}

/** Summary of the finite values (NaN fields when there are none). */
export function summarize(values: ArrayLike<number>): Summary {
  const finite: number[] = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number;
    if (Number.isFinite(v)) finite.push(v);
  }
  const sorted = Float64Array.from(finite).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    n: sorted.length,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted.length ? (sorted[sorted.length - 1] as number) : Number.NaN,
    mean: sorted.length ? sum / sorted.length : Number.NaN,
  };
}

/** Appends values to a growable list without spreading (arrays of 500k values). */
export class Values {
  private buf = new Float64Array(1024);
  length = 0;
  push(v: number): void {
    if (this.length === this.buf.length) {
      const next = new Float64Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.length++] = v;
  }
  view(): Float64Array {
    return this.buf.subarray(0, this.length);
  }
}

/** Field by field median of same-shaped results (numbers only; other fields from the first). */
export function medianOf<T>(runs: T[]): T {
  const first = runs[0] as T;
  if (runs.length < 2) return first;
  const walk = (items: unknown[]): unknown => {
    const head = items[0];
    if (typeof head === "number") {
      const nums = items.filter((v): v is number => typeof v === "number" && Number.isFinite(v)).sort((a, b) => a - b);
      return nums.length ? nums[Math.floor((nums.length - 1) / 2)] : head;
    }
    if (head && typeof head === "object" && !Array.isArray(head)) {
      const out: Record<string, unknown> = {};
      for (const key of Object.keys(head)) out[key] = walk(items.map((i) => (i as Record<string, unknown> | undefined)?.[key]));
      return out;
    }
    return head;
  };
  return walk(runs as unknown[]) as T;
}
