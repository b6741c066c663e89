/**
 * One clock for every paced session of a generator. A timer per token per response costs
 * more than the token itself at thousands of responses; here one timer waits for the
 * earliest due time, and each time it fires it releases every wait due by then.
 */
export class Pacer {
  /** A binary min-heap on `at` (performance.now() times). */
  private readonly heap: Array<{ at: number; release: () => void }> = [];
  private timer: ReturnType<typeof setTimeout> | undefined;
  private armedFor = Infinity;

  /** Resolves at `at` (or at once, on the next loop turn, when it is past). */
  until(at: number, release: () => void): void {
    this.push({ at, release });
    this.arm();
  }

  /** Stops the clock; what still waits is released at once. */
  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const w of this.heap.splice(0)) w.release();
  }

  private arm(): void {
    const top = this.heap[0];
    if (!top || top.at >= this.armedFor) return;
    clearTimeout(this.timer);
    this.armedFor = top.at;
    this.timer = setTimeout(() => this.fire(), Math.max(0, top.at - performance.now()));
  }

  private fire(): void {
    this.timer = undefined;
    this.armedFor = Infinity;
    // Node timers may fire up to a millisecond early; what is due within it goes now.
    const now = performance.now() + 1;
    while (this.heap.length > 0 && (this.heap[0] as { at: number }).at <= now) this.pop().release();
    this.arm();
  }

  private push(w: { at: number; release: () => void }): void {
    const h = this.heap;
    h.push(w);
    for (let i = h.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if ((h[p] as typeof w).at <= w.at) break;
      h[i] = h[p] as typeof w;
      h[p] = w;
      i = p;
    }
  }

  private pop(): { at: number; release: () => void } {
    const h = this.heap;
    const top = h[0] as (typeof h)[number];
    const last = h.pop() as (typeof h)[number];
    if (h.length > 0) {
      h[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && (h[l] as typeof top).at < (h[m] as typeof top).at) m = l;
        if (r < h.length && (h[r] as typeof top).at < (h[m] as typeof top).at) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m] as typeof top, h[i] as typeof top];
        i = m;
      }
    }
    return top;
  }
}
