import type { ChatMessage, GenerationBody, Usage } from "@unbroken/protocol";
import {
  GeneratorError,
  type GenerationJob,
  type GenerationOutput,
  type GenerationSession,
  type ResumeState,
  type ResumedOutput,
  type TokenGenerator,
} from "./generator.js";
import { hashText } from "./prng.js";
import { Pacer } from "./pacer.js";
import { Script, type Step } from "./scripted-script.js";

export interface ScriptedOptions {
  /** Tokens per second per response; 0 = as fast as possible. */
  tokensPerSecond: number;
}

/**
 * The conversation as one text, the seed of the answer: every message, with the calls an
 * assistant made and the results tool messages gave, so another conversation answers otherwise.
 */
export function promptText(body: GenerationBody): string {
  if (body.prompt !== undefined) return body.prompt;
  return (body.messages ?? []).map(messageText).join("\n");
}

function messageText(m: ChatMessage): string {
  switch (m.role) {
    case "assistant": {
      const calls = (m.tool_calls ?? []).map((c) => `\nassistant calls ${c.function.name}(${c.function.arguments}) as ${c.id}`);
      return `assistant: ${m.content}${calls.join("")}`;
    }
    case "tool":
      return `tool ${m.tool_call_id}: ${m.content}`;
    default:
      return `${m.role}: ${m.content}`;
  }
}

/** A rough token count for usage: words and punctuation runs, as a tokenizer would split them. */
export function countTokens(text: string): number {
  return text.match(/\w+|[^\s\w]/g)?.length ?? 0;
}

/**
 * A deterministic generator for demos without a model, load tests and CI. It is not a
 * model: the text is prose-like words from (prompt, seed), paced at a fixed rate. With
 * `reasoning_effort` it writes some reasoning first; offered tools, it calls the one the last
 * user message names (see scripted-tools.ts); after a tool result it answers with text
 * (docs/generators.md has the whole contract). It obeys max_tokens, stop sequences, cancel
 * and steer exactly as a model-backed generator must. Given the log of a response another
 * worker began (`job.resume`), it continues with exactly what that worker would have written.
 */
export class ScriptedGenerator implements TokenGenerator {
  readonly model = "scripted";
  constructor(private readonly opts: ScriptedOptions) {}

  /** One pacing clock for all of this generator's sessions. */
  private readonly pacer = new Pacer();

  start(job: GenerationJob): GenerationSession {
    return new ScriptedSession(job, this.opts.tokensPerSecond, this.pacer);
  }

  async close(): Promise<void> {
    this.pacer.close();
  }
}

class ScriptedSession implements GenerationSession {
  private readonly script: Script;
  private readonly promptTokens: number;
  private readonly steers: string[] = [];
  /** Tokens already in the log when this session began (0 unless it resumes a response). */
  private readonly resumed: number;
  private readonly replayed: GeneratorError | undefined;
  private finished = false;
  /** Ends the current pacing wait early (on abort). */
  private wake: (() => void) | undefined;
  private aborted = false;

  constructor(
    private readonly job: GenerationJob,
    private readonly tps: number,
    private readonly pacer: Pacer,
  ) {
    const prompt = promptText(job.body);
    this.script = new Script(job.body, prompt, hashText(prompt, job.body.params?.seed ?? 0));
    this.promptTokens = countTokens(prompt);
    this.replayed = job.resume ? replay(this.script, loggedOutputs(job.resume)) : undefined;
    this.resumed = this.script.produced;
    for (const s of job.steers) this.script.applySteer(s);
  }

  /**
   * Taken while something can still follow it; inside a tool call it waits for the call's
   * end (a call's arguments are never interrupted). Refused once the answer's last token is
   * out, or once its last call is complete (it ends with tool_calls).
   */
  steer(text: string): boolean {
    if (this.finished || !this.script.steerable) return false;
    this.steers.push(text);
    return true;
  }

  usage(): Usage {
    return this.script.usage(this.promptTokens);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<GenerationOutput> {
    if (this.replayed) throw this.replayed;
    const interval = this.tps > 0 ? 1000 / this.tps : 0;
    const began = performance.now();
    // Read once here and then kept by a listener: AbortSignal.aborted validates its receiver
    // on every read, a measurable share of a token's cost.
    this.aborted = this.job.signal.aborted;
    this.job.signal.addEventListener(
      "abort",
      () => {
        this.aborted = true;
        this.wake?.();
      },
      { once: true },
    );
    while (!this.aborted) {
      // Steers only at a safe boundary: never between a call's tool_call and its tool_done.
      const steer = this.script.inCall ? undefined : this.steers.shift();
      if (steer !== undefined) {
        this.script.applySteer(steer);
        yield { type: "steer", text: steer };
        continue;
      }
      const step = this.script.next();
      if (step.type === "end") {
        this.finished = true;
        yield { type: "done", reason: step.reason, usage: this.usage() };
        return;
      }
      if (step.type === "token" || step.type === "reasoning" || step.type === "tool_args") {
        await this.pace(began + (this.script.produced - this.resumed) * interval);
        if (this.aborted) return this.script.unsent(step);
        // A token cut at its very start by a stop sequence: nothing to write.
        if (step.text.length === 0) continue;
      }
      yield step;
    }
  }

  /**
   * Waits until `at` (performance.now() time) or abort; yields to the loop even at rate 0.
   * The session's one abort listener wakes it (adding and removing a listener per token
   * would cost more than the rest of a token's pacing). After an abort the pacer still
   * releases the wait once; resolving a settled promise does nothing.
   */
  private pace(at: number): Promise<void> {
    const wait = at - performance.now();
    return new Promise((resolve) => {
      if (wait <= 0) {
        setImmediate(resolve);
        return;
      }
      this.wake = resolve;
      this.pacer.until(at, resolve);
    });
  }
}

/** The log's outputs; a resume state from before `outputs` existed has its tokens and steers only. */
function loggedOutputs(resume: ResumeState): ResumedOutput[] {
  if (resume.outputs) return resume.outputs;
  const outputs: ResumedOutput[] = [];
  let s = 0;
  const steersUpTo = (at: number): void => {
    for (let st = resume.steers[s]; st !== undefined && st.at <= at; st = resume.steers[++s])
      outputs.push({ type: "steer", text: st.text });
  };
  for (const [i, text] of resume.tokens.entries()) {
    steersUpTo(i);
    outputs.push({ type: "token", text, tokens: 1 });
  }
  steersUpTo(Number.POSITIVE_INFINITY);
  return outputs;
}

/**
 * Regenerates what an earlier worker wrote, applying its steers where the log has them,
 * without yielding anything: the script is then exactly in that worker's state, so what
 * follows is what it would have written (the rest of its reasoning, the rest of an open
 * call's arguments under the same id, ...). A delta event may hold several tokens (the worker
 * coalesces them under load), so each event's text is rebuilt token by token. A log this
 * generator would not have written (another generator, another version) cannot be continued
 * exactly, and says so.
 */
function replay(script: Script, outputs: ResumedOutput[]): GeneratorError | undefined {
  const differs = (i: number, why: string) =>
    new GeneratorError(
      "cannot_continue",
      `the log differs from this generator's answer at its event ${i + 1} (${why}); it cannot be continued exactly`,
    );
  for (const [i, logged] of outputs.entries()) {
    if (logged.type === "steer") {
      script.applySteer(logged.text);
      continue;
    }
    if (logged.type === "token" || logged.type === "reasoning" || logged.type === "tool_args") {
      let text = "";
      while (text.length < logged.text.length) {
        const step = script.next();
        if (!sameDelta(step, logged)) return differs(i, `${step.type} instead of ${logged.type}`);
        text += step.text;
        if (!logged.text.startsWith(text)) return differs(i, "other text");
      }
      continue;
    }
    const step = script.next();
    if (!sameOutput(step, logged)) return differs(i, `${step.type} instead of ${logged.type}`);
  }
  return undefined;
}

/** A step of the same kind as a logged delta (and of the same call): its text is compared next. */
function sameDelta(step: Step, logged: Extract<ResumedOutput, { type: "token" | "reasoning" | "tool_args" }>): step is typeof logged {
  if (step.type !== logged.type) return false;
  return step.type !== "tool_args" || (logged.type === "tool_args" && step.id === logged.id);
}

/** A step equal to a logged `tool_call`, `tool_done` or `tool_dropped`: same kind, same fields. */
function sameOutput(step: Step, logged: ResumedOutput): boolean {
  const a = step as Record<string, unknown>;
  const b = logged as Record<string, unknown>;
  const keys = Object.keys(b);
  return Object.keys(a).length === keys.length && keys.every((k) => a[k] === b[k]);
}
