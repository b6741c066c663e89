// The worker-side half of one llama generation: turns the model process's messages into
// GenerationOutputs, forwards steer and cancel, and settles the steer/end race (see
// llama-messages.ts). LlamaGenerator (llama.ts) routes messages here and decides which
// process runs it.

import type { ChatMessage, GenerationBody, Usage } from "@unbroken/protocol";
import { GeneratorError, resumedTokens, type GenerationJob, type GenerationOutput, type GenerationSession } from "./generator.js";
import type { FromChild, ToChild } from "./llama-messages.js";

/** How long a cancelled session waits for the model process's final usage. */
const CANCEL_GRACE_MS = 2_000;

/**
 * Why this backend cannot take a request, if it cannot: tool calls. node-llama-cpp can call
 * functions only through a chat wrapper with a function-call syntax and JSON Schema that its
 * grammar supports, it has no call ids, and it cannot continue a call cut off by a failover,
 * which unbroken must; the project's test model (random weights, ChatML) could test none of
 * it. Offered tools (unless tool_choice is "none") or a conversation with tool calls or tool
 * results are refused rather than answered as if the tools were not there.
 */
export function unsupportedByLlama(body: GenerationBody): string | undefined {
  const why =
    "the llama backend does not support tool calls (node-llama-cpp's function calling depends on the model's chat wrapper " +
    "and cannot continue a call across a failover); use the OpenAI-compatible backend, e.g. vLLM with a tool parser";
  if ((body.tools ?? []).length > 0 && body.tool_choice !== "none") return `tools were offered, but ${why}`;
  const toolContent = (m: ChatMessage): boolean => m.role === "tool" || (m.role === "assistant" && (m.tool_calls ?? []).length > 0);
  if ((body.messages ?? []).some(toolContent)) return `the conversation has tool calls or tool results, but ${why}`;
  return undefined;
}

export interface SessionHost {
  send(msg: ToChild): void;
  /** Tokens a response may have without max_tokens, once the model is loaded. */
  contextSize(): number | undefined;
  /** The session is over: stop routing to it. `healthy` when the model did its job. */
  detach(session: LlamaSession, healthy: boolean): void;
}

export class LlamaSession implements GenerationSession {
  private readonly outputs: GenerationOutput[] = [];
  private error: GeneratorError | undefined;
  /** The iteration ends once the outputs are drained. */
  private ended = false;
  /** No steer can take effect any more. */
  private finished = false;
  private started = false;
  private readonly early: string[] = [];
  private unacknowledged = 0;
  private used: Usage = { prompt_tokens: 0, completion_tokens: 0 };
  private wake: (() => void) | undefined;
  private graceTimer: NodeJS.Timeout | undefined;
  private readonly onAbort = (): void => this.abort();

  constructor(
    readonly id: string,
    readonly job: GenerationJob,
    private readonly host: SessionHost,
  ) {
    // Until the model process reports usage, a resumed response has the logged tokens.
    this.used.completion_tokens = resumedTokens(job.resume);
    if (job.resume?.reasoningTokens) this.used.reasoning_tokens = job.resume.reasoningTokens;
    if (job.signal.aborted) this.end();
    else job.signal.addEventListener("abort", this.onAbort, { once: true });
  }

  get isOver(): boolean {
    return this.ended;
  }

  /** The model is ready: hand the generation to it, with any steer that came meanwhile. */
  begin(): void {
    if (this.ended || this.started) return;
    this.started = true;
    try {
      this.host.send(this.startMessage());
    } catch (err) {
      this.fail(new GeneratorError("invalid_request", "the model cannot take this request", err, String(err)));
      return;
    }
    for (const text of this.early.splice(0)) this.sendSteer(text);
  }

  private startMessage(): ToChild {
    const { body, resume } = this.job;
    // Steers go into the history before the model turn wherever they were given, so a
    // resumed response's logged steers join the ones given now.
    const steers = resume ? [...resume.steers.map((s) => s.text), ...this.job.steers] : this.job.steers;
    const stop = body.params?.stop;
    const reasoning = (resume?.outputs ?? []).map((o) => (o.type === "reasoning" ? o.text : "")).join("");
    return {
      type: "start",
      id: this.id,
      // Tool messages never get here (unsupportedByLlama); the filter only narrows the type.
      messages: (body.messages ?? [{ role: "user" as const, content: body.prompt ?? "" }]).flatMap((m) =>
        m.role === "tool" ? [] : [{ role: m.role, content: m.content }],
      ),
      params: {
        max_tokens: body.params?.max_tokens,
        temperature: body.params?.temperature,
        top_p: body.params?.top_p,
        seed: body.params?.seed,
        stop: stop === undefined ? [] : Array.isArray(stop) ? stop : [stop],
        reasoning_effort: body.params?.reasoning_effort,
      },
      steers,
      ...(resume && resume.tokens.length > 0 ? { resumeText: resume.tokens.join("") } : {}),
      ...(reasoning ? { resumeReasoning: reasoning } : {}),
    };
  }

  steer(text: string): boolean {
    if (this.ended || this.finished || this.job.signal.aborted) return false;
    const limit = this.job.body.params?.max_tokens ?? this.host.contextSize();
    if (limit !== undefined && this.used.completion_tokens >= limit) return false;
    if (this.started) this.sendSteer(text);
    else this.early.push(text);
    return true;
  }

  usage(): Usage {
    return { ...this.used };
  }

  /** A message from the model process about this generation. */
  onMessage(msg: FromChild): void {
    if (this.ended || !("id" in msg)) return;
    if ("usage" in msg) this.used = msg.usage;
    const aborted = this.job.signal.aborted;
    switch (msg.type) {
      case "chunk":
        if (!aborted) this.push({ type: "token", text: msg.text, tokens: msg.tokens });
        return;
      case "thought":
        if (!aborted) this.push({ type: "reasoning", text: msg.text, tokens: msg.tokens });
        return;
      case "steered":
        this.unacknowledged--;
        if (!aborted) this.push({ type: "steer", text: msg.text });
        return;
      case "end":
        if (msg.reason === "cancelled") {
          this.end(true);
          return;
        }
        // A steer sent before this end was seen: the model process continues the turn.
        if (this.unacknowledged > 0 || aborted) return;
        this.finished = true;
        this.host.send({ type: "release", id: this.id });
        this.push({ type: "done", reason: msg.reason, usage: msg.usage });
        {
          this.end(true);
          return;
        }
      case "failed": {
        this.fail(new GeneratorError("generation_failed", "the model failed to generate", undefined, msg.message));
        return;
      }
    }
  }

  /** Ends the session with an error (model unavailable, process crashed, generator closed). */
  fail(err: GeneratorError): void {
    if (this.ended) return;
    this.error = err;
    this.end(false);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<GenerationOutput> {
    try {
      for (;;) {
        const out = this.outputs.shift();
        if (out !== undefined) {
          yield out;
          continue;
        }
        if (this.error) throw this.error;
        if (this.ended) return;
        await new Promise<void>((resolve) => (this.wake = resolve));
      }
    } finally {
      // The consumer stopped early: stop the model too.
      if (!this.ended) this.abort();
    }
  }

  private sendSteer(text: string): void {
    this.unacknowledged++;
    this.host.send({ type: "steer", id: this.id, text });
  }

  private abort(): void {
    if (this.ended) return;
    this.outputs.length = 0; // stop at once: nothing generated after this is yielded
    if (!this.started) {
      this.end();
      return;
    }
    this.host.send({ type: "cancel", id: this.id });
    // The model process answers with its final usage within a token or so; a process busy
    // evaluating a long prompt may take longer, and the iteration does not wait for it.
    this.graceTimer = setTimeout(() => this.end(), CANCEL_GRACE_MS);
    this.graceTimer.unref();
  }

  private push(out: GenerationOutput): void {
    this.outputs.push(out);
    this.signal();
  }

  private end(healthy = false): void {
    if (this.ended) return;
    this.ended = true;
    this.finished = true;
    clearTimeout(this.graceTimer);
    this.job.signal.removeEventListener("abort", this.onAbort);
    this.host.detach(this, healthy);
    this.signal();
  }

  private signal(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
