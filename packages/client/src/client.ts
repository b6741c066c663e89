import {
  LIMITS,
  generationBodySchema,
  isRid,
  newRid,
  type ChatMessageInput,
  type GenerationBody,
  type GenerationParams,
  type Tool,
  type ToolChoice,
} from "@unbroken/protocol";
import { Backoff, backoffOptions, type BackoffOptions } from "./backoff.js";
import { Connection, type ConnectionStatus, type TokenSource } from "./connection.js";
import { UnbrokenError } from "./errors.js";
import type { IncomingFrame } from "./frames.js";
import { Ops } from "./ops.js";
import { ResponseStream, type HandleHost, type ResponseHandle } from "./response.js";
import { ThreadFollows, type ThreadHandle, type ThreadOptions } from "./thread.js";
import { resolveWebSocket, type WebSocketConstructor, type WebSocketLike } from "./websocket.js";

export interface UnbrokenClientOptions {
  /** The edge's WebSocket endpoint, e.g. `ws://127.0.0.1:8787/v1/ws`. */
  url: string;
  /** Sent in `hello`; a function is called again before every (re)connect. Omit when auth is off. */
  token?: TokenSource;
  /** The WebSocket constructor; default `globalThis.WebSocket`. On Node 20 pass `WebSocket` from `ws`. */
  WebSocket?: WebSocketConstructor;
  /**
   * Opens each socket instead of `new WebSocket(url)`, to wrap, instrument or hold back
   * connections (a page's "go offline" switch, a test's network cut). Throwing refuses that
   * attempt: it fails like an unreachable network and is retried with backoff. When given,
   * `WebSocket` is not used.
   */
  createSocket?: (url: string) => WebSocketLike;
  /** Backoff of reconnects and of retries after `unavailable`. */
  reconnect?: BackoffOptions;
  /** Called on every connection status change. */
  onStatus?: (status: ConnectionStatus) => void;
  /** How long a command waits for its reply (default 30000 ms). */
  requestTimeoutMs?: number;
  /** How long a new socket may take to be welcomed (default 10000 ms). */
  connectTimeoutMs?: number;
  /**
   * In browsers: treat the `offline` event as a lost socket (reconnect and resume at once rather
   * than after missed heartbeats) and retry right away on `online`. Default true; no effect where
   * the global scope has no such events (Node).
   */
  watchNetwork?: boolean;
}

export interface GenerateRequest {
  /**
   * Exactly one of `messages` and `prompt`. Messages are OpenAI-shaped: an assistant message may
   * carry its `tool_calls`, a `tool` message answers one by `tool_call_id`.
   */
  messages?: ChatMessageInput[];
  prompt?: string;
  /** Generation parameters; `reasoning_effort` asks a reasoning model to think first. */
  params?: GenerationParams;
  /** Functions the model may call (JSON-Schema `parameters`); a call ends the answer with `tool_calls`. */
  tools?: Tool[];
  tool_choice?: ToolChoice;
  /** The response id; by default a fresh random one (`newRid()`). */
  rid?: string;
  /** The thread this generate appends a turn to (the first generate creates it); rid rules. */
  thread?: string;
}

export interface SubscribeOptions {
  /** Deliver events with seq > after (default 0: from the start). */
  after?: number;
}

type Body = GenerationBody;

/** The client's bookkeeping for a live response. */
interface Entry {
  stream: ResponseStream;
  /** Set for a generate: re-sent (same rid) until accepted. */
  body: Body | undefined;
  pendingId: string | undefined;
  replyTimer: ReturnType<typeof setTimeout> | undefined;
  retryTimer: ReturnType<typeof setTimeout> | undefined;
  backoff: Backoff;
}

/**
 * A client of the edge's WebSocket protocol v1, for browsers and Node. It reconnects by itself and
 * resumes every response from its last seq; `close()` never cancels anything.
 */
export class UnbrokenClient {
  readonly #conn: Connection;
  readonly #entries = new Map<string, Entry>();
  readonly #ops: Ops;
  readonly #requestTimeoutMs: number;
  readonly #reconnect: BackoffOptions;
  readonly #host: HandleHost;
  readonly #threads: ThreadFollows;
  #closedError: UnbrokenError | undefined;

  constructor(options: UnbrokenClientOptions) {
    if (typeof options?.url !== "string" || options.url === "") throw new TypeError("UnbrokenClient: options.url is required");
    const factory = options.createSocket;
    if (factory !== undefined && typeof factory !== "function")
      throw new TypeError("UnbrokenClient: options.createSocket must be a function");
    const WebSocket = factory === undefined ? resolveWebSocket(options.WebSocket) : undefined;
    this.#reconnect = backoffOptions(options.reconnect);
    this.#requestTimeoutMs = positive(options.requestTimeoutMs, 30_000, "requestTimeoutMs");
    this.#conn = new Connection(
      {
        url: options.url,
        token: options.token,
        openSocket: factory ?? ((url) => new (WebSocket as WebSocketConstructor)(url)),
        refusalIsTransient: factory !== undefined,
        reconnect: this.#reconnect,
        connectTimeoutMs: positive(options.connectTimeoutMs, 10_000, "connectTimeoutMs"),
        onStatus: options.onStatus,
        watchNetwork: options.watchNetwork ?? true,
      },
      {
        welcome: () => this.#onWelcome(),
        frame: (f) => this.#onFrame(f),
        drop: () => this.#onDrop(),
        fatal: (err) => this.#shutdown(err),
      },
    );
    this.#ops = new Ops(this.#conn, this.#requestTimeoutMs, this.#reconnect);
    this.#host = {
      cancel: (s) => this.#cancel(s),
      steer: (s, text) => this.#steer(s, text),
      unsubscribe: (s) => this.#unsubscribe(s),
    };
    this.#threads = new ThreadFollows(this.#conn, this.#ops, {
      requestTimeoutMs: this.#requestTimeoutMs,
      reconnect: this.#reconnect,
      open: (rid, o) => this.#entries.get(rid)?.stream.handle ?? this.subscribe(rid, o),
      pendingIn: (thread) => {
        const inThread = (e: Entry) => (e.body as { thread?: string } | undefined)?.thread === thread && !e.stream.acceptedSettled;
        const waits = [...this.#entries.values()].filter(inThread).map((e) => e.stream.accepted.catch(() => undefined));
        return waits.length > 0 ? Promise.all(waits) : undefined;
      },
    });
    this.#conn.start();
  }

  get status(): ConnectionStatus {
    return this.#conn.status;
  }

  /** Starts a generation. Synchronous: the request is sent (and re-sent, same rid) as sockets allow. */
  generate(request: GenerateRequest): ResponseHandle {
    this.#assertOpen();
    const rid = request.rid ?? newRid();
    if (!isRid(rid)) throw new UnbrokenError("bad_request", `rid must match ^[A-Za-z0-9_-]{8,64}$, got ${JSON.stringify(rid)}`);
    const { thread } = request;
    if (thread !== undefined && !isRid(thread))
      throw new UnbrokenError("bad_request", `thread must match ^[A-Za-z0-9_-]{8,64}$, got ${JSON.stringify(thread)}`, { rid });
    const { messages, prompt, params, tools, tool_choice } = request;
    const check = generationBodySchema.safeParse({ messages, prompt, params, tools, tool_choice });
    if (!check.success) {
      const issue = check.error.issues[0];
      const where = issue && issue.path.length > 0 ? `${issue.path.join(".")}: ` : "";
      throw new UnbrokenError("bad_request", `invalid generate request: ${where}${issue?.message ?? "invalid"}`, { rid });
    }
    // The parsed body is sent: the shape the edge checks, with OpenAI's nulls read as "".
    const body = Object.fromEntries(Object.entries({ ...check.data, thread }).filter(([, v]) => v !== undefined)) as Body;
    return this.#add(rid, 0, body).stream.handle;
  }

  /** Follows a response started elsewhere (another tab, an earlier page load), from seq > after. */
  subscribe(rid: string, options: SubscribeOptions = {}): ResponseHandle {
    this.#assertOpen();
    if (!isRid(rid)) throw new UnbrokenError("bad_request", `rid must match ^[A-Za-z0-9_-]{8,64}$, got ${JSON.stringify(rid)}`);
    const after = options.after ?? 0;
    if (!Number.isSafeInteger(after) || after < 0) throw new UnbrokenError("bad_request", "after must be an integer >= 0", { rid });
    return this.#add(rid, after, undefined).stream.handle;
  }

  /**
   * Follows a thread: its turns after `after` (default 0), replayed then live, each exactly once
   * across reconnects; `handle.open(turn)` follows a turn's answer.
   */
  thread(id: string, options: ThreadOptions = {}): ThreadHandle {
    this.#assertOpen();
    if (!isRid(id)) throw new UnbrokenError("bad_request", `thread must match ^[A-Za-z0-9_-]{8,64}$, got ${JSON.stringify(id)}`);
    const after = options.after ?? 0;
    if (!Number.isSafeInteger(after) || after < 0) throw new UnbrokenError("bad_request", "after must be an integer >= 0");
    return this.#threads.follow(id, after);
  }

  /**
   * Closes the socket and stops reconnecting. Sends nothing (never `cancel`): generations go on
   * and stay replayable. Live handles fail with code `closed`.
   */
  async close(): Promise<void> {
    if (this.#closedError === undefined) this.#shutdown(new UnbrokenError("closed", "the client was closed"));
    await this.#conn.close();
  }

  #assertOpen(): void {
    const err = this.#closedError;
    if (err) throw new UnbrokenError(err.code, `the client is closed (${err.message})`, { cause: err });
  }

  #add(rid: string, after: number, body: Body | undefined): Entry {
    if (this.#entries.has(rid)) {
      throw new UnbrokenError("bad_request", `rid ${rid} already has a live handle on this client; use it, or unsubscribe() it first`, {
        rid,
      });
    }
    const stream = new ResponseStream(this.#host, rid, after);
    const entry: Entry = {
      stream,
      body,
      pendingId: undefined,
      replyTimer: undefined,
      retryTimer: undefined,
      backoff: new Backoff(this.#reconnect),
    };
    this.#entries.set(rid, entry);
    this.#sendStream(entry);
    return entry;
  }

  /** Sends the entry's generate (until accepted) or subscribe from its lastSeq, if a socket is ready. */
  #sendStream(entry: Entry): void {
    const s = entry.stream;
    if (s.state !== "live" || !this.#conn.ready) return;
    this.#clearEntry(entry);
    const id = this.#ops.nextId();
    const frame =
      entry.body !== undefined && !s.acceptedSettled
        ? { type: "generate", id, rid: s.rid, ...entry.body, ...(s.lastSeq > 0 ? { after: s.lastSeq } : {}) }
        : { type: "subscribe", id, rid: s.rid, after: s.lastSeq };
    entry.pendingId = id;
    this.#ops.expect(id, (reply) => {
      if (entry.pendingId !== id) return;
      entry.pendingId = undefined;
      clearTimeout(entry.replyTimer);
      if (reply === null) return; // the socket dropped: re-sent on the next welcome
      if (reply.type === "accepted" || reply.type === "ok") {
        entry.backoff.reset();
        s.accept(reply.type === "accepted" ? reply.existing : true, reply.type === "ok" && reply.ended === true);
      } else if (reply.type === "error") {
        this.#onStreamError(entry, reply.code, reply.message);
      }
    });
    entry.replyTimer = setTimeout(() => {
      const msg = `no reply to ${frame.type} of ${s.rid} within ${this.#requestTimeoutMs} ms`;
      this.#failEntry(entry, new UnbrokenError("timeout", msg, { rid: s.rid }));
    }, this.#requestTimeoutMs);
    this.#conn.send(frame);
  }

  /** `unavailable` (NATS down behind the edge) is retried with backoff; anything else fails the handle. */
  #onStreamError(entry: Entry, code: string, message: string): void {
    if (code !== "unavailable") {
      this.#failEntry(entry, new UnbrokenError(code, message, { rid: entry.stream.rid }));
      return;
    }
    clearTimeout(entry.retryTimer);
    entry.retryTimer = setTimeout(() => {
      entry.retryTimer = undefined;
      this.#sendStream(entry);
    }, entry.backoff.next());
  }

  #clearEntry(entry: Entry): void {
    clearTimeout(entry.replyTimer);
    clearTimeout(entry.retryTimer);
    entry.replyTimer = entry.retryTimer = undefined;
    if (entry.pendingId !== undefined) this.#ops.forget(entry.pendingId);
    entry.pendingId = undefined;
  }

  #release(entry: Entry): void {
    this.#clearEntry(entry);
    if (this.#entries.get(entry.stream.rid) === entry) this.#entries.delete(entry.stream.rid);
  }

  #failEntry(entry: Entry, err: UnbrokenError, quiet = false): void {
    this.#release(entry);
    entry.stream.fail(err, quiet);
  }

  #onWelcome(): void {
    for (const entry of [...this.#entries.values()]) this.#sendStream(entry);
    this.#threads.onWelcome();
    this.#ops.onWelcome();
  }

  #onDrop(): void {
    for (const entry of this.#entries.values()) {
      clearTimeout(entry.retryTimer);
      entry.retryTimer = undefined;
    }
    this.#threads.onDrop();
    this.#ops.onDrop();
  }

  #onFrame(f: IncomingFrame): void {
    if (f.type === "turn") {
      this.#threads.onTurn(f);
      return;
    }
    if (f.type === "event") {
      const entry = this.#entries.get(f.rid);
      if (entry === undefined) return;
      const result = entry.stream.receive(f);
      if (result === "gap" && entry.pendingId === undefined && entry.retryTimer === undefined) {
        this.#sendStream(entry); // should not happen: re-subscribe from lastSeq rather than skip
      } else if (entry.stream.state === "ended") {
        // `accepted` comes before events; should it not have, the end settles it.
        entry.stream.accept(entry.body === undefined, true);
        this.#release(entry);
      }
      return;
    }
    if (f.type === "accepted" || f.type === "ok" || f.type === "pong" || f.type === "error") {
      if (f.id !== undefined && this.#ops.reply(f.id, f)) return;
      if (f.type === "error" && f.thread !== undefined) this.#threads.onError(f.thread, f.code, f.message);
      else if (f.type === "error" && f.rid !== undefined) {
        // An error about a subscription that answers no command of ours.
        const entry = this.#entries.get(f.rid);
        if (entry !== undefined && entry.pendingId === undefined) this.#onStreamError(entry, f.code, f.message);
      }
    }
  }

  /**
   * Cancels rid, whether or not this client follows it (another tab's answer, one found after
   * a reload). Resolves once the edge says cancelling is settled.
   */
  cancel(rid: string): Promise<void> {
    const s = this.#entries.get(rid)?.stream;
    if (s) return this.#cancel(s);
    if (!isRid(rid)) return Promise.reject(new UnbrokenError("bad_request", "invalid rid", { rid }));
    return this.#cancel(undefined, rid);
  }

  /** Steers rid, whether or not this client follows it; as `ResponseHandle.steer`. */
  steer(rid: string, text: string): Promise<void> {
    if (!isRid(rid)) return Promise.reject(new UnbrokenError("bad_request", "invalid rid", { rid }));
    return this.#steer(this.#entries.get(rid)?.stream, text, rid);
  }

  #cancel(s: ResponseStream | undefined, rid = s?.rid ?? ""): Promise<void> {
    if (this.#closedError) return Promise.reject(this.#closedError);
    if (s?.state === "ended") return Promise.resolve();
    const gate = s ? this.#gate(s) : undefined;
    return this.#ops.run({ type: "cancel", rid }, { onDrop: "resend", retryUnavailable: true, gate });
  }

  #steer(s: ResponseStream | undefined, text: string, rid = s?.rid ?? ""): Promise<void> {
    if (this.#closedError) return Promise.reject(this.#closedError);
    if (typeof text !== "string" || text.length < 1 || text.length > LIMITS.steerText) {
      return Promise.reject(new UnbrokenError("bad_request", `steer text must be 1 to ${LIMITS.steerText} characters`, { rid }));
    }
    if (s?.state === "ended") return Promise.reject(new UnbrokenError("finished", "the response has ended", { rid }));
    const gate = s ? this.#gate(s) : undefined;
    return this.#ops.run({ type: "steer", rid, text }, { onDrop: "disconnected", retryUnavailable: false, gate });
  }

  async #unsubscribe(s: ResponseStream): Promise<void> {
    const entry = this.#entries.get(s.rid);
    if (entry === undefined || entry.stream !== s) return;
    this.#failEntry(entry, new UnbrokenError("closed", "unsubscribed before the end", { rid: s.rid }), true);
    if (!this.#conn.ready) return; // no socket: nothing to stop, and it is not re-subscribed
    await this.#ops.run({ type: "unsubscribe", rid: s.rid }, { onDrop: "resolve", retryUnavailable: false });
  }

  /** A generate not yet accepted may not exist at the edge yet: commands about it wait for that. */
  #gate(s: ResponseStream): Promise<unknown> | undefined {
    const entry = this.#entries.get(s.rid);
    if (entry?.stream !== s || entry.body === undefined || s.acceptedSettled) return undefined;
    return s.accepted.catch(() => undefined);
  }

  #shutdown(err: UnbrokenError): void {
    if (this.#closedError) return;
    this.#closedError = err;
    for (const entry of [...this.#entries.values()])
      this.#failEntry(entry, new UnbrokenError(err.code, err.message, { rid: entry.stream.rid, cause: err }));
    this.#threads.shutdown(err);
    this.#ops.shutdown(err);
  }
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`UnbrokenClient: ${name} must be a positive number`);
  return value;
}
