import type { ChatMessage, TurnFrame } from "@unbroken/protocol";
import { Backoff, type BackoffOptions } from "./backoff.js";
import type { Connection } from "./connection.js";
import { UnbrokenError, callSafely } from "./errors.js";
import type { Ops } from "./ops.js";
import type { ResponseHandle } from "./response.js";
import type { SubscribeOptions } from "./client.js";

/** One turn of a thread: the response a generate started in it, and the messages it brought. */
export interface ThreadTurn {
  thread: string;
  /** The turn's place in the thread, from 1. */
  seq: number;
  /** The answer's rid: `thread.open(turn)` follows it. */
  rid: string;
  /** The new messages of that generate (those after the last assistant message). */
  messages: ChatMessage[];
  /** When the generate came, in whole seconds. */
  created_at: number;
}

export interface ThreadOptions {
  /** Deliver turns with seq > after (default 0: the whole thread). */
  after?: number;
}

/** What a handle asks of its client. */
interface ThreadHost {
  unfollow(handle: ThreadHandle): Promise<void>;
  open(rid: string, options: SubscribeOptions): ResponseHandle;
}

type Waiter = { resolve: (r: IteratorResult<ThreadTurn>) => void; reject: (err: unknown) => void };

/**
 * A followed thread: returned by `client.thread(id)`. Iterate it (`for await (const turn of
 * thread)`) for every turn exactly once, in seq order, the ones already received first; or
 * listen with `onTurn`. It never ends by itself (a thread has no end): `close()` stops it.
 * Reconnects are invisible: the client follows again from `lastSeq`.
 */
export class ThreadHandle implements AsyncIterable<ThreadTurn> {
  readonly id: string;
  readonly ready: Promise<void>;
  /**
   * Resolves once every turn the thread held when the edge answered the follow has arrived (in
   * `turns`): then `turns.at(-1)` is the thread's last turn, as of that moment. Rejects when the
   * handle fails or is closed first.
   */
  readonly replayed: Promise<void>;
  #turns: ThreadTurn[] = [];
  #lastSeq: number;
  #state: "live" | "closed" | "failed" = "live";
  #error: UnbrokenError | undefined;
  #readySettled = false;
  #resolveReady!: () => void;
  #rejectReady!: (err: unknown) => void;
  /** The seq `replayed` waits for; undefined until the first `ok`. */
  #replayTarget: number | undefined;
  #resolveReplayed!: () => void;
  #rejectReplayed!: (err: unknown) => void;
  #listeners = new Set<(turn: ThreadTurn) => void>();
  #iterators = new Set<{ at: number; waiter: Waiter | undefined }>();
  readonly #host: ThreadHost;

  /** @internal Handles are made by `UnbrokenClient.thread`. */
  constructor(host: ThreadHost, id: string, after: number) {
    this.#host = host;
    this.id = id;
    this.#lastSeq = after;
    this.ready = new Promise<void>((resolve, reject) => {
      this.#resolveReady = resolve;
      this.#rejectReady = reject;
    });
    this.replayed = new Promise<void>((resolve, reject) => {
      this.#resolveReplayed = resolve;
      this.#rejectReplayed = reject;
    });
    // A follow that fails is reported through `error` and the iterator too: no unhandled rejection.
    this.ready.catch(() => undefined);
    this.replayed.catch(() => undefined);
  }

  /** The turns received so far, in seq order; a live view, do not mutate. */
  get turns(): readonly ThreadTurn[] {
    return this.#turns;
  }
  /** The seq of the last turn received (the `after` given before any). */
  get lastSeq(): number {
    return this.#lastSeq;
  }
  /** Why the follow stopped (forbidden, not_found, the client closed…). */
  get error(): UnbrokenError | undefined {
    return this.#error;
  }
  get live(): boolean {
    return this.#state === "live";
  }

  /** Calls `cb` for each new turn; returns a function that removes the listener. */
  onTurn(cb: (turn: ThreadTurn) => void): () => void {
    const wrapped = (t: ThreadTurn): void => cb(t);
    this.#listeners.add(wrapped);
    return () => {
      this.#listeners.delete(wrapped);
    };
  }

  /**
   * The answer of a turn (or of a rid): live while it runs, replayed from its start when it has
   * ended; the handle this client already has for that rid when it has one (its own generate).
   */
  open(turn: ThreadTurn | string, options: SubscribeOptions = {}): ResponseHandle {
    return this.#host.open(typeof turn === "string" ? turn : turn.rid, options);
  }

  /** Stops following (`unfollow`): iteration ends. The thread and its answers go on. */
  close(): Promise<void> {
    if (this.#state !== "live") return Promise.resolve();
    this.#stop("closed");
    return this.#host.unfollow(this);
  }

  [Symbol.asyncIterator](): AsyncIterator<ThreadTurn> {
    const cursor: { at: number; waiter: Waiter | undefined } = { at: 0, waiter: undefined };
    this.#iterators.add(cursor);
    return {
      next: () => {
        const turn = this.#turns[cursor.at];
        if (turn) {
          cursor.at++;
          return Promise.resolve({ value: turn, done: false });
        }
        if (this.#state === "failed") return Promise.reject(this.#error);
        if (this.#state === "closed") return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => {
          cursor.waiter = { resolve, reject };
        });
      },
      return: () => {
        this.#iterators.delete(cursor);
        cursor.waiter?.resolve({ value: undefined, done: true });
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }

  /** @internal The edge answered `ok` to a follow; `last`: its thread's last seq then (undefined from an older edge). */
  settleReady(last: number | undefined): void {
    if (this.#readySettled) return;
    this.#readySettled = true;
    this.#resolveReady();
    // Only the first follow's `last` counts: a re-follow's turns up to its own `last` come anyway.
    this.#replayTarget = last ?? 0;
    this.#checkReplayed();
  }

  #checkReplayed(): void {
    if (this.#replayTarget !== undefined && this.#lastSeq >= this.#replayTarget) this.#resolveReplayed();
  }

  /** @internal A turn arrived; one this handle already has (a re-follow's overlap) is dropped. */
  receive(frame: TurnFrame): void {
    if (this.#state !== "live" || frame.seq <= this.#lastSeq) return;
    const { thread, seq, rid, messages, created_at } = frame;
    const turn: ThreadTurn = { thread, seq, rid, messages, created_at };
    this.#turns.push(turn);
    this.#lastSeq = seq;
    this.#checkReplayed();
    for (const cursor of this.#iterators) {
      const w = cursor.waiter;
      if (!w) continue;
      cursor.waiter = undefined;
      cursor.at++;
      w.resolve({ value: turn, done: false });
    }
    for (const l of this.#listeners) callSafely(l, turn);
  }

  /** @internal The follow failed for good. */
  fail(err: UnbrokenError): void {
    if (this.#state !== "live") return;
    this.#error = err;
    this.#stop("failed");
  }

  #stop(state: "closed" | "failed"): void {
    this.#state = state;
    // A no-op once resolved: a handle stopped before it had every turn never gets them.
    this.#rejectReplayed(this.#error ?? new UnbrokenError("closed", "the thread was closed before its turns were replayed"));
    if (!this.#readySettled) {
      this.#readySettled = true;
      this.#rejectReady(this.#error ?? new UnbrokenError("closed", "the thread was closed before the edge answered"));
    }
    for (const cursor of this.#iterators) {
      const w = cursor.waiter;
      cursor.waiter = undefined;
      if (!w) continue;
      if (state === "failed") w.reject(this.#error);
      else w.resolve({ value: undefined, done: true });
    }
  }
}

interface Entry {
  thread: string;
  /** Every live handle of the thread on this client: they share one follow. */
  handles: Set<ThreadHandle>;
  pendingId: string | undefined;
  replyTimer: ReturnType<typeof setTimeout> | undefined;
  retryTimer: ReturnType<typeof setTimeout> | undefined;
  backoff: Backoff;
  /** Waiting for this client's own generates in the thread to be accepted. */
  gated: boolean;
}

export interface ThreadFollowsOptions {
  requestTimeoutMs: number;
  reconnect: BackoffOptions;
  open(rid: string, options: SubscribeOptions): ResponseHandle;
  /** Settles once this client's generates in `thread` not yet accepted are (undefined: none). */
  pendingIn(thread: string): Promise<unknown> | undefined;
}

/**
 * The client's followed threads: each is sent `follow` from its last seq on every welcomed
 * socket, so a reconnect (to any edge) loses no turn and repeats none. Owned by the client.
 */
export class ThreadFollows {
  readonly #entries = new Map<string, Entry>();
  readonly #host: ThreadHost;

  constructor(
    private readonly conn: Connection,
    private readonly ops: Ops,
    private readonly opts: ThreadFollowsOptions,
  ) {
    this.#host = { unfollow: (h) => this.#unfollow(h), open: (rid, o) => opts.open(rid, o) };
  }

  /**
   * A new handle of the thread. Handles of one thread on this client share one follow: a second
   * one (an app's and the AI SDK transport's, say) sends the follow again from the lowest seq
   * any of them has, and each handle drops the turns it has already.
   */
  follow(id: string, after: number): ThreadHandle {
    const handle = new ThreadHandle(this.#host, id, after);
    let entry = this.#entries.get(id);
    if (entry === undefined) {
      const backoff = new Backoff(this.opts.reconnect);
      entry = { thread: id, handles: new Set(), pendingId: undefined, replyTimer: undefined, retryTimer: undefined, backoff, gated: false };
      this.#entries.set(id, entry);
    }
    entry.handles.add(handle);
    this.#send(entry);
    return handle;
  }

  #send(entry: Entry): void {
    if (entry.handles.size === 0 || !this.conn.ready || entry.gated) return;
    const thread = entry.thread;
    // A thread this client is creating right now does not exist at the edge until its first
    // generate is accepted: a follow sent before would be refused as unknown.
    const gate = this.opts.pendingIn(thread);
    if (gate) {
      entry.gated = true;
      void gate.then(() => {
        entry.gated = false;
        this.#send(entry);
      });
      return;
    }
    this.#clear(entry);
    const id = this.ops.nextId();
    entry.pendingId = id;
    this.ops.expect(id, (reply) => {
      if (entry.pendingId !== id) return;
      entry.pendingId = undefined;
      clearTimeout(entry.replyTimer);
      if (reply === null) return; // the socket dropped: followed again on the next welcome
      if (reply.type === "ok") {
        entry.backoff.reset();
        for (const h of entry.handles) h.settleReady(reply.last);
      } else if (reply.type === "error") {
        this.#onError(entry, reply.code, reply.message);
      }
    });
    entry.replyTimer = setTimeout(() => {
      this.#fail(entry, new UnbrokenError("timeout", `no reply to follow of ${thread} within ${this.opts.requestTimeoutMs} ms`));
    }, this.opts.requestTimeoutMs);
    const after = Math.min(...[...entry.handles].map((h) => h.lastSeq));
    this.conn.send({ type: "follow", id, thread, after });
  }

  /** `unavailable` (NATS down behind the edge) is retried with backoff; anything else fails the handle. */
  #onError(entry: Entry, code: string, message: string): void {
    if (code !== "unavailable") {
      this.#fail(entry, new UnbrokenError(code, message));
      return;
    }
    clearTimeout(entry.retryTimer);
    entry.retryTimer = setTimeout(() => {
      entry.retryTimer = undefined;
      this.#send(entry);
    }, entry.backoff.next());
  }

  #clear(entry: Entry): void {
    clearTimeout(entry.replyTimer);
    clearTimeout(entry.retryTimer);
    entry.replyTimer = entry.retryTimer = undefined;
    if (entry.pendingId !== undefined) this.ops.forget(entry.pendingId);
    entry.pendingId = undefined;
  }

  #fail(entry: Entry, err: UnbrokenError): void {
    this.#clear(entry);
    if (this.#entries.get(entry.thread) === entry) this.#entries.delete(entry.thread);
    const handles = [...entry.handles];
    entry.handles.clear();
    for (const h of handles) h.fail(err);
  }

  /** A handle closed: the follow stops with the thread's last handle on this client. */
  async #unfollow(h: ThreadHandle): Promise<void> {
    const entry = this.#entries.get(h.id);
    if (!entry?.handles.delete(h) || entry.handles.size > 0) return;
    this.#clear(entry);
    this.#entries.delete(h.id);
    if (!this.conn.ready) return; // no socket: nothing to stop, and it is not followed again
    await this.ops.run({ type: "unfollow", thread: h.id }, { onDrop: "resolve", retryUnavailable: false });
  }

  onWelcome(): void {
    for (const entry of [...this.#entries.values()]) this.#send(entry);
  }

  onDrop(): void {
    for (const entry of this.#entries.values()) {
      clearTimeout(entry.retryTimer);
      entry.retryTimer = undefined;
    }
  }

  /** A turn frame, or an error about a follow that answers no command of ours. */
  onTurn(frame: TurnFrame): void {
    for (const h of this.#entries.get(frame.thread)?.handles ?? []) h.receive(frame);
  }

  onError(thread: string, code: string, message: string): void {
    const entry = this.#entries.get(thread);
    if (entry !== undefined && entry.pendingId === undefined) this.#onError(entry, code, message);
  }

  shutdown(err: UnbrokenError): void {
    for (const entry of [...this.#entries.values()]) this.#fail(entry, new UnbrokenError(err.code, err.message, { cause: err }));
  }
}
