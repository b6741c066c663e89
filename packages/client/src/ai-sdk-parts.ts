import type { UIMessage, UIMessageChunk } from "ai";
import type { ChatMessage } from "@unbroken/protocol";
import { ChunkMapper } from "./ai-sdk-chunks.js";
import type { ResponseEventFrame } from "./frames.js";

type Part = UIMessage["parts"][number];
/** A tool part, written loosely: the app's own tool types are not known here. */
type ToolPart = { type: string; toolCallId: string; state: string } & Record<string, unknown>;

/**
 * The parts `useChat` builds from the transport's stream of an answer: the same `ChunkMapper`
 * chunks, applied as the AI SDK applies them (only the chunk types the mapper makes). Used for
 * answers read whole (`threadMessages`), so a loaded answer looks like a streamed one.
 */
export function answerUIParts(rid: string, frames: readonly ResponseEventFrame[]): Part[] {
  const mapper = new ChunkMapper(rid);
  const parts: Part[] = [{ type: "step-start" }];
  const open = new Map<string, { text: string; state: string }>();
  const tools = new Map<string, ToolPart>();
  for (const frame of frames) {
    for (const chunk of mapper.map(frame)) apply(chunk, parts, open, tools);
  }
  return parts;
}

function apply(
  chunk: UIMessageChunk,
  parts: Part[],
  open: Map<string, { text: string; state: string }>,
  tools: Map<string, ToolPart>,
): void {
  switch (chunk.type) {
    case "start-step":
      parts.push({ type: "step-start" });
      return;
    case "text-start":
    case "reasoning-start": {
      // The AI SDK keys a reasoning part by its chunk id, not a text part.
      const kind = chunk.type === "text-start" ? { type: "text" } : { type: "reasoning", id: chunk.id };
      const part = { ...kind, text: "", state: "streaming" } as Part & { text: string; state: string };
      open.set(chunk.id, part);
      parts.push(part);
      return;
    }
    case "text-delta":
    case "reasoning-delta": {
      const part = open.get(chunk.id);
      if (part !== undefined) part.text += chunk.delta;
      return;
    }
    case "text-end":
    case "reasoning-end": {
      const part = open.get(chunk.id);
      if (part !== undefined) part.state = "done";
      open.delete(chunk.id);
      return;
    }
    case "tool-input-start": {
      const part: ToolPart = { type: `tool-${chunk.toolName}`, toolCallId: chunk.toolCallId, state: "input-streaming", input: undefined };
      tools.set(chunk.toolCallId, part);
      parts.push(part as unknown as Part);
      return;
    }
    case "tool-input-available":
    case "tool-input-error": {
      const part = tools.get(chunk.toolCallId);
      if (part === undefined) return;
      part.input = chunk.input;
      if (chunk.type === "tool-input-available") part.state = "input-available";
      else Object.assign(part, { state: "output-error", errorText: chunk.errorText, toolMetadata: chunk.toolMetadata });
      return;
    }
    case "steering-message":
      parts.push({ type: "steering-message", id: chunk.id, parts: chunk.parts } as Part);
      return;
    default:
      // tool-input-delta (the whole input comes with tool-input-available), finish, error, abort:
      // nothing a loaded message keeps.
      return;
  }
}

/**
 * Sets the results a turn's `tool` messages bring as the outputs of the calls they answer (in
 * the messages before), as `uiMessagesToChatMessages` reads them back: the content, a string.
 */
export function setToolOutputs(messages: readonly UIMessage[], turnMessages: readonly ChatMessage[]): void {
  for (const m of turnMessages) {
    if (m.role !== "tool") continue;
    const part = findCall(messages, m.tool_call_id);
    if (part !== undefined && part.state === "input-available") Object.assign(part, { state: "output-available", output: m.content });
  }
}

function findCall(messages: readonly UIMessage[], id: string): ToolPart | undefined {
  for (let i = messages.length - 1; i >= 0; i--) {
    for (const p of (messages[i] as UIMessage).parts) {
      const part = p as unknown as ToolPart;
      if (part.toolCallId === id && part.type.startsWith("tool-")) return part;
    }
  }
  return undefined;
}
