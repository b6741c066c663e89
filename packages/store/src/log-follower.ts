import type { EventLogHandles } from "./event-log.js";
import { isGone } from "./lifecycle.js";
import { lastEvent, lastEventDirect, readStored, type StoredRead, type StoredEvent } from "./log-reader.js";

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
  /**
   * Follow from the log's end rather than from `after`: what is stored when it starts is
   * skipped, and the first event delivered is the one after max(after, last stored seq).
   */
  fromEnd?: boolean;
  /**
   * Called once, before any event, with the log's last stored event when the follower
   * started (null: none yet). With `fromEnd` the follower goes on from there.
   */
  onStart?(last: StoredEvent | null): void;
}

/**
 * Replays rid's log from `after`, then follows it live: the stream's RePublish subject is
 * subscribed first and buffered, then the log's last stored event is looked up (one direct
 * get). When it is at or before `after` there is nothing stored to read and the buffer is
 * handed over at once; otherwise the stored events are read (a throwaway consumer) and the
 * buffer is handed over by seq. Either way every event stored after the subscription took
 * effect comes live, and every one before it is at or before that last stored event. A gap in the live tail (messages lost while the connection was down) or a
 * reconnect sends it back to the stored log, so each seq is delivered exactly once.
 * Events are removed only from a log's head (past RETENTION): when the next seq it needs
 * is older than the log's first stored event, it reports `onGone` and stops.
 */
export class LogFollower {
  private delivered: number;
  private readonly pending = new Map<number, StoredEvent>();
  private unfollow: (() => void) | undefined;
  private catchingUp = false;
  private again = false;
  /** The log's last stored event was looked up (the first step of every follower). */
  private started = false;
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
    private readonly broker: EventLogHandles,
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
    this.unfollow = this.broker.tails.follow(this.opts.rid, (e) => {
      if (!this.stopped) this.onLive(e);
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
    if (this.stopped || this.ended || this.catchingUp || !this.started || Date.now() - this.lastLive < IDLE_CHECK_MS) return;
    try {
      const last = await lastEventDirect(this.broker.jsm, this.opts.rid);
      if (last && last.seq > this.delivered) this.catchUp();
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
    this.unfollow?.();
    this.pending.clear();
  }

  private onLive(e: StoredEvent): void {
    this.lastLive = Date.now();
    const seq = e.seq;
    if (seq <= this.delivered) return;
    if (this.catchingUp || !this.started || seq > this.delivered + 1) {
      this.pending.set(seq, e);
      if (!this.catchingUp) this.catchUp();
      return;
    }
    this.deliver(e, false);
    this.drainPending();
  }

  private deliver(e: StoredEvent, replayed: boolean): void {
    if (this.stopped || e.seq !== this.delivered + 1) return;
    this.delivered = e.seq;
    this.sawStored = true;
    if (e.kind === "end") this.ended = true;
    this.opts.onEvent(e, replayed);
    if (this.ended) this.stop();
  }

  private drainPending(): void {
    for (;;) {
      const next = this.pending.get(this.delivered + 1);
      if (!next) break;
      this.pending.delete(next.seq);
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
      if (!this.started && (await this.begin())) return;
      if (this.stopped) return;
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
            this.pending.delete(e.seq);
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
   * The first step: the log's last stored event, by one direct get. Returns true when there is
   * nothing stored to read (the live tail carries on alone: no consumer), false when the log
   * must be read. Live events received meanwhile wait in `pending` and are handed over by seq:
   * one stored after the lookup was answered came live (its subscription was in effect by
   * then), so only seqs up to the last stored one can be missing.
   */
  private async begin(): Promise<boolean> {
    this.again = false;
    // A tail opened before the log could hold anything knows its last event already.
    const known = this.broker.tails.known(this.opts.rid);
    const last = known ? known.last : await lastEventDirect(this.broker.jsm, this.opts.rid);
    if (this.stopped) return true;
    this.started = true;
    const lastSeq = last?.seq ?? 0;
    if (last) this.sawStored = true;
    if (this.opts.fromEnd && last && lastSeq > this.delivered) {
      this.delivered = lastSeq;
      if (last.kind === "end") this.ended = true;
    }
    this.opts.onStart?.(last);
    // A reader back from a short drop: what it missed is often still in this process's copy
    // of the live tail, and then no consumer is needed.
    if (!this.ended && !this.again && lastSeq > this.delivered) this.replayRecent(lastSeq);
    if (this.ended || this.stopped) {
      this.catchingUp = false;
      this.stop();
      return true;
    }
    // Stored events to read; or none although the response has ended (expired?); or a
    // reconnect meanwhile (live messages may have been lost): read the log.
    if (lastSeq > this.delivered || (last === null && this.knownEnded) || this.again) return false;
    this.catchingUp = false;
    this.drainPending();
    // A live event beyond a hole (it raced the lookup): read the log after all.
    if (this.pending.size > 0 && !this.stopped) this.catchUp();
    return true;
  }

  private replayRecent(upTo: number): void {
    const held = this.broker.tails.recent(this.opts.rid, this.delivered, upTo);
    if (!held) return;
    for (const e of held) {
      this.pending.delete(e.seq);
      this.deliver(e, true);
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
    const next = this.delivered + 1;
    if (read.firstSeq !== null) {
      this.sawStored = true;
      return isGone(read.firstSeq, next, true);
    }
    const hadEvents = this.sawStored || this.knownEnded;
    if (!read.complete || !isGone(null, next, hadEvents)) return false;
    return (await lastEvent(this.broker.jsm, this.opts.rid)) === null;
  }

  private gone(): void {
    this.catchingUp = false;
    this.stop();
    this.opts.onGone?.();
  }

  private retryLater(attempt: number): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(
      () => {
        if (this.stopped || this.catchingUp) return;
        this.catchingUp = true;
        void this.runCatchUp(attempt + 1);
      },
      Math.min(2000, 100 * 2 ** attempt),
    );
  }
}
