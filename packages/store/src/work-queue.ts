import { JetStreamApiCodes, type Consumer, type JetStreamClient, type JetStreamManager, type JsMsg } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { REQUESTS_STREAM, WORKERS_CONSUMER, requestSubject, workRequestSchema, type WorkRequest } from "@unbroken/protocol";
import type { JsPublisher } from "./js-publisher.js";
import type { Log } from "./log.js";
import { createWorkersConsumer, ensureWorkersConsumer } from "./layout.js";

/**
 * How long past its expiry a pull may go on before it is ended here and the worker pulls again.
 * The server ends a pull at its expiry with a 408 status; nats-server 2.9 sometimes sends none
 * when the pull expires while requests are arriving (seen at the start of a 300-stream bench:
 * the pull went silent at its expiry with 411 requests queued, and nats.js noticed only after
 * two missed idle heartbeats, 1 s later, so every request of the ramp waited 1.1–1.5 s). The
 * margin covers the 408's way back from a remote server; past it the server has let the pull
 * go and nothing more can be delivered to it.
 */
const PULL_MARGIN_MS = 250;

/**
 * One request in a worker's hands: the message stays un-acked (and invisible to other
 * workers) while `working()` keeps extending it; if that stops for the ack wait
 * (TAKEOVER_TIMEOUT), JetStream delivers it again, to any worker.
 */
export interface WorkDelivery {
  readonly request: WorkRequest;
  /** 1 for a first delivery; more means the request was handed on (a silent or draining worker). */
  readonly deliveryCount: number;
  /** Extends the ack wait: this worker still runs it. */
  working(): void;
  /** Done: the response's log is complete (or there was nothing to do). */
  ack(): void;
  /** Give it back, to be delivered again after `delayMs` (at once without it). */
  nak(delayMs?: number): void;
}

class Delivery implements WorkDelivery {
  constructor(
    private readonly msg: JsMsg,
    readonly request: WorkRequest,
  ) {}
  get deliveryCount(): number {
    return this.msg.info.deliveryCount;
  }
  working(): void {
    this.msg.working();
  }
  ack(): void {
    this.msg.ack();
  }
  nak(delayMs?: number): void {
    this.msg.nak(delayMs);
  }
}

/** Puts a request on the work queue; its msg id makes a repeated enqueue of the same rid a no-op. */
export async function enqueue(publisher: JsPublisher, request: WorkRequest): Promise<void> {
  await publisher.publish(requestSubject(request.rid), JSON.stringify(request), { msgId: `req:${request.rid}` });
}

/** How a pull ended: requests handed over, and whether the server never ended it (see `pull`). */
export interface PullResult {
  delivered: number;
  /** Ended here past its expiry and margin: the server sent no 408 (nor anything at the end). */
  silent: boolean;
}

/**
 * The workers' side of the queue: the durable consumer they share, pulled in batches no
 * larger than a worker's free slots, so a request stays visible to other workers until some
 * worker can run it.
 */
export class WorkQueue {
  private consumer: Consumer | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    /** The ack wait (TAKEOVER_TIMEOUT): how long a silent worker keeps a request. */
    private readonly ackWaitMs: number,
    private readonly log: Log,
  ) {}

  /** Creates the consumer, or brings it to this worker's ack wait (layout.ts declares it). */
  async open(): Promise<void> {
    await ensureWorkersConsumer(this.jsm, this.ackWaitMs, this.log);
    // Pulls name the consumer; one created again later (repair) is the same to this handle.
    this.consumer = await this.js.consumers.get(REQUESTS_STREAM, WORKERS_CONSUMER);
  }

  /**
   * One pull of at most `max` requests, waiting up to `expiresMs` on the server; `take` gets each
   * valid request (a malformed one is dropped from the queue and logged). Resolves when the pull
   * is over, saying how; rejects when it failed (NATS unreachable, the consumer gone).
   */
  async pull(max: number, expiresMs: number, take: (d: WorkDelivery) => void): Promise<PullResult> {
    if (!this.consumer) throw new Error("the work queue is not open");
    const batch = await this.consumer.fetch({ max_messages: max, expires: expiresMs });
    // A pull can outlive its expiry without ever ending: the server's 408 did not come (above),
    // or the server that held it is gone (a cluster test saw one hang for a minute until a
    // "leadership change" status came). Requests would wait behind it, so past its expiry and
    // a margin it is ended here. Ended from setImmediate, after the event loop has read what
    // already reached the socket: a late 408, or requests delivered just before it, are taken
    // rather than dropped with the pull (a dropped one would wait out the ack wait).
    let silent = false;
    let delivered = 0;
    const guard = setTimeout(
      () =>
        setImmediate(() => {
          silent = true;
          batch.stop();
        }),
      expiresMs + PULL_MARGIN_MS,
    );
    try {
      for await (const m of batch) {
        const raw = safeJson(m);
        const request = readRequest(raw);
        if (!request) {
          this.log.warn({ subject: m.subject }, "malformed work request dropped");
          m.term();
          continue;
        }
        if (request.record === undefined && (raw as { record?: unknown }).record !== undefined)
          this.log.warn({ rid: request.rid }, "work request with an unreadable record: the worker reads the record itself");
        delivered++;
        take(new Delivery(m, request));
      }
    } finally {
      clearTimeout(guard);
    }
    return { delivered, silent };
  }

  /**
   * What a worker does when its pulls keep failing. On nats-server 2.9 a cluster that lost and
   * regained nodes can be left with the work-queue consumer missing from some nodes, or led by a
   * node that answers pulls with nothing: requests then wait until QUEUE_TIMEOUT although every
   * node is back (seen in the cluster test, for minutes). A consumer the server does not know is
   * created again (the work-queue stream still holds every request not acked); one that has a
   * leader is asked to elect another. Both are harmless when the pulls failed for another
   * reason (NATS unreachable: the calls fail and are logged). Says what it did.
   */
  async repair(): Promise<string> {
    const info = await ensureWorkersConsumer(this.jsm, this.ackWaitMs, this.log);
    if (!info) return "created again";
    const leader = info.cluster?.leader;
    if (!leader) return "no leader to step down";
    const subject = `$JS.API.CONSUMER.LEADER.STEPDOWN.${REQUESTS_STREAM}.${WORKERS_CONSUMER}`;
    const reply = (await this.nc.request(subject, "", { timeout: 5_000 })).json<{
      success?: boolean;
      error?: { code?: number; err_code?: number; description?: string };
    }>();
    if (reply.success) return `leader ${leader} stepped down`;
    // Seen on 2.9.10: one node still reports the consumer while its leader no longer knows it.
    if (reply.error?.err_code !== JetStreamApiCodes.ConsumerNotFound) return `step down refused: ${reply.error?.description}`;
    await createWorkersConsumer(this.jsm, this.ackWaitMs);
    return "created again (its leader did not know it)";
  }
}

/**
 * The request, or only its rid when the record it carries does not parse: the worker then
 * reads the record itself and ends a response whose record cannot be read, so its client is
 * answered. Undefined when not even the rid can be read (nobody to answer).
 */
function readRequest(raw: unknown): WorkRequest | undefined {
  const parsed = workRequestSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const rid = workRequestSchema.safeParse({ rid: (raw as { rid?: unknown } | undefined)?.rid });
  return rid.success ? rid.data : undefined;
}

function safeJson(m: JsMsg): unknown {
  try {
    return m.json();
  } catch {
    return undefined;
  }
}
