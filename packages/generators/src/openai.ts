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
import { UpstreamError } from "./openai-errors.js";
import { Conversation, resumedConversation } from "./openai-messages.js";
import { StreamAborted, chatBody, streamChat, type ChatEvent } from "./openai-stream.js";

export interface OpenAIOptions {
  /** The API root, e.g. "http://127.0.0.1:8000/v1"; requests go to `{baseUrl}/chat/completions`. */
  baseUrl: string;
  /** Sent as `Authorization: Bearer …` when given. */
  apiKey?: string;
  /** The model asked of the server, and the name written in `start`. */
  model: string;
  log: Logger;
  /**
   * Attempts after the first for a request that failed before writing any text (refused
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

const MAX_BACKOFF_MS = 10_000;

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

/** How one upstream request ended. `wrote`: it yielded text, so it must not be sent again. */
type Outcome =
  | { kind: "finished"; reason: "stop" | "length" }
  | { kind: "steered" }
  | { kind: "cancelled" }
  | { kind: "failed"; error: UpstreamError; wrote: boolean };

const STEER = Symbol("steer");

class OpenAISession implements GenerationSession {
  private readonly convo: Conversation;
  private readonly limit: number | undefined;
  private readonly pending: string[] = [];
  private wake: (() => void) | undefined;
  private finished = false;
  /** Text written since the last break (steer or cut): the partial answer a continuation carries. */
  private segment = "";
  /** Usage of the requests that have ended. */
  private readonly spent: Usage = { prompt_tokens: 0, completion_tokens: 0 };
  /** The running request: text chunks yielded, and the usage it reported, if it did. */
  private current: { chunks: number; reported: Usage | undefined } = { chunks: 0, reported: undefined };

  constructor(
    private readonly job: GenerationJob,
    private readonly s: Settings,
    private readonly log: Logger,
  ) {
    const { resume } = job;
    this.convo = resume ? resumedConversation(job.body, resume, job.steers) : new Conversation(job.body, job.steers);
    this.limit = job.body.params?.max_tokens;
    // The earlier worker's text counts one completion token per chunk, as unreported usage
    // does; its prompt tokens are unknown here.
    this.spent.completion_tokens = resumedTokens(resume);
  }

  steer(text: string): boolean {
    if (this.finished || this.job.signal.aborted) return false;
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
   * or one aborted by a steer before its usage chunk) counts one completion token per text
   * chunk and 0 prompt tokens: the prompt size is unknown without the server's tokenizer.
   */
  usage(): Usage {
    const r = this.current.reported;
    return {
      prompt_tokens: this.spent.prompt_tokens + (r?.prompt_tokens ?? 0),
      completion_tokens: this.spent.completion_tokens + (r?.completion_tokens ?? this.current.chunks),
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
    let failures = 0; // consecutive attempts that failed before writing any text
    let continuations = 0; // continuations after streams cut mid-answer, for the whole response
    for (;;) {
      if (this.job.signal.aborted) return;
      if (this.s.closing.aborted) throw closedError();
      const steer = this.pending.shift();
      if (steer !== undefined) {
        this.convo.steer(this.segment, steer);
        this.segment = "";
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
        if (this.pending.length > 0) continue; // a steer came as the answer ended: it goes on
        return yield* this.done(out.reason);
      }
      const { error, wrote } = out;
      if (wrote) {
        failures = 0;
        // Text of this request was written: sending it again would duplicate it. A cut stream
        // is continued like a steer without an instruction; anything else ends the response.
        if (error.code !== "upstream_interrupted" || continuations >= this.s.maxRetries) throw error;
        continuations++;
        this.log.warn({ code: error.code, continuations }, "upstream stream cut mid-answer; continuing it");
        this.convo.cut(this.segment);
        this.segment = "";
        continue;
      }
      if (!error.retryable || failures >= this.s.maxRetries) throw error;
      failures++;
      const delay = error.retryAfterMs ?? backoff(this.s.retryDelayMs, failures);
      this.log.warn(
        { code: error.code, err: error.message, attempt: failures, delayMs: Math.round(delay) },
        "upstream request failed; retrying",
      );
      await sleep(delay, this.job.signal, this.s.closing);
    }
  }

  /** One upstream request for the conversation so far; yields its text as tokens. */
  private async *request(maxTokens: number | undefined): AsyncGenerator<GenerationOutput, Outcome> {
    const ac = new AbortController();
    const abort = (): void => ac.abort();
    this.job.signal.addEventListener("abort", abort, { once: true });
    this.s.closing.addEventListener("abort", abort, { once: true });
    if (this.job.signal.aborted || this.s.closing.aborted) ac.abort();
    const body = chatBody(this.s.model, this.convo.messages(), this.job.body.params ?? {}, maxTokens);
    this.log.debug({ messages: body.messages.length, max_tokens: maxTokens }, "upstream request");
    const it = streamChat({
      url: this.s.url,
      apiKey: this.s.apiKey,
      body,
      signal: ac.signal,
      idleTimeoutMs: this.s.idleTimeoutMs,
      fetch: this.s.fetch,
    });
    let wrote = false;
    let finish: string | undefined;
    try {
      for (;;) {
        // A steer takes effect at a chunk boundary: stop the request, the loop continues it.
        if (this.pending.length > 0) return { kind: "steered" };
        const next = it.next();
        const r = await Promise.race([next, new Promise<typeof STEER>((resolve) => (this.wake = () => resolve(STEER)))]);
        this.wake = undefined;
        if (r === STEER) {
          next.catch(() => {}); // it rejects with StreamAborted once the request is aborted below
          return { kind: "steered" };
        }
        if (r.done) break;
        const ev: ChatEvent = r.value;
        if (ev.kind === "text") {
          wrote = true;
          this.current.chunks++;
          this.segment += ev.text;
          yield { type: "token", text: ev.text, tokens: 1 };
          if (this.job.signal.aborted) return { kind: "cancelled" };
        } else if (ev.kind === "finish") finish = ev.reason;
        else if (ev.kind === "usage") this.current.reported = ev.usage;
        else {
          finish ??= "stop"; // [DONE] without a finish_reason: the server considers it complete
          break;
        }
      }
      if (finish !== undefined) return { kind: "finished", reason: finish === "length" ? "length" : "stop" };
      const error = new UpstreamError("upstream_interrupted", "the upstream stream ended before the answer finished", { retryable: true });
      return { kind: "failed", error, wrote };
    } catch (err) {
      if (this.job.signal.aborted) return { kind: "cancelled" };
      if (this.s.closing.aborted) throw closedError();
      if (!(err instanceof UpstreamError)) {
        if (err instanceof StreamAborted) throw new GeneratorError("upstream_error", "the upstream request was aborted", err);
        throw err;
      }
      // The answer was complete and only the usage chunk or [DONE] went missing: that is a finish.
      if (finish !== undefined && (err.code === "upstream_interrupted" || err.code === "upstream_timeout")) {
        return { kind: "finished", reason: finish === "length" ? "length" : "stop" };
      }
      return { kind: "failed", error: err, wrote };
    } finally {
      this.wake = undefined;
      ac.abort();
      this.job.signal.removeEventListener("abort", abort);
      this.s.closing.removeEventListener("abort", abort);
      it.return(undefined).catch(() => {});
    }
  }

  /** Moves the finished request's usage into the total. */
  private commit(): void {
    const now = this.usage();
    this.spent.prompt_tokens = now.prompt_tokens;
    this.spent.completion_tokens = now.completion_tokens;
    this.current = { chunks: 0, reported: undefined };
  }

  private *done(reason: "stop" | "length"): Generator<GenerationOutput> {
    this.finished = true;
    yield { type: "done", reason, usage: this.usage() };
  }
}

function closedError(): GeneratorError {
  return new GeneratorError("generator_closed", "the openai generator was closed before this response finished");
}

/** Exponential backoff with ±20 % jitter. */
function backoff(base: number, attempt: number): number {
  return Math.min(MAX_BACKOFF_MS, base * 2 ** (attempt - 1)) * (0.8 + 0.4 * Math.random());
}

/** Waits `ms`, or less when either signal aborts. */
function sleep(ms: number, ...signals: AbortSignal[]): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(t);
      for (const s of signals) s.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    for (const s of signals) s.addEventListener("abort", done, { once: true });
    if (signals.some((s) => s.aborted)) done();
  });
}
