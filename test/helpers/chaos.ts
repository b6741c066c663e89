import type { EndEvent, ResponseHandle } from "@unbroken/client";
import { NatsTools } from "@unbroken/testing";

/** What one reader (a generate handle or a subscriber) got of one response, as it got it. */
export class Reader {
  readonly seqs: number[] = [];
  readonly arrivals: number[] = [];
  text = "";
  ends = 0;
  end: EndEvent | undefined;
  error: string | undefined;
  done: Promise<void>;

  constructor(
    readonly rid: string,
    readonly role: "generator" | "follower",
    handle: ResponseHandle,
  ) {
    this.done = this.consume(handle);
  }

  private async consume(handle: ResponseHandle): Promise<void> {
    try {
      for await (const ev of handle) {
        this.seqs.push(ev.seq);
        this.arrivals.push(Date.now());
        if (ev.event.kind === "token") this.text += ev.event.text;
        if (ev.event.kind === "end") {
          this.ends++;
          this.end = ev.event;
        }
      }
    } catch (err) {
      this.error = String(err);
    }
  }

  /** Ms from `at` to the first event after it; undefined if the reader had ended by then. */
  stallAfter(at: number): number | undefined {
    const endedAt = this.end ? this.arrivals.at(-1) : undefined;
    if (endedAt !== undefined && endedAt <= at) return undefined;
    const next = this.arrivals.find((t) => t > at);
    return next === undefined ? undefined : next - at;
  }
}

/** A response's log as stored in JetStream, read directly (not through an edge). */
export interface StoredLog {
  seqs: number[];
  text: string;
  ends: number;
  end: EndEvent | undefined;
  kinds: string[];
  /** The log's `handover` events: which worker took the response over, at which seq. */
  handovers: Array<{ seq: number; worker: string; reason: string }>;
}

/** Reads every stored event of each rid straight from the LLM_EVENTS stream. */
export async function readLogs(natsUrl: string, rids: string[]): Promise<Map<string, StoredLog>> {
  const tools = await NatsTools.connect(natsUrl);
  try {
    const logs = new Map<string, StoredLog>();
    for (const rid of rids) {
      const log: StoredLog = { seqs: [], text: "", ends: 0, end: undefined, kinds: [], handovers: [] };
      for (const { frame } of await tools.events(rid)) {
        const ev = frame.event as { kind: string; text?: string; worker?: string; reason?: string };
        log.seqs.push(frame.seq);
        log.kinds.push(ev.kind);
        if (ev.kind === "token") log.text += ev.text ?? "";
        if (ev.kind === "handover") log.handovers.push({ seq: frame.seq, worker: ev.worker ?? "", reason: ev.reason ?? "" });
        if (ev.kind === "end") {
          log.ends++;
          log.end = ev as EndEvent;
        }
      }
      logs.set(rid, log);
    }
    return logs;
  } finally {
    await tools.close();
  }
}

export interface Audit {
  responses: number;
  readers: number;
  endedOnce: number;
  lost: number;
  duplicated: number;
  textMismatches: number;
  logGaps: number;
  readerErrors: string[];
  reasons: Record<string, number>;
  problems: string[];
}

/**
 * Compares every reader with the stored log of its response: events lost (in the log, not
 * delivered), duplicated (delivered twice), text different, and the log itself (contiguous seq
 * from 1, exactly one `end`, and it is last).
 */
export function audit(readers: Reader[], logs: Map<string, StoredLog>): Audit {
  const a: Audit = {
    responses: logs.size,
    readers: readers.length,
    endedOnce: 0,
    lost: 0,
    duplicated: 0,
    textMismatches: 0,
    logGaps: 0,
    readerErrors: [],
    reasons: {},
    problems: [],
  };
  for (const [rid, log] of logs) {
    const contiguous = log.seqs.every((s, i) => s === i + 1);
    if (!contiguous) {
      a.logGaps++;
      a.problems.push(`${rid}: log seqs not contiguous: ${log.seqs.join(",")}`);
    }
    if (log.ends === 1 && log.kinds.at(-1) === "end") a.endedOnce++;
    else a.problems.push(`${rid}: log has ${log.ends} end events (last kind ${log.kinds.at(-1)})`);
    const reason = log.end ? (log.end.reason === "error" ? `error/${log.end.error?.code}` : log.end.reason) : "none";
    a.reasons[reason] = (a.reasons[reason] ?? 0) + 1;
  }
  for (const r of readers) {
    const log = logs.get(r.rid);
    if (!log) continue;
    if (r.error) a.readerErrors.push(`${r.rid} (${r.role}): ${r.error}`);
    const seen = new Set<number>();
    for (const s of r.seqs) {
      if (seen.has(s)) a.duplicated++;
      seen.add(s);
    }
    const lost = log.seqs.filter((s) => !seen.has(s)).length;
    a.lost += lost;
    if (lost > 0) a.problems.push(`${r.rid} (${r.role}): ${lost} events lost`);
    if (r.text !== log.text) {
      a.textMismatches++;
      a.problems.push(`${r.rid} (${r.role}): text differs from the log`);
    }
    if (r.ends !== 1) a.problems.push(`${r.rid} (${r.role}): saw ${r.ends} end events`);
  }
  return a;
}

/** p50 and max of the defined values, as "p50 / max ms" (or "-" when none). */
export function spread(values: Array<number | undefined>): string {
  const v = values.filter((x): x is number => x !== undefined).sort((x, y) => x - y);
  if (v.length === 0) return "-";
  return `${v[Math.floor((v.length - 1) / 2)]} / ${v.at(-1)} ms`;
}
