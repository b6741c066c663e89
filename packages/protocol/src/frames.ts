import * as z from "zod";
import { ERROR_CODES } from "./codes.js";
import { ridSchema } from "./rid.js";
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
} as const;

export const frameIdSchema = z.string().max(LIMITS.frameId);

export const roleSchema = z.enum(["system", "user", "assistant"]);
export const chatMessageSchema = z.object({ role: roleSchema, content: z.string() });
export type ChatMessage = z.infer<typeof chatMessageSchema>;

export const generationParamsSchema = z.object({
  max_tokens: z.number().int().positive().max(LIMITS.maxTokens).optional(),
  temperature: z.number().min(0).max(2).optional(),
  top_p: z.number().gt(0).max(1).optional(),
  seed: z.number().int().optional(),
  stop: z
    .union([z.string().min(1).max(LIMITS.stopLength), z.array(z.string().min(1).max(LIMITS.stopLength)).max(LIMITS.stopSequences)])
    .optional(),
});
export type GenerationParams = z.infer<typeof generationParamsSchema>;

const afterSchema = z.number().int().nonnegative();

const generateFields = {
  rid: ridSchema.optional(),
  messages: z.array(chatMessageSchema).min(1).max(LIMITS.messages).optional(),
  prompt: z.string().optional(),
  params: generationParamsSchema.optional(),
  after: afterSchema.optional(),
};

/** What a generation is asked to do: exactly one of `messages` and `prompt`. */
export const generationBodySchema = z
  .object({
    messages: generateFields.messages,
    prompt: generateFields.prompt,
    params: generateFields.params,
  })
  .refine((b) => (b.messages === undefined) !== (b.prompt === undefined), {
    message: "give exactly one of messages and prompt",
  });
export type GenerationBody = z.infer<typeof generationBodySchema>;

const withId = { id: frameIdSchema.optional() };

export const helloFrameSchema = z.object({ type: z.literal("hello"), token: z.string().optional(), ...withId });
export const generateFrameSchema = z
  .object({ type: z.literal("generate"), ...generateFields, ...withId })
  .refine((f) => (f.messages === undefined) !== (f.prompt === undefined), {
    message: "give exactly one of messages and prompt",
  });
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

export const CLIENT_FRAME_SCHEMAS = {
  hello: helloFrameSchema,
  generate: generateFrameSchema,
  subscribe: subscribeFrameSchema,
  unsubscribe: unsubscribeFrameSchema,
  cancel: cancelFrameSchema,
  steer: steerFrameSchema,
  ping: pingFrameSchema,
} as const;

export type HelloFrame = z.infer<typeof helloFrameSchema>;
export type GenerateFrame = z.infer<typeof generateFrameSchema>;
export type SubscribeFrame = z.infer<typeof subscribeFrameSchema>;
export type UnsubscribeFrame = z.infer<typeof unsubscribeFrameSchema>;
export type CancelFrame = z.infer<typeof cancelFrameSchema>;
export type SteerFrame = z.infer<typeof steerFrameSchema>;
export type PingFrame = z.infer<typeof pingFrameSchema>;
export type ClientFrame = HelloFrame | GenerateFrame | SubscribeFrame | UnsubscribeFrame | CancelFrame | SteerFrame | PingFrame;
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
export const okFrameSchema = z.object({ type: z.literal("ok"), id: z.string().optional(), rid: ridSchema.optional() });
export const pongFrameSchema = z.object({ type: z.literal("pong"), id: z.string().optional() });
export const errorFrameSchema = z.object({
  type: z.literal("error"),
  id: z.string().optional(),
  rid: z.string().optional(),
  code: z.enum(ERROR_CODES),
  message: z.string(),
});
export const goawayFrameSchema = z.object({ type: z.literal("goaway") });

export const serverFrameSchema = z.discriminatedUnion("type", [
  welcomeFrameSchema,
  acceptedFrameSchema,
  okFrameSchema,
  pongFrameSchema,
  errorFrameSchema,
  goawayFrameSchema,
  eventFrameSchema,
]);

export type WelcomeFrame = z.infer<typeof welcomeFrameSchema>;
export type AcceptedFrame = z.infer<typeof acceptedFrameSchema>;
export type OkFrame = z.infer<typeof okFrameSchema>;
export type PongFrame = z.infer<typeof pongFrameSchema>;
export type ErrorFrame = z.infer<typeof errorFrameSchema>;
export type GoawayFrame = z.infer<typeof goawayFrameSchema>;
export type ServerFrame = z.infer<typeof serverFrameSchema>;
