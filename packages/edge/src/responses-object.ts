import { wholeSeconds, type AnswerPart, type EndEvent, type ResponseRecord } from "@unbroken/protocol";

/**
 * The pieces of OpenAI's Response object (shapes from the `openai` package's
 * resources/responses/responses.d.ts) as unbroken builds them from a response's record and log.
 * Nothing here reads a clock: the same record and log give the same object on every read.
 */

export type ResponseStatus = "queued" | "in_progress" | "completed" | "incomplete" | "cancelled" | "failed";
export type ItemStatus = "in_progress" | "completed" | "incomplete";

export interface ResponseUsage {
  input_tokens: number;
  input_tokens_details: { cached_tokens: number; cache_write_tokens: number };
  output_tokens: number;
  output_tokens_details: { reasoning_tokens: number };
  total_tokens: number;
}

export type OutputItem = Record<string, unknown> & { id: string; type: string };

/** An output item's id: its kind, the response and its place in the output, so an `item_reference` can be looked up. */
export function itemId(part: AnswerPart, rid: string, index: number): string {
  const prefix = part.type === "text" ? "msg" : part.type === "reasoning" ? "rs" : "fc";
  return `${prefix}_${rid}_${index}`;
}

/** The response and output index an item id names, if it is one of ours. */
export function parseItemId(id: string): { kind: "msg" | "rs" | "fc"; rid: string; index: number } | undefined {
  const m = /^(msg|rs|fc)_([A-Za-z0-9_-]{8,64})_(\d{1,6})$/.exec(id);
  if (!m) return undefined;
  return { kind: m[1] as "msg" | "rs" | "fc", rid: m[2] as string, index: Number(m[3]) };
}

export const outputText = (text: string) => ({ type: "output_text", text, annotations: [], logprobs: [] });
export const reasoningText = (text: string) => ({ type: "reasoning_text", text });

/** A part as an output item: a message, a reasoning item (raw reasoning as `reasoning_text` content), or a function call. */
export function outputItem(part: AnswerPart, rid: string, index: number, status: ItemStatus, empty = false): OutputItem {
  const id = itemId(part, rid, index);
  switch (part.type) {
    case "text":
      return { id, type: "message", role: "assistant", status, content: empty ? [] : [outputText(part.text)] };
    case "reasoning":
      return { id, type: "reasoning", summary: [], content: empty ? [] : [reasoningText(part.text)], status };
    case "tool_call":
      return { id, type: "function_call", call_id: part.id, name: part.name, arguments: empty ? "" : part.arguments, status };
  }
}

export function toUsage(usage: EndEvent["usage"]): ResponseUsage {
  return {
    input_tokens: usage.prompt_tokens,
    input_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 },
    output_tokens: usage.completion_tokens,
    output_tokens_details: { reasoning_tokens: usage.reasoning_tokens ?? 0 },
    total_tokens: usage.prompt_tokens + usage.completion_tokens,
  };
}

/** What an `end` makes of the response: its status and why it is not complete. */
export function endStatus(end: { reason: string; error?: { code: string; message: string } | undefined }): {
  status: ResponseStatus;
  error: { code: string; message: string } | null;
  incomplete_details: { reason: "max_output_tokens" } | null;
} {
  switch (end.reason) {
    case "stop":
    case "tool_calls":
      return { status: "completed", error: null, incomplete_details: null };
    case "length":
      return { status: "incomplete", error: null, incomplete_details: { reason: "max_output_tokens" } };
    case "cancelled":
      return { status: "cancelled", error: null, incomplete_details: null };
    default:
      // The project's stable end error code (END_ERROR_CODES), not one of OpenAI's.
      return {
        status: "failed",
        error: { code: end.error?.code ?? "generator_error", message: end.error?.message ?? "" },
        incomplete_details: null,
      };
  }
}

/** The object's fields that come from the request (the record), whatever the log holds. */
export function requestFields(record: ResponseRecord): Record<string, unknown> {
  const { params, tools, tool_choice } = record.request;
  const echo = record.openai;
  return {
    id: record.rid,
    object: "response",
    created_at: wholeSeconds(record.created_at),
    background: echo?.background ?? false,
    instructions: echo?.instructions ?? null,
    metadata: echo?.metadata ?? null,
    max_output_tokens: params?.max_tokens ?? null,
    parallel_tool_calls: true,
    previous_response_id: null,
    reasoning: { effort: params?.reasoning_effort ?? null, summary: null },
    store: true,
    temperature: params?.temperature ?? null,
    text: { format: { type: "text" } },
    tool_choice:
      tool_choice === undefined
        ? "auto"
        : typeof tool_choice === "string"
          ? tool_choice
          : { type: "function", name: tool_choice.function.name },
    tools: (tools ?? []).map((t) => ({
      type: "function",
      name: t.function.name,
      description: t.function.description ?? null,
      parameters: t.function.parameters ?? null,
      strict: t.function.strict ?? null,
    })),
    top_p: params?.top_p ?? null,
    truncation: "disabled",
  };
}
