import { AnswerParts, type AnswerPart, type PartChange, type ResponseRecord } from "@unbroken/protocol";
import {
  endStatus,
  itemId,
  outputItem,
  outputText,
  reasoningText,
  requestFields,
  toUsage,
  type ItemStatus,
  type ResponseStatus,
  type ResponseUsage,
} from "./responses-object.js";

/** One event of OpenAI's Responses stream (`type` and `sequence_number` plus its fields). */
export interface ResponsesEvent {
  type: string;
  sequence_number: number;
  [field: string]: unknown;
}

interface LooseEvent {
  kind: string;
  [key: string]: unknown;
}

/**
 * A response's log folded into OpenAI's Responses events and object. The events are derived
 * from the log alone (and the record), in log order, numbered from 0: every read of the same
 * log gives the same events with the same `sequence_number`s, which is what lets a reader
 * resume with `starting_after`. `response.created` is always 0 (it needs no event); the first
 * logged event brings `response.in_progress`; parts (cut by AnswerParts) become output items;
 * `end` brings the terminal event. Steers and handovers are not visible in this shape.
 */
export class ResponsesFold {
  private readonly parts = new AnswerParts();
  private next = 0;
  private started = false;
  private status: ResponseStatus;
  /** Item status of each part that has ended; absent while it grows. */
  private readonly ended = new Map<number, ItemStatus>();
  private model: string;
  private usage: ResponseUsage | undefined;
  private error: { code: string; message: string } | null = null;
  private incomplete: { reason: "max_output_tokens" } | null = null;
  private endReason: string | undefined;

  constructor(private readonly record: ResponseRecord) {
    this.status = record.openai?.background ? "queued" : "in_progress";
    this.model = record.openai?.model ?? "unbroken";
  }

  /** The stream's first event (`response.created`). */
  created(): ResponsesEvent[] {
    return [this.emit("response.created", { response: this.object() })];
  }

  /** True once the log's `end` has been folded in. */
  get done(): boolean {
    return this.endReason !== undefined;
  }

  /** Folds one logged event in; returns the Responses events it brings. */
  apply(event: LooseEvent): ResponsesEvent[] {
    if (this.done) return [];
    const out: ResponsesEvent[] = [];
    if (event.kind === "start" && typeof event.model === "string") this.model = event.model;
    if (!this.started) {
      this.started = true;
      this.status = "in_progress";
      out.push(this.emit("response.in_progress", { response: this.object() }));
    }
    if (event.kind === "end") {
      this.endReason = typeof event.reason === "string" ? event.reason : "error";
      const partStatus: ItemStatus = this.endReason === "stop" || this.endReason === "tool_calls" ? "completed" : "incomplete";
      for (const c of this.parts.apply(event)) out.push(...this.change(c, partStatus));
      const usage = event.usage as Parameters<typeof toUsage>[0] | undefined;
      if (usage) this.usage = toUsage(usage);
      const error = event.error as { code: string; message: string } | undefined;
      const end = endStatus({ reason: this.endReason, error });
      this.status = end.status;
      this.error = end.error;
      this.incomplete = end.incomplete_details;
      out.push(this.emit(TERMINAL[end.status], { response: this.object() }));
      return out;
    }
    for (const c of this.parts.apply(event)) out.push(...this.change(c, "completed"));
    return out;
  }

  /** The Response object as the log so far makes it. */
  object(): Record<string, unknown> {
    const rid = this.record.rid;
    const output = this.parts.parts.map((p, i) => outputItem(p, rid, i, this.ended.get(i) ?? "in_progress"));
    return {
      ...requestFields(this.record),
      status: this.status,
      model: this.model,
      error: this.error,
      incomplete_details: this.incomplete,
      output,
      output_text: this.parts.text,
      ...(this.usage ? { usage: this.usage } : {}),
    };
  }

  /** The output item at index, as it stands (for `item_reference`). */
  part(index: number): AnswerPart | undefined {
    return this.parts.parts[index];
  }

  private emit(type: string, fields: Record<string, unknown>): ResponsesEvent {
    return { type, sequence_number: this.next++, ...fields };
  }

  /** The Responses events of one part change. `closing`: the status a part ended by `end` gets. */
  private change(c: PartChange, closing: ItemStatus): ResponsesEvent[] {
    const rid = this.record.rid;
    const at = { item_id: itemId(c.part, rid, c.index), output_index: c.index };
    const p = c.part;
    if (c.type === "start") {
      const added = this.emit("response.output_item.added", {
        output_index: c.index,
        item: outputItem(p, rid, c.index, "in_progress", true),
      });
      if (p.type === "tool_call") return [added];
      const part = p.type === "text" ? outputText("") : reasoningText("");
      return [added, this.emit("response.content_part.added", { ...at, content_index: 0, part })];
    }
    if (c.type === "delta") {
      if (p.type === "text") return [this.emit("response.output_text.delta", { ...at, content_index: 0, delta: c.delta, logprobs: [] })];
      if (p.type === "reasoning") return [this.emit("response.reasoning_text.delta", { ...at, content_index: 0, delta: c.delta })];
      return [this.emit("response.function_call_arguments.delta", { ...at, delta: c.delta })];
    }
    const status: ItemStatus = p.type === "tool_call" ? (p.state === "done" ? "completed" : "incomplete") : closing;
    this.ended.set(c.index, status);
    const done = () => this.emit("response.output_item.done", { output_index: c.index, item: outputItem(p, rid, c.index, status) });
    if (p.type === "tool_call") {
      if (p.state !== "done") return [done()];
      return [this.emit("response.function_call_arguments.done", { ...at, name: p.name, arguments: p.arguments }), done()];
    }
    const textDone =
      p.type === "text"
        ? this.emit("response.output_text.done", { ...at, content_index: 0, text: p.text, logprobs: [] })
        : this.emit("response.reasoning_text.done", { ...at, content_index: 0, text: p.text });
    const part = p.type === "text" ? outputText(p.text) : reasoningText(p.text);
    return [textDone, this.emit("response.content_part.done", { ...at, content_index: 0, part }), done()];
  }
}

/**
 * The terminal event of each final status. OpenAI's stream has no event for a cancelled
 * response (its `response.cancelled` is a webhook); unbroken ends such a stream with an event
 * of that name carrying the object, so a reader knows it is over.
 */
const TERMINAL: Record<ResponseStatus, string> = {
  queued: "response.in_progress",
  in_progress: "response.in_progress",
  completed: "response.completed",
  incomplete: "response.incomplete",
  failed: "response.failed",
  cancelled: "response.cancelled",
};
