// How a generation's outputs and failures become log events: the parts of a run that are
// pure mappings, kept apart from the run's control flow (runner.ts).

import { GeneratorError, type GenerationOutput } from "@unbroken/generators";
import type { EndEvent, ResponseEvent } from "@unbroken/protocol";
import { ends } from "@unbroken/store";
import type { Logger } from "pino";

/** The event an output other than a delta or `done` is logged as. */
export function eventOfOutput(out: Exclude<GenerationOutput, { type: "token" | "reasoning" | "tool_args" | "done" }>): ResponseEvent {
  switch (out.type) {
    case "steer":
      return { kind: "steer", text: out.text };
    case "tool_call":
      return { kind: "tool_call", id: out.id, name: out.name };
    case "tool_done":
      return { kind: "tool_done", id: out.id, arguments: out.arguments };
    case "tool_dropped":
      return { kind: "tool_dropped", id: out.id, reason: out.reason };
  }
}

/**
 * The `end` of a failed generation. A GeneratorError's message is written for clients; what
 * it keeps back (an upstream's body, its URL, a model path) and any other error go to the log only.
 */
export function errorEnd(err: unknown, usage: EndEvent["usage"], log: Logger): EndEvent {
  const known = err instanceof GeneratorError;
  log.error({ err: String(err), ...(known && err.detail ? { detail: err.detail } : {}) }, "generator failed");
  if (known) return ends.error({ code: err.code, message: err.message }, usage);
  return ends.error({ code: "generator_error", message: "the generator failed" }, usage);
}
