import type { UIMessageChunk } from "ai";
import { AnswerParts, type PartChange } from "@unbroken/protocol";
import type { ResponseEventFrame } from "./frames.js";

const FINISH_REASON = { stop: "stop", length: "length", tool_calls: "tool-calls", error: "error", cancelled: "other" } as const;

/** Set on the tool part of a call a worker dropped, so `uiMessagesToChatMessages` leaves it out. */
export const DROPPED_METADATA_KEY = "unbrokenDropped";

/**
 * Turns one response's event frames into UI message chunks (the `start` and `start-step` chunks
 * are sent before). The answer is cut into parts by the protocol's `AnswerParts`; each part
 * becomes the AI SDK's: text → `text-*`, reasoning → `reasoning-*`, a tool call →
 * `tool-input-start`, `tool-input-delta`…, `tool-input-available` (or `tool-input-error` when a
 * worker dropped it). Ids are named after the seq a part starts at, so a replay gives the same ids.
 */
export class ChunkMapper {
  readonly #rid: string;
  readonly #parts = new AnswerParts();
  /** The text or reasoning part open on the UI side: its index in the answer and its chunk id. */
  #open: { index: number; id: string; type: "text" | "reasoning" } | undefined;

  constructor(rid: string) {
    this.#rid = rid;
  }

  map(frame: ResponseEventFrame): UIMessageChunk[] {
    const ev = frame.event;
    const out: UIMessageChunk[] = [];
    if (ev.kind === "steer") {
      // The text after a steer is a new UI part, so the marker sits where it took effect.
      this.#closeOpen(out);
      out.push({ type: "steering-message", id: `${this.#rid}-steer-${frame.seq}`, parts: [{ type: "text", text: ev.text }] });
      return out;
    }
    for (const change of this.#parts.apply(ev)) this.#change(change, frame, out);
    if (ev.kind === "end") {
      if (ev.reason === "error") {
        const code = ev.error?.code ?? "error";
        out.push({ type: "error", errorText: `${code}: ${ev.error?.message ?? "the generation failed"}` });
      } else if (ev.reason === "cancelled") {
        out.push({ type: "abort", reason: "cancelled" });
      }
      out.push({ type: "finish-step" }, { type: "finish", finishReason: FINISH_REASON[ev.reason] ?? "other" });
    }
    return out;
  }

  #change(change: PartChange, frame: ResponseEventFrame, out: UIMessageChunk[]): void {
    const part = change.part;
    if (part.type === "tool_call") {
      const ids = { toolCallId: part.id, toolName: part.name };
      if (change.type === "start") out.push({ type: "tool-input-start", ...ids });
      else if (change.type === "delta") out.push({ type: "tool-input-delta", toolCallId: part.id, inputTextDelta: change.delta });
      else if (part.state === "done") out.push({ type: "tool-input-available", ...ids, input: part.input });
      else {
        const reason = frame.event.kind === "tool_dropped" ? frame.event.reason : "the call did not complete";
        out.push({
          type: "tool-input-error",
          ...ids,
          input: undefined,
          errorText: `dropped: ${reason}`,
          toolMetadata: { [DROPPED_METADATA_KEY]: true },
        });
        // A new step after it: the answer goes on, and `lastAssistantMessageIsCompleteWithToolCalls`
        // must not take the dropped call for one that waits to be sent back.
        out.push({ type: "finish-step" }, { type: "start-step" });
      }
      return;
    }
    if (change.type === "delta") {
      if (this.#open?.index !== change.index) {
        this.#closeOpen(out);
        this.#open = { index: change.index, id: `${part.type}-${frame.seq}`, type: part.type };
        out.push({ type: part.type === "text" ? "text-start" : "reasoning-start", id: this.#open.id });
      }
      const id = this.#open.id;
      out.push(
        part.type === "text" ? { type: "text-delta", id, delta: change.delta } : { type: "reasoning-delta", id, delta: change.delta },
      );
    } else if (change.type === "end" && this.#open?.index === change.index) {
      this.#closeOpen(out);
    }
  }

  #closeOpen(out: UIMessageChunk[]): void {
    const open = this.#open;
    if (open === undefined) return;
    out.push({ type: open.type === "text" ? "text-end" : "reasoning-end", id: open.id });
    this.#open = undefined;
  }
}
