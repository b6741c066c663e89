import type { UIMessage } from "ai";
import { LIMITS, type ChatMessage, type MessageToolCall } from "@unbroken/protocol";
import { DROPPED_METADATA_KEY } from "./ai-sdk-chunks.js";

type Part = UIMessage["parts"][number];

/** A tool UI part's fields, read loosely: the app's own tool types are not known here. */
interface ToolPartView {
  toolCallId: string;
  toolName: string;
  state: string;
  input?: unknown;
  output?: unknown;
  errorText?: string;
  toolMetadata?: Record<string, unknown>;
}

function toolPart(part: Part): ToolPartView | undefined {
  const p = part as Part & Partial<ToolPartView>;
  const name = p.type === "dynamic-tool" ? p.toolName : p.type.startsWith("tool-") ? p.type.slice(5) : undefined;
  if (name === undefined || typeof p.toolCallId !== "string" || typeof p.state !== "string") return undefined;
  return { ...p, toolName: name } as ToolPartView;
}

/** What the model gets back for a call: the output as text (JSON unless it is a string), or the error. */
function resultText(part: ToolPartView): string {
  if (part.state === "output-error") return `Error: ${part.errorText ?? "the tool failed"}`;
  return typeof part.output === "string" ? part.output : (JSON.stringify(part.output) ?? "null");
}

/** Builds the messages of one UI message, a step at a time (text, then the calls and their results). */
class Builder {
  readonly out: ChatMessage[] = [];
  #text = "";
  #calls: MessageToolCall[] = [];
  #results: ChatMessage[] = [];

  constructor(private readonly role: "system" | "user" | "assistant") {}

  text(t: string): void {
    // Text after calls is the model's next step: the calls and their results come first.
    if (this.#calls.length > 0) this.flush();
    this.#text += t;
  }

  call(part: ToolPartView): void {
    const done = part.state === "output-available" || part.state === "output-error";
    // Calls still waiting for their result, and calls a worker dropped, are not sent back.
    if (!done || part.toolMetadata?.[DROPPED_METADATA_KEY] === true) return;
    const args = typeof part.input === "string" ? part.input : (JSON.stringify(part.input ?? {}) ?? "{}");
    this.#calls.push({ id: part.toolCallId, type: "function", function: { name: part.toolName, arguments: args } });
    this.#results.push({ role: "tool", tool_call_id: part.toolCallId, content: resultText(part) });
  }

  steer(text: string): void {
    this.flush();
    if (text !== "") this.out.push({ role: "user", content: text });
  }

  flush(): void {
    if (this.role === "assistant" && this.#calls.length > 0) {
      this.out.push({ role: "assistant", content: this.#text, tool_calls: this.#calls }, ...this.#results);
    } else if (this.#text !== "") {
      this.out.push({ role: this.role, content: this.#text });
    }
    this.#text = "";
    this.#calls = [];
    this.#results = [];
  }
}

/**
 * The default `toMessages`: each message's text parts joined, roles kept (`system`, `user`,
 * `assistant`). A steer inside an assistant answer becomes a user message between its two
 * halves. Tool parts with a result (`output-available`, `output-error`) become the assistant
 * message's `tool_calls` followed by one `tool` message each, so an agent loop's next request
 * carries the results; calls without a result yet are left out, and so is reasoning (it is not
 * sent back). Messages without text are left out, and at most the last 256 are sent (never
 * starting with a `tool` message cut off from its call).
 */
export function uiMessagesToChatMessages(messages: readonly UIMessage[]): ChatMessage[] {
  const out: ChatMessage[] = [];
  for (const message of messages) {
    const role = message.role;
    if (role !== "system" && role !== "user" && role !== "assistant") continue;
    const b = new Builder(role);
    for (const part of message.parts) {
      if (part.type === "text") b.text(part.text);
      else if (part.type === "steering-message") b.steer(part.parts.map((p) => (p.type === "text" ? p.text : "")).join(""));
      else {
        const call = role === "assistant" ? toolPart(part) : undefined;
        if (call !== undefined) b.call(call);
      }
    }
    b.flush();
    out.push(...b.out);
  }
  const kept = out.slice(-LIMITS.messages);
  while (kept[0]?.role === "tool") kept.shift();
  return kept;
}
