import {
  LIMITS,
  ProtocolError,
  generateFrameSchema,
  generationParamsSchema,
  messageToolCallSchema,
  toolCallIdSchema,
  toolChoiceSchema,
  toolSchema,
  type ChatMessageInput,
  type GenerateFrame,
  type ReasoningEffort,
} from "@unbroken/protocol";
import { z } from "zod";
import { describeIssues } from "./http-util.js";

/**
 * The request of `POST /v1/chat/completions` in OpenAI's shape, and its translation into a
 * `generate` frame. Fields OpenAI has and this edge does not use (`user`, `metadata`,
 * `logprobs`, penalties...) are accepted and ignored, as unknown keys are.
 */

/** Only text parts: an image or audio part is refused at its `type`, not silently dropped. */
const textPartSchema = z.object({
  type: z.literal("text", { error: "only text parts are supported" }),
  text: z.string(),
});
/** A string, or text parts (joined); `describeIssues` reports the failing part of the array. */
const contentSchema = z.union([z.string(), z.array(textPartSchema).transform((parts) => parts.map((p) => p.text).join(""))]);
/** An assistant message may also carry `refusal` parts, which are not model input here. */
const assistantPartSchema = z.object({
  type: z.enum(["text", "refusal"], { error: "only text and refusal parts are supported" }),
  text: z.string().optional(),
  refusal: z.string().optional(),
});
const assistantContentSchema = z.union([
  z.string(),
  z.array(assistantPartSchema).transform((parts) => parts.map((p) => (p.type === "text" ? (p.text ?? "") : "")).join("")),
]);

const messageSchema = z.discriminatedUnion("role", [
  z.object({ role: z.literal("system"), content: contentSchema }),
  // OpenAI's newer name for the system role (reasoning models); the generators know `system`.
  z.object({ role: z.literal("developer"), content: contentSchema }),
  z.object({ role: z.literal("user"), content: contentSchema }),
  z.object({
    role: z.literal("assistant"),
    content: assistantContentSchema.nullish(),
    tool_calls: z.array(messageToolCallSchema).max(LIMITS.toolCalls).nullish(),
  }),
  z.object({ role: z.literal("tool"), content: contentSchema, tool_call_id: toolCallIdSchema }),
]);
type ChatRequestMessage = z.infer<typeof messageSchema>;

/** The efforts OpenAI's SDK types know; those above `high` are the protocol's highest. */
const reasoningEffortSchema = z.enum(["none", "minimal", "low", "medium", "high", "xhigh", "max"]);

const params = generationParamsSchema.shape;

/** Output only text can give: structured output, log probabilities and audio are refused, not silently skipped. */
const unsupported = {
  response_format: z
    .object({ type: z.literal("text", { error: "only text output is supported (no structured output)" }) })
    .loose()
    .nullish(),
  logprobs: z.literal(false, { error: "log probabilities are not supported" }).nullish(),
  top_logprobs: z.literal(0, { error: "log probabilities are not supported" }).nullish(),
  modalities: z.array(z.literal("text", { error: "only text output is supported" })).nullish(),
  audio: z.null({ error: "audio output is not supported" }).optional(),
};

export const chatRequestSchema = z.object({
  model: z.string().max(256).nullish(),
  messages: z.array(messageSchema).min(1).max(LIMITS.messages),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  max_tokens: params.max_tokens.nullish(),
  max_completion_tokens: params.max_tokens.nullish(),
  temperature: params.temperature.nullish(),
  top_p: params.top_p.nullish(),
  seed: params.seed.nullish(),
  stop: params.stop.nullish(),
  n: z.literal(1).nullish(),
  tools: z.array(toolSchema).max(LIMITS.tools).nullish(),
  tool_choice: toolChoiceSchema.nullish(),
  // Accepted: a generator makes the calls it makes; none here runs calls in parallel itself.
  parallel_tool_calls: z.boolean().nullish(),
  reasoning_effort: reasoningEffortSchema.nullish(),
  ...unsupported,
});
export type ChatRequest = z.infer<typeof chatRequestSchema>;

function toMessage(m: ChatRequestMessage): ChatMessageInput {
  switch (m.role) {
    case "developer":
      return { role: "system", content: m.content };
    case "assistant":
      return m.tool_calls?.length
        ? { role: "assistant", content: m.content ?? "", tool_calls: m.tool_calls }
        : { role: "assistant", content: m.content ?? "" };
    default:
      return m;
  }
}

function toEffort(e: z.infer<typeof reasoningEffortSchema>): ReasoningEffort {
  return e === "xhigh" || e === "max" ? "high" : e;
}

/** The generate frame this request asks for, named `rid`. */
export function toGenerate(body: ChatRequest, rid: string): GenerateFrame {
  const params: NonNullable<GenerateFrame["params"]> = {};
  const maxTokens = body.max_completion_tokens ?? body.max_tokens;
  if (maxTokens != null) params.max_tokens = maxTokens;
  if (body.temperature != null) params.temperature = body.temperature;
  if (body.top_p != null) params.top_p = body.top_p;
  if (body.seed != null) params.seed = body.seed;
  if (body.stop != null) params.stop = body.stop;
  if (body.reasoning_effort != null) params.reasoning_effort = toEffort(body.reasoning_effort);
  const frame = { type: "generate", rid, messages: body.messages.map(toMessage), params } as const;
  const tools = body.tools?.length ? { tools: body.tools } : {};
  const choice = body.tool_choice == null ? {} : { tool_choice: body.tool_choice };
  // The protocol's own schema checks what spans fields (a tool message answers an earlier
  // call, a forced function is offered); its paths are the request's, messages kept in order.
  const checked = generateFrameSchema.safeParse({ ...frame, ...tools, ...choice });
  if (!checked.success) throw new ProtocolError("bad_request", describeIssues(checked.error.issues));
  return checked.data;
}

/** Parses a request body; `bad_request` naming the field that fails. */
export function parseChatRequest(body: unknown): ChatRequest {
  const parsed = chatRequestSchema.safeParse(body);
  if (!parsed.success) throw new ProtocolError("bad_request", describeIssues(parsed.error.issues));
  return parsed.data;
}
