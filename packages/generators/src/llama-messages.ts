import { reasoningEffortSchema } from "@unbroken/protocol";
import { z } from "zod";

/*
 * The IPC protocol between LlamaGenerator (parent) and its model process (llama-child.ts).
 * Both sides validate what they receive. Per generation `id`:
 *
 *   parent: start ─ steer* ─ (cancel) ─ release
 *   child:  (steered | chunk | thought)* ─ end | failed
 *
 * After an `end` with reason stop/length the child keeps the generation (and its context
 * sequence) until `release`, because a steer the parent sent before it saw that `end` must
 * still be applied: the child then continues the turn and ends again. The parent sends
 * `release` once it has an `end` and no steer left unacknowledged. `end` with reason
 * "cancelled" and `failed` are final on both sides.
 */

export const llamaGpuSchema = z.union([z.literal("auto"), z.literal(false), z.enum(["cuda", "vulkan", "metal"])]);
export type LlamaGpu = z.infer<typeof llamaGpuSchema>;

const usage = z.object({
  prompt_tokens: z.number().int().nonnegative(),
  completion_tokens: z.number().int().nonnegative(),
  reasoning_tokens: z.number().int().nonnegative().optional(),
});
const id = z.string().min(1);

export const generateParamsSchema = z.object({
  max_tokens: z.number().int().positive().optional(),
  temperature: z.number().min(0).optional(),
  top_p: z.number().gt(0).max(1).optional(),
  seed: z.number().int().optional(),
  stop: z.array(z.string().min(1)),
  /** "none" gives thought segments no budget; any other effort leaves the model's default. */
  reasoning_effort: reasoningEffortSchema.optional(),
});
export type GenerateParams = z.infer<typeof generateParamsSchema>;

export const toChildSchema = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("init"),
    modelPath: z.string(),
    threads: z.number().int().positive(),
    gpu: llamaGpuSchema,
    concurrency: z.number().int().positive(),
    contextSize: z.number().int().positive().optional(),
  }),
  z.object({
    type: z.literal("start"),
    id,
    messages: z.array(z.object({ role: z.enum(["system", "user", "assistant"]), content: z.string() })).min(1),
    params: generateParamsSchema,
    /** Instructions recorded before the response began: part of the prompt, no `steered`. */
    steers: z.array(z.string()),
    /**
     * The answer so far, written by a worker that was lost: the model turn starts with it
     * and the generation continues it. Counted as completion tokens.
     */
    resumeText: z.string().optional(),
    /** The reasoning so far (a thought segment before `resumeText`), written by a worker that was lost. */
    resumeReasoning: z.string().optional(),
  }),
  z.object({ type: z.literal("steer"), id, text: z.string() }),
  z.object({ type: z.literal("cancel"), id }),
  z.object({ type: z.literal("release"), id }),
  z.object({ type: z.literal("shutdown") }),
]);
export type ToChild = z.infer<typeof toChildSchema>;

export const fromChildSchema = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("ready"),
    model: z.string(),
    gpu: z.union([z.string(), z.literal(false)]),
    contextSize: z.number().int(),
    threads: z.number().int(),
    loadMs: z.number(),
  }),
  z.object({ type: z.literal("load_failed"), message: z.string() }),
  z.object({ type: z.literal("log"), level: z.enum(["debug", "info", "warn", "error"]), message: z.string() }),
  /** Text as produced, never splitting a character; `tokens` it stands for. */
  z.object({ type: z.literal("chunk"), id, text: z.string(), tokens: z.number().int().nonnegative(), usage }),
  /** Reasoning: text of a thought segment, for models whose chat wrapper has them. */
  z.object({ type: z.literal("thought"), id, text: z.string(), tokens: z.number().int().nonnegative(), usage }),
  /** A steer took effect at this token boundary. */
  z.object({ type: z.literal("steered"), id, text: z.string(), usage }),
  z.object({ type: z.literal("end"), id, reason: z.enum(["stop", "length", "cancelled"]), usage }),
  z.object({ type: z.literal("failed"), id, message: z.string(), usage }),
]);
export type FromChild = z.infer<typeof fromChildSchema>;
