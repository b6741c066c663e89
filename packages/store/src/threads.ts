import { DeliverPolicy, type ConsumerMessages, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { THREADS_STREAM, storedTurnSchema, threadSubject, type StoredTurn } from "@unbroken/protocol";
import { StoreError } from "./errors.js";
import type { Log } from "./log.js";
import { isWrongLastSequence } from "./nats-errors.js";
import { readSubject } from "./stored-read.js";

/** A turn as stored, with its place in THREADS_STREAM. */
export interface ThreadTurn {
  turn: StoredTurn;
  streamSeq: number;
}

/** What a generate appends: the stored turn without what the thread's log decides (seq, the thread's creation). */
export type TurnDraft = Omit<StoredTurn, "v" | "seq" | "thread_created_at">;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Appends that lost to a concurrent one are tried again this many times before giving up. */
const MAX_APPEND_ATTEMPTS = 50;

/** A stored turn, or undefined for a message on the subject that is not one (logged). */
export function decodeTurn(data: Uint8Array, thread: string, log: Log): StoredTurn | undefined {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(data));
  } catch {
    log.error({ thread }, "a thread's subject holds a message that is not JSON");
    return undefined;
  }
  const parsed = storedTurnSchema.safeParse(value);
  if (parsed.success) return parsed.data;
  log.error({ thread, err: parsed.error.message }, "a thread's subject holds a message that is not a turn");
  return undefined;
}

/**
 * Every thread's turns (`llm.th.<thread>` in LLM_THREADS). A turn's seq is its place in the
 * thread, from 1 with no gaps: each append expects the subject's last stream sequence
 * (`Nats-Expected-Last-Subject-Sequence`), so two generates in one thread at once get two
 * turns one after the other, never the same seq. The msg id `turn:<rid>` makes a retried
 * append land once within the duplicate window.
 */
export class ThreadLogs {
  constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly log: Log,
  ) {}

  /** The thread's last turn (the stream leader's answer), or null when it has none stored. */
  async last(thread: string): Promise<ThreadTurn | null> {
    const msg = await this.jsm.streams.getMessage(THREADS_STREAM, { last_by_subj: threadSubject(thread) });
    if (!msg) return null;
    const turn = decodeTurn(msg.data, thread, this.log);
    if (!turn) throw new StoreError("conflict", `the last message of thread ${thread} is not a turn`);
    return { turn, streamSeq: msg.seq };
  }

  /**
   * Appends a turn after the thread's last one. `check` sees that last turn (null: the thread
   * is new, or expired) before each try and throws to refuse (another owner's thread, too many
   * turns); `seen`, a last turn just read, saves the first read. A turn already appended for
   * the draft's rid (a retry) is returned as it is.
   */
  async append(draft: TurnDraft, check: (last: ThreadTurn | null) => void, seen?: ThreadTurn | null): Promise<ThreadTurn> {
    const subject = threadSubject(draft.thread);
    for (let attempt = 0; attempt < MAX_APPEND_ATTEMPTS; attempt++) {
      // Under contention, spread the retries so they stop colliding.
      if (attempt > 2) await new Promise((r) => setTimeout(r, Math.random() * Math.min(100, 5 * attempt)));
      const last = attempt === 0 && seen !== undefined ? seen : await this.last(draft.thread);
      check(last);
      const turn: StoredTurn = {
        v: 1,
        ...draft,
        seq: (last?.turn.seq ?? 0) + 1,
        thread_created_at: last?.turn.thread_created_at ?? draft.created_at,
      };
      try {
        const ack = await this.js.publish(subject, encoder.encode(JSON.stringify(turn)), {
          msgID: `turn:${draft.rid}`,
          expect: { lastSubjectSequence: last?.streamSeq ?? 0 },
        });
        if (ack.duplicate) return await this.at(ack.seq, draft.thread);
        return { turn, streamSeq: ack.seq };
      } catch (err) {
        if (!isWrongLastSequence(err)) throw err;
      }
    }
    throw new StoreError("conflict", `thread ${draft.thread} kept changing under ${MAX_APPEND_ATTEMPTS} attempts`);
  }

  private async at(streamSeq: number, thread: string): Promise<ThreadTurn> {
    const msg = await this.jsm.streams.getMessage(THREADS_STREAM, { seq: streamSeq });
    const turn = msg ? decodeTurn(msg.data, thread, this.log) : undefined;
    if (!turn) throw new StoreError("conflict", `turn at ${streamSeq} of thread ${thread} cannot be read`);
    return { turn, streamSeq };
  }

  /** A follower of the thread's turns after seq `after` (not started). */
  follow(opts: TurnFollowOptions): TurnFollower {
    return new TurnFollower(this.js, opts, this.log);
  }

  /**
   * The thread's turns stored now with seq > after, at most `limit`, in order, and whether more
   * are stored. A throwaway consumer bounded by the pending count at its creation, as a
   * response's stored read: it never waits for turns yet to come.
   */
  async read(thread: string, after: number, limit: number): Promise<{ turns: StoredTurn[]; more: boolean }> {
    const turns: StoredTurn[] = [];
    let more = false;
    await readSubject(this.js, this.jsm, THREADS_STREAM, threadSubject(thread), (m) => {
      const turn = decodeTurn(m.data, thread, this.log);
      if (!turn || turn.seq <= after) return true;
      more = turns.length === limit;
      if (!more) turns.push(turn);
      return !more;
    });
    return { turns, more };
  }
}

export interface TurnFollowOptions {
  thread: string;
  /** Turns with seq ≤ after are skipped (the reader has them). */
  after: number;
  /** Called for each turn in order; a promise makes the follower wait for it (the reader's sink is full). */
  onTurn(turn: StoredTurn): Promise<void> | void;
  /** The follow failed for good (the stream is gone, the connection closed). */
  onError(err: unknown): void;
}

/**
 * Replays a thread's stored turns, then follows it live, on one ordered consumer: JetStream
 * delivers the subject's turns in order, and nats.js recreates the consumer from the last
 * delivered one after a reconnect or a missed heartbeat, so no turn is skipped or repeated.
 * Its owner stops it.
 */
export class TurnFollower {
  private messages: ConsumerMessages | undefined;
  private stopped = false;

  constructor(
    private readonly js: JetStreamClient,
    private readonly opts: TurnFollowOptions,
    private readonly log: Log,
  ) {}

  /** Follows until stopped; resolves then, and after calling `onError` when the follow fails. */
  async run(): Promise<void> {
    try {
      const consumer = await this.js.consumers.get(THREADS_STREAM, {
        filter_subjects: threadSubject(this.opts.thread),
        deliver_policy: DeliverPolicy.All,
      });
      if (this.stopped) return;
      this.messages = await consumer.consume({ max_messages: 64 });
      if (this.stopped) return void this.messages.stop();
      for await (const m of this.messages) {
        const turn = decodeTurn(m.data, this.opts.thread, this.log);
        if (turn && turn.seq > this.opts.after) await this.opts.onTurn(turn);
        if (this.stopped) break;
      }
    } catch (err) {
      if (this.stopped) return;
      this.log.warn({ thread: this.opts.thread, err: String(err) }, "thread follow failed");
      this.opts.onError(err);
    } finally {
      this.messages?.stop();
    }
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.messages?.stop();
  }
}
