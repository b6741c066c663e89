import { createInbox, headers, type Msg, type NatsConnection, type Subscription } from "@nats-io/transport-node";

/** What JetStream answered to one publish. */
export interface PublishAck {
  /** The stream sequence the message was stored at (the earlier one for a duplicate). */
  seq: number;
  duplicate: boolean;
}

/** How long a JetStream write waits for its ack unless told otherwise: the JetStream client's own timeout too. */
export const ACK_TIMEOUT_MS = 5_000;

export interface PublishOptions {
  /** JetStream drops a second message with this id within the stream's duplicate window. */
  msgId?: string;
  /** Refuse the write unless the subject's last stored message is at this stream sequence (0: none). */
  expectLastSubjectSeq?: number;
  /** ACK_TIMEOUT_MS when not given. */
  timeoutMs?: number;
}

/**
 * A publish JetStream refused (`api`, with its `errCode`), or one that got no answer
 * (`timeout`, `no_responders`: nobody is listening on the stream's subjects right now).
 */
export class PublishError extends Error {
  constructor(
    readonly code: "api" | "timeout" | "no_responders" | "closed",
    message: string,
    readonly errCode?: number,
  ) {
    super(message);
    this.name = code === "timeout" ? "TimeoutError" : code === "no_responders" ? "NoRespondersError" : "PublishError";
  }
}

interface Waiting {
  resolve(ack: PublishAck): void;
  reject(err: Error): void;
  deadline: number;
}

interface Outgoing {
  subject: string;
  payload: string;
  reply: string;
  opts: PublishOptions;
}

const SWEEP_MS = 100;
const decoder = new TextDecoder();

/**
 * JetStream publishes at the cost the hot path can afford: response events, and the
 * records, requests and rid owners a generate writes. A token stream is thousands of small
 * acknowledged publishes a second; `js.publish` (and a KV bucket's `create`/`update`/`put`,
 * which are publishes) gives each its own request object, timer, Error for async traces and
 * socket write, which our profiles showed as most of a worker's CPU (measured: 73 µs of CPU
 * per `kv.create` against 26 µs here). Here every ack comes to one inbox subscription, one
 * timer sweeps the deadlines, and the publishes of one event-loop turn leave in one socket
 * write (the client flushes its buffer once per microtask checkpoint, and each generator
 * timer is a checkpoint of its own). The wire is the same JetStream publish: headers, reply, PubAck.
 */
export class JsPublisher {
  private readonly inbox: string;
  private readonly sub: Subscription;
  private readonly waiting = new Map<string, Waiting>();
  private readonly sweep: ReturnType<typeof setInterval>;
  private queue: Outgoing[] = [];
  private counter = 0;
  private closed = false;

  constructor(private readonly nc: NatsConnection) {
    this.inbox = `${createInbox()}.`;
    this.sub = nc.subscribe(`${this.inbox}*`, { callback: (_err, msg) => this.answered(msg) });
    this.sweep = setInterval(() => this.expire(), SWEEP_MS);
    this.sweep.unref?.();
  }

  /** Publishes writes waiting for their ack right now (a bound callers may look at). */
  get inFlight(): number {
    return this.waiting.size;
  }

  publish(subject: string, payload: string, opts: PublishOptions = {}): Promise<PublishAck> {
    if (this.closed) return Promise.reject(new PublishError("closed", "the JetStream publisher is closed"));
    const reply = this.inbox + (++this.counter).toString(36);
    return new Promise<PublishAck>((resolve, reject) => {
      this.waiting.set(reply, { resolve, reject, deadline: Date.now() + (opts.timeoutMs ?? ACK_TIMEOUT_MS) });
      if (this.queue.length === 0) setImmediate(() => this.flush());
      this.queue.push({ subject, payload, reply, opts });
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweep);
    this.sub.unsubscribe();
    for (const [reply, w] of this.waiting) {
      this.waiting.delete(reply);
      w.reject(new PublishError("closed", "the JetStream publisher is closed"));
    }
    this.queue = [];
  }

  private flush(): void {
    const batch = this.queue;
    this.queue = [];
    for (const o of batch) {
      if (!this.waiting.has(o.reply)) continue;
      const { msgId, expectLastSubjectSeq } = o.opts;
      const h = msgId !== undefined || expectLastSubjectSeq !== undefined ? headers() : undefined;
      if (msgId !== undefined) h?.set("Nats-Msg-Id", msgId);
      if (expectLastSubjectSeq !== undefined) h?.set("Nats-Expected-Last-Subject-Sequence", String(expectLastSubjectSeq));
      try {
        this.nc.publish(o.subject, o.payload, h ? { reply: o.reply, headers: h } : { reply: o.reply });
      } catch (err) {
        this.fail(o.reply, new PublishError("closed", `could not publish: ${(err as Error).message}`));
      }
    }
  }

  private answered(msg: Msg): void {
    const w = this.waiting.get(msg.subject);
    if (!w) return;
    this.waiting.delete(msg.subject);
    if (msg.data.length === 0 && msg.headers?.code === 503) {
      w.reject(new PublishError("no_responders", "no responders: JetStream is not answering on this subject"));
      return;
    }
    let ack: { seq?: number; duplicate?: boolean; error?: { err_code?: number; description?: string } };
    try {
      ack = JSON.parse(decoder.decode(msg.data)) as typeof ack;
    } catch {
      w.reject(new PublishError("api", "a JetStream publish ack that is not JSON"));
      return;
    }
    if (ack.error) w.reject(new PublishError("api", ack.error.description ?? "JetStream refused the publish", ack.error.err_code));
    else if (typeof ack.seq !== "number") w.reject(new PublishError("api", "a JetStream publish ack without seq"));
    else w.resolve({ seq: ack.seq, duplicate: ack.duplicate === true });
  }

  private expire(): void {
    const now = Date.now();
    for (const [reply, w] of this.waiting) {
      if (w.deadline <= now) this.fail(reply, new PublishError("timeout", "timeout waiting for the JetStream publish ack"));
    }
  }

  private fail(reply: string, err: Error): void {
    const w = this.waiting.get(reply);
    if (!w) return;
    this.waiting.delete(reply);
    w.reject(err);
  }
}
