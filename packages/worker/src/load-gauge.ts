import { performance, type EventLoopUtilization } from "node:perf_hooks";

/** How busy the worker is: what the token coalescing adapts to. */
export type Load = "idle" | "busy" | "saturated";

/** Past this share of its time working, sustained, a worker's own loop makes tokens late. */
const SATURATED = 0.85;
/** A saturated worker is busy (or idle) again once its sustained share falls below this. */
const UNSATURATED = 0.6;

/**
 * How busy this worker is, from the share of time its event loop spends working. Busy and idle
 * follow the last interval: busy above `high`, idle again only below half of it. Saturated
 * follows that share averaged over about the last `sustainMs` (exponentially weighted): above
 * 85 %, until it falls below 60 %. The coalescing each state switches lowers the load, so the
 * gaps keep it from flipping back and forth; and the average keeps one slow interval (a long
 * garbage collection, a burst of acks) from counting as saturation, whose long window would
 * hold every token of every response back for nothing (W1 at 300 streams on a slow VM, four
 * interleaved runs each: a latency p99 of 134–186 ms with a per-interval rule, 69–122 ms with
 * the average; 1000 streams still gather about five tokens per event).
 */
export class LoadGauge {
  private last: EventLoopUtilization = performance.eventLoopUtilization();
  private lastAt = performance.now();
  private sustained = 0;
  private state: Load = "idle";
  private readonly timer: ReturnType<typeof setInterval>;

  constructor(
    private readonly high: number,
    intervalMs = 100,
    private readonly sustainMs = 1000,
  ) {
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref?.();
  }

  get load(): Load {
    return this.state;
  }

  get busy(): boolean {
    return this.state !== "idle";
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private sample(): void {
    const now = performance.eventLoopUtilization();
    const { utilization: u } = performance.eventLoopUtilization(now, this.last);
    this.last = now;
    const at = performance.now();
    // Weighted by the time the sample covers: an overdue one (a long blocking turn) counts for all of it.
    this.sustained += (1 - Math.exp(-(at - this.lastAt) / this.sustainMs)) * (u - this.sustained);
    this.lastAt = at;
    const s = this.state;
    if (this.sustained > SATURATED) this.state = "saturated";
    else if (s === "saturated") {
      if (this.sustained < UNSATURATED) this.state = u > this.high / 2 ? "busy" : "idle";
    } else if (s === "idle" && u > this.high) this.state = "busy";
    else if (s === "busy" && u < this.high / 2) this.state = "idle";
  }
}
