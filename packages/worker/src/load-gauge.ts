import { performance, type EventLoopUtilization } from "node:perf_hooks";

/**
 * Whether this worker is busy: the share of the last interval its event loop spent working.
 * It turns busy above `high` and idle again only below half of it, so the coalescing it
 * switches (which lowers the load) does not flip back and forth.
 */
export class LoadGauge {
  private last: EventLoopUtilization = performance.eventLoopUtilization();
  private isBusy = false;
  private readonly timer: ReturnType<typeof setInterval>;

  constructor(
    private readonly high: number,
    intervalMs = 100,
  ) {
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref?.();
  }

  get busy(): boolean {
    return this.isBusy;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private sample(): void {
    const now = performance.eventLoopUtilization();
    const { utilization } = performance.eventLoopUtilization(now, this.last);
    this.last = now;
    if (this.isBusy ? utilization < this.high / 2 : utilization > this.high) this.isBusy = !this.isBusy;
  }
}
