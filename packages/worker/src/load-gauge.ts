import { performance, type EventLoopUtilization } from "node:perf_hooks";

/** How busy the worker is: what the token coalescing adapts to. */
export type Load = "idle" | "busy" | "saturated";

/** Past this share of its time working, a worker's own loop makes tokens late. */
const SATURATED = 0.85;

/**
 * How busy this worker is: the share of the last interval its event loop spent working.
 * It turns busy above `high` and idle again only below half of it, and saturated above
 * 85% (busy again below 60%), so the coalescing it switches (which lowers the load) does
 * not flip back and forth.
 */
export class LoadGauge {
  private last: EventLoopUtilization = performance.eventLoopUtilization();
  private state: Load = "idle";
  private readonly timer: ReturnType<typeof setInterval>;

  constructor(
    private readonly high: number,
    intervalMs = 100,
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
    const s = this.state;
    if (u > SATURATED && s !== "saturated") this.state = "saturated";
    else if (s === "saturated" && u < 0.6) this.state = u > this.high / 2 ? "busy" : "idle";
    else if (s === "idle" && u > this.high) this.state = "busy";
    else if (s === "busy" && u < this.high / 2) this.state = "idle";
  }
}
