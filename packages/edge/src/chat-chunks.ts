import { AnswerParts, type EndEvent, type PartChange, type ToolCallPart, type Usage } from "@unbroken/protocol";

/**
 * A response's events as OpenAI's chat completion: the deltas of its chunks, or the whole
 * message. Pure (no I/O), so the mapping is tested with crafted logs.
 *
 * - Text: `delta.content`. Reasoning: `delta.reasoning_content` and, with the same text,
 *   `delta.reasoning` (DeepSeek and older vLLM send the first, vLLM since early 2026 the
 *   second; clients read one or the other).
 * - A tool call is held back until it is complete (`tool_done`), then sent as OpenAI streams
 *   one: a chunk with `index`, `id`, `type` and `function: {name, arguments: ""}`, then one
 *   chunk per argument delta with only `index` and `function.arguments`. A chunk cannot be
 *   taken back, and a call can still be dropped (`tool_dropped`, a failover the upstream could
 *   not continue) or left open (an answer cut by `max_tokens`): such a call is never shown,
 *   and does not take an `index`.
 */

export interface ChatToolCallDelta {
  index: number;
  id?: string;
  type?: "function";
  function: { name?: string; arguments: string };
}

export interface ChatDelta {
  role?: "assistant";
  content?: string;
  reasoning_content?: string;
  reasoning?: string;
  tool_calls?: ChatToolCallDelta[];
}

export interface ChatUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  completion_tokens_details: { reasoning_tokens: number };
}

export function chatUsage(u: Usage): ChatUsage {
  return {
    prompt_tokens: u.prompt_tokens,
    completion_tokens: u.completion_tokens,
    total_tokens: u.prompt_tokens + u.completion_tokens,
    completion_tokens_details: { reasoning_tokens: u.reasoning_tokens ?? 0 },
  };
}

const FINISH: Record<EndEvent["reason"], string> = {
  stop: "stop",
  length: "length",
  tool_calls: "tool_calls",
  cancelled: "stop",
  error: "stop",
};

interface LooseEvent {
  kind: string;
  [key: string]: unknown;
}

/** The deltas of a streamed completion, event by event. */
export class ChatStreamDeltas {
  private readonly parts = new AnswerParts();
  /** OpenAI's `index` of the next complete call. */
  private calls = 0;
  /** The open call's chunks, sent once it is done. */
  private held: ChatDelta[] = [];
  private roleSent = false;

  /**
   * The deltas one event adds, in order. The first `start` gives the role alone (no `content`,
   * which the AI SDK would take as an empty text part), so a reader learns the answer began
   * even when it begins with a call that is held back; `steer`, `handover` and `end` give none.
   */
  event(event: LooseEvent): ChatDelta[] {
    const out: ChatDelta[] = [];
    for (const change of this.parts.apply(event)) this.change(change, out);
    if (this.roleSent || (event.kind !== "start" && out.length === 0)) return out;
    this.roleSent = true;
    if (out[0]) out[0] = { role: "assistant", ...out[0] };
    else out.push({ role: "assistant" });
    return out;
  }

  /** The role, when the answer ended before it began (cancelled while queued): OpenAI always sends one. */
  roleIfUnsent(): ChatDelta[] {
    if (this.roleSent) return [];
    this.roleSent = true;
    return [{ role: "assistant", content: "" }];
  }

  /** `finish_reason` for the end: `tool_calls` only when a call was shown. */
  finishReason(end: EndEvent): string {
    return end.reason === "tool_calls" && this.calls === 0 ? "stop" : FINISH[end.reason];
  }

  private change(change: PartChange, out: ChatDelta[]): void {
    const { part } = change;
    if (part.type === "tool_call") this.callChange(change, part, out);
    else if (change.type === "delta" && part.type === "text") out.push({ content: change.delta });
    else if (change.type === "delta") out.push({ reasoning_content: change.delta, reasoning: change.delta });
  }

  private callChange(change: PartChange, part: ToolCallPart, out: ChatDelta[]): void {
    const index = this.calls;
    if (change.type === "start") {
      this.held = [{ tool_calls: [{ index, id: part.id, type: "function", function: { name: part.name, arguments: "" } }] }];
    } else if (change.type === "delta") {
      this.held.push({ tool_calls: [{ index, function: { arguments: change.delta } }] });
    } else {
      const held = this.held;
      this.held = [];
      if (part.state !== "done") return;
      this.calls++;
      out.push(...(joinedArguments(held) === part.arguments ? held : [held[0] as ChatDelta, argumentsDelta(index, part.arguments)]));
    }
  }
}

function joinedArguments(held: ChatDelta[]): string {
  return held.map((d) => d.tool_calls?.[0]?.function.arguments ?? "").join("");
}

/** The whole argument text as one delta: what `tool_done` says when its deltas said otherwise. */
function argumentsDelta(index: number, text: string): ChatDelta {
  return { tool_calls: [{ index, function: { arguments: text } }] };
}

export interface ChatMessage {
  role: "assistant";
  content: string | null;
  refusal: null;
  reasoning_content?: string;
  reasoning?: string;
  tool_calls?: Array<{ id: string; type: "function"; function: { name: string; arguments: string } }>;
}

/** The whole message of a completion that is not streamed. */
export class ChatWholeMessage {
  private readonly parts = new AnswerParts();

  event(event: LooseEvent): void {
    this.parts.apply(event);
  }

  /** OpenAI's message: `content` null when the answer is only tool calls; dropped calls left out. */
  message(): ChatMessage {
    const calls = this.parts.toolCalls;
    const text = this.parts.text;
    const message: ChatMessage = { role: "assistant", content: text.length === 0 && calls.length > 0 ? null : text, refusal: null };
    const reasoning = this.parts.reasoning;
    if (reasoning.length > 0) Object.assign(message, { reasoning_content: reasoning, reasoning });
    if (calls.length > 0)
      message.tool_calls = calls.map((c) => ({ id: c.id, type: "function", function: { name: c.name, arguments: c.arguments } }));
    return message;
  }

  finishReason(end: EndEvent): string {
    return end.reason === "tool_calls" && this.parts.toolCalls.length === 0 ? "stop" : FINISH[end.reason];
  }
}
