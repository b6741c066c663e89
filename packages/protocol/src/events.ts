import * as z from "zod";
import type { EndErrorCode } from "./codes.js";
import { ridSchema } from "./rid.js";

export const END_REASONS = ["stop", "length", "cancelled", "error"] as const;
export type EndReason = (typeof END_REASONS)[number];

export const usageSchema = z.object({
  prompt_tokens: z.number().int().nonnegative(),
  completion_tokens: z.number().int().nonnegative(),
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
  steerEventSchema,
  handoverEventSchema,
  endEventSchema,
]);

export type StartEvent = z.infer<typeof startEventSchema>;
export type TokenEvent = z.infer<typeof tokenEventSchema>;
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

/** The number of generated tokens a `token` event holds (its `n`, else one). */
export function tokensIn(event: { kind: string; n?: unknown }): number {
  if (event.kind !== "token") return 0;
  return typeof event.n === "number" && Number.isSafeInteger(event.n) && event.n >= 0 ? event.n : 1;
}

export function encodeEventFrame(rid: string, seq: number, event: ResponseEvent): string {
  return JSON.stringify({ type: "event", rid, seq, event });
}
