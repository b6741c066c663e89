import type { WorkDelivery, WorkQueue } from "@unbroken/store";
import type { Logger } from "pino";

/** How long one pull for requests waits on the server. */
const PULL_EXPIRES_MS = 1_000;
/** How long pulls may fail in a row before the worker looks at the consumer itself. */
const REPAIR_AFTER_MS = 5_000;

export interface IntakeOptions {
  concurrency: number;
  /** Pulls failing in a row for this long make the worker repair the consumer (default 5 s). */
  repairAfterMs?: number;
}

/**
 * Pulls requests while this worker has free slots, and never more: a request stays in
 * the queue, visible to other workers, until some worker can run it.
 */
export class Intake {
  private stopping = false;
  private wake: (() => void) | undefined;
  private loopDone: Promise<void> = Promise.resolve();
  /** When the current run of failed pulls began (0: the last pull worked). */
  private failingSince = 0;
  private lastRepair = 0;

  constructor(
    private readonly queue: WorkQueue,
    private readonly opts: IntakeOptions,
    private readonly active: () => number,
    private readonly dispatch: (delivery: WorkDelivery) => void,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.loopDone = this.loop();
  }

  /** A slot was freed: pull again without waiting for the current pull to expire. */
  slotFreed(): void {
    this.wake?.();
  }

  /**
   * Stops pulling (a draining worker takes nothing new). A request the pull in flight still
   * brings is given back at once, for another worker: the pull is let run to its expiry (1 s)
   * rather than cut, since the server could still deliver to a pull the client dropped, and
   * that request would wait out the ack wait. Resolves once the last pull is over.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.loopDone;
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      const free = this.opts.concurrency - this.active();
      if (free <= 0) {
        await new Promise<void>((r) => (this.wake = r));
        continue;
      }
      try {
        const { delivered, silent } = await this.queue.pull(free, PULL_EXPIRES_MS, (d) => this.take(d));
        // A pull the server never answered, not even with its 408, fails as a refused one does:
        // on a 2.9 cluster that is a workers consumer without a working leader, which only a
        // repair mends. It is pulled again at once, though: a lone dropped 408 costs nothing more.
        if (silent && delivered === 0) await this.maybeRepair();
        else this.failingSince = 0;
      } catch (err) {
        if (this.stopping) break;
        this.log.warn({ err: String(err) }, "fetching requests failed; retrying");
        await this.maybeRepair();
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  private take(d: WorkDelivery): void {
    if (this.stopping) {
      d.nak();
      return;
    }
    this.dispatch(d);
  }

  private async maybeRepair(): Promise<void> {
    const now = Date.now();
    this.failingSince ||= now;
    const after = this.opts.repairAfterMs ?? REPAIR_AFTER_MS;
    if (now - this.failingSince < after || now - this.lastRepair < after) return;
    this.lastRepair = now;
    try {
      const done = await this.queue.repair();
      this.log.warn({ failing_ms: now - this.failingSince, done }, "pulls kept failing; repaired the workers consumer");
    } catch (err) {
      this.log.warn({ failing_ms: now - this.failingSince, err: String(err) }, "pulls kept failing; could not repair the workers consumer");
    }
  }
}
