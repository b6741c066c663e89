import { tokensIn, type HandoverEvent, type StartEvent } from "@unbroken/protocol";
import { FencedError, type Broker, type EventLogWriter, type StoredEvent, type WriterOptions } from "@unbroken/store";
import type { ResumeState, ResumedOutput } from "@unbroken/generators";

/** What a worker that took a response over finds in its log, once it holds the next write. */
export type TakenLog =
  /** The log is complete: nothing to continue. */
  | { kind: "ended"; reason: string }
  /** The log was empty (the previous worker never wrote `start`): `start` is written now. */
  | { kind: "fresh"; writer: EventLogWriter }
  /** The handover marker is written after the previous worker's last event. */
  | { kind: "resumed"; writer: EventLogWriter; resume: ResumeState };

/**
 * The continuation state of a log: every generated event as an output, its token texts, and
 * each steer with the token events before it.
 */
export function resumeStateOf(events: readonly StoredEvent[]): ResumeState {
  const tokens: string[] = [];
  const steers: ResumeState["steers"] = [];
  const outputs: ResumedOutput[] = [];
  let generated = 0;
  let reasoningTokens = 0;
  for (const { frame } of events) {
    const out = outputOf(frame.event);
    if (!out) continue;
    outputs.push(out);
    if (out.type === "token" || out.type === "reasoning" || out.type === "tool_args") generated += out.tokens;
    if (out.type === "reasoning") reasoningTokens += out.tokens;
    if (out.type === "token") tokens.push(out.text);
    else if (out.type === "steer") steers.push({ at: tokens.length, text: out.text });
  }
  return { tokens, steers, generated, reasoningTokens, outputs };
}

/** Whether the log ends inside a tool call: its last call began and is neither done nor dropped. */
export function insideCall(resume: ResumeState): boolean {
  const outputs = resume.outputs ?? [];
  for (let i = outputs.length - 1; i >= 0; i--) {
    const out = outputs[i] as ResumedOutput;
    if (out.type === "tool_done" || out.type === "tool_dropped") return false;
    if (out.type === "tool_call") return true;
  }
  return false;
}

/** A logged event as the output a generator yielded for it; null for the transport's own kinds. */
function outputOf(event: { kind: string; [key: string]: unknown }): ResumedOutput | null {
  const { kind, text, id } = event;
  const str = (v: unknown): v is string => typeof v === "string";
  switch (kind) {
    case "token":
    case "reasoning":
      return str(text) ? { type: kind, text, tokens: tokensIn(event) } : null;
    case "steer":
      return str(text) ? { type: kind, text } : null;
    case "tool_args":
      return str(text) && str(id) ? { type: kind, id, text, tokens: tokensIn(event) } : null;
    case "tool_call":
      return str(id) && str(event.name) ? { type: kind, id, name: event.name } : null;
    case "tool_done":
      return str(id) && str(event.arguments) ? { type: kind, id, arguments: event.arguments } : null;
    case "tool_dropped":
      return str(id) && str(event.reason) ? { type: kind, id, reason: event.reason } : null;
    default:
      return null;
  }
}

export interface TakeOverOptions {
  /** The marker written after the previous worker's last event. */
  marker: HandoverEvent;
  /** Written instead when the log is empty. */
  start: StartEvent;
  /** Give up (throw) when the log keeps moving past this time (Date.now() ms). */
  deadline: number;
  /** Handed to the writer it returns (the worker's publish-latency metric). */
  onPublished?: WriterOptions["onPublished"];
}

/**
 * Reads the log of a response this worker has just claimed (a higher epoch in its record)
 * and appends the handover marker, fenced on the last event it read. The marker is what
 * fences the previous worker out: every write of that worker expects the subject's last
 * sequence it wrote itself, and that is never the last one again. If the previous worker
 * still wrote in between (it has not noticed yet that it lost the response), the marker is
 * refused and the log is read again: the continuation always starts from the whole log.
 */
export async function takeOverLog(broker: Broker, rid: string, opts: TakeOverOptions): Promise<TakenLog> {
  const { marker, start, deadline } = opts;
  for (let attempt = 0; ; attempt++) {
    const events = await broker.logs.readAll(rid);
    const last = events.at(-1);
    if (last?.frame.event.kind === "end") return { kind: "ended", reason: String(last.frame.event.reason) };
    const from = last ? { seq: last.frame.seq, streamSeq: last.streamSeq } : { seq: 0, streamSeq: 0 };
    const writer = broker.logs.writer(rid, from, { epoch: marker.epoch, onPublished: opts.onPublished });
    try {
      if (!last) {
        await writer.append(start);
        return { kind: "fresh", writer };
      }
      await writer.append(marker);
      return { kind: "resumed", writer, resume: resumeStateOf(events) };
    } catch (err) {
      if (!(err instanceof FencedError) || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, Math.min(1_000, 50 * 2 ** attempt)));
    }
  }
}
