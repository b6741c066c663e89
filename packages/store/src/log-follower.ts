import type { Subscription } from "@nats-io/transport-node";
import { liveSubject } from "@unbroken/protocol";
import type { Broker } from "./broker.js";
import { decodeEvent, readStored, type StoredEvent } from "./log-reader.js";

export interface FollowOptions {
  rid: string;
  /** Deliver events with seq > after. */
  after: number;
  /** Called once per seq, in order, with no gap. */
  onEvent(e: StoredEvent): void;
  /** Called when catching up failed and will be retried (the broker is unreachable). */
  onRetry?(err: unknown): void;
}

/**
 * Replays rid's log from `after`, then follows it live: the stream's RePublish subject is
 * subscribed first and buffered, the stored events are read, and the buffer is handed
 * over by seq. A gap in the live tail (messages lost while the connection was down) or a
 * reconnect sends it back to the stored log, so each seq is delivered exactly once.
 */
export class LogFollower {
  private delivered: number;
  private readonly pending = new Map<number, StoredEvent>();
  private sub: Subscription | undefined;
  private catchingUp = false;
  private again = false;
  private stopped = false;
  private ended = false;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private offReconnect: (() => void) | undefined;

  constructor(
    private readonly broker: Broker,
    private readonly opts: FollowOptions,
  ) {
    this.delivered = opts.after;
  }

  get lastDelivered(): number {
    return this.delivered;
  }

  start(): void {
    this.sub = this.broker.nc.subscribe(liveSubject(this.opts.rid), {
      callback: (err, msg) => {
        if (err || this.stopped) return;
        const e = decodeEvent(msg.data);
        if (e) this.onLive(e);
      },
    });
    this.offReconnect = this.broker.onReconnect(() => this.catchUp());
    this.catchUp();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.offReconnect?.();
    this.sub?.unsubscribe();
    this.pending.clear();
  }

  private onLive(e: StoredEvent): void {
    const seq = e.frame.seq;
    if (seq <= this.delivered) return;
    if (this.catchingUp || seq > this.delivered + 1) {
      this.pending.set(seq, e);
      if (!this.catchingUp) this.catchUp();
      return;
    }
    this.deliver(e);
    this.drainPending();
  }

  private deliver(e: StoredEvent): void {
    if (this.stopped || e.frame.seq !== this.delivered + 1) return;
    this.delivered = e.frame.seq;
    if (e.frame.event.kind === "end") this.ended = true;
    this.opts.onEvent(e);
    if (this.ended) this.stop();
  }

  private drainPending(): void {
    for (;;) {
      const next = this.pending.get(this.delivered + 1);
      if (!next) break;
      this.pending.delete(next.frame.seq);
      this.deliver(next);
    }
    for (const seq of this.pending.keys()) if (seq <= this.delivered) this.pending.delete(seq);
  }

  private catchUp(): void {
    if (this.stopped) return;
    if (this.catchingUp) {
      this.again = true;
      return;
    }
    this.catchingUp = true;
    void this.runCatchUp(0);
  }

  private async runCatchUp(attempt: number): Promise<void> {
    try {
      const before = this.delivered;
      do {
        this.again = false;
        await readStored(this.broker.js, this.broker.jsm, this.opts.rid, this.delivered, (e) => {
          this.pending.delete(e.frame.seq);
          this.deliver(e);
        });
        if (this.stopped) return;
        this.drainPending();
      } while (this.again && !this.stopped);
      this.catchingUp = false;
      if (this.pending.size === 0 || this.stopped) return;
      // Live events wait beyond a hole the stored read did not fill: read again, at once
      // while that makes progress, then backing off.
      if (this.delivered > before) this.catchUp();
      else this.retryLater(attempt);
    } catch (err) {
      this.catchingUp = false;
      if (this.stopped) return;
      this.opts.onRetry?.(err);
      this.retryLater(attempt);
    }
  }

  private retryLater(attempt: number): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (this.stopped || this.catchingUp) return;
      this.catchingUp = true;
      void this.runCatchUp(attempt + 1);
    }, Math.min(2000, 100 * 2 ** attempt));
  }
}
