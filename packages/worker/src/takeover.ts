import { tokensIn, type HandoverEvent, type StartEvent } from "@unbroken/protocol";
import { FencedError, type Broker, type EventLogWriter, type StoredEvent, type WriterOptions } from "@unbroken/store";
import type { ResumeState } from "@unbroken/generators";

/** What a worker that took a response over finds in its log, once it holds the next write. */
export type TakenLog =
  /** The log is complete: nothing to continue. */
  | { kind: "ended"; reason: string }
  /** The log was empty (the previous worker never wrote `start`): `start` is written now. */
  | { kind: "fresh"; writer: EventLogWriter }
  /** The handover marker is written after the previous worker's last event. */
  | { kind: "resumed"; writer: EventLogWriter; resume: ResumeState };

/** The continuation state of a log: its token texts, and each steer with the tokens before it. */
export function resumeStateOf(events: readonly StoredEvent[]): ResumeState {
  const tokens: string[] = [];
  const steers: ResumeState["steers"] = [];
  let generated = 0;
  for (const { frame } of events) {
    const text = frame.event.text;
    if (typeof text !== "string") continue;
    if (frame.event.kind === "token") {
      tokens.push(text);
      generated += tokensIn(frame.event);
    } else if (frame.event.kind === "steer") steers.push({ at: tokens.length, text });
  }
  return { tokens, steers, generated };
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
