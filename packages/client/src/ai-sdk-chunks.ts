import type { UIMessage, UIMessageChunk } from "ai";
import { LIMITS, type ChatMessage } from "@unbroken/protocol";
import type { ResponseEventFrame } from "./frames.js";

const FINISH_REASON = { stop: "stop", length: "length", tool_calls: "tool-calls", error: "error", cancelled: "other" } as const;

/** Turns one response's event frames into UI message chunks (the `start` chunk is sent before). */
export class ChunkMapper {
  readonly #rid: string;
  #textId: string | undefined;

  constructor(rid: string) {
    this.#rid = rid;
  }

  map(frame: ResponseEventFrame): UIMessageChunk[] {
    const ev = frame.event;
    const out: UIMessageChunk[] = [];
    switch (ev.kind) {
      case "token":
        if (typeof ev.text !== "string" || ev.text === "") break;
        if (this.#textId === undefined) {
          // Named after the seq it starts at, so a replay gives the same ids.
          this.#textId = `text-${frame.seq}`;
          out.push({ type: "text-start", id: this.#textId });
        }
        out.push({ type: "text-delta", id: this.#textId, delta: ev.text });
        break;
      case "steer":
        // The text after a steer is a new part, so the marker sits where it took effect.
        this.#closeText(out);
        out.push({ type: "steering-message", id: `${this.#rid}-steer-${frame.seq}`, parts: [{ type: "text", text: ev.text }] });
        break;
      case "end": {
        this.#closeText(out);
        if (ev.reason === "error") {
          const code = ev.error?.code ?? "error";
          out.push({ type: "error", errorText: `${code}: ${ev.error?.message ?? "the generation failed"}` });
        } else if (ev.reason === "cancelled") {
          out.push({ type: "abort", reason: "cancelled" });
        }
        out.push({ type: "finish", finishReason: FINISH_REASON[ev.reason] ?? "other" });
        break;
      }
      default:
        break; // `start`, and kinds a later edge may add
    }
    return out;
  }

  #closeText(out: UIMessageChunk[]): void {
    if (this.#textId === undefined) return;
    out.push({ type: "text-end", id: this.#textId });
    this.#textId = undefined;
  }
}

/**
 * The default `toMessages`: each message's text parts joined, roles kept (`system`, `user`,
 * `assistant`). A steer inside an assistant answer becomes a user message between its two
 * halves. Messages without text are left out, and at most the last 256 are sent.
 */
export function uiMessagesToChatMessages(messages: readonly UIMessage[]): ChatMessage[] {
  const out: ChatMessage[] = [];
  const push = (role: "system" | "user" | "assistant", content: string): void => {
    if (content !== "") out.push({ role, content });
  };
  for (const message of messages) {
    const role = message.role;
    if (role !== "system" && role !== "user" && role !== "assistant") continue;
    let text = "";
    for (const part of message.parts) {
      if (part.type === "text") text += part.text;
      else if (part.type === "steering-message") {
        push(role, text);
        text = "";
        push("user", part.parts.map((p) => (p.type === "text" ? p.text : "")).join(""));
      }
    }
    push(role, text);
  }
  return out.slice(-LIMITS.messages);
}
