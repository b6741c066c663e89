import {
  ProtocolError,
  newMessagesOf,
  wholeSeconds,
  type GenerateFrame,
  type ResponseRecord,
  type StoredTurn,
  type TurnFrame,
} from "@unbroken/protocol";
import { toProtocolError, type Broker, type ThreadTurn, type TurnFollower, type TurnFollowOptions } from "@unbroken/store";
import type { Logger } from "pino";
import type { Principal, ThreadReader } from "./auth.js";
import type { EdgeLimits } from "./config.js";

export interface ThreadServiceOptions {
  /** Auth on: an unknown thread answers like another owner's (forbidden), never not_found. */
  authOn: boolean;
  limits: EdgeLimits;
}

const HIDDEN = "no thread with this id is accessible to you";

/** A stored turn as the wire shows it: no owner, times in whole seconds. */
export function turnFrame(t: StoredTurn): TurnFrame {
  return { type: "turn", thread: t.thread, seq: t.seq, rid: t.rid, messages: t.messages, created_at: wholeSeconds(t.created_at) };
}

/** A generate's place in its thread, checked before its response is created and appended after. */
export interface PendingTurn {
  thread: string;
  owner: string;
  messages: StoredTurn["messages"];
  /** The thread's last turn when it was checked (saves the append its first read). */
  seen?: ThreadTurn | null;
}

/**
 * Threads on a client's behalf: who may append to one and read it, the limits per thread, and
 * the turns as the wire shows them. All state lives in the thread's log (store's ThreadLogs):
 * its last turn says who owns it, how many turns it holds and when it began.
 */
export class ThreadService {
  constructor(
    private readonly broker: Broker,
    private readonly opts: ThreadServiceOptions,
    private readonly log: Logger,
  ) {}

  /**
   * Checks that `owner` may append a turn to the generate's thread (a new thread, or its own)
   * and that the turn fits (MAX_TURN_BYTES, MAX_TURNS_PER_THREAD); undefined without a thread.
   */
  async admit(owner: string, frame: GenerateFrame): Promise<PendingTurn | undefined> {
    const thread = frame.thread;
    if (thread === undefined) return undefined;
    const messages = newMessagesOf(frame);
    const bytes = Buffer.byteLength(JSON.stringify(messages));
    const max = this.opts.limits.maxTurnBytes;
    if (bytes > max) {
      throw new ProtocolError("too_large", `this turn's new messages are ${bytes} bytes as JSON; at most ${max} (MAX_TURN_BYTES)`);
    }
    try {
      const seen = await this.broker.threads.last(thread);
      this.checkAppend(owner, thread, seen);
      return { thread, owner, messages, seen };
    } catch (err) {
      throw toProtocolError(err);
    }
  }

  /**
   * Appends the turn of the response just created (before its request is queued, so a
   * follower sees the turn before any event of its answer exists). Checked again against the
   * last turn on each try: another generate may have appended meanwhile.
   */
  async append(pending: PendingTurn, record: ResponseRecord): Promise<void> {
    const { thread, owner, messages, seen } = pending;
    const draft = { thread, rid: record.rid, owner, messages, created_at: record.created_at };
    const { turn } = await this.broker.threads.append(draft, (last) => this.checkAppend(owner, thread, last), seen);
    this.log.info({ rid: record.rid, thread, turn: turn.seq }, "turn appended");
  }

  private checkAppend(owner: string, thread: string, last: ThreadTurn | null): void {
    if (last && last.turn.owner !== owner) throw new ProtocolError("forbidden", "this thread is taken");
    const max = this.opts.limits.turnsPerThread;
    if (last && last.turn.seq >= max) {
      throw new ProtocolError(
        "too_large",
        `thread ${thread} holds ${max} turns, the most one may (MAX_TURNS_PER_THREAD); start a new thread`,
      );
    }
  }

  /**
   * The thread's last turn if `principal` may read it; otherwise the error that reveals
   * nothing: another owner's thread and an unknown one answer the same `forbidden` (with auth
   * off, `not_found`, as for responses). A thread-scoped token reads its one thread, if it was
   * made for the thread that now has this id (its `created_at`).
   */
  async authorizeRead(principal: Principal, thread: string): Promise<ThreadTurn> {
    if (principal.kind === "capability") throw new ProtocolError("forbidden", HIDDEN);
    if (principal.kind === "thread") {
      if (principal.thread !== thread) throw new ProtocolError("forbidden", HIDDEN);
      if (Date.now() >= principal.expiresAt) throw new ProtocolError("unauthorized", "the token has expired");
    }
    if (!this.broker.connected) throw new ProtocolError("unavailable", "the message broker cannot be reached; retry");
    let last: ThreadTurn | null;
    try {
      last = await this.broker.threads.last(thread);
    } catch (err) {
      throw toProtocolError(err);
    }
    if (last && this.mayRead(principal, last.turn)) return last;
    if (this.opts.authOn || last) throw new ProtocolError("forbidden", HIDDEN);
    throw new ProtocolError("not_found", "no thread with this id");
  }

  private mayRead(principal: Principal, last: StoredTurn): boolean {
    if (principal.kind === "owner") return principal.owner === last.owner;
    return principal.kind === "thread" && wholeSeconds(last.thread_created_at) === principal.createdAt;
  }

  /**
   * Whether a thread-scoped token may read `record`: a response its thread started, since the
   * thread that now has this id began (a thread created again after RETENTION opens nothing
   * of the earlier one).
   */
  async readerMayRead(principal: ThreadReader, record: ResponseRecord): Promise<boolean> {
    if (record.thread !== principal.thread) return false;
    const last = await this.broker.threads.last(principal.thread);
    if (!last || wholeSeconds(last.turn.thread_created_at) !== principal.createdAt) return false;
    return record.owner === last.turn.owner && Date.parse(record.created_at) >= Date.parse(last.turn.thread_created_at);
  }

  /** A follower of the thread's turns after `after` (not started; its owner runs and stops it). */
  follow(opts: TurnFollowOptions): TurnFollower {
    return this.broker.threads.follow(opts);
  }

  /** A page of the thread's turns after `after` (for `GET /v1/threads/{thread}/turns`). */
  async page(thread: string, after: number, limit: number): Promise<{ turns: TurnFrame[]; more: boolean }> {
    try {
      const { turns, more } = await this.broker.threads.read(thread, after, limit);
      return { turns: turns.map(turnFrame), more };
    } catch (err) {
      throw toProtocolError(err);
    }
  }
}
