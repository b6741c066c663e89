import type { ResponseRecord } from "@unbroken/protocol";
import { LogFollower, type Broker, type StoredEvent } from "@unbroken/store";
import type { Logger } from "pino";
import type { ResponseService } from "./responses.js";

export interface SubscriptionDeps {
  broker: Broker;
  responses: ResponseService;
  queueTimeoutMs: number;
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
        send(e);
        if (e.frame.event.kind === "end") this.finish();
      },
      onRetry: (err) => deps.log.warn({ rid, err: String(err) }, "catching up failed; retrying"),
    });
  }

  start(record: ResponseRecord): void {
    this.follower.start();
    if (record.status === "queued") this.armQueueTimer(record);
  }

  get lastSeq(): number {
    return this.follower.lastDelivered;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.clearQueueTimer();
    this.follower.stop();
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
