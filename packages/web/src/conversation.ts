import type { ChatMessage, ResponseEventFrame, ResponseHandle, ThreadHandle, ThreadTurn, UnbrokenClient } from "@unbroken/client";
import { AnswerFold } from "./fold.js";
import { historyMessages } from "./history.js";
import { Limiter } from "./limit.js";
import type { Answer, Part } from "./model.js";
import { AnswerView, questionView, stickToBottom, type AnswerState } from "./view.js";

/** Answers replayed at once when a thread opens: a socket holds MAX_SUBSCRIPTIONS_PER_SOCKET. */
const OPEN_AT_ONCE = 8;
/** Waits before following again a thread that is not there (yet): someone may start it. */
const RETRY_MS = [1000, 2000, 5000, 10_000, 30_000];
/** A follow refused with these: no such thread for us yet. The page shows it empty, quietly. */
const NOT_THERE = new Set(["not_found", "forbidden"]);

/** One turn of the thread on the page: its new messages, then its answer. */
export interface Exchange {
  rid: string;
  /** Its turn's seq in the thread; undefined until the turn came (a generate of this page). */
  seq: number | undefined;
  /** The turn's new messages: a question, or the results of the previous answer's calls. */
  messages: ChatMessage[];
  answer: Answer;
  view: AnswerView;
  /** Its elements on the page, in order: its questions, then the answer. */
  els: HTMLElement[];
  fold: AnswerFold;
  /** The answer's stream: this page's generate, or the turn opened (live or replayed). */
  handle?: ResponseHandle;
}

export interface ConversationHooks {
  /** Something the page's controls depend on changed. */
  changed(): void;
  /** An answer came to its end (or failed for good), live or replayed. */
  ended(conversation: Conversation, ex: Exchange): void;
  /** Any answer event arrived (the connection indicator counts the catch-up). */
  event(): void;
  say(text: string): void;
}

export function endState(reason: string): AnswerState {
  if (reason === "cancelled") return "stopped";
  if (reason === "length") return "length";
  if (reason === "tool_calls") return "called";
  return reason === "stop" ? "done" : "error";
}

/**
 * One thread on the page. The thread is the truth: its turns (replayed, then live) are the
 * conversation, each with its answer opened from the response's log. A generate of this page
 * shows at once and takes its place when its turn comes back through the follow: each rid
 * shows once. Answers opened from a `#r=` link are shown too, outside the thread.
 */
export class Conversation {
  readonly #exchanges: Exchange[] = [];
  readonly #byRid = new Map<string, Exchange>();
  /** The turns' tool results by call id: a card may be replayed after its result came. */
  readonly #results = new Map<string, string>();
  readonly #opener = new Limiter(OPEN_AT_ONCE);
  #thread: ThreadHandle | undefined;
  #lastSeq = 0;
  #retries = 0;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  /** A generate of this page came while a follow was on its way: that follow refused, retry at once. */
  #refollow = false;
  #closed = false;

  constructor(
    private readonly client: UnbrokenClient,
    readonly id: string,
    private readonly log: HTMLElement,
    private readonly hooks: ConversationHooks,
  ) {}

  get exchanges(): readonly Exchange[] {
    return this.#exchanges;
  }

  get(rid: string): Exchange | undefined {
    return this.#byRid.get(rid);
  }

  /**
   * Follows the thread: its turns after the last one seen, then live (the client follows
   * again across reconnects). A follow refused, now or later, is tried again after a while:
   * an unknown thread may be started by this page's first generate, or by another device.
   */
  follow(): void {
    if (this.#closed || this.#thread !== undefined) return;
    clearTimeout(this.#retryTimer);
    this.#refollow = false;
    const thread = this.client.thread(this.id, { after: this.#lastSeq });
    this.#thread = thread;
    void (async () => {
      try {
        for await (const turn of thread) this.#turn(turn);
      } catch (err) {
        this.#followFailed(thread, err as { code?: string; message?: string });
      }
    })();
  }

  #followFailed(thread: ThreadHandle, err: { code?: string; message?: string }): void {
    if (this.#thread !== thread || this.#closed) return;
    this.#thread = undefined;
    if (!NOT_THERE.has(err.code ?? "")) this.hooks.say(`Could not follow this thread: ${err.code ?? "error"}: ${err.message ?? ""}`);
    // Refused before this page's generate made the thread: at once (the client waits for its accept).
    const wait = this.#refollow ? 0 : RETRY_MS[Math.min(this.#retries++, RETRY_MS.length - 1)];
    this.#retryTimer = setTimeout(() => this.follow(), wait);
  }

  #turn(turn: ThreadTurn): void {
    if (this.#closed || turn.seq <= this.#lastSeq) return;
    this.#lastSeq = turn.seq;
    this.#retries = 0;
    for (const m of turn.messages) if (m.role === "tool") this.#results.set(m.tool_call_id, m.content);
    let ex = this.#byRid.get(turn.rid);
    if (ex === undefined) {
      ex = this.#create(turn.rid, turn.messages, turn.seq);
      this.#place(ex);
      this.#openLater(ex);
    } else {
      // This page's own generate (shown already), or a `#r=` answer that is a turn after all.
      if (ex.answer.shared) this.#addQuestions(ex, turn.messages);
      ex.seq = turn.seq;
      ex.messages = [...turn.messages];
      this.#place(ex);
    }
    this.#fillResults();
    this.hooks.changed();
  }

  /** Shows this page's generate at once; its turn, when it comes, takes it as it is. */
  addOwn(rid: string, messages: ChatMessage[], handle: ResponseHandle): Exchange {
    for (const m of messages) if (m.role === "tool") this.#results.set(m.tool_call_id, m.content);
    const ex = this.#create(rid, messages, undefined);
    this.#place(ex);
    this.#attach(ex, handle);
    // The client sends a follow only once this generate is accepted: the thread exists then.
    if (this.#thread === undefined) this.follow();
    else this.#refollow = true; // a follow on its way may be refused, having come before it
    return ex;
  }

  /** `#r=<rid>`: replays that response and follows it live, below the thread. */
  showShared(rid: string): void {
    const known = this.#byRid.get(rid);
    if (known) {
      known.view.el.scrollIntoView({ block: "nearest" });
      return;
    }
    const ex = this.#create(rid, [], undefined, true);
    this.#place(ex);
    this.#attach(ex, this.client.subscribe(rid, { after: 0 }));
  }

  /** The answer Stop and Steer act on: the last one on the page, while it runs. */
  active(): Exchange | undefined {
    const last = this.#exchanges.at(-1);
    return last?.handle !== undefined && last.answer.end === undefined ? last : undefined;
  }

  /** How many answers in a row, since the last question, ended calling tools. */
  toolRounds(): number {
    let n = 0;
    for (let i = this.#exchanges.length - 1; i >= 0; i--) {
      const ex = this.#exchanges[i] as Exchange;
      if (ex.answer.shared) continue;
      if (ex.answer.end?.reason === "tool_calls") n++;
      if (ex.messages.some((m) => m.role === "user")) break;
    }
    return n;
  }

  /** The messages of a generate that appends `next` to this thread. */
  history(next: ChatMessage[]): ChatMessage[] {
    return historyMessages(
      this.#exchanges.filter((ex) => !ex.answer.shared),
      next,
    );
  }

  /** Leaves the thread: stops following it and its answers (they go on in the log). */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#opener.clear();
    void this.#thread?.close().catch(() => undefined);
    this.#thread = undefined;
    for (const ex of this.#exchanges) if (ex.handle && !ex.handle.ended) void ex.handle.unsubscribe().catch(() => undefined);
  }

  #create(rid: string, messages: readonly ChatMessage[], seq: number | undefined, shared = false): Exchange {
    const answer: Answer = { rid, parts: [], seq: 0, ...(shared ? { shared: true } : {}) };
    const view = new AnswerView(answer);
    view.state("waiting");
    const ex: Exchange = {
      rid,
      seq,
      messages: [...messages],
      answer,
      view,
      els: [...questions(messages), view.el],
      fold: new AnswerFold(answer.parts),
    };
    this.#exchanges.push(ex);
    this.#byRid.set(rid, ex);
    return ex;
  }

  #addQuestions(ex: Exchange, messages: readonly ChatMessage[]): void {
    const els = questions(messages);
    for (const el of els) ex.view.el.before(el);
    ex.els.unshift(...els);
    delete ex.answer.shared;
  }

  /**
   * Puts the exchange in thread order, on the page too: after every turn with a lower seq,
   * before the ones with a higher seq and those that have none yet (this page's generates).
   */
  #place(ex: Exchange): void {
    const others = this.#exchanges.filter((o) => o !== ex);
    let at = ex.seq === undefined ? -1 : others.findIndex((o) => o.seq === undefined || o.seq > (ex.seq as number));
    if (at < 0) at = others.length;
    const moved = this.#exchanges.indexOf(ex) !== at || !ex.els.every((el) => el.isConnected);
    others.splice(at, 0, ex);
    this.#exchanges.splice(0, this.#exchanges.length, ...others);
    if (!moved) return;
    const anchor = others[at + 1]?.els[0] ?? null;
    stickToBottom(this.log, () => {
      for (const el of ex.els) this.log.insertBefore(el, anchor);
    });
  }

  /** Opens a turn's answer, a few at a time: live while it runs, replayed when it is over. */
  #openLater(ex: Exchange): void {
    this.#opener.run(() => {
      if (this.#closed || ex.handle !== undefined) return Promise.resolve();
      const handle = this.#thread?.open(ex.rid) ?? this.client.subscribe(ex.rid, { after: 0 });
      this.#attach(ex, handle);
      return handle.done;
    });
  }

  #attach(ex: Exchange, handle: ResponseHandle): void {
    ex.handle = handle;
    handle.onEvent((frame) => this.#event(ex, frame));
    handle.done.catch((err: { code?: string; message?: string }) => this.#failed(ex, err)).finally(() => this.hooks.changed());
    this.hooks.changed();
  }

  #event(ex: Exchange, frame: ResponseEventFrame): void {
    const { answer, view } = ex;
    if (this.#closed || frame.seq <= answer.seq) return;
    this.hooks.event();
    const ev = frame.event;
    stickToBottom(this.log, () => {
      const changed = ex.fold.apply(ev);
      for (const i of changed) {
        const part = answer.parts[i] as Part;
        if (part.kind === "tool") part.result ??= this.#results.get(part.id);
        view.show(i, part);
      }
      if (changed.length > 0 && view.el.dataset.state === "waiting") view.state("streaming");
      if (ev.kind === "start") {
        view.state("streaming");
      } else if (ev.kind === "end") {
        const detail = ev.error ? `${ev.error.code}: ${ev.error.message}` : undefined;
        answer.end = detail === undefined ? { reason: ev.reason } : { reason: ev.reason, detail };
        view.state(endState(ev.reason), detail);
      }
      answer.seq = frame.seq;
      view.seq(frame.seq);
    });
    if (ev.kind === "end") this.hooks.ended(this, ex);
  }

  #failed(ex: Exchange, err: { code?: string; message?: string }): void {
    if (this.#closed || err.code === "closed" || ex.answer.end !== undefined) return;
    if (err.code === "gone") {
      ex.answer.end = { reason: "gone" };
      ex.view.state("expired");
    } else {
      const detail = `${err.code ?? "error"}: ${err.message ?? String(err)}`;
      ex.answer.end = { reason: "error", detail };
      ex.view.state("error", detail);
    }
    this.hooks.ended(this, ex);
  }

  /** Shows on their cards the results the turns brought (a call answered by another page). */
  #fillResults(): void {
    for (const ex of this.#exchanges) {
      ex.answer.parts.forEach((part, i) => {
        if (part.kind !== "tool" || part.result !== undefined) return;
        const result = this.#results.get(part.id);
        if (result === undefined) return;
        part.result = result;
        ex.view.show(i, part);
      });
    }
  }
}

/** The question bubbles of a turn; its tool results show on the cards instead. */
function questions(messages: readonly ChatMessage[]): HTMLElement[] {
  return messages.flatMap((m) => (m.role === "user" ? [questionView(m.content)] : []));
}
