import { CLOSE_SLOW_CONSUMER, CLOSE_UNAUTHORIZED, PROTOCOL_VERSION } from "@unbroken/protocol";
import { Backoff, type BackoffOptions } from "./backoff.js";
import { UnbrokenError, callSafely } from "./errors.js";
import { decodeServerFrame, type IncomingFrame, type WelcomeInfo } from "./frames.js";
import { OPEN, type WebSocketLike } from "./websocket.js";

export type ConnectionState = "connecting" | "connected" | "reconnecting" | "closed";

export interface ConnectionStatus {
  readonly state: ConnectionState;
  /** While reconnecting: the number of the retry under way or scheduled (1 = the first). Else 0. */
  readonly attempt: number;
  /** The edge's session id of the current (or, while reconnecting, the last) socket. */
  readonly session?: string;
  /** Why the last socket was lost, or why the client stopped. */
  readonly lastError?: string;
}

export type TokenSource = string | (() => string | Promise<string>);

export interface ConnectionOptions {
  url: string;
  token?: TokenSource | undefined;
  /** Opens a socket to `url`. */
  openSocket: (url: string) => WebSocketLike;
  /**
   * What a throw from `openSocket` means: false (a WebSocket constructor) = the URL can never
   * work, stop for good; true (a `createSocket` factory) = not now, retry with backoff.
   */
  refusalIsTransient: boolean;
  reconnect?: BackoffOptions | undefined;
  /** From opening a socket to its `welcome`. */
  connectTimeoutMs: number;
  onStatus?: ((status: ConnectionStatus) => void) | undefined;
  /** Follow the browser's `offline`/`online` events (where there are any). */
  watchNetwork: boolean;
}

export interface ConnectionHandlers {
  /** The edge welcomed a socket: (re)send everything that must live on it. */
  welcome(welcome: WelcomeInfo): void;
  /** Every frame after `welcome` except `pong` and `goaway`. */
  frame(frame: IncomingFrame): void;
  /** A welcomed socket was lost; a reconnect is scheduled. Replies awaited on it never come. */
  drop(err: UnbrokenError): void;
  /** The connection stopped for good (unauthorized, or an edge speaking another protocol). */
  fatal(err: UnbrokenError): void;
}

const CLOSE_WAIT_MS = 1000;

/** One logical connection to the edge: a socket at a time, hello/welcome, liveness, reconnects. */
export class Connection {
  readonly #opts: ConnectionOptions;
  readonly #on: ConnectionHandlers;
  readonly #backoff: Backoff;
  #status: ConnectionStatus = Object.freeze({ state: "connecting", attempt: 0 });
  #socket: WebSocketLike | undefined;
  #welcomed = false;
  #stopped = false;
  #connectTimer: ReturnType<typeof setTimeout> | undefined;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #lastMessageAt = 0;
  #pingOutstanding = false;
  #heardSincePing = false;
  #unwatch: () => void = () => undefined;

  constructor(opts: ConnectionOptions, on: ConnectionHandlers) {
    this.#opts = opts;
    this.#on = on;
    this.#backoff = new Backoff(opts.reconnect);
  }

  get status(): ConnectionStatus {
    return this.#status;
  }

  /** True between `welcome` and the loss of that socket: commands can be sent. */
  get ready(): boolean {
    return this.#welcomed && this.#socket !== undefined && this.#socket.readyState === OPEN;
  }

  /**
   * Starts connecting on the next microtask, so that an `onStatus` callback may already use the
   * variable the client is being assigned to.
   */
  start(): void {
    queueMicrotask(() => {
      if (this.#stopped) return;
      if (this.#opts.watchNetwork)
        this.#unwatch = watchNetwork(
          () => this.#offline(),
          () => this.#online(),
        );
      this.#setStatus({ state: "connecting", attempt: 0 });
      void this.#open();
    });
  }

  /** Sends a frame on the welcomed socket; false when there is none (the caller retries on welcome). */
  send(frame: object): boolean {
    if (!this.ready) return false;
    return this.#write(this.#socket as WebSocketLike, frame);
  }

  /** Closes the socket (code 1000) and stops reconnecting. Resolves once the socket is closed. */
  async close(): Promise<void> {
    const sock = this.#socket;
    this.#stopped = true;
    this.#unwatch();
    this.#teardown(false, false);
    if (this.#status.state !== "closed") this.#setStatus({ state: "closed", attempt: 0, session: this.#status.session });
    if (sock === undefined || sock.readyState === 3) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        try {
          sock.terminate?.();
        } catch {
          // already gone
        }
        resolve();
      }, CLOSE_WAIT_MS);
      sock.addEventListener("close", () => {
        clearTimeout(timer);
        resolve();
      });
      try {
        sock.close(1000);
      } catch {
        clearTimeout(timer);
        resolve();
      }
    });
  }

  async #open(): Promise<void> {
    let token: string | undefined;
    try {
      const t = this.#opts.token;
      token = typeof t === "function" ? await t() : t;
    } catch (err) {
      if (!this.#stopped) this.#lost(`token provider failed: ${describe(err)}`, false);
      return;
    }
    if (this.#stopped) return;
    let sock: WebSocketLike;
    try {
      sock = this.#opts.openSocket(this.#opts.url);
    } catch (err) {
      const msg = `cannot open a WebSocket to ${this.#opts.url}: ${describe(err)}`;
      if (this.#opts.refusalIsTransient) this.#lost(msg, false);
      else this.#fatal(new UnbrokenError("bad_request", msg, { cause: err }));
      return;
    }
    this.#socket = sock;
    this.#connectTimer = setTimeout(() => {
      if (sock === this.#socket) this.#lost(`no welcome within ${this.#opts.connectTimeoutMs} ms`, true);
    }, this.#opts.connectTimeoutMs);
    sock.addEventListener("open", () => {
      if (sock !== this.#socket) return;
      this.#write(sock, token === undefined ? { type: "hello" } : { type: "hello", token });
    });
    sock.addEventListener("message", (ev) => this.#onMessage(sock, ev.data));
    sock.addEventListener("close", (ev) => {
      if (sock !== this.#socket) return;
      const why = `socket closed (code ${ev.code ?? "?"}${ev.reason ? `: ${ev.reason}` : ""})`;
      // 4401 on a welcomed socket: its token expired. A token function gives a fresh one.
      if (ev.code === CLOSE_UNAUTHORIZED && this.#welcomed && this.#renewable) this.#lost(`the token expired: ${why}`, false);
      else if (ev.code === CLOSE_UNAUTHORIZED) this.#fatal(new UnbrokenError("unauthorized", `the edge refused the token: ${why}`));
      // Every other code is a drop: reconnect and resume from the last seq. With 4008 the edge
      // cut a socket this side did not read fast enough (a stalled tab, a slow link).
      else if (ev.code === CLOSE_SLOW_CONSUMER) this.#lost(`the edge closed a socket that fell behind (slow consumer): ${why}`, false);
      else this.#lost(why, false);
    });
    sock.addEventListener("error", (ev) => {
      if (sock === this.#socket) this.#lost(`socket error${ev.message ? `: ${ev.message}` : ""}`, true);
    });
  }

  #onMessage(sock: WebSocketLike, data: unknown): void {
    if (sock !== this.#socket) return;
    this.#lastMessageAt = Date.now();
    this.#heardSincePing = true;
    const frame = decodeServerFrame(data);
    if (frame === undefined) return;
    if (frame.type === "goaway") {
      this.#lost("the edge sent goaway (draining)", false);
      return;
    }
    if (!this.#welcomed) {
      if (frame.type === "welcome") this.#onWelcome(sock, frame);
      else if (frame.type === "error" && frame.code === "unauthorized" && frame.id === undefined) {
        this.#fatal(new UnbrokenError("unauthorized", frame.message));
      }
      return;
    }
    if (frame.type === "error" && frame.code === "unauthorized" && this.#renewable) {
      // The token ran out on this socket (the edge closes it with 4401 next): reconnect with a
      // fresh one now, so that this command and the subscriptions are sent again on the new
      // socket rather than fail.
      this.#lost(`the token expired: ${frame.message}`, false);
      return;
    }
    if (frame.type === "pong") this.#pingOutstanding = false;
    else if (frame.type !== "welcome") this.#on.frame(frame);
  }

  /** A token function is asked again on each connect: an expired token can be replaced. */
  get #renewable(): boolean {
    return typeof this.#opts.token === "function";
  }

  #onWelcome(sock: WebSocketLike, w: WelcomeInfo): void {
    if (w.protocol !== PROTOCOL_VERSION) {
      const msg = `the edge speaks protocol ${w.protocol}; this client speaks ${PROTOCOL_VERSION}`;
      this.#fatal(new UnbrokenError("bad_request", msg));
      return;
    }
    clearTimeout(this.#connectTimer);
    this.#connectTimer = undefined;
    this.#welcomed = true;
    this.#backoff.reset();
    if (w.heartbeat_ms > 0) this.#startHeartbeat(sock, w.heartbeat_ms);
    this.#setStatus({ state: "connected", attempt: 0, session: w.session });
    this.#on.welcome(w);
  }

  /**
   * Every heartbeat_ms a `ping`; the socket is dead when nothing at all (no pong, no other frame)
   * came back before the next one, or when nothing came for 2.5 × heartbeat_ms.
   */
  #startHeartbeat(sock: WebSocketLike, ms: number): void {
    this.#lastMessageAt = Date.now();
    this.#pingOutstanding = false;
    this.#heartbeat = setInterval(() => {
      if (sock !== this.#socket) return;
      if (this.#pingOutstanding && !this.#heardSincePing) {
        this.#lost(`no pong within heartbeat_ms (${ms} ms)`, true);
        return;
      }
      if (Date.now() - this.#lastMessageAt > 2.5 * ms) {
        this.#lost(`nothing from the edge for 2.5 × heartbeat_ms (${ms} ms)`, true);
        return;
      }
      this.#pingOutstanding = true;
      this.#heardSincePing = false;
      this.#write(sock, { type: "ping" });
    }, ms);
  }

  #write(sock: WebSocketLike, frame: object): boolean {
    if (sock.readyState !== OPEN) return false;
    try {
      sock.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  /** The socket is gone or unusable: tell the client, then reconnect after a backoff delay. */
  #lost(reason: string, dead: boolean): void {
    if (this.#stopped) return;
    const wasWelcomed = this.#welcomed;
    this.#teardown(dead, true);
    const delay = this.#backoff.next();
    this.#setStatus({ state: "reconnecting", attempt: this.#backoff.attempt, session: this.#status.session, lastError: reason });
    if (wasWelcomed) this.#on.drop(new UnbrokenError("disconnected", reason));
    if (this.#stopped) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      void this.#open();
    }, delay);
  }

  /** The browser says the network is gone: the socket is dead, whatever it still claims. */
  #offline(): void {
    if (!this.#stopped && this.#socket !== undefined) this.#lost("the browser went offline", true);
  }

  /** The network is back: retry now rather than when the backoff delay runs out. */
  #online(): void {
    if (this.#stopped || this.#retryTimer === undefined) return;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#backoff.reset();
    void this.#open();
  }

  #fatal(err: UnbrokenError): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#unwatch();
    this.#teardown(false, true);
    this.#setStatus({ state: "closed", attempt: 0, session: this.#status.session, lastError: `${err.code}: ${err.message}` });
    this.#on.fatal(err);
  }

  /** Clears every timer and lets go of the socket (closing it when `closeSocket`). */
  #teardown(dead: boolean, closeSocket: boolean): void {
    clearTimeout(this.#connectTimer);
    clearTimeout(this.#retryTimer);
    clearInterval(this.#heartbeat);
    this.#connectTimer = this.#retryTimer = this.#heartbeat = undefined;
    const sock = this.#socket;
    this.#socket = undefined;
    this.#welcomed = false;
    if (!closeSocket || sock === undefined || sock.readyState > OPEN) return;
    try {
      if (dead && sock.terminate) sock.terminate();
      else sock.close(1000);
    } catch {
      // closing a broken socket may throw; it is gone either way
    }
  }

  #setStatus(s: ConnectionStatus): void {
    const next: Record<string, unknown> = { state: s.state, attempt: s.attempt };
    if (s.session !== undefined) next.session = s.session;
    if (s.lastError !== undefined) next.lastError = s.lastError;
    this.#status = Object.freeze(next) as unknown as ConnectionStatus;
    const cb = this.#opts.onStatus;
    if (cb) callSafely(cb, this.#status);
  }
}

type NetworkEvents = { addEventListener?: unknown; removeEventListener?: unknown };

/** Listens to `offline`/`online` on the global scope of a browser (or worker); nothing elsewhere. */
function watchNetwork(offline: () => void, online: () => void): () => void {
  const g = globalThis as NetworkEvents;
  if (typeof g.addEventListener !== "function" || typeof g.removeEventListener !== "function") return () => undefined;
  const add = g.addEventListener as (type: string, cb: () => void) => void;
  const remove = g.removeEventListener as (type: string, cb: () => void) => void;
  add.call(g, "offline", offline);
  add.call(g, "online", online);
  return () => {
    remove.call(g, "offline", offline);
    remove.call(g, "online", online);
  };
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
