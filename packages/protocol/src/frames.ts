import * as z from "zod";
import { ERROR_CODES } from "./codes.js";
import { ridSchema, threadIdSchema } from "./rid.js";
import { eventFrameSchema } from "./events.js";

export const PROTOCOL_VERSION = 1;

/** Bounds on what a generate may ask; each is also reachable as a constant for docs and tests. */
export const LIMITS = {
  frameId: 64,
  messages: 256,
  stopSequences: 4,
  stopLength: 64,
  maxTokens: 32_768,
  steerText: 4_096,
  /** Functions offered in `tools`, and calls in one assistant message. */
  tools: 128,
  toolCalls: 128,
  /** A function name (OpenAI's rule: letters, digits, `_` and `-`). */
  toolName: 64,
  /** A tool call's id. */
  toolCallId: 128,
  /** Turns a `follow` may ask to skip: far more than any thread holds (MAX_TURNS_PER_THREAD). */
  turnSeq: 1_000_000_000,
} as const;

export const frameIdSchema = z.string().max(LIMITS.frameId);

export const roleSchema = z.enum(["system", "user", "assistant", "tool"]);
export type Role = z.infer<typeof roleSchema>;

export const toolNameSchema = z
  .string()
  .regex(/^[A-Za-z0-9_-]+$/, "a function name is letters, digits, _ and -")
  .min(1)
  .max(LIMITS.toolName);
export const toolCallIdSchema = z.string().min(1).max(LIMITS.toolCallId);

/** A call the assistant made, as OpenAI's chat messages carry it. */
export const messageToolCallSchema = z.object({
  id: toolCallIdSchema,
  type: z.literal("function").default("function"),
  function: z.object({ name: toolNameSchema, arguments: z.string() }),
});
export type MessageToolCall = z.infer<typeof messageToolCallSchema>;

/** `null` (what OpenAI sends beside tool calls) reads as "". */
const contentSchema = z
  .string()
  .nullish()
  .transform((c) => c ?? "");

/**
 * OpenAI-shaped chat messages: an assistant message may carry the `tool_calls` it made, and a
 * `tool` message answers one of them by its `tool_call_id`.
 */
export const chatMessageSchema = z.discriminatedUnion("role", [
  z.object({ role: z.literal("system"), content: z.string() }),
  z.object({ role: z.literal("user"), content: z.string() }),
  z.object({
    role: z.literal("assistant"),
    content: contentSchema,
    tool_calls: z.array(messageToolCallSchema).min(1).max(LIMITS.toolCalls).optional(),
  }),
  z.object({ role: z.literal("tool"), content: z.string(), tool_call_id: toolCallIdSchema }),
]);
export type ChatMessage = z.infer<typeof chatMessageSchema>;
export type ChatMessageInput = z.input<typeof chatMessageSchema>;

/** A function the model may call: its parameters are a JSON Schema object. */
export const toolSchema = z.object({
  type: z.literal("function"),
  function: z.object({
    name: toolNameSchema,
    description: z.string().optional(),
    parameters: z.record(z.string(), z.unknown()).optional(),
    strict: z.boolean().nullish(),
  }),
});
export type Tool = z.infer<typeof toolSchema>;

export const toolChoiceSchema = z.union([
  z.enum(["none", "auto", "required"]),
  z.object({ type: z.literal("function"), function: z.object({ name: toolNameSchema }) }),
]);
export type ToolChoice = z.infer<typeof toolChoiceSchema>;

/** How hard a reasoning model thinks (OpenAI's `reasoning_effort`); generators without reasoning ignore it. */
export const reasoningEffortSchema = z.enum(["none", "minimal", "low", "medium", "high"]);
export type ReasoningEffort = z.infer<typeof reasoningEffortSchema>;

export const generationParamsSchema = z.object({
  max_tokens: z.number().int().positive().max(LIMITS.maxTokens).optional(),
  temperature: z.number().min(0).max(2).optional(),
  top_p: z.number().gt(0).max(1).optional(),
  seed: z.number().int().optional(),
  stop: z
    .union([z.string().min(1).max(LIMITS.stopLength), z.array(z.string().min(1).max(LIMITS.stopLength)).max(LIMITS.stopSequences)])
    .optional(),
  reasoning_effort: reasoningEffortSchema.optional(),
});
export type GenerationParams = z.infer<typeof generationParamsSchema>;

const afterSchema = z.number().int().nonnegative();

const generateFields = {
  rid: ridSchema.optional(),
  messages: z.array(chatMessageSchema).min(1).max(LIMITS.messages).optional(),
  prompt: z.string().optional(),
  params: generationParamsSchema.optional(),
  tools: z.array(toolSchema).max(LIMITS.tools).optional(),
  tool_choice: toolChoiceSchema.optional(),
  after: afterSchema.optional(),
  /** The thread this generate appends a turn to (created by its first generate). */
  thread: threadIdSchema.optional(),
};

/** Every tool message answers a call an earlier assistant message made, and a forced function is one of `tools`. */
function checkTools(
  b: { messages?: ChatMessage[] | undefined; tools?: Tool[] | undefined; tool_choice?: ToolChoice | undefined },
  ctx: z.RefinementCtx,
): void {
  const calls = new Set<string>();
  for (const [i, m] of (b.messages ?? []).entries()) {
    if (m.role === "assistant") for (const c of m.tool_calls ?? []) calls.add(c.id);
    if (m.role === "tool" && !calls.has(m.tool_call_id))
      ctx.addIssue({
        code: "custom",
        path: ["messages", i, "tool_call_id"],
        message: "answers no tool call of an earlier assistant message",
      });
  }
  const names = new Set((b.tools ?? []).map((t) => t.function.name));
  if (names.size < (b.tools ?? []).length) ctx.addIssue({ code: "custom", path: ["tools"], message: "function names must be unique" });
  const choice = b.tool_choice;
  if (typeof choice === "object" && !names.has(choice.function.name))
    ctx.addIssue({ code: "custom", path: ["tool_choice", "function", "name"], message: "names no function of tools" });
  if ((choice === "required" || typeof choice === "object") && names.size === 0)
    ctx.addIssue({ code: "custom", path: ["tool_choice"], message: "asks for a tool call but no tools are given" });
}

/** What a generation is asked to do: exactly one of `messages` and `prompt`. */
export const generationBodySchema = z
  .object({
    messages: generateFields.messages,
    prompt: generateFields.prompt,
    params: generateFields.params,
    tools: generateFields.tools,
    tool_choice: generateFields.tool_choice,
  })
  .refine((b) => (b.messages === undefined) !== (b.prompt === undefined), {
    message: "give exactly one of messages and prompt",
  })
  .superRefine(checkTools);
export type GenerationBody = z.infer<typeof generationBodySchema>;

const withId = { id: frameIdSchema.optional() };

export const helloFrameSchema = z.object({ type: z.literal("hello"), token: z.string().optional(), ...withId });
export const generateFrameSchema = z
  .object({ type: z.literal("generate"), ...generateFields, ...withId })
  .refine((f) => (f.messages === undefined) !== (f.prompt === undefined), {
    message: "give exactly one of messages and prompt",
  })
  .superRefine(checkTools);
export const subscribeFrameSchema = z.object({
  type: z.literal("subscribe"),
  rid: ridSchema,
  after: afterSchema.default(0),
  ...withId,
});
export const unsubscribeFrameSchema = z.object({ type: z.literal("unsubscribe"), rid: ridSchema, ...withId });
export const cancelFrameSchema = z.object({ type: z.literal("cancel"), rid: ridSchema, ...withId });
export const steerFrameSchema = z.object({
  type: z.literal("steer"),
  rid: ridSchema,
  text: z.string().min(1).max(LIMITS.steerText),
  ...withId,
});
export const pingFrameSchema = z.object({ type: z.literal("ping"), ...withId });
/** Replays a thread's turns after seq `after`, then follows it live, until `unfollow`. */
export const followFrameSchema = z.object({
  type: z.literal("follow"),
  thread: threadIdSchema,
  after: z.number().int().nonnegative().max(LIMITS.turnSeq).default(0),
  ...withId,
});
export const unfollowFrameSchema = z.object({ type: z.literal("unfollow"), thread: threadIdSchema, ...withId });

export const CLIENT_FRAME_SCHEMAS = {
  hello: helloFrameSchema,
  generate: generateFrameSchema,
  subscribe: subscribeFrameSchema,
  unsubscribe: unsubscribeFrameSchema,
  cancel: cancelFrameSchema,
  steer: steerFrameSchema,
  ping: pingFrameSchema,
  follow: followFrameSchema,
  unfollow: unfollowFrameSchema,
} as const;

export type HelloFrame = z.infer<typeof helloFrameSchema>;
export type GenerateFrame = z.infer<typeof generateFrameSchema>;
export type SubscribeFrame = z.infer<typeof subscribeFrameSchema>;
export type UnsubscribeFrame = z.infer<typeof unsubscribeFrameSchema>;
export type CancelFrame = z.infer<typeof cancelFrameSchema>;
export type SteerFrame = z.infer<typeof steerFrameSchema>;
export type PingFrame = z.infer<typeof pingFrameSchema>;
export type FollowFrame = z.infer<typeof followFrameSchema>;
export type UnfollowFrame = z.infer<typeof unfollowFrameSchema>;
export type ClientFrame =
  | HelloFrame
  | GenerateFrame
  | SubscribeFrame
  | UnsubscribeFrame
  | CancelFrame
  | SteerFrame
  | PingFrame
  | FollowFrame
  | UnfollowFrame;
export type ClientFrameType = ClientFrame["type"];

// Server → client.
export const welcomeFrameSchema = z.object({
  type: z.literal("welcome"),
  protocol: z.literal(PROTOCOL_VERSION),
  session: z.string(),
  heartbeat_ms: z.number().int().positive(),
});
export const acceptedFrameSchema = z.object({
  type: z.literal("accepted"),
  id: z.string().optional(),
  rid: ridSchema,
  existing: z.boolean(),
});
export const okFrameSchema = z.object({
  type: z.literal("ok"),
  id: z.string().optional(),
  rid: ridSchema.optional(),
  thread: threadIdSchema.optional(),
  /** On a subscribe's `ok`: the response had ended, so its replay ends with its `end`. */
  ended: z.boolean().optional(),
  /** On a follow's `ok`: the seq of the thread's last turn then; turns up to it are replayed. */
  last: z.number().int().nonnegative().optional(),
});
export const pongFrameSchema = z.object({ type: z.literal("pong"), id: z.string().optional() });
export const errorFrameSchema = z.object({
  type: z.literal("error"),
  id: z.string().optional(),
  rid: z.string().optional(),
  thread: z.string().optional(),
  code: z.enum(ERROR_CODES),
  message: z.string(),
});
export const goawayFrameSchema = z.object({ type: z.literal("goaway") });
/**
 * One turn of a followed thread: the response `rid` a generate started in it, the new messages
 * that generate brought (the trailing messages after the last assistant message), and when
 * (whole seconds). `seq` counts the thread's turns from 1, with no gaps.
 */
export const turnFrameSchema = z.object({
  type: z.literal("turn"),
  thread: threadIdSchema,
  seq: z.number().int().positive(),
  rid: ridSchema,
  messages: z.array(chatMessageSchema),
  created_at: z.number().int().nonnegative(),
});

export const serverFrameSchema = z.discriminatedUnion("type", [
  welcomeFrameSchema,
  acceptedFrameSchema,
  okFrameSchema,
  pongFrameSchema,
  errorFrameSchema,
  goawayFrameSchema,
  eventFrameSchema,
  turnFrameSchema,
]);

export type WelcomeFrame = z.infer<typeof welcomeFrameSchema>;
export type AcceptedFrame = z.infer<typeof acceptedFrameSchema>;
export type OkFrame = z.infer<typeof okFrameSchema>;
export type PongFrame = z.infer<typeof pongFrameSchema>;
export type ErrorFrame = z.infer<typeof errorFrameSchema>;
export type GoawayFrame = z.infer<typeof goawayFrameSchema>;
export type TurnFrame = z.infer<typeof turnFrameSchema>;
export type ServerFrame = z.infer<typeof serverFrameSchema>;
