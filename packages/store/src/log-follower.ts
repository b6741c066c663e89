import type { Subscription } from "@nats-io/transport-node";
import { liveSubject } from "@unbroken/protocol";
import type { Broker } from "./broker.js";
import { decodeEvent, lastEvent, readStored, type StoredRead, type StoredEvent } from "./log-reader.js";

/** How long a silent live tail goes unchecked against the stored log. */
const IDLE_CHECK_MS = 5_000;

export interface FollowOptions {
  rid: string;
  /** Deliver events with seq > after. */
  after: number;
  /**
   * Called once per seq, in order, with no gap. `replayed`: the event was read from the
   * stored log (catching up) rather than received on the live tail.
   */
  onEvent(e: StoredEvent, replayed: boolean): void;
  /** Called when catching up failed and will be retried (the broker is unreachable). */
  onRetry?(err: unknown): void;
  /**
   * The response's record says it has ended. Its `end` was written before that, so an
   * empty log then means every event has expired.
   */
  ended?: boolean;
  /**
   * Called, once, when the events this follower needs next have expired (past RETENTION):
   * they can never come, so it stops instead of waiting. Without it the follower just stops.
   */
  onGone?(): void;
  /** Paces the catch-up from the stored log (see ReadOptions.pace): a slow reader is waited for there. */
  pace?(): Promise<void> | undefined;
}

/**
 * Replays rid's log from `after`, then follows it live: the stream's RePublish subject is
 * subscribed first and buffered, the stored events are read, and the buffer is handed
 * over by seq. A gap in the live tail (messages lost while the connection was down) or a
 * reconnect sends it back to the stored log, so each seq is delivered exactly once.
 * Events are removed only from a log's head (past RETENTION): when the next seq it needs
 * is older than the log's first stored event, it reports `onGone` and stops.
 */
export class LogFollower {
  private delivered: number;
  private readonly pending = new Map<number, StoredEvent>();
  private sub: Subscription | undefined;
  private catchingUp = false;
  private again = false;
  private stopped = false;
  private ended = false;
  /** Some event of this log was seen (all were stored first): an empty log later means it expired. */
  private sawStored = false;
  /** The response is known to have ended, so its log holds an `end`. */
  private knownEnded: boolean;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private idleTimer: ReturnType<typeof setInterval> | undefined;
  private lastLive = Date.now();
  private offReconnect: (() => void) | undefined;

  constructor(
    private readonly broker: Broker,
    private readonly opts: FollowOptions,
  ) {
    this.delivered = opts.after;
    this.knownEnded = opts.ended === true;
  }

  /** The record now says the response has ended: read the log again, and an empty one is expired. */
  logEnded(): void {
    if (this.stopped || this.ended) return;
    this.knownEnded = true;
    this.catchUp();
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
    this.idleTimer = setInterval(() => void this.checkTail(), IDLE_CHECK_MS);
    this.idleTimer.unref?.();
    this.catchUp();
  }

  /**
   * The live tail can lose messages without a reconnect on this connection (a stream leader
   * change in a cluster). A gap is noticed at the next live event — but when the lost ones
   * are the last, `end` included, none comes. So a tail silent for a while is checked
   * against the log's last stored event (one direct get), and read again when behind.
   */
  private async checkTail(): Promise<void> {
    if (this.stopped || this.ended || this.catchingUp || Date.now() - this.lastLive < IDLE_CHECK_MS) return;
    try {
      const last = await lastEvent(this.broker.jsm, this.opts.rid);
      if (last && last.frame.seq > this.delivered) this.catchUp();
    } catch {
      // Unreachable now: the reconnect (or the next check) will catch up.
    }
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.idleTimer);
    this.offReconnect?.();
    this.sub?.unsubscribe();
    this.pending.clear();
  }

  private onLive(e: StoredEvent): void {
    this.lastLive = Date.now();
    const seq = e.frame.seq;
    if (seq <= this.delivered) return;
    if (this.catchingUp || seq > this.delivered + 1) {
      this.pending.set(seq, e);
      if (!this.catchingUp) this.catchUp();
      return;
    }
    this.deliver(e, false);
    this.drainPending();
  }

  private deliver(e: StoredEvent, replayed: boolean): void {
    if (this.stopped || e.frame.seq !== this.delivered + 1) return;
    this.delivered = e.frame.seq;
    this.sawStored = true;
    if (e.frame.event.kind === "end") this.ended = true;
    this.opts.onEvent(e, replayed);
    if (this.ended) this.stop();
  }

  private drainPending(): void {
    for (;;) {
      const next = this.pending.get(this.delivered + 1);
      if (!next) break;
      this.pending.delete(next.frame.seq);
      this.deliver(next, false);
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
      let incomplete = false;
      do {
        this.again = false;
        const read = await readStored(
          this.broker.js,
          this.broker.jsm,
          this.opts.rid,
          this.delivered,
          (e) => {
            this.pending.delete(e.frame.seq);
            this.deliver(e, true);
          },
          { pace: this.opts.pace ? () => this.opts.pace?.() : undefined, stopped: () => this.stopped },
        );
        if (this.stopped) return;
        if (await this.expired(read)) return this.gone();
        if (this.stopped) return;
        incomplete = !read.complete;
        this.drainPending();
      } while (this.again && !this.stopped);
      this.catchingUp = false;
      if (this.stopped) return;
      // A fetch came back short (a leader election, a slow server): what it missed may be all
      // there is to read, so read again later rather than wait for a live event.
      if (incomplete && !this.ended) return this.retryLater(attempt);
      if (this.pending.size === 0) return;
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

  /**
   * True when the next seq can never be read: the log's first stored event comes after it, or
   * a log known to have events has none left. An empty read alone proves nothing (a fetch can
   * come back empty while a cluster elects a leader), so that case is checked once more with
   * the stream's leader.
   */
  private async expired(read: StoredRead): Promise<boolean> {
    if (this.ended) return false;
    if (read.firstSeq !== null) {
      this.sawStored = true;
      return read.firstSeq > this.delivered + 1;
    }
    if (!read.complete || !(this.sawStored || this.knownEnded)) return false;
    return (await lastEvent(this.broker.jsm, this.opts.rid)) === null;
  }

  private gone(): void {
    this.catchingUp = false;
    this.stop();
    this.opts.onGone?.();
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
