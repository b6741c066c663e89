import * as z from "zod";
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
export const tokenEventSchema = z.object({ kind: z.literal("token"), text: z.string() });
export const steerEventSchema = z.object({ kind: z.literal("steer"), text: z.string() });
/**
 * Another worker took the response over from here: the events after it are that worker's
 * continuation of the same answer. `reason`: `lost` when the previous worker stopped
 * answering (killed, stalled past WORKER_TIMEOUT), `drain` when it handed the response over
 * as it shut down. `epoch` counts the workers that ran this response (the first is 1).
 */
export const handoverEventSchema = z.object({
  kind: z.literal("handover"),
  worker: z.string(),
  epoch: z.number().int().positive(),
  reason: z.enum(["lost", "drain"]),
});
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

export function encodeEventFrame(rid: string, seq: number, event: ResponseEvent): string {
  return JSON.stringify({ type: "event", rid, seq, event });
}
