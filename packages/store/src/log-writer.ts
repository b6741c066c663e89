import { encodeEventFrame, eventMsgId, eventSubject, type ResponseEvent } from "@unbroken/protocol";
import { FencedError, StoreError } from "./errors.js";
import { ACK_TIMEOUT_MS, PublishError, type JsPublisher } from "./js-publisher.js";
import { isUnreachable, isWrongLastSequence } from "./nats-errors.js";

export interface WriterPosition {
  /** The seq of the last event in the log (0 for an empty log). */
  seq: number;
  /** The stream sequence of that event (0 for an empty log): the fencing check's expectation. */
  streamSeq: number;
}

export interface WriterOptions {
  /** How long to keep retrying one write while the broker cannot be reached. */
  retryForMs?: number;
  publishTimeoutMs?: number;
  /**
   * The writer's ownership epoch (a worker's claim on the response record). It becomes part
   * of the msg id, `<rid>:<seq>:<epoch>`, so the stored log says which worker wrote each
   * event. Without it the msg id is `<rid>:<seq>` (edges ending a response they found).
   * Fencing does not depend on it: the expected last subject sequence does that.
   */
  epoch?: number;
  /**
   * Told after each event is stored how long its publish took, call to ack, in ms (the
   * worker's publish-latency metric; the store knows no metrics library). Must not throw.
   */
  onPublished?(ms: number, event: ResponseEvent): void;
}

/** What a writer needs of a broker connection. */
export interface LogAccess {
  publisher: JsPublisher;
  /** The stored message at a stream sequence (null when there is none). */
  stored(streamSeq: number): Promise<Uint8Array | null>;
}

/**
 * Appends the events of one response, one at a time. Each write names its msg id
 * `<rid>:<seq>` and the stream sequence it expects last on the subject, so a retried
 * write lands once and a writer that lost the log to another can never append to it.
 */
export class EventLogWriter {
  private pos: WriterPosition;
  private tail: Promise<unknown> = Promise.resolve();
  private readonly retryForMs: number;
  private readonly publishTimeoutMs: number;
  private readonly epoch: number | undefined;
  private readonly onPublished: WriterOptions["onPublished"];

  constructor(
    private readonly nats: LogAccess,
    readonly rid: string,
    from: WriterPosition = { seq: 0, streamSeq: 0 },
    opts: WriterOptions = {},
  ) {
    this.pos = { ...from };
    this.retryForMs = opts.retryForMs ?? 60_000;
    this.publishTimeoutMs = opts.publishTimeoutMs ?? ACK_TIMEOUT_MS;
    this.epoch = opts.epoch;
    this.onPublished = opts.onPublished;
  }

  /** The seq of the last event this writer has written (or was handed). */
  get seq(): number {
    return this.pos.seq;
  }

  /** Queues `event` behind earlier appends; resolves with its seq once stored. */
  append(event: ResponseEvent): Promise<number> {
    const next = this.tail.then(() => this.write(event));
    this.tail = next.catch(() => undefined);
    return next;
  }

  private async write(event: ResponseEvent): Promise<number> {
    const seq = this.pos.seq + 1;
    const payload = encodeEventFrame(this.rid, seq, event);
    const deadline = Date.now() + this.retryForMs;
    for (let attempt = 0; ; attempt++) {
      try {
        const sent = performance.now();
        const ack = await this.nats.publisher.publish(eventSubject(this.rid), payload, {
          msgId: this.epoch === undefined ? eventMsgId(this.rid, seq) : `${eventMsgId(this.rid, seq)}:${this.epoch}`,
          expectLastSubjectSeq: this.pos.streamSeq,
          timeoutMs: this.publishTimeoutMs,
        });
        // A duplicate is our own earlier attempt only if it was a retry and the stored
        // event is byte for byte ours; otherwise another writer holds this seq.
        if (ack.duplicate && (attempt === 0 || !(await this.storedIs(ack.seq, payload)))) {
          throw new FencedError(this.rid, seq);
        }
        this.pos = { seq, streamSeq: ack.seq };
        this.onPublished?.(performance.now() - sent, event);
        return seq;
      } catch (err) {
        if (err instanceof FencedError) throw err;
        if (err instanceof PublishError && err.code === "closed")
          throw new StoreError("unavailable", `could not write event ${seq} of ${this.rid}: the broker connection is closing`, err);
        if (isWrongLastSequence(err)) {
          throw new FencedError(this.rid, seq, err);
        }
        if (!isUnreachable(err) || Date.now() > deadline) {
          throw new StoreError("unavailable", `could not write event ${seq} of ${this.rid}`, err);
        }
        await new Promise((r) => setTimeout(r, Math.min(1000, 50 * 2 ** attempt)));
      }
    }
  }

  private async storedIs(streamSeq: number, payload: string): Promise<boolean> {
    const data = await this.nats.stored(streamSeq);
    return data !== null && new TextDecoder().decode(data) === payload;
  }
}
