import type { GenerationBody, Usage } from "@unbroken/protocol";

/** What a generator produces, in order; the runner writes each to the log as it comes. */
export type GenerationOutput =
  | { type: "token"; text: string; tokens: number }
  | { type: "steer"; text: string }
  | { type: "done"; reason: "stop" | "length"; usage: Usage };

export interface GenerationJob {
  rid: string;
  body: GenerationBody;
  /** Steers recorded before the response began: applied before the first token. */
  steers: string[];
  /** Aborted on cancel: the session stops at once and its iteration simply ends. */
  signal: AbortSignal;
}

export interface GenerationSession extends AsyncIterable<GenerationOutput> {
  /**
   * Hands an instruction to the running generation. It takes effect at the next token
   * boundary, where the session yields a `steer` output. False when the generation has
   * produced its last token and nothing can follow the instruction.
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
 * `reason: "error"` and `error: {code, message}`. Codes are stable strings such as
 * `model_unavailable`, `upstream_unauthorized`, `upstream_rate_limited`.
 */
export class GeneratorError extends Error {
  readonly code: string;
  constructor(code: string, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "GeneratorError";
    this.code = code;
  }
}
