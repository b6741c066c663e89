import type { ErrorFrame, FollowFrame, ServerFrame, UnfollowFrame } from "@unbroken/protocol";
import { toProtocolError, type TurnFollower } from "@unbroken/store";
import type { Logger } from "pino";
import type { Principal } from "./auth.js";
import { streamClient, type StreamSlot } from "./budgets.js";
import { withId } from "./frame-util.js";
import { KeyedChain } from "./keyed-chain.js";
import { rateLimited } from "./limits.js";
import type { ResponseService } from "./responses.js";
import { turnFrame } from "./threads.js";

export interface ThreadFollowsDeps {
  responses: ResponseService;
  log: Logger;
  /** Follows one socket may hold (MAX_SUBSCRIPTIONS_PER_SOCKET, counted apart from its subscriptions). */
  max: number;
  /** The client's address (MAX_STREAMS_PER_ADDRESS). */
  address: string;
  send(frame: ServerFrame): void;
  /** A promise while the socket's buffer is full: the follower waits for it. */
  pace(): Promise<void> | undefined;
}

interface Follow {
  follower: TurnFollower;
  slot: StreamSlot;
}

/**
 * One socket's `follow`s: for each thread, one follower that replays its turns after `after`
 * and then follows it live, sending each as a `turn` frame. Each follow holds a stream slot
 * (MAX_STREAMS_PER_OWNER / _PER_ADDRESS) until `unfollow`, a new `follow` of the same thread,
 * or the socket's close. Owned by the socket's Session.
 */
export class ThreadFollows {
  private readonly follows = new Map<string, Follow>();
  private readonly chain = new KeyedChain();
  private pending = 0;
  private closed = false;

  constructor(private readonly deps: ThreadFollowsDeps) {}

  get size(): number {
    return this.follows.size;
  }

  command(frame: FollowFrame | UnfollowFrame, principal: Principal): void {
    this.chain.run(frame.thread, async () => {
      try {
        if (frame.type === "follow") await this.follow(frame, principal);
        else this.unfollow(frame);
      } catch (err) {
        this.sendError(err, frame.id, frame.thread);
      }
    });
  }

  private unfollow(frame: UnfollowFrame): void {
    this.stop(frame.thread);
    this.deps.send(withId({ type: "ok", thread: frame.thread }, frame.id));
  }

  private async follow(frame: FollowFrame, principal: Principal): Promise<void> {
    const { thread, after } = frame;
    const replacing = this.follows.has(thread);
    if (!replacing && this.follows.size + this.pending >= this.deps.max) {
      throw rateLimited(`at most ${this.deps.max} follows per socket (MAX_SUBSCRIPTIONS_PER_SOCKET); unfollow one first`);
    }
    const slot = this.deps.responses.streams.open(streamClient(principal, this.deps.address), replacing);
    this.pending++;
    let last: number;
    try {
      last = (await this.deps.responses.threads.authorizeRead(principal, thread)).turn.seq;
    } catch (err) {
      slot.release();
      throw err;
    } finally {
      this.pending--;
    }
    if (this.closed) return slot.release();
    this.stop(thread);
    // `last` tells the follower when it has every turn there was (which one is the last).
    this.deps.send(withId({ type: "ok", thread, last }, frame.id));
    this.start(thread, after, slot);
  }

  private start(thread: string, after: number, slot: StreamSlot): void {
    const follower = this.deps.responses.threads.follow({
      thread,
      after,
      onTurn: (turn) => {
        this.deps.send(turnFrame(turn));
        return this.deps.pace();
      },
      onError: (err) => {
        if (this.follows.get(thread)?.follower !== follower) return;
        this.stop(thread);
        this.sendError(err, undefined, thread);
      },
    });
    this.follows.set(thread, { follower, slot });
    this.deps.log.debug({ thread, after }, "following a thread");
    void follower.run();
  }

  private stop(thread: string): void {
    const f = this.follows.get(thread);
    if (!f) return;
    this.follows.delete(thread);
    f.follower.stop();
    f.slot.release();
  }

  private sendError(err: unknown, id: string | undefined, thread: string): void {
    const e = toProtocolError(err);
    if (e.code === "internal") this.deps.log.error({ thread, err: String(err) }, "thread command failed");
    const frame: ErrorFrame = { type: "error", code: e.code, message: e.message, thread };
    this.deps.send(withId(frame, id));
  }

  /** The socket closed: every follower stops and gives its slot back. */
  close(): void {
    this.closed = true;
    for (const thread of [...this.follows.keys()]) this.stop(thread);
  }
}
