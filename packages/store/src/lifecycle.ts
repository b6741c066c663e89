import { ProtocolError, tokensIn, type EndError, type EndEvent, type ResponseRecord, type Usage } from "@unbroken/protocol";
import type { ControlChannel } from "./control.js";
import { FencedError } from "./errors.js";
import type { EventLogs } from "./event-log.js";
import type { Log } from "./log.js";
import type { EventLogWriter, WriterOptions } from "./log-writer.js";
import type { ResponseRecords, StoredRecord } from "./records.js";

/**
 * How a response ends, in one place. Every response ends with exactly one `end`:
 *
 * | end | written by | how |
 * |---|---|---|
 * | `stop` / `length` | its worker | `finish` through the run's fenced writer |
 * | `cancelled`, running | its worker, on `cancel` | `finish` |
 * | `cancelled`, queued | the edge that got `cancel` | `endQueued`: the lone `end` at seq 1 |
 * | `error` `no_worker` | whoever finds it queued past QUEUE_TIMEOUT | `endQueued` |
 * | `error` `stalled`, generator errors | its worker | `finish` |
 * | `error` `worker_lost` | an edge that finds no worker answering (`endIfAbandoned`), or a worker refusing to continue a response that lost too many | `endOrphan` |
 *
 * Only the first `end` lands: each is a fenced append (expected last subject sequence), so a
 * queued end loses to a worker's `start`, and an orphan end to a worker that wrote meanwhile.
 * The record follows the log (status `ended`), never the other way round. Past RETENTION the
 * events expire from the log's head: `isGone` says when a reader can no longer be served.
 */

/** The `end` events this system writes. */
export const ends = {
  done: (reason: "stop" | "length" | "tool_calls", usage: Usage): EndEvent => ({ kind: "end", reason, usage }),
  cancelled: (usage: Usage = zeroUsage()): EndEvent => ({ kind: "end", reason: "cancelled", usage }),
  error: (error: EndError, usage: Usage = zeroUsage()): EndEvent => ({ kind: "end", reason: "error", error, usage }),
  noWorker: (): EndEvent => ends.error({ code: "no_worker", message: "no worker began this response within QUEUE_TIMEOUT" }),
  workerLost: (message = "the worker generating this response stopped answering"): EndEvent => ends.error({ code: "worker_lost", message }),
  stalled: (stallTimeoutMs: number, usage: Usage): EndEvent =>
    ends.error({ code: "stalled", message: `the generation produced nothing for ${stallTimeoutMs / 1000} s (STALL_TIMEOUT)` }, usage),
};

export const zeroUsage = (): Usage => ({ prompt_tokens: 0, completion_tokens: 0 });

/** Generated tokens in a log (tokens, not events: one event may carry several), reasoning among them. */
export function usageOf(events: Iterable<{ kind: string; frame: { event: { kind: string; n?: unknown } } }>): Usage {
  let completion = 0;
  let reasoning = 0;
  for (const e of events) {
    const n = tokensIn(e.frame.event);
    completion += n;
    if (e.kind === "reasoning") reasoning += n;
  }
  return reasoning > 0
    ? { prompt_tokens: 0, completion_tokens: completion, reasoning_tokens: reasoning }
    : { prompt_tokens: 0, completion_tokens: completion };
}

/** A queued response nobody began within QUEUE_TIMEOUT. */
export function isStale(record: ResponseRecord, queueTimeoutMs: number, now = Date.now()): boolean {
  return record.status === "queued" && Date.parse(record.created_at) + queueTimeoutMs <= now;
}

/**
 * The expiry rule. Events leave a log only from its head (RETENTION), so a reader that needs
 * seq `next` can never get it when the first stored event comes after it, or when the log is
 * known to have had events (`hadEvents`: it ended, or some were seen) and none is left.
 */
export function isGone(firstStoredSeq: number | null, next: number, hadEvents: boolean): boolean {
  return firstStoredSeq === null ? hadEvents : firstStoredSeq > next;
}

export const goneError = (rid: string): ProtocolError =>
  new ProtocolError("gone", "this response has expired (past RETENTION): its events are no longer kept", { rid });

/** The lifecycle operations, on a broker's records, logs and control channel. */
export class ResponseLifecycle {
  constructor(
    private readonly records: ResponseRecords,
    private readonly logs: EventLogs,
    private readonly control: ControlChannel,
    private readonly log: Log,
  ) {}

  /**
   * The worker's end: `end` appended through the run's own fenced writer (a writer that lost
   * the log is refused), `onLogged` told once it is stored, then the record marked ended.
   */
  async finish(writer: EventLogWriter, end: EndEvent, onLogged?: () => void, seen?: StoredRecord): Promise<void> {
    await writer.append(end);
    onLogged?.();
    await this.markEnded(writer.rid, end.reason, seen);
  }

  /**
   * The record follows a log that has its `end` (written now or found). `seen`, the record as
   * its writer last stored it, saves reading it first (a stale one costs one failed compare-and-set).
   */
  async markEnded(rid: string, reason: string, seen?: StoredRecord): Promise<void> {
    await this.records.mutate(rid, (r) => (r.status === "ended" ? null : { ...r, status: "ended", reason }), seen);
  }

  /**
   * Ends a response no worker has begun: its only event is `end` at seq 1. The write expects an
   * empty log, so it loses cleanly to a worker that wrote `start` first. False when one had.
   * `opts` reach the writer (a worker's publish metrics).
   */
  async endQueued(rid: string, end: EndEvent, opts?: WriterOptions): Promise<boolean> {
    try {
      await this.logs.writer(rid, undefined, opts).append(end);
    } catch (err) {
      if (err instanceof FencedError) return false;
      throw err;
    }
    await this.markEnded(rid, end.reason);
    return true;
  }

  /** Ends rid with `no_worker` when it has waited in the queue past QUEUE_TIMEOUT; true when this call ended it. */
  async expireIfStale(record: ResponseRecord, queueTimeoutMs: number): Promise<boolean> {
    if (!isStale(record, queueTimeoutMs)) return false;
    const ended = await this.endQueued(record.rid, ends.noWorker());
    if (ended) this.log.warn({ rid: record.rid }, "response ended: no worker within QUEUE_TIMEOUT");
    return ended;
  }

  /**
   * Ends a response whose worker is gone (nobody else will): `end` after the log's last event,
   * with the tokens already generated as usage. Should that worker come back, its next write
   * is refused. False when the log had its `end` already (the record is brought to it).
   */
  async endOrphan(rid: string, end: EndEvent, opts?: WriterOptions): Promise<boolean> {
    for (;;) {
      // One read gives both the usage and where to append (its last event fences the write).
      const events = await this.logs.readAll(rid);
      const last = events.at(-1);
      if (last?.kind === "end") {
        await this.markEnded(rid, String(last.frame.event.reason));
        return false;
      }
      const pos = last ? { seq: last.seq, streamSeq: last.streamSeq } : { seq: 0, streamSeq: 0 };
      try {
        await this.logs.writer(rid, pos, opts).append({ ...end, usage: usageOf(events) });
        break;
      } catch (err) {
        // Someone wrote meanwhile (the worker was slow, not gone): look again.
        if (!(err instanceof FencedError)) throw err;
      }
    }
    await this.markEnded(rid, end.reason);
    this.log.warn({ rid, reason: end.reason, code: end.error?.code }, "ended a response whose worker no longer answers");
    return true;
  }

  /** True when rid's log has its `end`. */
  async hasEnded(rid: string): Promise<boolean> {
    return (await this.logs.last(rid))?.kind === "end";
  }

  /**
   * A reader saw no event for ORPHAN_TIMEOUT: when the record says running and no worker
   * answers for it, the worker is gone and no other took it over, so it ends `worker_lost`.
   * True when the response has ended (by this call or before), so its `end` is in the log.
   */
  async endIfAbandoned(rid: string, controlTimeoutMs: number): Promise<boolean> {
    const stored = await this.records.get(rid);
    if (stored?.record.status === "ended") return true;
    if (stored?.record.status !== "running") return false;
    if ((await this.control.request(rid, { op: "status" }, controlTimeoutMs)) !== "no_worker") return false;
    await this.endOrphan(rid, ends.workerLost());
    return true;
  }

  /**
   * Throws `gone` when a reader after `after` can no longer get every event it asks for
   * (see `isGone`). A queued response has nothing to expire yet.
   */
  async assertReadable(record: ResponseRecord, after: number): Promise<void> {
    if (record.status === "queued") return;
    const first = await this.logs.first(record.rid);
    if (isGone(first?.seq ?? null, after + 1, record.status === "ended")) throw goneError(record.rid);
  }
}
