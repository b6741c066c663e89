import {
  CLOSE_SLOW_CONSUMER,
  CLOSE_UNAUTHORIZED,
  PROTOCOL_VERSION,
  ProtocolError,
  parseClientFrame,
  type ClientFrame,
  type ErrorFrame,
  type GenerateFrame,
  type ServerFrame,
} from "@unbroken/protocol";
import { goneError, toProtocolError } from "@unbroken/store";
import type { Logger } from "pino";
import type { RawData, WebSocket } from "ws";
import { FrameBucket, type StreamSlot, streamClient } from "./budgets.js";
import { rawText, withId } from "./frame-util.js";
import { KeyedChain } from "./keyed-chain.js";
import { describePrincipal, type Authenticate, type Principal } from "./auth.js";
import type { EdgeLimits } from "./config.js";
import { drained, rateLimited } from "./limits.js";
import { dropReasonOf, type DropReason, type Transport } from "./metrics.js";
import type { ResponseService } from "./responses.js";
import { Subscription, type SubscriptionDeps } from "./subscription.js";
import { ThreadFollows } from "./thread-follows.js";
import { TokenExpiry } from "./token-expiry.js";

export interface SessionDeps extends SubscriptionDeps {
  authenticate: Authenticate;
  heartbeatMs: number;
  helloTimeoutMs: number;
  responses: ResponseService;
  limits: EdgeLimits;
  /** The time owner tokens expire by (default Date.now; a test skews it). */
  clock?: () => number;
  /** Counts sockets (and HTTP streams) closed as slow consumers. */
  onSlowConsumer?(transport: Transport): void;
}

/** Close codes of our own, beside RFC 6455's (see @unbroken/protocol). */
export { CLOSE_SLOW_CONSUMER, CLOSE_UNAUTHORIZED };

const TOKEN_EXPIRED = "the token has expired";

/** Frames a client may send behind its hello before the verdict; more are refused. */
const MAX_EARLY_FRAMES = 64;

/** Frames refused in a row (over FRAME_RATE) after which the socket is closed: it is not slowing down. */
const MAX_FRAME_REFUSALS = 32;

/** RFC 6455 "policy violation": the close of a socket that kept sending over FRAME_RATE. */
const CLOSE_POLICY = 1008;

type Phase = "hello" | "authenticating" | "ready" | "closed";

/** Why this edge closed the socket itself: a drop (metrics) or a close on purpose (clean). */
type Closing = DropReason | "goaway" | "refused";

/**
 * One WebSocket: the handshake, one handler per command, and the subscriptions it holds.
 * Commands on the same rid run one after another, so `subscribe` then `unsubscribe` (or
 * `generate` then `cancel`) act in the order they were sent.
 */
export class Session {
  private phase: Phase = "hello";
  private principal: Principal = { kind: "owner", owner: "" };
  private readonly subs = new Map<string, Subscription>();
  /** Subscriptions being set up (authorized, not yet started): they count against the limit. */
  private pendingSubs = 0;
  private readonly ridChain = new KeyedChain();
  private readonly threads: ThreadFollows;
  private readonly early: ClientFrame[] = [];
  private readonly helloTimer: ReturnType<typeof setTimeout>;
  private log: Logger;
  private closing: Closing | undefined;
  private readonly frameBudget: FrameBucket;
  private frameRefusals = 0;
  /** The owner token's `exp`: commands after it are refused, and the socket closed with 4401 at it. */
  private expiry: TokenExpiry | undefined;

  constructor(
    private readonly ws: WebSocket,
    readonly id: string,
    private readonly deps: SessionDeps,
    /** The client's address, for MAX_STREAMS_PER_ADDRESS. */
    private readonly address = "unknown",
  ) {
    this.log = deps.log.child({ session: id });
    this.frameBudget = new FrameBucket(deps.limits.frameRate, deps.limits.frameBurst);
    this.helloTimer = setTimeout(() => this.refuse("no hello within the time allowed"), deps.helloTimeoutMs);
    this.threads = new ThreadFollows({
      responses: deps.responses,
      log: this.log,
      max: deps.limits.subscriptionsPerSocket,
      address,
      send: (f) => this.send(f),
      pace: () => this.pace(),
    });
    deps.metrics.socketOpened();
    ws.on("message", (data, isBinary) => this.onMessage(data, isBinary));
    ws.on("close", (code) => {
      deps.metrics.socketClosed(this.dropReason(code));
      this.dispose();
    });
    ws.on("error", (err) => this.log.debug({ err: err.message }, "socket error"));
  }

  get subscriptions(): number {
    return this.subs.size;
  }

  /** Tells the client to reconnect elsewhere: the edge is going away. */
  goaway(): void {
    this.closing ??= "goaway";
    this.send({ type: "goaway" });
    this.ws.close(1001, "edge shutting down");
  }

  /** The heartbeat is closing this socket: two pings went unanswered. */
  timedOut(): void {
    this.closing ??= "heartbeat";
  }

  /**
   * Whether (and why) the socket ended without a clean close: what this edge closed it for,
   * else what its close code says (docs/operations.md, "Metrics").
   */
  private dropReason(code: number): DropReason | undefined {
    if (this.closing === "goaway" || this.closing === "refused") return undefined;
    return this.closing ?? dropReasonOf(code);
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    this.deps.metrics.frameReceived();
    if (this.phase === "closed") return;
    if (!this.frameBudget.take()) return void this.overFrameRate(data, isBinary);
    this.frameRefusals = 0;
    if (isBinary) {
      this.send({ type: "error", code: "bad_request", message: "binary frames are not accepted" });
      return;
    }
    const parsed = parseClientFrame(rawText(data));
    if (!parsed.ok) {
      this.send(parsed.error);
      return;
    }
    const frame = parsed.frame;
    if (frame.type === "ping") {
      this.send(withId({ type: "pong" }, frame.id));
      return;
    }
    if (frame.type === "hello") return void this.hello(frame.token, frame.id);
    // A client may send commands right behind its hello: they wait for the verdict.
    if (this.phase === "authenticating") {
      if (this.early.length >= MAX_EARLY_FRAMES) {
        this.send(withId({ type: "error", code: "rate_limited", message: "too many frames before welcome" }, frame.id));
        return;
      }
      return void this.early.push(frame);
    }
    this.dispatch(frame);
  }

  /** Refuses a frame over FRAME_RATE (with its id, so no request waits); a socket that keeps on is closed. */
  private overFrameRate(data: RawData, isBinary: boolean): void {
    const { frameRate, frameBurst } = this.deps.limits;
    if (++this.frameRefusals > MAX_FRAME_REFUSALS) {
      this.log.warn({ frameRate }, "closing a socket that keeps sending over FRAME_RATE");
      this.closing ??= "refused";
      this.dispose();
      this.ws.close(CLOSE_POLICY, "over FRAME_RATE");
      return;
    }
    const parsed = isBinary ? undefined : parseClientFrame(rawText(data));
    const frame = parsed?.ok ? parsed.frame : undefined;
    const message = `too many frames: at most ${frameRate} per second, ${frameBurst} at once (FRAME_RATE, FRAME_BURST)`;
    const error: ErrorFrame = { type: "error", code: "rate_limited", message };
    if (frame?.id !== undefined) error.id = frame.id;
    if (frame && "rid" in frame && frame.rid !== undefined) error.rid = frame.rid;
    this.send(error);
  }

  private dispatch(frame: ClientFrame): void {
    if (frame.type === "ping" || frame.type === "hello") return;
    if (this.phase !== "ready") {
      this.send(withId({ type: "error", code: "unauthorized", message: "say hello first" }, frame.id));
      return;
    }
    if (this.expiry?.expired()) {
      this.send(withId({ type: "error", code: "unauthorized", message: TOKEN_EXPIRED }, frame.id));
      return;
    }
    if (frame.type === "follow" || frame.type === "unfollow") {
      this.threads.command(frame, this.principal);
      return;
    }
    if (frame.type === "unsubscribe") {
      this.ridChain.run(frame.rid, async () => {
        this.closeSub(frame.rid);
        this.send(withId({ type: "ok", rid: frame.rid }, frame.id));
      });
      return;
    }
    this.ridChain.run(frame.rid ?? "", () => this.command(frame));
  }

  private async hello(token: string | undefined, id: string | undefined): Promise<void> {
    if (this.phase !== "hello") {
      return this.send(withId({ type: "error", code: "bad_request", message: "hello was already said" }, id));
    }
    this.phase = "authenticating";
    try {
      this.principal = await this.deps.authenticate(token);
    } catch (err) {
      this.early.length = 0;
      return this.refuse(err instanceof ProtocolError ? err.message : "unauthorized", id);
    }
    if (this.phase !== "authenticating") return;
    clearTimeout(this.helloTimer);
    this.phase = "ready";
    this.log = this.log.child({ principal: describePrincipal(this.principal) });
    // A response-scoped token's `exp` is checked per command only: its open reads run to their
    // end. A thread has no end, so a thread-scoped token's socket closes at `exp` like an owner's.
    if (this.principal.kind !== "capability")
      this.expiry = new TokenExpiry(this.principal.expiresAt, () => this.tokenExpired(), this.deps.clock);
    this.send({ type: "welcome", protocol: PROTOCOL_VERSION, session: this.id, heartbeat_ms: this.deps.heartbeatMs });
    for (const f of this.early.splice(0)) this.dispatch(f);
  }

  private refuse(message: string, id?: string): void {
    if (this.phase === "closed" || this.phase === "ready") return;
    this.closing ??= "refused";
    this.send(withId({ type: "error", code: "unauthorized", message }, id));
    this.ws.close(CLOSE_UNAUTHORIZED, "unauthorized");
    this.dispose();
  }

  /** The owner (or thread-scoped) token expired on this open socket: say so, and close with 4401 (the client asks for a fresh one). */
  private tokenExpired(): void {
    if (this.phase === "closed") return;
    this.log.info("token expired: closing the socket");
    this.closing ??= "refused";
    this.send({ type: "error", code: "unauthorized", message: TOKEN_EXPIRED });
    this.ws.close(CLOSE_UNAUTHORIZED, "token expired");
    this.dispose();
  }

  private async command(frame: Exclude<ClientFrame, { type: "hello" | "ping" | "unsubscribe" | "follow" | "unfollow" }>): Promise<void> {
    const { responses } = this.deps;
    try {
      switch (frame.type) {
        case "generate":
          return await this.withSubscriptionSlot(frame.rid, (slot) => this.generate(frame, slot));
        case "subscribe":
          return await this.withSubscriptionSlot(frame.rid, async (slot) => {
            const record = await responses.authorizeRead(this.principal, frame.rid, frame.after);
            // `ended` lets a reader tell a finished answer from a running one before reading it.
            this.send(withId({ type: "ok", rid: frame.rid, ended: record.status === "ended" }, frame.id));
            await this.follow(frame.rid, frame.after, record, slot);
          });
        case "cancel":
          await responses.cancel(this.principal, frame.rid);
          return this.send(withId({ type: "ok", rid: frame.rid }, frame.id));
        case "steer":
          await responses.steer(this.principal, frame.rid, frame.text);
          return this.send(withId({ type: "ok", rid: frame.rid }, frame.id));
      }
    } catch (err) {
      const rid = "rid" in frame ? frame.rid : undefined;
      this.sendError(err, frame.id, rid);
    }
  }

  /**
   * Runs `task`, which ends in a new subscription, unless this socket already has as many as
   * allowed, or its client as many open streams (MAX_STREAMS_PER_OWNER / _PER_ADDRESS). The
   * stream's slot is taken now, before anything is created, and handed to the subscription.
   */
  private async withSubscriptionSlot(rid: string | undefined, task: (slot: StreamSlot) => Promise<void>): Promise<void> {
    const max = this.deps.limits.subscriptionsPerSocket;
    const replacing = rid !== undefined && this.subs.has(rid);
    if (!replacing && this.subs.size + this.pendingSubs >= max) {
      throw rateLimited(`at most ${max} subscriptions per socket (MAX_SUBSCRIPTIONS_PER_SOCKET); unsubscribe from one first`, rid);
    }
    const slot = this.deps.responses.streams.open(streamClient(this.principal, this.address), replacing, rid);
    this.pendingSubs++;
    try {
      await task(slot);
    } finally {
      this.pendingSubs--;
      if (!slot.adopted) slot.release();
    }
  }

  private async generate(frame: GenerateFrame, slot: StreamSlot): Promise<void> {
    const { rid, existing, record } = await this.deps.responses.generate(this.principal, frame, { session: this.id });
    const acceptedAt = existing ? undefined : performance.now();
    this.send(withId({ type: "accepted", rid, existing }, frame.id));
    await this.follow(rid, frame.after ?? 0, record, slot, acceptedAt);
  }

  /**
   * Starts (or restarts, from a new `after`) this socket's subscription to rid; `acceptedAt`
   * when this socket's generate created the response (its first token measures TTFT).
   */
  private async follow(
    rid: string,
    after: number,
    record: Parameters<Subscription["start"]>[0],
    slot: StreamSlot,
    acceptedAt?: number,
  ): Promise<void> {
    if (this.phase === "closed") return;
    this.closeSub(rid);
    const forget = () => {
      if (this.subs.get(rid) === sub) this.subs.delete(rid);
    };
    const sub = new Subscription(this.deps, rid, after, (e) => this.sendRaw(e.raw), forget, {
      transport: "ws",
      acceptedAt,
      onGone: () => {
        forget();
        this.sendError(goneError(rid), undefined, rid);
      },
      pace: () => this.pace(),
      slot,
    });
    this.subs.set(rid, sub);
    sub.start(record);
    if (await this.deps.responses.expireIfStale(record).catch(() => false)) {
      this.log.info({ rid }, "subscribed to a response that waited past QUEUE_TIMEOUT");
    }
  }

  private closeSub(rid: string): void {
    this.subs.get(rid)?.close();
    this.subs.delete(rid);
  }

  private sendError(err: unknown, id: string | undefined, rid: string | undefined): void {
    const e = toProtocolError(err, rid);
    if (e.code === "internal") this.log.error({ rid, err: String(err), stack: (err as Error).stack }, "command failed");
    const frame: ErrorFrame = { type: "error", code: e.code, message: e.message };
    if (id !== undefined) frame.id = id;
    if (rid !== undefined) frame.rid = rid;
    this.send(frame);
  }

  private send(frame: ServerFrame): void {
    if (frame.type === "error") this.deps.metrics.error(frame.code, "ws");
    this.sendRaw(JSON.stringify(frame));
  }

  private sendRaw(text: string): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    if (this.ws.bufferedAmount > this.deps.limits.maxSocketBuffer) {
      this.slowConsumer();
      return;
    }
    this.ws.send(text);
    this.deps.metrics.frameSent();
  }

  /** Replays wait while half of MAX_SOCKET_BUFFER waits for the client, until a quarter does. */
  private pace(): Promise<void> | undefined {
    const limit = this.deps.limits.maxSocketBuffer;
    if (this.ws.bufferedAmount <= limit / 2) return undefined;
    return drained(
      () => (this.phase === "closed" || this.ws.readyState !== this.ws.OPEN ? 0 : this.ws.bufferedAmount),
      limit / 4,
      () => this.slowConsumer(),
    );
  }

  /**
   * The client stopped reading and MAX_SOCKET_BUFFER bytes wait for it: stop sending and close
   * with 4008, so its memory here stays bounded and it can resume from its last seq. The close
   * frame queues behind the unread bytes; a peer that never reads them is cut off by `ws`
   * after its closing timeout.
   */
  private slowConsumer(): void {
    if (this.phase === "closed") return;
    this.log.warn({ buffered: this.ws.bufferedAmount, limit: this.deps.limits.maxSocketBuffer }, "slow consumer: closing the socket");
    this.closing ??= "slow_consumer";
    this.dispose();
    this.ws.close(CLOSE_SLOW_CONSUMER, "slow consumer");
    this.deps.onSlowConsumer?.("ws");
  }

  private dispose(): void {
    if (this.phase === "closed") return;
    this.phase = "closed";
    clearTimeout(this.helloTimer);
    this.expiry?.clear();
    this.threads.close();
    for (const sub of this.subs.values()) sub.close();
    this.subs.clear();
    this.deps.responses.generations.dropKey(`s:${this.id}`);
  }
}
