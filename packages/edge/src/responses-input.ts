import {
  LIMITS,
  ProtocolError,
  type ChatMessage,
  type GenerateFrame,
  type ReasoningEffort,
  type ResponseRecord,
  type Tool,
  type ToolChoice,
  toolCallIdSchema,
  toolNameSchema,
} from "@unbroken/protocol";
import { z } from "zod";
import { describeIssues } from "./http-util.js";

/**
 * The body of `POST /v1/responses` (OpenAI's Responses API; shapes from the `openai` package's
 * ResponseCreateParams), and how it becomes a `generate`: input items become OpenAI-shaped chat
 * messages, function tools the protocol's tools. What cannot be honoured is refused (400 naming
 * the field) rather than ignored: hosted tools, structured output, stored conversations.
 */

const metadataSchema = z.record(z.string().max(64), z.string().max(512)).refine((m) => Object.keys(m).length <= 16, "at most 16 keys");

const functionToolSchema = z.object({
  type: z.literal("function", { message: "only function tools are supported" }),
  name: toolNameSchema,
  description: z.string().nullish(),
  parameters: z.record(z.string(), z.unknown()).nullish(),
  strict: z.boolean().nullish(),
});

const toolChoiceSchema = z.union([z.enum(["none", "auto", "required"]), z.object({ type: z.literal("function"), name: toolNameSchema })]);

/** Effort names beyond the protocol's ("xhigh", "max") ask for the most it has. */
const effortSchema = z
  .enum(["none", "minimal", "low", "medium", "high", "xhigh", "max"])
  .nullish()
  .transform((e): ReasoningEffort | undefined => (e === "xhigh" || e === "max" ? "high" : (e ?? undefined)));

export const createBodySchema = z.object({
  model: z.string().max(256).nullish(),
  input: z.union([z.string(), z.array(z.looseObject({ type: z.string().optional() })).max(LIMITS.messages)]),
  instructions: z.string().nullish(),
  tools: z.array(functionToolSchema).max(LIMITS.tools).nullish(),
  tool_choice: toolChoiceSchema.nullish(),
  parallel_tool_calls: z.boolean().nullish(),
  reasoning: z.object({ effort: effortSchema }).loose().nullish(),
  max_output_tokens: z.number().int().positive().max(LIMITS.maxTokens).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  stream: z.boolean().nullish(),
  background: z.boolean().nullish(),
  metadata: metadataSchema.nullish(),
  store: z.boolean().nullish(),
  text: z
    .object({ format: z.object({ type: z.literal("text", { message: "only text output is supported" }) }).nullish() })
    .loose()
    .nullish(),
  // Asking for what a server without stored conversations or prompt templates cannot do is an error, not a silent no.
  previous_response_id: z.null({ message: "not supported: send the whole conversation as input" }).optional(),
  conversation: z.null({ message: "not supported: send the whole conversation as input" }).optional(),
  prompt: z.null({ message: "prompt templates are not supported" }).optional(),
});
export type CreateBody = z.infer<typeof createBodySchema>;

const textPartSchema = z.object({
  type: z.enum(["input_text", "output_text"], { message: "only input_text and output_text parts are supported" }),
  text: z.string(),
});
const contentSchema = z.union([z.string(), z.array(textPartSchema).max(LIMITS.messages)]);

const ITEM_SCHEMAS = {
  message: z.object({
    type: z.literal("message").optional(),
    role: z.enum(["user", "system", "developer", "assistant"]),
    content: contentSchema,
  }),
  function_call: z.object({
    type: z.literal("function_call"),
    call_id: toolCallIdSchema,
    name: toolNameSchema,
    arguments: z.string(),
  }),
  function_call_output: z.object({ type: z.literal("function_call_output"), call_id: toolCallIdSchema, output: contentSchema }),
  reasoning: z.object({ type: z.literal("reasoning") }).loose(),
  item_reference: z.object({ type: z.literal("item_reference"), id: z.string().max(256) }),
};
type Item =
  | z.infer<(typeof ITEM_SCHEMAS)["message"]>
  | z.infer<(typeof ITEM_SCHEMAS)["function_call"]>
  | z.infer<(typeof ITEM_SCHEMAS)["function_call_output"]>
  | z.infer<(typeof ITEM_SCHEMAS)["reasoning"]>;

/**
 * An input item as the earlier response it names holds it (`item_reference`, which the AI SDK
 * sends for earlier output when `store` is on); null: an item that adds no message (reasoning);
 * undefined: it names nothing the caller may read.
 */
export type ResolveItem = (id: string) => Promise<InputItem | null | undefined>;
export type InputItem = { type: "message"; role: "assistant"; content: string } | z.infer<(typeof ITEM_SCHEMAS)["function_call"]>;

function parseOrThrow<T>(schema: z.ZodType<T>, value: unknown, path: Array<string | number> = []): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((i) => ({ ...i, path: [...path, ...i.path] }));
  throw new ProtocolError("bad_request", describeIssues(issues));
}

export function parseCreateBody(body: unknown): CreateBody {
  if (typeof body !== "object" || body === null || Array.isArray(body))
    throw new ProtocolError("bad_request", "body must be a JSON object");
  if (!("input" in body)) throw new ProtocolError("bad_request", "input: required (a string or a list of items)");
  return parseOrThrow(createBodySchema, body);
}

/** The input items, each checked against its type's shape; references resolved; reasoning items left out. */
async function items(input: CreateBody["input"], resolve: ResolveItem): Promise<Item[]> {
  if (typeof input === "string") return [{ role: "user", content: input }];
  const out: Item[] = [];
  for (const [i, raw] of input.entries()) {
    const type = raw.type ?? "message";
    // Own keys only: `in` also finds Object.prototype's (`__proto__`, `toString`), which are
    // no schema, and the request then failed with a 500 (found by the fuzz-doors test).
    if (!Object.hasOwn(ITEM_SCHEMAS, type)) throw new ProtocolError("bad_request", `input.${i}.type: item type ${type} is not supported`);
    const item = parseOrThrow(
      ITEM_SCHEMAS[type as keyof typeof ITEM_SCHEMAS] as z.ZodType<Item | { type: "item_reference"; id: string }>,
      raw,
      ["input", i],
    );
    if (item.type === "item_reference") {
      const found = await resolve(item.id);
      if (found === undefined) throw new ProtocolError("bad_request", `input.${i}.id: no item ${item.id} in a response of yours`);
      if (found !== null) out.push(found);
    } else out.push(item);
  }
  return out;
}

const textOf = (content: z.infer<typeof contentSchema>): string =>
  typeof content === "string" ? content : content.map((p) => p.text).join("");

/** Input items as chat messages: function calls join the assistant message before them, outputs become `tool` messages. */
export function toMessages(instructions: string | null | undefined, list: Item[]): ChatMessage[] {
  const messages: ChatMessage[] = [];
  if (instructions) messages.push({ role: "system", content: instructions });
  for (const item of list) {
    if (item.type === "reasoning") continue; // chat messages carry no reasoning back, as in OpenAI's chat API
    if (item.type === "function_call") {
      const call = { id: item.call_id, type: "function" as const, function: { name: item.name, arguments: item.arguments } };
      const last = messages.at(-1);
      if (last?.role === "assistant") last.tool_calls = [...(last.tool_calls ?? []), call];
      else messages.push({ role: "assistant", content: "", tool_calls: [call] });
    } else if (item.type === "function_call_output") {
      messages.push({ role: "tool", tool_call_id: item.call_id, content: textOf(item.output) });
    } else {
      const role = item.role === "developer" ? "system" : item.role;
      messages.push({ role, content: textOf(item.content) });
    }
  }
  return messages;
}

function toTools(tools: CreateBody["tools"]): Tool[] | undefined {
  if (!tools || tools.length === 0) return undefined;
  return tools.map((t) => ({
    type: "function",
    function: {
      name: t.name,
      ...(t.description != null ? { description: t.description } : {}),
      ...(t.parameters != null ? { parameters: t.parameters } : {}),
      ...(t.strict != null ? { strict: t.strict } : {}),
    },
  }));
}

function toToolChoice(choice: CreateBody["tool_choice"]): ToolChoice | undefined {
  if (choice == null) return undefined;
  return typeof choice === "string" ? choice : { type: "function", function: { name: choice.name } };
}

/** The `generate` a create body asks for, under rid (not yet checked against the protocol's schema). */
export async function toGenerate(body: CreateBody, rid: string, resolve: ResolveItem): Promise<Record<string, unknown>> {
  const params: NonNullable<GenerateFrame["params"]> = {};
  if (body.max_output_tokens != null) params.max_tokens = body.max_output_tokens;
  if (body.temperature != null) params.temperature = body.temperature;
  if (body.top_p != null) params.top_p = body.top_p;
  const effort = body.reasoning?.effort;
  if (effort !== undefined) params.reasoning_effort = effort;
  const messages = toMessages(body.instructions, await items(body.input, resolve));
  if (messages.length === 0) throw new ProtocolError("bad_request", "input: give at least one message");
  const frame: Record<string, unknown> = { type: "generate", rid, messages, params };
  const tools = toTools(body.tools);
  if (tools) frame.tools = tools;
  const choice = toToolChoice(body.tool_choice);
  if (choice) frame.tool_choice = choice;
  return frame;
}

/** What the record keeps for the response object beyond the generation. */
export function echoOf(body: CreateBody): NonNullable<ResponseRecord["openai"]> {
  return {
    background: body.background ?? false,
    instructions: body.instructions ?? null,
    metadata: body.metadata ?? null,
    model: body.model ?? null,
  };
}
