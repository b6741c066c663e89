import { AckPolicy, type Consumer, type ConsumerInfo, type JsMsg } from "@nats-io/jetstream";
import { REQUESTS_STREAM, REQUEST_SUBJECTS, WORKERS_CONSUMER, workRequestSchema, type WorkRequest } from "@unbroken/protocol";
import type { Broker } from "@unbroken/store";
import type { Logger } from "pino";

const NS = 1_000_000;
/** How long one pull for requests waits on the server. */
const FETCH_EXPIRES_MS = 1_000;
/** How long past its expiry a pull may go on before the worker ends it and pulls again. */
const FETCH_MARGIN_MS = 2_000;
/** How long pulls may fail in a row before the worker looks at the consumer itself. */
const REPAIR_AFTER_MS = 5_000;

export interface IntakeOptions {
  concurrency: number;
  /** The consumer's ack wait: how long a silent worker keeps a request. */
  workerTimeoutMs: number;
  /** Pulls failing in a row for this long make the worker repair the consumer (default 5 s). */
  repairAfterMs?: number;
}

function consumerConfig(opts: IntakeOptions) {
  return {
    durable_name: WORKERS_CONSUMER,
    ack_policy: AckPolicy.Explicit,
    ack_wait: opts.workerTimeoutMs * NS,
    filter_subject: REQUEST_SUBJECTS,
    max_ack_pending: -1,
  };
}

const NOT_FOUND = /consumer not found/i;

/** The workers consumer's info, or undefined when the server did not know it and it was created. */
async function infoOrCreate(broker: Broker, opts: IntakeOptions): Promise<ConsumerInfo | undefined> {
  try {
    return await broker.jsm.consumers.info(REQUESTS_STREAM, WORKERS_CONSUMER);
  } catch (err) {
    if (!NOT_FOUND.test(String((err as Error).message))) throw err;
    await broker.jsm.consumers.add(REQUESTS_STREAM, consumerConfig(opts));
    return undefined;
  }
}

/** The durable consumer all workers share; created or brought to the configured ack wait. */
export async function workersConsumer(broker: Broker, opts: IntakeOptions, log: Logger): Promise<Consumer> {
  const info = await infoOrCreate(broker, opts);
  const ackWait = opts.workerTimeoutMs * NS;
  if (info && info.config.ack_wait !== ackWait) {
    await broker.jsm.consumers.update(REQUESTS_STREAM, WORKERS_CONSUMER, { ack_wait: ackWait });
    log.info({ ack_wait_ms: opts.workerTimeoutMs }, "updated workers consumer");
  }
  return broker.js.consumers.get(REQUESTS_STREAM, WORKERS_CONSUMER);
}

/**
 * What a worker does when its pulls keep failing. On nats-server 2.9 a cluster that lost and
 * regained nodes can be left with the work-queue consumer missing from some nodes, or led by a
 * node that answers pulls with nothing: requests then wait until QUEUE_TIMEOUT although every
 * node is back (seen in the cluster test, for minutes). A consumer the server does not know is
 * created again (the work-queue stream still holds every request not acked); one that has a
 * leader is asked to elect another. Both are harmless when the pulls failed for another
 * reason (NATS unreachable: the calls fail and are logged).
 */
export async function repairWorkersConsumer(broker: Broker, opts: IntakeOptions): Promise<string> {
  const info = await infoOrCreate(broker, opts);
  if (!info) return "created again";
  const leader = info.cluster?.leader;
  if (!leader) return "no leader to step down";
  const subject = `$JS.API.CONSUMER.LEADER.STEPDOWN.${REQUESTS_STREAM}.${WORKERS_CONSUMER}`;
  const reply = (await broker.nc.request(subject, "", { timeout: 5_000 })).json<{ success?: boolean; error?: { description?: string } }>();
  if (reply.success) return `leader ${leader} stepped down`;
  // Seen on 2.9.10: one node still reports the consumer while its leader no longer knows it.
  if (!NOT_FOUND.test(reply.error?.description ?? "")) return `step down refused: ${reply.error?.description}`;
  await broker.jsm.consumers.add(REQUESTS_STREAM, consumerConfig(opts));
  return "created again (its leader did not know it)";
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
    private readonly consumer: Consumer,
    private readonly opts: IntakeOptions,
    private readonly active: () => number,
    private readonly dispatch: (request: WorkRequest, msg: JsMsg) => void,
    private readonly log: Logger,
    /** Run when pulls keep failing (repairWorkersConsumer); says what it did. */
    private readonly repair: () => Promise<string>,
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
        this.failingSince = 0;
      } catch (err) {
        if (this.stopping) break;
        this.log.warn({ err: String(err) }, "fetching requests failed; retrying");
        await this.maybeRepair();
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  private async maybeRepair(): Promise<void> {
    const now = Date.now();
    this.failingSince ||= now;
    const after = this.opts.repairAfterMs ?? REPAIR_AFTER_MS;
    if (now - this.failingSince < after || now - this.lastRepair < after) return;
    this.lastRepair = now;
    try {
      const done = await this.repair();
      this.log.warn({ failing_ms: now - this.failingSince, done }, "pulls kept failing; repaired the workers consumer");
    } catch (err) {
      this.log.warn({ failing_ms: now - this.failingSince, err: String(err) }, "pulls kept failing; could not repair the workers consumer");
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
