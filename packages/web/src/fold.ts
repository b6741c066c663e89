import { AnswerParts, type PartChange } from "@unbroken/client";
import type { Part, ToolPart } from "./model.js";

interface LooseEvent {
  kind: string;
  [key: string]: unknown;
}

/**
 * Folds an answer's events into its turn's parts (what the page shows and keeps across a
 * reload). Text, reasoning and tool calls are cut by the protocol's `AnswerParts`, as every
 * reader cuts them; a steer is a marker of its own, and the text after it a new part.
 */
export class AnswerFold {
  readonly #answer = new AnswerParts();
  readonly #parts: Part[];

  /** `parts`: what the turn already holds (after a reload); the fold goes on from there. */
  constructor(parts: Part[]) {
    this.#parts = parts;
    // The kept parts replayed as events, so a call still streaming stays open for its next delta.
    for (const p of parts) {
      if (p.kind === "text") this.#answer.apply({ kind: "token", text: p.text });
      else if (p.kind === "reasoning") this.#answer.apply({ kind: "reasoning", text: p.text });
      else if (p.kind === "tool") {
        this.#answer.apply({ kind: "tool_call", id: p.id, name: p.name });
        this.#answer.apply({ kind: "tool_args", id: p.id, text: p.args });
        if (p.state === "done") this.#answer.apply({ kind: "tool_done", id: p.id, arguments: p.args });
        if (p.state === "dropped") this.#answer.apply({ kind: "tool_dropped", id: p.id, reason: "" });
      }
    }
  }

  /** Folds one event in; returns the indexes of the turn's parts it changed or added. */
  apply(ev: LooseEvent): number[] {
    if (ev.kind === "steer" && typeof ev.text === "string") {
      this.#parts.push({ kind: "steer", text: ev.text });
      return [this.#parts.length - 1];
    }
    const changed: number[] = [];
    for (const c of this.#answer.apply(ev)) {
      const at = this.#change(c);
      if (at !== undefined && !changed.includes(at)) changed.push(at);
    }
    return changed;
  }

  #change(c: PartChange): number | undefined {
    const part = c.part;
    if (part.type === "tool_call") {
      if (c.type === "start") {
        this.#parts.push({ kind: "tool", id: part.id, name: part.name, args: "", state: "streaming" });
        return this.#parts.length - 1;
      }
      const at = this.#parts.findLastIndex((p) => p.kind === "tool" && p.id === part.id);
      const mine = this.#parts[at] as ToolPart | undefined;
      if (mine === undefined) return undefined;
      mine.args = part.arguments;
      if (c.type === "end") mine.state = part.state;
      return at;
    }
    if (c.type !== "delta") return undefined;
    const kind = part.type;
    const last = this.#parts[this.#parts.length - 1];
    // A new part of the answer, or text after a steer marker, starts a new piece.
    if (last === undefined || last.kind !== kind || this.#startsNew(c)) {
      this.#parts.push({ kind, text: c.delta });
    } else {
      last.text += c.delta;
    }
    return this.#parts.length - 1;
  }

  /** Whether this delta is the first of its part in the answer (its part holds just this delta). */
  #startsNew(c: Extract<PartChange, { type: "delta" }>): boolean {
    return c.part.type !== "tool_call" && c.part.text === c.delta;
  }
}
