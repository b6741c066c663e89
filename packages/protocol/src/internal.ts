import * as z from "zod";
import { chatMessageSchema, generationBodySchema, type ChatMessage, type GenerationBody } from "./frames.js";
import { ridSchema, threadIdSchema } from "./rid.js";

/**
 * Payloads that travel between edge and worker over NATS. Clients never see these,
 * but both sides validate them: a message on a subject is input like any other.
 */

export const RESPONSE_STATUSES = ["queued", "running", "ended"] as const;
export type ResponseStatus = (typeof RESPONSE_STATUSES)[number];

/** The KV record of a response: who owns it and where it stands. The event log stays the truth. */
export const responseRecordSchema = z.object({
  v: z.literal(1),
  rid: ridSchema,
  owner: z.string(),
  status: z.enum(RESPONSE_STATUSES),
  created_at: z.string(),
  request: generationBodySchema,
  /** Steers recorded while queued; the worker that begins the response applies them first. */
  steers: z.array(z.string()),
  worker: z.string().optional(),
  /**
   * Bumped by each worker that takes the response, so a stale one can be told apart: a
   * worker that finds a higher epoch than its own has lost the response and writes nothing.
   */
  epoch: z.number().int().nonnegative(),
  /** Set by a worker that stopped mid-response on shutdown: the next worker continues it. */
  released: z.boolean().optional(),
  reason: z.string().optional(),
  /** The thread whose turn started this response (`generate` with `thread`). */
  thread: threadIdSchema.optional(),
  /**
   * What a request to OpenAI's Responses API (`/v1/responses`) asked beyond the generation,
   * kept so the response object shows it on every read: `metadata`, `background`,
   * `instructions` and the `model` named. Workers carry it along and never use it.
   */
  openai: z
    .object({
      background: z.boolean(),
      instructions: z.string().nullable(),
      metadata: z.record(z.string(), z.string()).nullable(),
      model: z.string().nullable(),
    })
    .optional(),
});
export type ResponseRecord = z.infer<typeof responseRecordSchema>;

/**
 * The work-queue message: the rid, and the record as its edge created it with that record's
 * KV revision. The record stays the truth (the first body wins); the copy saves the worker a
 * read before it claims: the claim is compare-and-set on `revision`, so a record changed since
 * (a steer or a cancel while queued) is read again then.
 */
export const workRequestSchema = z
  .object({
    rid: ridSchema,
    record: responseRecordSchema.optional(),
    revision: z.number().int().positive().optional(),
  })
  .refine((w) => w.record === undefined || (w.record.rid === w.rid && w.revision !== undefined), {
    message: "a carried record must be the rid's, with its revision",
  });
export type WorkRequest = z.infer<typeof workRequestSchema>;

/**
 * One turn of a thread as stored on its subject (`llm.th.<thread>` in THREADS_STREAM): the
 * response a generate started, the messages it brought, and who owns the thread. Every turn
 * repeats the owner and the thread's creation time, so the last turn alone answers who may
 * read the thread and whether a thread-scoped token was made for it, even after the first
 * turns expired.
 */
export const storedTurnSchema = z.object({
  v: z.literal(1),
  thread: threadIdSchema,
  seq: z.number().int().positive(),
  rid: ridSchema,
  owner: z.string(),
  messages: z.array(chatMessageSchema),
  /** The response record's `created_at` (ISO). */
  created_at: z.string(),
  /** The thread's first turn's `created_at`, carried forward by every turn. */
  thread_created_at: z.string(),
});
export type StoredTurn = z.infer<typeof storedTurnSchema>;

/**
 * The messages a generate brings to its thread: the trailing run after the last assistant
 * message (a user's message, tool results, or a whole first prompt with its system message).
 * Earlier messages are history the thread already holds, or the client's own rewrite of it.
 */
export function newMessagesOf(request: Pick<GenerationBody, "messages" | "prompt">): ChatMessage[] {
  if (request.messages === undefined) return [{ role: "user", content: request.prompt ?? "" }];
  const lastAssistant = request.messages.findLastIndex((m) => m.role === "assistant");
  return request.messages.slice(lastAssistant + 1);
}

export const controlRequestSchema = z.discriminatedUnion("op", [
  z.object({ op: z.literal("cancel") }),
  /** "Are you still running it?" — answered ok by the worker that runs the response. */
  z.object({ op: z.literal("status") }),
  z.object({ op: z.literal("steer"), text: z.string().min(1) }),
  /**
   * Published (no reply) by a worker that has just taken the response over with this epoch:
   * a worker still running it with a lower epoch stops at once, writing nothing more.
   */
  z.object({ op: z.literal("fence"), epoch: z.number().int().positive() }),
]);
export type ControlRequest = z.infer<typeof controlRequestSchema>;

export const controlReplySchema = z.union([
  z.object({ ok: z.literal(true) }),
  z.object({ ok: z.literal(false), code: z.enum(["finished", "internal"]), message: z.string() }),
]);
export type ControlReply = z.infer<typeof controlReplySchema>;

/** A worker's answer on MODELS_SUBJECT: the model it serves, and since when (ms since the epoch). */
export const modelInfoSchema = z.object({
  model: z.string().min(1).max(256),
  worker: z.string(),
  since: z.number().int().nonnegative(),
});
export type ModelInfo = z.infer<typeof modelInfoSchema>;
