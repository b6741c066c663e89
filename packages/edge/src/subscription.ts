import { isOutputKind, type ResponseRecord } from "@unbroken/protocol";
import type { Broker, LogFollower, StoredEvent } from "@unbroken/store";
import type { Logger } from "pino";
import type { StreamSlot } from "./budgets.js";
import type { EdgeMetrics, Transport } from "./metrics.js";
import type { ResponseService } from "./responses.js";

/**
 * What a subscription's reader says about itself: how it reads (for the metrics), when the
 * response it generated was accepted, what to do when its events expired, how to pace a catch-up.
 */
export interface SubscriptionHooks {
  transport: Transport;
  /** performance.now() when this reader's generate created the response: its first token measures TTFT. */
  acceptedAt?: number;
  /** The events it needs next have expired (default: as at `end`). */
  onGone?(): void;
  /** Called after each replayed event; a promise holds the replay until the reader caught up. */
  pace?(): Promise<void> | undefined;
  /** This stream's place in MAX_STREAMS_PER_OWNER / _PER_ADDRESS: taken over, released at close. */
  slot?: StreamSlot;
}

export interface SubscriptionDeps {
  broker: Broker;
  responses: ResponseService;
  queueTimeoutMs: number;
  /** A running response silent this long gets its worker checked on. */
  orphanTimeoutMs: number;
  metrics: EdgeMetrics;
  log: Logger;
}

/**
 * One socket's view of one response: the log from `after`, then live, until `end`.
 * While the response is still queued it also keeps the QUEUE_TIMEOUT promise, so a
 * request no worker takes ends even if the edge that accepted it is gone. When the events
 * it needs next have expired (past RETENTION) it calls `onGone` instead of waiting forever.
 */
export class Subscription {
  private follower: LogFollower | undefined;
  private queueTimer: ReturnType<typeof setTimeout> | undefined;
  private watchTimer: ReturnType<typeof setTimeout> | undefined;
  private lastEventAt = Date.now();
  private closed = false;
  /** performance.now() at start; undefined until started (a close before start counts nothing). */
  private startedAt: number | undefined;
  private firstToken = true;

  constructor(
    private readonly deps: SubscriptionDeps,
    readonly rid: string,
    private readonly after: number,
    private readonly send: (e: StoredEvent) => void,
    private readonly onEnd: () => void,
    private readonly hooks: SubscriptionHooks,
  ) {
    if (hooks.slot) hooks.slot.adopted = true;
  }

  start(record: ResponseRecord): void {
    if (this.closed) return;
    const { deps, rid } = this;
    const { metrics } = deps;
    this.startedAt = performance.now();
    metrics.streamOpened(rid, this.hooks.transport, this.after);
    this.follower = deps.broker.logs.follow({
      rid,
      after: this.after,
      ended: record.status === "ended",
      onStart: (last) => this.measureSilenceFrom(last),
      onEvent: (e, replayed) => {
        this.clearQueueTimer();
        // Silence is the log's, not this reader's: a replayed event is old news.
        if (!replayed) this.lastEventAt = Date.now();
        this.send(e);
        metrics.eventSent(replayed);
        const kind = e.kind;
        if (this.firstToken && isOutputKind(kind)) {
          this.firstToken = false;
          if (this.hooks.acceptedAt !== undefined) metrics.firstToken(this.hooks.acceptedAt);
        }
        if (kind === "end") {
          metrics.endSent(rid, this.hooks.transport, this.startedAt ?? performance.now());
          deps.responses.generations.remove(rid);
          this.finish();
        }
      },
      onRetry: (err) => deps.log.warn({ rid, err: String(err) }, "catching up failed; retrying"),
      onGone: () => {
        deps.log.info({ rid }, "the events a subscriber needs have expired");
        this.close();
        (this.hooks.onGone ?? this.onEnd)();
      },
      ...(this.hooks.pace ? { pace: this.hooks.pace } : {}),
    });
    // Timers first: the follower may deliver (even `end`) and report its start synchronously,
    // when the edge's own copy of the log answers, and those clear or re-arm them.
    if (record.status === "queued") this.armQueueTimer(record);
    this.armWatch(this.deps.orphanTimeoutMs);
    this.follower.start();
  }

  /**
   * The response has been silent since its last stored event, not since this reader came: a
   * reader that reconnects more often than ORPHAN_TIMEOUT must not keep a dead worker's
   * response waiting for ever. The check is brought forward to that event's time + ORPHAN_TIMEOUT.
   */
  private measureSilenceFrom(last: StoredEvent | null): void {
    if (this.closed || last === null || last.kind === "end" || last.storedAt === undefined) return;
    this.lastEventAt = Math.min(this.lastEventAt, last.storedAt);
    this.armWatch(Math.max(0, this.deps.orphanTimeoutMs - (Date.now() - this.lastEventAt)));
  }

  get lastSeq(): number {
    return this.follower?.lastDelivered ?? this.after;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.hooks.slot?.release();
    if (this.startedAt !== undefined) this.deps.metrics.streamClosed(this.rid, this.hooks.transport);
    this.clearQueueTimer();
    clearTimeout(this.watchTimer);
    this.follower?.stop();
  }

  /**
   * Every response ends, also when its worker dies and no other worker takes it over:
   * after ORPHAN_TIMEOUT without an event, ask whether any worker still runs it, and if
   * none answers, end it. Re-armed from the last event, so a steady stream costs nothing.
   */
  private armWatch(delayMs: number): void {
    // One watch at a time (measureSilenceFrom re-arms it earlier).
    clearTimeout(this.watchTimer);
    this.watchTimer = setTimeout(() => {
      if (this.closed) return;
      const silent = Date.now() - this.lastEventAt;
      if (silent < this.deps.orphanTimeoutMs) return this.armWatch(this.deps.orphanTimeoutMs - silent);
      this.deps.responses
        .endIfAbandoned(this.rid)
        // Ended, yet this reader has not seen the end: read the log again (and if its events
        // have expired meanwhile, say so rather than wait).
        .then((ended) => ended && this.follower?.logEnded())
        .catch((err) => this.deps.log.warn({ rid: this.rid, err: String(err) }, "worker check failed"))
        .finally(() => {
          if (!this.closed) this.armWatch(this.deps.orphanTimeoutMs);
        });
    }, delayMs);
  }

  private finish(): void {
    this.close();
    this.onEnd();
  }

  /**
   * QUEUE_TIMEOUT: when the response is still queued then, this reader ends it `no_worker`. A
   * check that fails (NATS unreachable) is tried again, backing off to 5 s, until it succeeds
   * or an event comes: nobody else may be left to end it.
   */
  private armQueueTimer(record: ResponseRecord, failures = 0): void {
    const due = Date.parse(record.created_at) + this.deps.queueTimeoutMs - Date.now();
    const delay = failures === 0 ? Math.max(0, due) + 50 : Math.min(5_000, 250 * 2 ** failures);
    this.queueTimer = setTimeout(() => {
      this.queueTimer = undefined;
      if (this.closed) return;
      this.deps.broker.records
        .get(this.rid)
        .then((s) => (s ? this.deps.responses.expireIfStale(s.record) : false))
        .catch((err) => {
          this.deps.log.warn({ rid: this.rid, err: String(err) }, "queue timeout check failed; trying again");
          if (!this.closed && this.queueTimer === undefined && this.lastSeq === this.after) this.armQueueTimer(record, failures + 1);
        });
    }, delay);
  }

  private clearQueueTimer(): void {
    clearTimeout(this.queueTimer);
    this.queueTimer = undefined;
  }
}
