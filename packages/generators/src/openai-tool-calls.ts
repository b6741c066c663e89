import { randomBytes } from "node:crypto";
import { GeneratorError, type GenerationOutput } from "./generator.js";
import { badResponse } from "./openai-errors.js";
import type { ToolDelta } from "./openai-stream.js";

interface OpenCall {
  index: number;
  /** The id the upstream gave (deltas without an index are matched on it). */
  wireId: string | undefined;
  /** The id written: the upstream's, made unique in the response, or one made up. */
  id: string | undefined;
  name: string | undefined;
  /** Every argument piece so far, announced or not, and how many pieces wait for `tool_call`. */
  args: string;
  waiting: number;
  /** Whether `tool_call` was yielded (then its pieces are yielded as they come). */
  announced: boolean;
}

/**
 * Assembles the indexed `tool_calls` deltas of one upstream answer into calls, one at a time:
 * `tool_call` once the call's id and name are known (some servers send the name, or the id,
 * after the first piece), `tool_args` for each argument piece, and `tool_done` when the call
 * completes — the next index begins, text or reasoning comes, or the finish chunk arrives.
 * OpenAI sends id and name first, then argument fragments; vLLM's parsers send the name,
 * then the arguments in one piece (or name and arguments in one chunk). Calls never
 * interleave in what this yields, so a delta for a call that already completed is refused.
 */
export class ToolCalls {
  private open: OpenCall | undefined;
  private lastIndex = -1;
  /** Calls completed in this answer. */
  completed = 0;

  /** `used`: every call id of the response so far (logged, this answer's), kept unique here. */
  constructor(private readonly used: Set<string>) {}

  get isOpen(): boolean {
    return this.open !== undefined;
  }

  *delta(d: ToolDelta): Generator<GenerationOutput> {
    const index = this.indexOf(d);
    if (this.open && index !== this.open.index) yield* this.close();
    if (!this.open) {
      if (index <= this.lastIndex) {
        throw badResponse(`the upstream sent tool call deltas out of order (index ${index} after ${this.lastIndex})`);
      }
      this.open = { index, wireId: undefined, id: undefined, name: undefined, args: "", waiting: 0, announced: false };
      this.lastIndex = index;
    }
    const call = this.open;
    call.wireId ??= d.id;
    call.name ??= d.name;
    const piece = d.args ?? "";
    call.args += piece;
    if (!call.announced && piece.length > 0) call.waiting++;
    if (!call.announced && call.wireId !== undefined && call.name !== undefined) {
      yield* this.announce(call);
    } else if (call.announced && piece.length > 0) {
      yield { type: "tool_args", id: call.id as string, text: piece, tokens: 1 };
    }
  }

  /**
   * Completes the open call: `tool_done` with its whole arguments. A call without a name is
   * malformed; one without an id gets one. Arguments that do not parse as JSON end the
   * response with `upstream_bad_response` (after `tool_dropped`, so readers close the part):
   * a call its client cannot run must not look complete.
   */
  *close(): Generator<GenerationOutput> {
    const call = this.open;
    if (!call) return;
    this.open = undefined;
    if (call.name === undefined) {
      if (call.announced) yield { type: "tool_dropped", id: call.id as string, reason: "invalid_call" };
      throw new GeneratorError("upstream_bad_response", `the upstream sent tool call ${call.index} without a function name`);
    }
    if (!call.announced) {
      call.wireId ??= `call_${randomBytes(12).toString("hex")}`;
      yield* this.announce(call);
    }
    const id = call.id as string;
    // An argument-less call may come with no argument text at all (vLLM): that is `{}`.
    const args = call.args.trim() === "" ? "{}" : call.args;
    try {
      JSON.parse(args);
    } catch {
      yield { type: "tool_dropped", id, reason: "invalid_arguments" };
      throw new GeneratorError(
        "upstream_bad_response",
        `the upstream's call ${id} of ${call.name} has arguments that are not JSON`,
        undefined,
        JSON.stringify(args.slice(0, 120)),
      );
    }
    this.completed++;
    yield { type: "tool_done", id, arguments: args };
  }

  /** Gives the open call up (a cut stream, max_tokens): `tool_dropped` if it was announced. */
  *drop(reason: string): Generator<GenerationOutput> {
    const call = this.open;
    this.open = undefined;
    if (call?.announced) yield { type: "tool_dropped", id: call.id as string, reason };
  }

  private *announce(call: OpenCall): Generator<GenerationOutput> {
    call.id = this.unique(call.wireId as string);
    call.announced = true;
    yield { type: "tool_call", id: call.id, name: call.name as string };
    if (call.args.length > 0) yield { type: "tool_args", id: call.id, text: call.args, tokens: Math.max(1, call.waiting) };
  }

  /**
   * A server that numbers its ids per answer (`call_0`) would repeat one after a
   * continuation request; the client answers calls by id, so a repeated id gets a suffix.
   */
  private unique(id: string): string {
    let out = id;
    for (let n = 2; this.used.has(out); n++) out = `${id}_${n}`;
    this.used.add(out);
    return out;
  }

  /** A delta without an index (a few servers) belongs to the open call unless it names a new id. */
  private indexOf(d: ToolDelta): number {
    if (d.index !== undefined) return d.index;
    const open = this.open;
    if (!open) return this.lastIndex + 1;
    return d.id !== undefined && open.wireId !== undefined && d.id !== open.wireId ? open.index + 1 : open.index;
  }
}
