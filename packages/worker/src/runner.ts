import type { EndEvent, ResponseEvent, ResponseRecord } from "@unbroken/protocol";
import {
  FencedError,
  StoreError,
  ends,
  isStale,
  type Broker,
  type EventLogWriter,
  type StoredRecord,
  type WorkDelivery,
} from "@unbroken/store";
import type { Logger } from "pino";
import { DeltaCoalescer, type CoalescePolicy } from "./coalescer.js";
import { EarlyStart } from "./early-start.js";
import type { GenerationOutput, GenerationSession, ResumeState, TokenGenerator } from "@unbroken/generators";
import type { RunMetrics, WorkerMetrics } from "./metrics.js";
import { Ownership, STALLED, StallWatch } from "./ownership.js";
import { RunControl, type ControlTarget, type Parting } from "./run-control.js";
import { errorEnd, eventOfOutput } from "./run-events.js";
import { insideCall, takeOverLog } from "./takeover.js";

export interface RunnerDeps {
  broker: Broker;
  generator: TokenGenerator;
  workerId: string;
  log: Logger;
  queueTimeoutMs: number;
  takeoverTimeoutMs: number;
  /** A generation that produces nothing for this long ends with `stalled`. */
  stallTimeoutMs: number;
  /** How tokens are gathered into events (see TokenCoalescer). */
  coalesce: CoalescePolicy;
  /** Prometheus metrics (docs/operations.md, "Metrics"); optional, so runs work without them. */
  metrics?: WorkerMetrics;
}

/**
 * How a run left its response, which decides what happens to the request message:
 * `ended` (the log is complete): ack; `void` (nothing to do: a duplicate request, a claim
 * another worker won): ack, and answer no control request; `released` (handed over on
 * shutdown, or failed without `end`): nak, so another worker continues it from the log at
 * once; `lost` (another worker took it over): leave the message alone, it is that
 * worker's delivery now.
 */
type Outcome = Parting | "void";

/** Past this many workers, a response that keeps losing its worker is ended instead. */
const MAX_EPOCH = 10;
/** Delay before a response whose run failed is offered again (a crash loop stays slow). */
const FAILED_RETRY_MS = 2_000;

/**
 * Runs one response from its work-queue message to its `end`: claims the record (epoch
 * + 1), writes every event through one fenced writer, and answers cancel and steer on the
 * response's control subject. A redelivered request of a running response means its worker
 * went silent: this run then takes it over and continues the answer from the log.
 */
export class ResponseRun {
  private readonly abort = new AbortController();
  private readonly log: Logger;
  private readonly control: RunControl;
  private session: GenerationSession | undefined;
  private epoch = 0;
  /** The record as this run's claim stored it: marking it ended needs no read when nothing changed since. */
  private claimed: StoredRecord | undefined;
  private cancelled = false;
  private handingOver = false;
  private lost = false;
  private ownership: Ownership | undefined;
  private readonly metrics: RunMetrics | undefined;

  constructor(
    private readonly deps: RunnerDeps,
    private readonly msg: WorkDelivery,
    readonly rid: string,
    /** The record as the request carried it (see WorkRequest); a first delivery starts from it. */
    private readonly carried?: StoredRecord,
  ) {
    this.log = deps.log.child({ rid });
    this.metrics = deps.metrics?.run();
    this.control = new RunControl(deps.broker.control, rid, this.controlTarget(), this.log);
  }

  /**
   * The worker is shutting down: stop at the next token boundary and leave the response to
   * another worker (no `end`; the request goes back to the queue).
   */
  stop(): void {
    this.handingOver = true;
    this.abort.abort();
  }

  async run(): Promise<void> {
    const { broker, takeoverTimeoutMs } = this.deps;
    const ownership = new Ownership(broker, this.rid, this.msg, Math.max(250, takeoverTimeoutMs / 3), (epoch) => this.loseTo(epoch));
    this.ownership = ownership;
    ownership.start();
    let outcome: Outcome = "void";
    try {
      outcome = await this.begin();
    } catch (err) {
      outcome = this.failed(err);
    } finally {
      ownership.stop();
      this.session = undefined;
      this.settle(outcome);
    }
  }

  /** Answers what waits on the control subject and disposes of the request message. */
  private settle(outcome: Outcome): void {
    try {
      this.control.part(outcome === "void" ? "lost" : outcome);
      if (outcome === "ended" || outcome === "void") this.msg.ack();
      else if (outcome === "released") this.msg.nak(this.handingOver ? undefined : FAILED_RETRY_MS);
    } catch (err) {
      // The connection is closed (a worker past its drain deadline): the ack wait decides.
      this.log.warn({ err: String(err), outcome }, "could not settle the request message");
    }
  }

  private async begin(): Promise<Outcome> {
    const { broker } = this.deps;
    // A first delivery may trust the record it carries as far as the claim: that is a
    // compare-and-set on its revision, which reads the record again if it changed since.
    const first = this.msg.deliveryCount === 1 ? this.carried : undefined;
    const stored = first ?? (await broker.records.read(this.rid));
    if (stored === "unreadable") return this.refuse();
    if (!stored) {
      // Gone past RETENTION (its log with it): nobody waits for it any more.
      this.log.warn("request for a response with no record; dropped");
      return "void";
    }
    const { record } = stored;
    if (record.status === "ended") return "void";
    if (record.status === "running") {
      // Only a redelivery means the worker holding it went silent (or handed it over); a
      // first delivery of a running response is a duplicate (an edge healing a lost enqueue).
      if (this.msg.deliveryCount > 1) return this.takeOver(record);
      this.log.debug("duplicate request for a running response; dropped");
      return "void";
    }
    if (isStale(record, this.deps.queueTimeoutMs)) {
      this.log.warn("request waited past QUEUE_TIMEOUT; ending it");
      await broker.lifecycle.endQueued(this.rid, ends.noWorker(), { onPublished: this.metrics?.published });
      return "ended";
    }
    // Listen before claiming: once the record says running, cancel and steer must find us.
    this.control.listen();
    // The claim and `start` go out together, one round trip before the first token instead of
    // two: each is fenced on its own (the record by its revision, the log by being empty), so
    // neither needs the other's answer. The writer's msg ids carry the epoch the claim sets.
    this.epoch = record.epoch + 1;
    const writer = this.writer({ seq: 0, streamSeq: 0 });
    const started = writer.append(this.startEvent()).then(
      () => true,
      (err: unknown) => (err instanceof FencedError ? false : Promise.reject(err)),
    );
    // A first delivery generates meanwhile too (see EarlyStart).
    const job = { rid: this.rid, body: record.request, steers: [] };
    const early = first && record.steers.length === 0 ? new EarlyStart(this.deps.generator, job, this.abort.signal) : undefined;
    if (early) this.metrics?.began();
    try {
      const claimed = await this.claim((r) => r.status === "queued", stored).catch(async (err: unknown) => {
        await started.catch(() => undefined);
        throw err;
      });
      // Another worker claimed it (and runs it: this request is only acked, never handed on):
      // should this `start` have landed, that worker continues after it.
      if (!claimed)
        return started.then(
          () => "void" as const,
          () => "void" as const,
        );
      if (!(await started)) return this.afterRefusedStart(claimed);
      const steers = [...claimed.steers, ...this.control.takeEarly()];
      return this.generate(claimed, writer, steers, undefined, early?.keep(steers));
    } finally {
      early?.release();
    }
  }

  /**
   * This run holds the claim but the log was not empty: the response was ended while queued
   * (an edge's `end`), or holds another attempt's lone `start` (a worker that lost the claim,
   * or this request's earlier delivery that failed before claiming). The log says which: the
   * end is kept, a `start` is continued after (a `handover`, as a takeover would).
   */
  private async afterRefusedStart(claimed: ResponseRecord): Promise<Outcome> {
    const found = await takeOverLog(this.deps.broker, this.rid, {
      marker: { kind: "handover", worker: this.deps.workerId, epoch: this.epoch, reason: "lost" },
      start: this.startEvent(),
      deadline: Date.now() + 2 * this.deps.takeoverTimeoutMs,
      onPublished: this.metrics?.published,
    });
    if (found.kind === "ended") {
      await this.markEnded(found.reason);
      return "ended";
    }
    // Nothing was logged after that `start`: the record's steers are still to be written.
    const steers = [...claimed.steers, ...this.control.takeEarly()];
    return this.generate(claimed, found.writer, steers, found.kind === "resumed" ? found.resume : undefined);
  }

  /** A record no reader can parse (an edge never stores one): ended, not dropped, so its client is answered. */
  private async refuse(): Promise<Outcome> {
    this.log.error("the response's record cannot be read; ending it with invalid_request");
    const end = ends.error({ code: "invalid_request", message: "the request could not be read" });
    await this.deps.broker.lifecycle.endQueued(this.rid, end, { onPublished: this.metrics?.published });
    return "ended";
  }

  /** Its worker went silent (or handed it over): continue the answer from the log. */
  private async takeOver(seen: ResponseRecord): Promise<Outcome> {
    if (seen.epoch >= MAX_EPOCH) {
      await this.endLost(`the response lost ${seen.epoch} workers; it is not continued again`);
      return "ended";
    }
    this.control.listen();
    const record = await this.claim((r) => r.status === "running" && r.epoch === seen.epoch);
    if (!record) return "void";
    const reason = seen.released ? "drain" : "lost";
    this.metrics?.tookOver(reason);
    this.log.warn({ previous: seen.worker, epoch: this.epoch, reason }, "taking over a response from another worker");
    // A previous worker that is merely slow (its ack lapsed) hears this and stops writing now,
    // rather than at its next ownership check; a dead one never hears it, which is fine.
    this.control.fence(this.epoch);
    const found = await takeOverLog(this.deps.broker, this.rid, {
      marker: { kind: "handover", worker: this.deps.workerId, epoch: this.epoch, reason },
      start: this.startEvent(),
      deadline: Date.now() + 2 * this.deps.takeoverTimeoutMs,
      onPublished: this.metrics?.published,
    });
    if (found.kind === "ended") {
      await this.markEnded(found.reason);
      return "ended";
    }
    if (found.kind === "fresh") return this.generate(record, found.writer, [...record.steers, ...this.control.takeEarly()]);
    return this.generate(record, found.writer, this.control.takeEarly(), found.resume);
  }

  /** Compare-and-set on the record: running, by this worker, with the next epoch. */
  private async claim(from: (r: ResponseRecord) => boolean, seen?: StoredRecord): Promise<ResponseRecord | null> {
    let mine = false;
    const stored = await this.deps.broker.records.mutate(
      this.rid,
      (r) => {
        mine = from(r);
        return mine ? { ...r, status: "running", worker: this.deps.workerId, epoch: r.epoch + 1, released: undefined } : null;
      },
      seen,
    );
    if (!mine || !stored) return null;
    this.claimed = stored;
    this.epoch = stored.record.epoch;
    this.ownership?.hold(this.epoch);
    return stored.record;
  }

  /** `early`: the session an EarlyStart began for this job (no steers, no resume). */
  private async generate(
    record: ResponseRecord,
    writer: EventLogWriter,
    steers: string[],
    resume?: ResumeState,
    early?: GenerationSession,
  ): Promise<Outcome> {
    const { generator } = this.deps;
    // An early session's generation began with it (the worker's TTFT counts from there).
    if (!early) this.metrics?.began();
    // A log that ends inside a tool call may get nothing before the call's end: steers that
    // came meanwhile go to the session, which yields them at its next safe boundary.
    const deferred = resume && insideCall(resume) ? steers : [];
    const logged = deferred.length > 0 ? [] : steers;
    const session =
      early ??
      generator.start({
        rid: this.rid,
        body: record.request,
        steers: logged,
        signal: this.abort.signal,
        ...(resume ? { resume } : {}),
      });
    this.session = session;
    for (const text of deferred) if (!session.steer(text)) this.control.refused(text);
    for (const text of logged) await this.write(writer, { kind: "steer", text });
    const resumed = resume?.tokens.length ?? 0;
    this.log.info(
      { steers: steers.length, epoch: this.epoch, resumed, seq: writer.seq },
      resume ? "generation continued" : "generation started",
    );
    const end = await this.stream(session, writer);
    if (!end) return this.release();
    if (this.lost) throw new FencedError(this.rid, writer.seq + 1);
    await this.deps.broker.lifecycle.finish(writer, end, () => this.control.endLogged(), this.claimed);
    this.log.info({ reason: end.reason, seq: writer.seq, usage: end.usage }, "generation ended");
    return "ended";
  }

  /** Writes the session's outputs as they come; returns the `end` to close the log with, or null to hand it over. */
  private async stream(session: GenerationSession, writer: EventLogWriter): Promise<EndEvent | null> {
    const it = session[Symbol.asyncIterator]();
    const watch = new StallWatch(this.deps.stallTimeoutMs);
    const tokens = new DeltaCoalescer((e) => this.write(writer, e), this.deps.coalesce);
    let exhausted = false;
    try {
      for (;;) {
        const r = await watch.next(it.next());
        if (r === STALLED) {
          await tokens.flush();
          return this.stall(session);
        }
        if (r.done) {
          exhausted = true;
          break;
        }
        const out: GenerationOutput = r.value;
        if (out.type === "token" || out.type === "reasoning" || out.type === "tool_args") {
          this.metrics?.generated();
          const wait = tokens.add(out);
          if (wait) await wait;
          continue;
        }
        // What was generated before a steer, a tool call's edge or the end is logged before it.
        await tokens.flush();
        if (out.type === "done") {
          if (!this.abort.signal.aborted) return ends.done(out.reason, out.usage);
        } else await this.write(writer, eventOfOutput(out));
      }
      if (!this.lost) await tokens.flush();
    } catch (err) {
      // A failed write (fenced, or NATS unreachable past the writer's retries) is not the
      // generator's failure: the run ends without `end` and the log is continued elsewhere.
      if (err instanceof StoreError || this.lost) throw err;
      if (!this.abort.signal.aborted) {
        await tokens.flush();
        return errorEnd(err, session.usage(), this.log);
      }
      await tokens.flush();
    } finally {
      tokens.stop();
      watch.stop();
      // Leaving before the session's end (stall, done, a failed write): let it stop generating.
      if (!exhausted) void it.return?.(undefined)?.catch(() => undefined);
    }
    if (this.lost) throw new FencedError(this.rid, writer.seq + 1);
    if (this.handingOver && !this.cancelled) return null;
    return ends.cancelled(session.usage());
  }

  private stall(session: GenerationSession): EndEvent {
    this.abort.abort();
    this.log.error({ stallTimeoutMs: this.deps.stallTimeoutMs }, "generation stalled; ending it");
    return ends.stalled(this.deps.stallTimeoutMs, session.usage());
  }

  /** Every write of the run: refused once it knows it lost the response, and steers answered once logged. */
  private async write(writer: EventLogWriter, event: ResponseEvent): Promise<void> {
    if (this.lost) throw new FencedError(this.rid, writer.seq + 1);
    await writer.append(event);
    if (event.kind === "steer") this.control.logged(event.text);
  }

  /** Shutting down mid-response: the log stays without `end`, and the record says so. */
  private async release(): Promise<Outcome> {
    await this.deps.broker.records.mutate(this.rid, (r) =>
      r.epoch === this.epoch && r.status === "running" ? { ...r, released: true } : null,
    );
    this.log.info({ epoch: this.epoch }, "generation handed over: another worker continues it");
    this.metrics?.handedOver();
    return "released";
  }

  /** A higher epoch (ownership check, or the new owner's `fence`): stop at once, write and answer nothing. */
  private loseTo(epoch: number): void {
    if (this.lost) return;
    this.lost = true;
    this.log.warn({ epoch: this.epoch, now: epoch }, "another worker took this response over; stopping without writing");
    this.abort.abort();
  }

  private failed(err: unknown): Outcome {
    if (err instanceof FencedError || this.lost) {
      if (!this.lost)
        this.log.warn({ err: (err as Error).message, epoch: this.epoch }, "another writer owns this response's log; stopping");
      this.lost = true;
      return "lost";
    }
    this.log.error({ err: String(err), stack: (err as Error).stack }, "response run failed");
    // No `end` was written (NATS unreachable past the writer's retries, a bug): the request
    // goes back to the queue, and a worker continues the response from its log.
    return "released";
  }

  private async endLost(message: string): Promise<void> {
    this.log.warn(message);
    await this.deps.broker.lifecycle.endOrphan(this.rid, ends.workerLost(message), { onPublished: this.metrics?.published });
  }

  private markEnded(reason: string): Promise<void> {
    return this.deps.broker.lifecycle.markEnded(this.rid, reason);
  }

  private writer(from: { seq: number; streamSeq: number }): EventLogWriter {
    return this.deps.broker.logs.writer(this.rid, from, { epoch: this.epoch, onPublished: this.metrics?.published });
  }

  private startEvent(): ResponseEvent & { kind: "start" } {
    return { kind: "start", model: this.deps.generator.model, created_at: new Date().toISOString() };
  }

  private controlTarget(): ControlTarget {
    return {
      started: () => this.session !== undefined,
      cancel: () => {
        this.metrics?.cancelRequested();
        this.cancelled = true;
        this.abort.abort();
      },
      steer: (text) => !this.abort.signal.aborted && (this.session?.steer(text) ?? false),
      fenced: (epoch) => {
        if (this.epoch > 0 && epoch > this.epoch) this.loseTo(epoch);
      },
    };
  }
}
