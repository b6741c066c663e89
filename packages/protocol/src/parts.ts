/**
 * An answer as parts (text, reasoning, tool calls), folded from its events in log order. One
 * fold shared by every reader that shows parts (the client, the AI SDK transport, the edge's
 * OpenAI front doors), so they all cut an answer into the same parts. It has no I/O and keeps
 * no more than the answer itself.
 *
 * Rules: consecutive `token` events are one text part, consecutive `reasoning` events one
 * reasoning part; `steer`, `handover` and `start` do not end a part (a continued answer
 * continues its part); a tool call is a part from `tool_call` to `tool_done` or
 * `tool_dropped`; `end` closes whatever is open. Kinds it does not know change nothing.
 */

export interface TextPart {
  type: "text";
  text: string;
}
export interface ReasoningPart {
  type: "reasoning";
  text: string;
}
export interface ToolCallPart {
  type: "tool_call";
  id: string;
  name: string;
  /** The argument text so far; complete (and JSON) once `state` is `done`. */
  arguments: string;
  /** `dropped`: the call will not complete (see the `tool_dropped` event). */
  state: "streaming" | "done" | "dropped";
  /** The parsed arguments, once done. */
  input?: unknown;
}
export type AnswerPart = TextPart | ReasoningPart | ToolCallPart;

/** What one event did to the parts: a part began, grew by a delta, or is complete. */
export type PartChange =
  | { type: "start"; index: number; part: AnswerPart }
  | { type: "delta"; index: number; part: AnswerPart; delta: string }
  | { type: "end"; index: number; part: AnswerPart };

/** A complete tool call, as the app runs it. */
export interface AnswerToolCall {
  id: string;
  name: string;
  arguments: string;
  input: unknown;
}

interface LooseEvent {
  kind: string;
  [key: string]: unknown;
}

export class AnswerParts {
  readonly parts: AnswerPart[] = [];
  /** The index of the part still growing, if one is. */
  private open: number | undefined;

  /** Folds one event in; returns what changed, in order. */
  apply(event: LooseEvent): PartChange[] {
    switch (event.kind) {
      case "token":
        return this.grow("text", event.text);
      case "reasoning":
        return this.grow("reasoning", event.text);
      case "tool_call":
        return this.call(event);
      case "tool_args":
        return this.args(event);
      case "tool_done":
      case "tool_dropped":
        return this.finishCall(event);
      case "end":
        return this.close();
      default:
        return [];
    }
  }

  /** Ends the open part, if any. */
  close(): PartChange[] {
    const index = this.open;
    if (index === undefined) return [];
    this.open = undefined;
    return [{ type: "end", index, part: this.parts[index] as AnswerPart }];
  }

  /** All the text parts joined. */
  get text(): string {
    return this.joined("text");
  }

  /** All the reasoning parts joined. */
  get reasoning(): string {
    return this.joined("reasoning");
  }

  /** The complete tool calls, in order (dropped and unfinished ones are not). */
  get toolCalls(): AnswerToolCall[] {
    const calls: AnswerToolCall[] = [];
    for (const p of this.parts)
      if (p.type === "tool_call" && p.state === "done") calls.push({ id: p.id, name: p.name, arguments: p.arguments, input: p.input });
    return calls;
  }

  private joined(type: "text" | "reasoning"): string {
    let s = "";
    for (const p of this.parts) if (p.type === type) s += p.text;
    return s;
  }

  private grow(type: "text" | "reasoning", text: unknown): PartChange[] {
    if (typeof text !== "string" || text.length === 0) return [];
    const current = this.open === undefined ? undefined : this.parts[this.open];
    if (current?.type === type) {
      current.text += text;
      return [{ type: "delta", index: this.open as number, part: current, delta: text }];
    }
    const changes = this.close();
    const part: TextPart | ReasoningPart = { type, text };
    const index = this.begin(part);
    changes.push({ type: "start", index, part }, { type: "delta", index, part, delta: text });
    return changes;
  }

  private call(event: LooseEvent): PartChange[] {
    if (typeof event.id !== "string" || typeof event.name !== "string") return [];
    const changes = this.close();
    const part: ToolCallPart = { type: "tool_call", id: event.id, name: event.name, arguments: "", state: "streaming" };
    changes.push({ type: "start", index: this.begin(part), part });
    return changes;
  }

  private args(event: LooseEvent): PartChange[] {
    const found = this.openCall(event.id);
    if (!found || typeof event.text !== "string" || event.text.length === 0) return [];
    found.part.arguments += event.text;
    return [{ type: "delta", index: found.index, part: found.part, delta: event.text }];
  }

  private finishCall(event: LooseEvent): PartChange[] {
    const found = this.openCall(event.id);
    if (!found) return [];
    const { part, index } = found;
    if (event.kind === "tool_done" && typeof event.arguments === "string") {
      part.arguments = event.arguments;
      part.state = "done";
      part.input = parseArguments(event.arguments);
    } else part.state = "dropped";
    this.open = undefined;
    return [{ type: "end", index, part }];
  }

  private openCall(id: unknown): { part: ToolCallPart; index: number } | undefined {
    const index = this.open;
    const part = index === undefined ? undefined : this.parts[index];
    return part?.type === "tool_call" && part.id === id ? { part, index: index as number } : undefined;
  }

  private begin(part: AnswerPart): number {
    this.parts.push(part);
    this.open = this.parts.length - 1;
    return this.open;
  }
}

/** A complete call's arguments as a value; text that is not JSON (never written by a worker) reads as itself. */
export function parseArguments(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}
