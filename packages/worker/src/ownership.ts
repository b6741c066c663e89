import type { Broker, WorkDelivery } from "@unbroken/store";

/**
 * Keeps a response's request message in this worker's hands, and notices when it is not
 * any more. Every tick (TAKEOVER_TIMEOUT / 3) it reads the response record: a higher epoch
 * than the one this worker claimed means another worker took the response over (this one
 * was silent past the ack wait: stopped, stalled, cut off), so `onLost` stops the run
 * before it writes or answers anything more. Otherwise it extends the ack wait.
 *
 * The read is one KV get per running response every few seconds, against tens of log
 * writes per second; the log itself fences every write (expected last subject sequence),
 * this only makes a worker that lost stop generating even when it writes nothing.
 */
export class Ownership {
  private timer: NodeJS.Timeout | undefined;
  private epoch: number | undefined;
  private busy = false;
  private stopped = false;

  constructor(
    private readonly broker: Broker,
    private readonly rid: string,
    private readonly msg: WorkDelivery,
    private readonly intervalMs: number,
    private readonly onLost: (epoch: number) => void,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
  }

  /** From now on, ticks check that the record still has this epoch. */
  hold(epoch: number): void {
    this.epoch = epoch;
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  private async tick(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      if (this.epoch !== undefined) {
        // Unreachable KV: keep the message (the working() below cannot land either).
        const stored = await this.broker.records.get(this.rid).catch(() => undefined);
        if (this.stopped) return;
        if (stored && stored.record.epoch !== this.epoch) {
          this.stop();
          return this.onLost(stored.record.epoch);
        }
      }
      this.msg.working();
    } finally {
      this.busy = false;
    }
  }
}

export const STALLED = Symbol("stalled");

/**
 * Bounds how long a generation may go without producing anything (STALL_TIMEOUT): one
 * timer per run, re-armed from the last output, so a steady stream costs no timer calls.
 * Time spent writing to the log does not count: only waits on the generator do.
 */
export class StallWatch {
  private since = 0;
  private waiting = false;
  private fire: ((v: typeof STALLED) => void) | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly ms: number) {}

  /** The generator's next output, or STALLED when it gives none within STALL_TIMEOUT. */
  next<T>(p: Promise<T>): Promise<T | typeof STALLED> {
    this.since = performance.now();
    this.waiting = true;
    if (this.timer === undefined) this.arm(this.ms);
    return new Promise<T | typeof STALLED>((resolve, reject) => {
      this.fire = resolve;
      p.then(
        (v) => {
          this.settled();
          resolve(v);
        },
        (err: unknown) => {
          this.settled();
          reject(err);
        },
      );
    });
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private settled(): void {
    this.waiting = false;
    this.fire = undefined;
  }

  private arm(delay: number): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const idle = performance.now() - this.since;
      if (!this.waiting) return this.arm(this.ms);
      if (idle < this.ms) return this.arm(this.ms - idle);
      this.fire?.(STALLED);
    }, delay);
  }
}
