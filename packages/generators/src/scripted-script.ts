import type { GenerationBody, ReasoningEffort, Usage } from "@unbroken/protocol";
import type { ResumedOutput } from "./generator.js";
import { prng } from "./prng.js";
import { ScriptedText, naturalLength } from "./scripted-text.js";
import { argumentChunks, plannedCall, toolResultLead, type PlannedCall } from "./scripted-tools.js";

/** Reasoning tokens written before the answer, by `reasoning_effort`. */
export const REASONING_TOKENS: Record<ReasoningEffort, number> = { none: 0, minimal: 4, low: 8, medium: 16, high: 32 };

/** One step of a scripted answer: an output (a steer aside), or its end. */
export type Step = Exclude<ResumedOutput, { type: "steer" }> | { type: "end"; reason: "stop" | "length" | "tool_calls" };

/**
 * Where the answer is: `call` (the call is next), `args` (inside it: between `tool_call` and
 * `tool_done`), `called` (its `tool_done` written: it ends with tool_calls), `dropped` (cut
 * by max_tokens inside it), `stopping` (a stop sequence cut the text).
 */
type Phase = "reasoning" | "call" | "args" | "called" | "dropped" | "text" | "stopping" | "ended";

/**
 * The scripted answer as a sequence of steps, each a function of the request and of the steers
 * applied so far: reasoning (with `reasoning_effort`), then a tool call or text. The session
 * paces and yields the steps; a resumed session replays the logged ones to reach the same
 * state. Nothing here depends on time.
 */
export class Script {
  /** Generated tokens: reasoning, text and argument tokens. */
  produced = 0;
  reasoningProduced = 0;
  private textProduced = 0;
  private phase: Phase;
  private reasoningLeft: number;
  private readonly reasoning: ScriptedText;
  private readonly text: ScriptedText;
  private readonly call: PlannedCall | undefined;
  private readonly chunks: string[];
  private argsAt = 0;
  /** The tokens a text answering a tool result begins with. */
  private readonly lead: string[];
  private leadAt = 0;
  private readonly target: number;
  private extra = 0;
  private readonly limit: number | undefined;
  private readonly stops: string[];
  private sofar = "";
  private endReason: "stop" | "length" | "tool_calls" = "stop";

  constructor(body: GenerationBody, prompt: string, seed: number) {
    this.reasoning = new ScriptedText(seed ^ 0x2545f491);
    this.text = new ScriptedText(seed);
    this.call = plannedCall(body, prompt, seed);
    this.chunks = this.call ? argumentChunks(this.call.arguments) : [];
    this.lead = this.call ? [] : (toolResultLead(body.messages) ?? []);
    this.target = this.lead.length + naturalLength(prompt, prng(seed ^ 0x9e3779b9));
    this.limit = body.params?.max_tokens;
    const stop = body.params?.stop;
    this.stops = stop === undefined ? [] : Array.isArray(stop) ? stop : [stop];
    this.reasoningLeft = REASONING_TOKENS[body.params?.reasoning_effort ?? "none"];
    this.phase = "reasoning";
  }

  /** Inside a tool call: a steer waits for its end. */
  get inCall(): boolean {
    return this.phase === "args";
  }

  /** Whether an instruction given now can still be followed by anything it could change. */
  get steerable(): boolean {
    if (this.limitReached()) return false;
    return this.phase !== "called" && this.phase !== "dropped" && this.phase !== "stopping" && this.phase !== "ended";
  }

  /** A steer reseeds the reasoning and the text, and a steered answer goes on for a while after it. */
  applySteer(instruction: string): void {
    this.reasoning.steer(instruction);
    this.text.steer(instruction);
    this.extra += 20;
  }

  usage(promptTokens: number): Usage {
    const reasoning = this.reasoningProduced > 0 ? { reasoning_tokens: this.reasoningProduced } : {};
    return { prompt_tokens: promptTokens, completion_tokens: this.produced, ...reasoning };
  }

  /**
   * A generated step the session never yielded (a cancel came while it was paced): usage
   * counts only what was yielded. The session ends there, so the rest of the state may stay.
   */
  unsent(step: Step): void {
    if (step.type !== "token" && step.type !== "reasoning" && step.type !== "tool_args") return;
    this.produced -= step.tokens;
    if (step.type === "reasoning") this.reasoningProduced -= step.tokens;
  }

  /** The next step. A text token cut at its very start by a stop sequence has empty text. */
  next(): Step {
    switch (this.phase) {
      case "reasoning":
        return this.reasoningStep();
      case "call":
        this.phase = "args";
        return { type: "tool_call", id: (this.call as PlannedCall).id, name: (this.call as PlannedCall).name };
      case "args":
        return this.argsStep(this.call as PlannedCall);
      case "called":
        return this.end("tool_calls");
      case "dropped":
        return this.end("length");
      case "text":
        return this.textStep();
      case "stopping":
        return this.end("stop");
      case "ended":
        return { type: "end", reason: this.endReason };
    }
  }

  private reasoningStep(): Step {
    if (this.reasoningLeft === 0) {
      this.phase = this.call ? "call" : "text";
      return this.next();
    }
    if (this.limitReached()) return this.end("length");
    this.reasoningLeft--;
    this.produced++;
    this.reasoningProduced++;
    return { type: "reasoning", text: this.reasoning.next(), tokens: 1 };
  }

  /** Argument text a token at a time, then `tool_done`; max_tokens inside it drops the call. */
  private argsStep(call: PlannedCall): Step {
    if (this.argsAt >= this.chunks.length) {
      this.phase = "called";
      return { type: "tool_done", id: call.id, arguments: call.arguments };
    }
    if (this.limitReached()) {
      this.phase = "dropped";
      return { type: "tool_dropped", id: call.id, reason: "max_tokens was reached before the arguments were complete" };
    }
    this.produced++;
    return { type: "tool_args", id: call.id, text: this.chunks[this.argsAt++] as string, tokens: 1 };
  }

  private textStep(): Step {
    if (this.limitReached()) return this.end("length");
    if (this.textProduced >= this.target + this.extra) return this.end("stop");
    let token = this.leadAt < this.lead.length ? (this.lead[this.leadAt++] as string) : this.text.next();
    // The first word after the lead sentence: the prose begins without a space of its own.
    if (this.lead.length > 0 && this.textProduced === this.lead.length) token = ` ${token}`;
    const cut = findStop(this.sofar, token, this.stops);
    if (cut !== undefined) {
      token = token.slice(0, cut);
      this.phase = "stopping";
    }
    this.sofar = (this.sofar + token).slice(-128);
    this.produced++;
    this.textProduced++;
    return { type: "token", text: token, tokens: 1 };
  }

  private limitReached(): boolean {
    return this.limit !== undefined && this.produced >= this.limit;
  }

  private end(reason: "stop" | "length" | "tool_calls"): Step {
    this.phase = "ended";
    this.endReason = reason;
    return { type: "end", reason };
  }
}

/** Where in `token` a stop sequence begins (counting text just before it), if anywhere. */
function findStop(before: string, token: string, stops: string[]): number | undefined {
  let best: number | undefined;
  for (const stop of stops) {
    const joined = before + token;
    const at = joined.indexOf(stop, Math.max(0, before.length - stop.length + 1));
    if (at >= 0) {
      const inToken = Math.max(0, at - before.length);
      if (best === undefined || inToken < best) best = inToken;
    }
  }
  return best;
}
