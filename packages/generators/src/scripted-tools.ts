import type { ChatMessage, GenerationBody, Tool } from "@unbroken/protocol";
import { hashText } from "./prng.js";

/** A tool call the scripted generator writes: its id, the function, and the whole argument text. */
export interface PlannedCall {
  id: string;
  name: string;
  /** JSON text of an object with every required parameter filled. */
  arguments: string;
}

/** Nested object schemas deeper than this get `{}`: a recursive schema must not recurse forever. */
const MAX_DEPTH = 8;

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\-]/g, "\\$&");

/** Whether `text` names `name` as a whole word (case-insensitive; `_` and digits belong to a word). */
export function mentions(text: string, name: string): boolean {
  return new RegExp(`(?<![A-Za-z0-9_])${escapeRegExp(name)}(?![A-Za-z0-9_])`, "i").test(text);
}

/**
 * The function the answer calls, if any: `tool_choice` "none" never calls; a forced function
 * or "required" (the first tool) always does, as OpenAI's API does; otherwise the first of
 * `tools` that the last message names, when that message is the user's (or the prompt).
 */
export function chosenTool(body: GenerationBody): Tool | undefined {
  const tools = body.tools ?? [];
  const choice = body.tool_choice;
  if (tools.length === 0 || choice === "none") return undefined;
  if (typeof choice === "object") return tools.find((t) => t.function.name === choice.function.name);
  if (choice === "required") return tools[0];
  const last = body.messages?.at(-1);
  const text = body.prompt ?? (last?.role === "user" ? last.content : undefined);
  if (text === undefined) return undefined;
  return tools.find((t) => mentions(text, t.function.name));
}

/** The call the answer makes (after any reasoning), or undefined when it answers with text. */
export function plannedCall(body: GenerationBody, prompt: string, seed: number, index = 0): PlannedCall | undefined {
  const tool = chosenTool(body);
  if (!tool) return undefined;
  return { id: callId(prompt, seed, index), name: tool.function.name, arguments: JSON.stringify(argumentsFor(tool.function.parameters)) };
}

/** "call_" and 16 hex digits from the prompt, the seed and the call's index: the same on every worker. */
export function callId(prompt: string, seed: number, index: number): string {
  const key = `${prompt}\u0000call ${index}`;
  const hex = (h: number): string => h.toString(16).padStart(8, "0");
  return `call_${hex(hashText(key, seed))}${hex(hashText(key, seed ^ 0x5bd1e995))}`;
}

/** An object with every `required` property of a JSON Schema object filled with a value of its type. */
export function argumentsFor(parameters: Record<string, unknown> | undefined, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (!parameters || depth > MAX_DEPTH) return out;
  const props = isRecord(parameters.properties) ? parameters.properties : {};
  const required = Array.isArray(parameters.required) ? parameters.required.filter((r): r is string => typeof r === "string") : [];
  for (const name of required) out[name] = valueFor(props[name], depth + 1);
  return out;
}

/**
 * A value a JSON Schema accepts, by its type: strings "sample", numbers 42, booleans true,
 * arrays [], objects with their own required properties filled; `const` and the first of an
 * `enum` win; of `anyOf`/`oneOf`/`allOf` and of a list of types, the first (not null).
 */
export function valueFor(schema: unknown, depth = 0): unknown {
  if (!isRecord(schema)) return "sample";
  if ("const" in schema) return schema.const;
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum[0];
  for (const key of ["anyOf", "oneOf", "allOf"] as const) {
    const options = schema[key];
    if (Array.isArray(options) && options.length > 0) {
      const first = options.find((o) => !(isRecord(o) && o.type === "null")) ?? options[0];
      return valueFor(first, depth);
    }
  }
  const types = Array.isArray(schema.type) ? schema.type : [schema.type];
  const type = types.find((t) => t !== "null") ?? types[0];
  switch (type) {
    case "string":
      return "sample";
    case "number":
    case "integer":
      return 42;
    case "boolean":
      return true;
    case "array":
      return [];
    case "null":
      return null;
    case "object":
      return argumentsFor(schema, depth);
    default:
      return isRecord(schema.properties) ? argumentsFor(schema, depth) : "sample";
  }
}

/** JSON text split as a tokenizer would: word runs, punctuation runs, spaces. Joined, they are the text. */
export function argumentChunks(json: string): string[] {
  return json.match(/\w+|\s+|[^\w\s]+/g) ?? [];
}

/**
 * When the last message is a tool result: the tokens the answer begins with, "The result of
 * <function> is <content, first 200 chars>." (the function named by the assistant call it
 * answers). Undefined when the last message is not a tool message.
 */
export function toolResultLead(messages: ChatMessage[] | undefined): string[] | undefined {
  const last = messages?.at(-1);
  if (last?.role !== "tool") return undefined;
  let name = "the tool";
  for (const m of messages ?? [])
    if (m.role === "assistant") for (const c of m.tool_calls ?? []) if (c.id === last.tool_call_id) name = c.function.name;
  const sentence = `The result of ${name} is ${last.content.slice(0, 200)}.`;
  return sentence.match(/\s*\S+/g) ?? [sentence];
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
