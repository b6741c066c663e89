import * as z from "zod";
import type { EndErrorCode } from "./codes.js";
import { ridSchema } from "./rid.js";

/**
 * Why a response ended. `tool_calls`: the model stopped to wait for the results of the tool
 * calls in its log; the app runs them and sends a new generate with `tool` messages.
 */
export const END_REASONS = ["stop", "length", "tool_calls", "cancelled", "error"] as const;
export type EndReason = (typeof END_REASONS)[number];

/** `completion_tokens` counts every generated token, reasoning included; `reasoning_tokens` those of reasoning alone. */
export const usageSchema = z.object({
  prompt_tokens: z.number().int().nonnegative(),
  completion_tokens: z.number().int().nonnegative(),
  reasoning_tokens: z.number().int().nonnegative().optional(),
});
export type Usage = z.infer<typeof usageSchema>;

export const startEventSchema = z.object({
  kind: z.literal("start"),
  model: z.string(),
  created_at: z.string(),
});
/**
 * `n`: how many generated tokens the text holds when that is not one (a worker coalesces the
 * tokens of a busy moment into one event). Absent means one. Usage counts tokens, not events.
 */
export const tokenEventSchema = z.object({ kind: z.literal("token"), text: z.string(), n: z.number().int().nonnegative().optional() });
/** The model's reasoning ("thinking"), a delta like `token` and gathered the same way (`n`). */
export const reasoningEventSchema = z.object({
  kind: z.literal("reasoning"),
  text: z.string(),
  n: z.number().int().nonnegative().optional(),
});
/**
 * A tool call begins: its id (unique in the response) and the function's name. Its argument
 * text follows in `tool_args` deltas, then `tool_done` (or `tool_dropped`). Calls do not
 * interleave: one call's events come together, in this order.
 */
export const toolCallEventSchema = z.object({ kind: z.literal("tool_call"), id: z.string(), name: z.string() });
/** A delta of a call's arguments (JSON text, complete only at `tool_done`). */
export const toolArgsEventSchema = z.object({
  kind: z.literal("tool_args"),
  id: z.string(),
  text: z.string(),
  n: z.number().int().nonnegative().optional(),
});
/** The call is complete: `arguments` is the whole argument text (every delta joined), and it parses as JSON. */
export const toolDoneEventSchema = z.object({ kind: z.literal("tool_done"), id: z.string(), arguments: z.string() });
/**
 * The call will not complete: a worker that took the response over could not continue it
 * (an upstream cannot resume half-written arguments). Readers drop it; the answer goes on.
 */
export const toolDroppedEventSchema = z.object({ kind: z.literal("tool_dropped"), id: z.string(), reason: z.string() });
export const steerEventSchema = z.object({ kind: z.literal("steer"), text: z.string() });
/**
 * Another worker took the response over from here: the events after it are that worker's
 * continuation of the same answer. `reason`: `lost` when the previous worker stopped
 * answering (killed, stalled past TAKEOVER_TIMEOUT), `drain` when it handed the response over
 * as it shut down. `epoch` counts the workers that ran this response (the first is 1).
 */
export const handoverEventSchema = z.object({
  kind: z.literal("handover"),
  worker: z.string(),
  epoch: z.number().int().positive(),
  reason: z.enum(["lost", "drain"]),
});
/** `error.code` is one of END_ERROR_CODES; readers accept codes they do not know. */
export const endEventSchema = z.object({
  kind: z.literal("end"),
  reason: z.enum(END_REASONS),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
  usage: usageSchema,
});

export const eventSchema = z.discriminatedUnion("kind", [
  startEventSchema,
  tokenEventSchema,
  reasoningEventSchema,
  toolCallEventSchema,
  toolArgsEventSchema,
  toolDoneEventSchema,
  toolDroppedEventSchema,
  steerEventSchema,
  handoverEventSchema,
  endEventSchema,
]);

export type StartEvent = z.infer<typeof startEventSchema>;
export type TokenEvent = z.infer<typeof tokenEventSchema>;
export type ReasoningEvent = z.infer<typeof reasoningEventSchema>;
export type ToolCallEvent = z.infer<typeof toolCallEventSchema>;
export type ToolArgsEvent = z.infer<typeof toolArgsEventSchema>;
export type ToolDoneEvent = z.infer<typeof toolDoneEventSchema>;
export type ToolDroppedEvent = z.infer<typeof toolDroppedEventSchema>;
export type SteerEvent = z.infer<typeof steerEventSchema>;
export type HandoverEvent = z.infer<typeof handoverEventSchema>;
export type EndEvent = z.infer<typeof endEventSchema>;
/** The `error` of an end this system writes: its code is always one of END_ERROR_CODES. */
export interface EndError {
  code: EndErrorCode;
  message: string;
}
export type ResponseEvent = z.infer<typeof eventSchema>;
export type EventKind = ResponseEvent["kind"];

/** `{"type":"event","rid","seq","event"}`: also exactly what is stored on the response's subject. */
export const eventFrameSchema = z.object({
  type: z.literal("event"),
  rid: ridSchema,
  seq: z.number().int().positive(),
  event: eventSchema,
});
export type EventFrame = z.infer<typeof eventFrameSchema>;

/**
 * A reader's view of an event frame: kinds it does not know are kept, not refused,
 * because later versions may add some.
 */
export const looseEventFrameSchema = z.object({
  type: z.literal("event"),
  rid: ridSchema,
  seq: z.number().int().positive(),
  event: z.looseObject({ kind: z.string() }),
});
export type LooseEventFrame = z.infer<typeof looseEventFrameSchema>;

/** Kinds whose events carry generated text (and count tokens with `n`). */
const GENERATED = new Set(["token", "reasoning", "tool_args"]);

/**
 * Whether an event is the model's output (text, reasoning, a tool call): the first one is
 * what "time to first token" measures, whatever part the answer begins with.
 */
export function isOutputKind(kind: string): boolean {
  return GENERATED.has(kind) || kind === "tool_call";
}

/** The number of generated tokens an event holds: its `n`, else one for `token`, `reasoning` and `tool_args`, else none. */
export function tokensIn(event: { kind: string; n?: unknown }): number {
  if (!GENERATED.has(event.kind)) return 0;
  return typeof event.n === "number" && Number.isSafeInteger(event.n) && event.n >= 0 ? event.n : 1;
}

export function encodeEventFrame(rid: string, seq: number, event: ResponseEvent): string {
  return JSON.stringify({ type: "event", rid, seq, event });
}
