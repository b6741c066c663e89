import type { ResponseRecord } from "@unbroken/protocol";
import { LogFollower, type Broker, type StoredEvent } from "@unbroken/store";
import type { Logger } from "pino";
import type { ResponseService } from "./responses.js";

export interface SubscriptionDeps {
  broker: Broker;
  responses: ResponseService;
  queueTimeoutMs: number;
  /** A running response silent this long gets its worker checked on. */
  workerTimeoutMs: number;
  log: Logger;
}

/**
 * One socket's view of one response: the log from `after`, then live, until `end`.
 * While the response is still queued it also keeps the QUEUE_TIMEOUT promise, so a
 * request no worker takes ends even if the edge that accepted it is gone.
 */
export class Subscription {
  private readonly follower: LogFollower;
  private queueTimer: ReturnType<typeof setTimeout> | undefined;
  private watchTimer: ReturnType<typeof setTimeout> | undefined;
  private lastEventAt = Date.now();
  private closed = false;

  constructor(
    private readonly deps: SubscriptionDeps,
    readonly rid: string,
    after: number,
    send: (e: StoredEvent) => void,
    private readonly onEnd: () => void,
  ) {
    this.follower = new LogFollower(deps.broker, {
      rid,
      after,
      onEvent: (e) => {
        this.clearQueueTimer();
        this.lastEventAt = Date.now();
        send(e);
        if (e.frame.event.kind === "end") this.finish();
      },
      onRetry: (err) => deps.log.warn({ rid, err: String(err) }, "catching up failed; retrying"),
    });
  }

  start(record: ResponseRecord): void {
    this.follower.start();
    if (record.status === "queued") this.armQueueTimer(record);
    this.armWatch(this.deps.workerTimeoutMs);
  }

  get lastSeq(): number {
    return this.follower.lastDelivered;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.clearQueueTimer();
    clearTimeout(this.watchTimer);
    this.follower.stop();
  }

  /**
   * Every response ends, also when its worker dies and no other worker takes it over:
   * after WORKER_TIMEOUT without an event, ask whether any worker still runs it, and if
   * none answers, end it. Re-armed from the last event, so a steady stream costs nothing.
   */
  private armWatch(delayMs: number): void {
    this.watchTimer = setTimeout(() => {
      if (this.closed) return;
      const silent = Date.now() - this.lastEventAt;
      if (silent < this.deps.workerTimeoutMs) return this.armWatch(this.deps.workerTimeoutMs - silent);
      this.deps.responses
        .endIfAbandoned(this.rid)
        .catch((err) => this.deps.log.warn({ rid: this.rid, err: String(err) }, "worker check failed"))
        .finally(() => {
          if (!this.closed) this.armWatch(this.deps.workerTimeoutMs);
        });
    }, delayMs);
  }

  private finish(): void {
    this.close();
    this.onEnd();
  }

  private armQueueTimer(record: ResponseRecord): void {
    const due = Date.parse(record.created_at) + this.deps.queueTimeoutMs - Date.now();
    this.queueTimer = setTimeout(() => {
      this.queueTimer = undefined;
      if (this.closed) return;
      this.deps.broker.records
        .get(this.rid)
        .then((s) => (s ? this.deps.responses.expireIfStale(s.record) : false))
        .catch((err) => this.deps.log.warn({ rid: this.rid, err: String(err) }, "queue timeout check failed"));
    }, Math.max(0, due) + 50);
  }

  private clearQueueTimer(): void {
    clearTimeout(this.queueTimer);
    this.queueTimer = undefined;
  }
}
