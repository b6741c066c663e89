import { AnswerParts, type AnswerPart, type AnswerToolCall, type EndEvent } from "@unbroken/protocol";
import type { UnbrokenError } from "./errors.js";
import { callSafely } from "./errors.js";
import type { ResponseEventFrame } from "./frames.js";

/** What a handle asks of its client. */
export interface HandleHost {
  cancel(stream: ResponseStream): Promise<void>;
  steer(stream: ResponseStream, text: string): Promise<void>;
  unsubscribe(stream: ResponseStream): Promise<void>;
}

export interface Accepted {
  /** True when the response already existed (a retried generate, or a subscribe). */
  existing: boolean;
  /** A subscribe only: the response had already ended when the edge answered (the replay ends with `end`). */
  ended: boolean;
}

export type StreamState = "live" | "ended" | "failed";
export type ReceiveResult = "new" | "duplicate" | "gap" | "ignored";

type Waiter = { resolve: (r: IteratorResult<ResponseEventFrame>) => void; reject: (err: unknown) => void };

/**
 * The state of one response as this client sees it: dedup by seq, its parts, the event queue behind
 * the async iterator, listeners and the `accepted`/`done` promises. Internal: the public face is
 * `ResponseHandle`.
 */
export class ResponseStream {
  readonly rid: string;
  readonly handle: ResponseHandle;
  readonly accepted: Promise<Accepted>;
  readonly done: Promise<EndEvent>;
  state: StreamState = "live";
  lastSeq: number;
  /** The answer folded into parts, as every reader of the protocol cuts it. */
  readonly answer = new AnswerParts();
  end: EndEvent | undefined;
  error: UnbrokenError | undefined;
  acceptedSettled = false;

  #resolveAccepted!: (a: Accepted) => void;
  #rejectAccepted!: (err: unknown) => void;
  #resolveDone!: (e: EndEvent) => void;
  #rejectDone!: (err: unknown) => void;
  #queue: (ResponseEventFrame | undefined)[] = [];
  #head = 0;
  #waiters: Waiter[] = [];
  #iteration: "none" | "active" | "returned" = "none";
  /** The error the iterator still has to throw (undefined: it ends quietly). */
  #iteratorError: UnbrokenError | undefined;
  #listeners = new Set<(frame: ResponseEventFrame) => void>();

  constructor(host: HandleHost, rid: string, after: number) {
    this.rid = rid;
    this.lastSeq = after;
    this.accepted = new Promise<Accepted>((resolve, reject) => {
      this.#resolveAccepted = resolve;
      this.#rejectAccepted = reject;
    });
    this.done = new Promise<EndEvent>((resolve, reject) => {
      this.#resolveDone = resolve;
      this.#rejectDone = reject;
    });
    // Nobody has to await these: a rejection nobody looks at must not crash the process.
    this.accepted.catch(() => undefined);
    this.done.catch(() => undefined);
    this.handle = new ResponseHandle(this, host);
  }

  /** Takes an event frame of this rid: new ones are delivered, duplicates dropped, gaps refused. */
  receive(frame: ResponseEventFrame): ReceiveResult {
    if (this.state !== "live") return "ignored";
    if (frame.seq <= this.lastSeq) return "duplicate";
    if (frame.seq > this.lastSeq + 1) return "gap";
    this.lastSeq = frame.seq;
    const ev = frame.event;
    this.answer.apply(ev);
    if (ev.kind === "end") {
      this.end = ev;
      this.state = "ended";
    }
    for (const cb of [...this.#listeners]) callSafely(cb, frame);
    const waiter = this.#waiters.shift();
    if (waiter) waiter.resolve({ value: frame, done: false });
    else if (this.#iteration !== "returned") this.#queue.push(frame);
    if (ev.kind === "end") {
      this.#resolveDone(ev);
      this.#wakeAll();
    }
    return "new";
  }

  accept(existing: boolean, ended = false): void {
    if (this.acceptedSettled) return;
    this.acceptedSettled = true;
    this.#resolveAccepted({ existing, ended });
  }

  /**
   * Stops the stream without an `end`: `done` (and a pending `accepted`) reject with `err`; the
   * iterator throws `err` after the events already queued, or ends quietly when `quiet`.
   */
  fail(err: UnbrokenError, quiet = false): void {
    if (this.state !== "live") return;
    this.state = "failed";
    this.error = err;
    if (!this.acceptedSettled) {
      this.acceptedSettled = true;
      this.#rejectAccepted(err);
    }
    this.#rejectDone(err);
    this.#iteratorError = quiet ? undefined : err;
    this.#wakeAll();
  }

  onEvent(cb: (frame: ResponseEventFrame) => void): () => void {
    const wrapped = (f: ResponseEventFrame): void => cb(f);
    this.#listeners.add(wrapped);
    return () => {
      this.#listeners.delete(wrapped);
    };
  }

  iterator(): AsyncIterator<ResponseEventFrame> {
    if (this.#iteration !== "none") {
      throw new Error(`ResponseHandle ${this.rid} is already iterated: a handle has a single iterator; use onEvent(cb) for more listeners`);
    }
    this.#iteration = "active";
    const it: AsyncIterator<ResponseEventFrame> = {
      next: () => this.#next(),
      return: () => {
        this.#iteration = "returned";
        this.#queue = [];
        this.#head = 0;
        this.#wakeAll();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
    return it;
  }

  #next(): Promise<IteratorResult<ResponseEventFrame>> {
    if (this.#iteration === "returned") return Promise.resolve({ value: undefined, done: true });
    if (this.#head < this.#queue.length) {
      const value = this.#queue[this.#head] as ResponseEventFrame;
      this.#queue[this.#head++] = undefined;
      if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head);
        this.#head = 0;
      }
      return Promise.resolve({ value, done: false });
    }
    if (this.state !== "live") return this.#finished();
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** The iterator's answer once the stream is over and the queue is empty: throw once, then done. */
  #finished(): Promise<IteratorResult<ResponseEventFrame>> {
    const err = this.#iteratorError;
    this.#iteratorError = undefined;
    return err ? Promise.reject(err) : Promise.resolve({ value: undefined, done: true });
  }

  #wakeAll(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) {
      if (this.#iteration === "returned") w.resolve({ value: undefined, done: true });
      else this.#finished().then(w.resolve, w.reject);
    }
  }
}

/**
 * One response: returned by `client.generate()` and `client.subscribe()`. Iterate it
 * (`for await (const ev of handle)`) for every event frame exactly once, in seq order, ending after
 * `end`; or listen with `onEvent`. Reconnects are invisible: the client resumes from `lastSeq`.
 */
export class ResponseHandle implements AsyncIterable<ResponseEventFrame> {
  readonly #s: ResponseStream;
  readonly #host: HandleHost;

  /** @internal Handles are made by `UnbrokenClient`. */
  constructor(stream: ResponseStream, host: HandleHost) {
    this.#s = stream;
    this.#host = host;
  }

  get rid(): string {
    return this.#s.rid;
  }
  /** The concatenated `token` texts received so far. */
  get text(): string {
    return this.#s.answer.text;
  }
  /** The concatenated `reasoning` texts received so far. */
  get reasoning(): string {
    return this.#s.answer.reasoning;
  }
  /**
   * The complete tool calls received so far, in order, with `input` their parsed arguments. A call
   * still streaming, or dropped by a worker that could not continue it, is not among them.
   */
  get toolCalls(): AnswerToolCall[] {
    return this.#s.answer.toolCalls;
  }
  /** The answer as parts (text, reasoning, tool calls) in log order; a live view, do not mutate. */
  get parts(): readonly AnswerPart[] {
    return this.#s.answer.parts;
  }
  /** The seq of the last event delivered (the `after` given to subscribe before any event). */
  get lastSeq(): number {
    return this.#s.lastSeq;
  }
  get ended(): boolean {
    return this.#s.state === "ended";
  }
  get end(): EndEvent | undefined {
    return this.#s.end;
  }
  /** Why the handle stopped without an `end` (an edge error, unsubscribe, close…). */
  get error(): UnbrokenError | undefined {
    return this.#s.error;
  }
  /** Resolves once the edge durably queued the request (or, for subscribe, answered `ok`). */
  get accepted(): Promise<Accepted> {
    return this.#s.accepted;
  }
  /** Resolves with the `end` event; rejects with an UnbrokenError if the handle fails first. */
  get done(): Promise<EndEvent> {
    return this.#s.done;
  }

  /** Calls `cb` for each new event frame; returns a function that removes the listener. */
  onEvent(cb: (frame: ResponseEventFrame) => void): () => void {
    return this.#s.onEvent(cb);
  }

  /** Asks the edge to stop the generation; resolves on its `ok`. Re-sent after a reconnect. */
  cancel(): Promise<void> {
    return this.#host.cancel(this.#s);
  }

  /** Sends a steering instruction; resolves on `ok`. Never re-sent: a drop rejects `disconnected`. */
  steer(text: string): Promise<void> {
    return this.#host.steer(this.#s, text);
  }

  /** Stops receiving this response (does not cancel it): iteration ends, `done` rejects `closed`. */
  unsubscribe(): Promise<void> {
    return this.#host.unsubscribe(this.#s);
  }

  [Symbol.asyncIterator](): AsyncIterator<ResponseEventFrame> {
    return this.#s.iterator();
  }
}
