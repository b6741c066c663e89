import type { EndErrorCode, GenerationBody, Usage } from "@unbroken/protocol";

/** What a generator produces, in order; the runner writes each to the log as it comes. */
/**
 * What a generator produces, in order; the runner writes each to the log as it comes (see the
 * event kinds in protocol). A tool call is `tool_call`, its `tool_args` deltas, then
 * `tool_done` with the whole argument text (JSON), or `tool_dropped`; calls do not
 * interleave with each other or with text. A steer is yielded only between parts, never
 * inside a tool call (the next safe boundary). `done` with `tool_calls` when the answer
 * stops to wait for the results of its calls.
 */
export type GenerationOutput =
  | { type: "token"; text: string; tokens: number }
  | { type: "reasoning"; text: string; tokens: number }
  | { type: "tool_call"; id: string; name: string }
  | { type: "tool_args"; id: string; text: string; tokens: number }
  | { type: "tool_done"; id: string; arguments: string }
  | { type: "tool_dropped"; id: string; reason: string }
  | { type: "steer"; text: string }
  | { type: "done"; reason: "stop" | "length" | "tool_calls"; usage: Usage };

/** One event of the log a resumed session continues, as the generator yielded it (steers included). */
export type ResumedOutput = Exclude<GenerationOutput, { type: "done" }>;

/**
 * What an earlier worker wrote of this response before it was lost or handed it over, read
 * back from the log. A session given it continues the answer after these tokens and never
 * yields them (or these steers) again.
 */
export interface ResumeState {
  /**
   * The text of every `token` event in the log, in order. An event may hold several tokens
   * (coalesced under load), so the length is a count of events, not of tokens.
   */
  tokens: string[];
  /** Every `steer` event in the log, in order; `at` is the number of token events before it. */
  steers: Array<{ at: number; text: string }>;
  /**
   * Tokens the log holds (an event may carry several): the resumed session's usage starts
   * here. Absent: one per token event.
   */
  generated?: number;
  /** Of `generated`, the reasoning tokens. */
  reasoningTokens?: number;
  /**
   * Every event of the log that a generator yields (text, reasoning, tool-call events and
   * steers), in order, as outputs. `tokens` and `steers` above are its text-only view.
   */
  outputs?: ResumedOutput[];
}

/** Tokens already generated in a resumed log. */
export const resumedTokens = (resume: ResumeState | undefined): number => (resume ? (resume.generated ?? resume.tokens.length) : 0);

export interface GenerationJob {
  rid: string;
  body: GenerationBody;
  /**
   * Steers to apply before the next token this session generates: before the first token
   * of a new response, or right at the resume point. The runner has logged them already,
   * so the session does not yield them.
   */
  steers: string[];
  /** Aborted on cancel: the session stops at once and its iteration simply ends. */
  signal: AbortSignal;
  /**
   * Set when this worker takes the response over from another: continue the answer.
   * The session's usage() and `done` usage then count the resumed tokens too.
   */
  resume?: ResumeState;
}

export interface GenerationSession extends AsyncIterable<GenerationOutput> {
  /**
   * Hands an instruction to the running generation. It takes effect at the next safe
   * boundary (a token boundary outside a tool call: one given while a call's arguments stream
   * waits for its `tool_done`), where the session yields a `steer` output. False when the
   * generation has produced its last token (or completed its last call) and nothing can
   * follow the instruction.
   */
  steer(text: string): boolean;
  /** Usage so far, for an `end` after cancel. */
  usage(): Usage;
}

export interface TokenGenerator {
  /** The model name written in `start`. */
  readonly model: string;
  start(job: GenerationJob): GenerationSession;
  close(): Promise<void>;
}

/**
 * A generation that failed for a reason a client should see: the response ends with
 * `reason: "error"` and `error: {code, message}`; the codes are END_ERROR_CODES (protocol).
 */
export class GeneratorError extends Error {
  readonly code: EndErrorCode;
  /**
   * What the worker logs and no client sees: an upstream's error body or URL, a local model
   * path. `message` stays generic, so nothing of the backend leaks through `end.error`.
   */
  readonly detail: string | undefined;
  constructor(code: EndErrorCode, message: string, cause?: unknown, detail?: string) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "GeneratorError";
    this.code = code;
    this.detail = detail;
  }
}
