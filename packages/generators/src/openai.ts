import type { Usage } from "@unbroken/protocol";
import type { Logger } from "pino";
import {
  GeneratorError,
  resumedTokens,
  type GenerationJob,
  type GenerationOutput,
  type GenerationSession,
  type TokenGenerator,
} from "./generator.js";
import { UpstreamError, backoff, closedError, sleep } from "./openai-errors.js";
import { Conversation, resumedConversation, wireMessages } from "./openai-messages.js";
import { type LoggedParts, loggedParts } from "./openai-resume.js";
import { StreamAborted, chatBody, streamChat, type ChatEvent } from "./openai-stream.js";
import { ToolCalls } from "./openai-tool-calls.js";

export interface OpenAIOptions {
  /** The API root, e.g. "http://127.0.0.1:8000/v1"; requests go to `{baseUrl}/chat/completions`. */
  baseUrl: string;
  /** Sent as `Authorization: Bearer …` when given. */
  apiKey?: string;
  /** The model asked of the server, and the name written in `start`. */
  model: string;
  log: Logger;
  /**
   * Attempts after the first for a request that failed before writing anything (refused
   * connection, 5xx, 429), and continuations after streams cut mid-answer. Default 3.
   */
  maxRetries?: number;
  /** For tests and custom transports; default the global fetch. */
  fetch?: typeof fetch;
  /** No bytes from the upstream for this long ends the response with `upstream_timeout`. Default 60 s. */
  idleTimeoutMs?: number;
  /** First backoff delay between attempts (doubling, capped at 10 s). Default 500 ms. */
  retryDelayMs?: number;
}

interface Settings {
  url: string;
  apiKey: string | undefined;
  model: string;
  maxRetries: number;
  idleTimeoutMs: number;
  retryDelayMs: number;
  fetch: typeof fetch;
  closing: AbortSignal;
}

/**
 * A bridge to any OpenAI-compatible streaming endpoint (vLLM, llama.cpp server, Ollama,
 * OpenAI): `POST {baseUrl}/chat/completions` with `stream: true`. Steering and continuing
 * after a cut stream are done with continuation requests (see Conversation), since the
 * HTTP API cannot change a running generation.
 */
export class OpenAIGenerator implements TokenGenerator {
  readonly model: string;
  private readonly settings: Settings;
  private readonly log: Logger;
  private readonly closing = new AbortController();

  constructor(opts: OpenAIOptions) {
    let url: URL;
    try {
      url = new URL(`${opts.baseUrl.replace(/\/+$/, "")}/chat/completions`);
    } catch (err) {
      throw new Error(`invalid OpenAI base URL ${JSON.stringify(opts.baseUrl)}`, { cause: err });
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new Error(`invalid OpenAI base URL ${JSON.stringify(opts.baseUrl)}: not http(s)`);
    }
    this.model = opts.model;
    this.log = opts.log;
    this.settings = {
      url: url.href,
      apiKey: opts.apiKey || undefined,
      model: opts.model,
      maxRetries: Math.max(0, opts.maxRetries ?? 3),
      idleTimeoutMs: opts.idleTimeoutMs ?? 60_000,
      retryDelayMs: opts.retryDelayMs ?? 500,
      fetch: opts.fetch ?? globalThis.fetch,
      closing: this.closing.signal,
    };
  }

  start(job: GenerationJob): GenerationSession {
    return new OpenAISession(job, this.settings, this.log.child({ rid: job.rid, generator: "openai" }));
  }

  /** Closes every upstream request still open; their responses end with `generator_closed`. */
  async close(): Promise<void> {
    this.closing.abort();
  }
}

/** How one upstream request ended. `wrote`: it yielded output, so it must not be sent again. */
type Outcome =
  | { kind: "finished"; reason: "stop" | "length" | "tool_calls" }
  | { kind: "steered" }
  | { kind: "cancelled" }
  | { kind: "failed"; error: UpstreamError; wrote: boolean };

const STEER = Symbol("steer");

/** One request's own count, for when it reports no usage: one token per streamed piece. */
interface Current {
  chunks: number;
  reasoningChunks: number;
  reported: Usage | undefined;
}

class OpenAISession implements GenerationSession {
  private readonly convo: Conversation;
  private readonly limit: number | undefined;
  private readonly pending: string[] = [];
  private wake: (() => void) | undefined;
  private finished = false;
  /** Text written since the last break (steer or cut): the partial answer a continuation carries. */
  private segment = "";
  /** Usage of the requests that have ended. */
  private readonly spent: Required<Usage> = { prompt_tokens: 0, completion_tokens: 0, reasoning_tokens: 0 };
  private current: Current = { chunks: 0, reasoningChunks: 0, reported: undefined };
  /** The resumed log's reasoning and calls (see resumed()). */
  private readonly logged: LoggedParts;
  /** Whether this response has reasoning (logged, or written here). */
  private reasoned: boolean;
  /** Set for a continuation after a cut or a takeover: the reasoning part stays as written. */
  private skipReasoning = false;
  /** Calls completed in this response, and whether one is being written now. */
  private completedCalls: number;
  private calling = false;

  constructor(
    private readonly job: GenerationJob,
    private readonly s: Settings,
    private readonly log: Logger,
  ) {
    const { resume } = job;
    this.convo = resume ? resumedConversation(job.body, resume, job.steers) : new Conversation(job.body, job.steers);
    this.limit = job.body.params?.max_tokens;
    // The earlier worker's output counts one completion token per chunk, as unreported usage
    // does; its prompt tokens are unknown here.
    this.spent.completion_tokens = resumedTokens(resume);
    this.spent.reasoning_tokens = resume?.reasoningTokens ?? 0;
    this.logged = loggedParts(resume);
    this.reasoned = this.logged.reasoning;
    this.completedCalls = this.logged.completed;
  }

  /**
   * False once the answer has begun a tool call: a call is never cut to apply a steer, and a
   * model that calls a tool ends its turn with `tool_calls`, after which the upstream takes
   * nothing but the calls' results (an assistant message with calls followed by a user
   * message is refused), so no continuation could carry the instruction.
   */
  steer(text: string): boolean {
    if (this.finished || this.job.signal.aborted) return false;
    if (this.calling || this.completedCalls > 0) return false;
    // With max_tokens spent, nothing can follow the instruction.
    if (this.limit !== undefined && this.usage().completion_tokens >= this.limit) return false;
    this.pending.push(text);
    this.wake?.();
    return true;
  }

  /**
   * Usage summed over every upstream request of this response (the first, and continuations
   * after steers and cuts): each request's prompt is paid for again, so its prompt tokens are
   * added. A request that reported no usage (a server ignoring `stream_options.include_usage`,
   * or one aborted by a steer before its usage chunk) counts one completion token per streamed
   * piece (text, reasoning, argument) and 0 prompt tokens: the prompt size is unknown without
   * the server's tokenizer. Reasoning tokens come from `completion_tokens_details`, else one
   * per reasoning piece (vLLM reports no details).
   */
  usage(): Usage {
    const r = this.current.reported;
    const reasoning = this.spent.reasoning_tokens + (r?.reasoning_tokens ?? this.current.reasoningChunks);
    return {
      prompt_tokens: this.spent.prompt_tokens + (r?.prompt_tokens ?? 0),
      completion_tokens: this.spent.completion_tokens + (r?.completion_tokens ?? this.current.chunks),
      ...(reasoning > 0 ? { reasoning_tokens: reasoning } : {}),
    };
  }

  async *[Symbol.asyncIterator](): AsyncIterator<GenerationOutput> {
    try {
      yield* this.run();
    } finally {
      this.finished = true;
    }
  }

  private async *run(): AsyncGenerator<GenerationOutput, void> {
    if (this.job.resume && (yield* this.resumed())) return;
    let failures = 0; // consecutive attempts that failed before writing anything
    let continuations = 0; // continuations after streams cut mid-answer, for the whole response
    for (;;) {
      if (this.job.signal.aborted) return;
      if (this.s.closing.aborted) throw closedError();
      const steer = this.pending.shift();
      if (steer !== undefined) {
        this.convo.steer(this.segment, steer);
        this.segment = "";
        this.skipReasoning = false; // the model thinks anew about the instruction
        yield { type: "steer", text: steer };
        continue;
      }
      const spent = this.usage().completion_tokens;
      if (this.limit !== undefined && spent >= this.limit) return yield* this.done("length");
      const out = yield* this.request(this.limit === undefined ? undefined : this.limit - spent);
      this.commit();
      if (out.kind === "cancelled") return;
      if (out.kind === "steered") continue;
      if (out.kind === "finished") {
        // A steer that came as the answer ended goes on (never after calls: steer() refuses).
        if (this.pending.length > 0 && out.reason !== "tool_calls") continue;
        return yield* this.done(out.reason);
      }
      const { error, wrote } = out;
      if (wrote) {
        failures = 0;
        // Output of this request was written: sending it again would duplicate it. A cut
        // stream is continued like a steer without an instruction, unless calls are complete:
        // then the answer is whole (a model writes nothing after its calls).
        if (error.code === "upstream_interrupted" && this.completedCalls > 0) return yield* this.done("tool_calls");
        if (error.code !== "upstream_interrupted" || continuations >= this.s.maxRetries) throw error;
        continuations++;
        this.log.warn({ code: error.code, continuations }, "upstream stream cut mid-answer; continuing it");
        this.convo.cut(this.segment);
        this.segment = "";
        this.skipReasoning = this.reasoned;
        continue;
      }
      if (!error.retryable || failures >= this.s.maxRetries) throw error;
      failures++;
      const delay = error.retryAfterMs ?? backoff(this.s.retryDelayMs, failures);
      this.log.warn(
        { code: error.code, err: error.message, detail: error.detail, attempt: failures, delayMs: Math.round(delay) },
        "upstream request failed; retrying",
      );
      await sleep(delay, this.job.signal, this.s.closing);
    }
  }

  /**
   * The start of a response another worker began. The upstream cannot continue half-written
   * arguments, so a call the log left open is dropped (`worker_lost`); if the log has complete
   * calls the answer is whole and ends with `tool_calls` without a request (true); otherwise
   * the upstream is asked to continue the text, and makes a dropped call again under a new id.
   * Its reasoning is not written again: the logged reasoning part stays as it is.
   */
  private *resumed(): Generator<GenerationOutput, boolean> {
    for (const id of this.logged.open) yield { type: "tool_dropped", id, reason: "worker_lost" };
    if (this.completedCalls > 0) {
      yield* this.done("tool_calls");
      return true;
    }
    this.skipReasoning = this.reasoned;
    return false;
  }

  /** One upstream request for the conversation so far; yields what it writes. */
  private async *request(maxTokens: number | undefined): AsyncGenerator<GenerationOutput, Outcome> {
    const ac = new AbortController();
    const abort = (): void => ac.abort();
    this.job.signal.addEventListener("abort", abort, { once: true });
    this.s.closing.addEventListener("abort", abort, { once: true });
    if (this.job.signal.aborted || this.s.closing.aborted) ac.abort();
    const { body: req } = this.job;
    const body = chatBody(this.s.model, wireMessages(this.convo.messages()), req.params ?? {}, maxTokens, req);
    this.log.debug({ messages: body.messages.length, max_tokens: maxTokens }, "upstream request");
    const it = streamChat({
      url: this.s.url,
      apiKey: this.s.apiKey,
      body,
      signal: ac.signal,
      idleTimeoutMs: this.s.idleTimeoutMs,
      fetch: this.s.fetch,
    });
    const calls = new ToolCalls(this.logged.ids);
    const wrote = { any: false };
    let finish: string | undefined;
    try {
      for (;;) {
        // A steer takes effect at a chunk boundary: stop the request, the loop continues it.
        // (steer() refuses while a call is being written, so a call is never cut here.)
        if (this.pending.length > 0 && !calls.isOpen) return { kind: "steered" };
        const next = it.next();
        const r = calls.isOpen
          ? await next
          : await Promise.race([next, new Promise<typeof STEER>((resolve) => (this.wake = () => resolve(STEER)))]);
        this.wake = undefined;
        if (r === STEER) {
          next.catch(() => {}); // it rejects with StreamAborted once the request is aborted below
          return { kind: "steered" };
        }
        if (r.done) break;
        const ev: ChatEvent = r.value;
        if (ev.kind === "finish") {
          finish = ev.reason;
          // The finish chunk completes the open call, or (max_tokens) leaves it unfinished.
          yield* this.emit(finish === "length" ? calls.drop("length") : calls.close(), wrote);
        } else if (ev.kind === "usage") this.current.reported = ev.usage;
        else if (ev.kind === "done") {
          finish ??= "stop"; // [DONE] without a finish_reason: the server considers it complete
          yield* this.emit(calls.close(), wrote);
          break;
        } else {
          yield* this.emit(this.piece(ev, calls), wrote);
          // A call counts from its first piece, announced or not: steer() refuses from then on.
          this.calling = calls.isOpen;
          if (this.job.signal.aborted) return { kind: "cancelled" };
        }
      }
      if (finish !== undefined) return { kind: "finished", reason: this.reason(finish) };
      const error = new UpstreamError("upstream_interrupted", "the upstream stream ended before the answer finished", { retryable: true });
      yield* this.emit(calls.drop(error.code), wrote);
      return { kind: "failed", error, wrote: wrote.any };
    } catch (err) {
      if (this.job.signal.aborted) return { kind: "cancelled" };
      if (this.s.closing.aborted) throw closedError();
      if (!(err instanceof UpstreamError)) {
        if (err instanceof StreamAborted) throw new GeneratorError("upstream_error", "the upstream request was aborted", err);
        throw err;
      }
      // The answer was complete and only the usage chunk or [DONE] went missing: that is a finish.
      if (finish !== undefined && (err.code === "upstream_interrupted" || err.code === "upstream_timeout")) {
        return { kind: "finished", reason: this.reason(finish) };
      }
      yield* this.emit(calls.drop(err.code), wrote);
      return { kind: "failed", error: err, wrote: wrote.any };
    } finally {
      this.calling = false;
      this.wake = undefined;
      ac.abort();
      this.job.signal.removeEventListener("abort", abort);
      this.s.closing.removeEventListener("abort", abort);
      it.return(undefined).catch(() => {});
    }
  }

  /** The outputs of one streamed piece: text and reasoning close an open call first. */
  private *piece(ev: Exclude<ChatEvent, { kind: "finish" | "usage" | "done" }>, calls: ToolCalls): Generator<GenerationOutput> {
    this.current.chunks++;
    if (ev.kind === "tool") return yield* calls.delta(ev);
    yield* calls.close();
    if (ev.kind === "text") {
      this.segment += ev.text;
      yield { type: "token", text: ev.text, tokens: 1 };
      return;
    }
    this.current.reasoningChunks++;
    if (this.skipReasoning) return; // generated (and paid for), not written again
    this.reasoned = true;
    yield { type: "reasoning", text: ev.text, tokens: 1 };
  }

  /** Passes outputs on, keeping the session's view of calls current while they are written. */
  private *emit(outs: Generator<GenerationOutput>, wrote: { any: boolean }): Generator<GenerationOutput> {
    for (const out of outs) {
      wrote.any = true;
      if (out.type === "tool_call") this.calling = true;
      else if (out.type === "tool_done" || out.type === "tool_dropped") {
        this.calling = false;
        if (out.type === "tool_done") this.completedCalls++;
      }
      yield out;
    }
  }

  /** Calls complete in the answer make it end with `tool_calls` (Ollama says `stop` then). */
  private reason(finish: string): "stop" | "length" | "tool_calls" {
    if (finish === "length") return "length";
    return this.completedCalls > 0 ? "tool_calls" : "stop";
  }

  /** Moves the finished request's usage into the total. */
  private commit(): void {
    const now = this.usage();
    this.spent.prompt_tokens = now.prompt_tokens;
    this.spent.completion_tokens = now.completion_tokens;
    this.spent.reasoning_tokens = now.reasoning_tokens ?? 0;
    this.current = { chunks: 0, reasoningChunks: 0, reported: undefined };
  }

  private *done(reason: "stop" | "length" | "tool_calls"): Generator<GenerationOutput> {
    this.finished = true;
    yield { type: "done", reason, usage: this.usage() };
  }
}
