import { AckPolicy, type Consumer, type JsMsg } from "@nats-io/jetstream";
import { REQUESTS_STREAM, REQUEST_SUBJECTS, WORKERS_CONSUMER, workRequestSchema, type WorkRequest } from "@unbroken/protocol";
import type { Broker } from "@unbroken/store";
import type { Logger } from "pino";

const NS = 1_000_000;
/** How long one pull for requests waits on the server. */
const FETCH_EXPIRES_MS = 1_000;
/** How long past its expiry a pull may go on before the worker ends it and pulls again. */
const FETCH_MARGIN_MS = 2_000;

export interface IntakeOptions {
  concurrency: number;
  /** The consumer's ack wait: how long a silent worker keeps a request. */
  workerTimeoutMs: number;
}

/** The durable consumer all workers share; created or brought to the configured ack wait. */
export async function workersConsumer(broker: Broker, opts: IntakeOptions, log: Logger): Promise<Consumer> {
  const config = {
    durable_name: WORKERS_CONSUMER,
    ack_policy: AckPolicy.Explicit,
    ack_wait: opts.workerTimeoutMs * NS,
    filter_subject: REQUEST_SUBJECTS,
    max_ack_pending: -1,
  };
  try {
    const info = await broker.jsm.consumers.info(REQUESTS_STREAM, WORKERS_CONSUMER);
    if (info.config.ack_wait !== config.ack_wait) {
      await broker.jsm.consumers.update(REQUESTS_STREAM, WORKERS_CONSUMER, { ack_wait: config.ack_wait });
      log.info({ ack_wait_ms: opts.workerTimeoutMs }, "updated workers consumer");
    }
  } catch (err) {
    if (!/consumer not found/i.test(String((err as Error).message))) throw err;
    await broker.jsm.consumers.add(REQUESTS_STREAM, config);
  }
  return broker.js.consumers.get(REQUESTS_STREAM, WORKERS_CONSUMER);
}

/**
 * Pulls requests while this worker has free slots, and never more: a request stays in
 * the queue, visible to other workers, until some worker can run it.
 */
export class Intake {
  private stopping = false;
  private wake: (() => void) | undefined;
  private loopDone: Promise<void> = Promise.resolve();

  constructor(
    private readonly consumer: Consumer,
    private readonly opts: IntakeOptions,
    private readonly active: () => number,
    private readonly dispatch: (request: WorkRequest, msg: JsMsg) => void,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.loopDone = this.loop();
  }

  /** A slot was freed: fetch again without waiting for the current pull to expire. */
  slotFreed(): void {
    this.wake?.();
  }

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
        const batch = await this.consumer.fetch({ max_messages: free, expires: FETCH_EXPIRES_MS });
        // A pull can outlive a reconnect without ever ending (the server that held it is gone;
        // a cluster test saw one hang for a minute until a "leadership change" status came), and
        // requests would wait behind it. Past its expiry and a margin, it is ended here.
        const guard = setTimeout(() => batch.stop(), FETCH_EXPIRES_MS + FETCH_MARGIN_MS);
        try {
          for await (const m of batch) this.take(m);
        } finally {
          clearTimeout(guard);
        }
      } catch (err) {
        if (this.stopping) break;
        this.log.warn({ err: String(err) }, "fetching requests failed; retrying");
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  private take(m: JsMsg): void {
    let request: WorkRequest;
    try {
      request = workRequestSchema.parse(m.json());
    } catch {
      this.log.warn({ subject: m.subject }, "malformed work request dropped");
      m.term();
      return;
    }
    this.dispatch(request, m);
  }
}
