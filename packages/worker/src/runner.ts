import type { JsMsg } from "@nats-io/jetstream";
import type { Msg, Subscription } from "@nats-io/transport-node";
import {
  controlRequestSchema,
  controlSubject,
  type ControlReply,
  type EndEvent,
  type ResponseRecord,
} from "@unbroken/protocol";
import { EventLogWriter, FencedError, endQueued, logPosition, type Broker, type StoredRecord } from "@unbroken/store";
import type { Logger } from "pino";
import { GeneratorError, type GenerationSession, type TokenGenerator } from "./generator.js";

export interface RunnerDeps {
  broker: Broker;
  generator: TokenGenerator;
  workerId: string;
  log: Logger;
  queueTimeoutMs: number;
  workerTimeoutMs: number;
}

type State = "starting" | "running" | "ending" | "ended";

const CONTROL_LINGER_MS = 5_000;

/**
 * Runs one response from its work-queue message to its `end`: claims the record, writes
 * every event through one fenced writer, and answers cancel and steer on the response's
 * control subject. The message is acked only when the log is complete, and kept alive
 * while generating, so a worker that dies is noticed when its ack stops being extended.
 */
export class ResponseRun {
  private readonly abort = new AbortController();
  private readonly log: Logger;
  private state: State = "starting";
  private session: GenerationSession | undefined;
  private readonly earlySteers: string[] = [];
  private readonly endWaiters: Array<() => void> = [];
  private sub: Subscription | undefined;

  constructor(
    private readonly deps: RunnerDeps,
    private readonly msg: JsMsg,
    readonly rid: string,
  ) {
    this.log = deps.log.child({ rid });
  }

  private stopped = false;

  /** Ends the generation with an error: the worker is shutting down and cannot wait longer. */
  stop(): void {
    this.stopped = true;
    this.abort.abort();
  }

  async run(): Promise<void> {
    const keepAlive = setInterval(() => this.msg.working(), Math.max(250, this.deps.workerTimeoutMs / 3));
    try {
      await this.begin();
    } catch (err) {
      if (err instanceof FencedError) this.log.warn({ err: err.message }, "another writer owns this response's log");
      else this.log.error({ err: String(err), stack: (err as Error).stack }, "response run failed");
    } finally {
      clearInterval(keepAlive);
      this.state = "ended";
      // Keep answering for a moment: a cancel or steer sent as the end was being written
      // then gets its answer (ok / finished) at once instead of waiting out a timeout.
      const sub = this.sub;
      if (sub) setTimeout(() => sub.unsubscribe(), CONTROL_LINGER_MS).unref();
      for (const w of this.endWaiters.splice(0)) w();
      this.msg.ack();
    }
  }

  private async begin(): Promise<void> {
    const { broker } = this.deps;
    const stored = await broker.records.get(this.rid);
    if (!stored) return this.log.warn("request for a response with no record; dropped");
    const { record } = stored;
    if (record.status === "ended") return;
    if (record.status === "running") {
      // Only a redelivery means the worker holding it went silent; a first delivery of a
      // running response is a duplicate request (an edge healing a lost enqueue).
      if (this.msg.info.deliveryCount > 1) return this.takeOver(stored);
      return this.log.debug("duplicate request for a running response; dropped");
    }
    if (Date.parse(record.created_at) + this.deps.queueTimeoutMs < Date.now()) {
      this.log.warn("request waited past QUEUE_TIMEOUT; ending it");
      await endQueued(broker, this.rid, {
        reason: "error",
        error: { code: "no_worker", message: "no worker began this response within QUEUE_TIMEOUT" },
      });
      return;
    }
    // Listen before claiming: once the record says running, cancel and steer must find us.
    this.sub = broker.nc.subscribe(controlSubject(this.rid), { callback: (err, m) => {
        if (!err) this.onControl(m);
      } });
    await broker.nc.flush();
    const claimed = await broker.records.mutate(this.rid, (r) =>
      r.status === "queued" ? { ...r, status: "running", worker: this.deps.workerId, epoch: r.epoch + 1 } : null,
    );
    if (claimed?.record.status !== "running" || claimed.record.worker !== this.deps.workerId) return;
    await this.generate(claimed.record);
  }

  private async generate(record: ResponseRecord): Promise<void> {
    const { broker, generator } = this.deps;
    const writer = new EventLogWriter(broker, this.rid);
    try {
      await writer.append({ kind: "start", model: generator.model, created_at: new Date().toISOString() });
    } catch (err) {
      if (!(err instanceof FencedError)) throw err;
      // The response was ended while queued (a cancel won the race): the log says so already.
      await this.markEnded("cancelled");
      return;
    }
    const steers = [...record.steers, ...this.earlySteers.splice(0)];
    const session = generator.start({ rid: this.rid, body: record.request, steers, signal: this.abort.signal });
    this.session = session;
    this.state = "running";
    for (const text of steers) await writer.append({ kind: "steer", text });
    this.log.info({ steers: steers.length }, "generation started");
    const end = await this.stream(session, writer);
    this.state = "ending";
    await writer.append(end);
    await this.markEnded(end.reason);
    this.log.info({ reason: end.reason, seq: writer.seq, usage: end.usage }, "generation ended");
  }

  /** Writes the session's outputs as they come; returns the `end` to close the log with. */
  private async stream(session: GenerationSession, writer: EventLogWriter): Promise<EndEvent> {
    try {
      for await (const out of session) {
        if (out.type === "token") await writer.append({ kind: "token", text: out.text });
        else if (out.type === "steer") await writer.append({ kind: "steer", text: out.text });
        else if (!this.abort.signal.aborted) return { kind: "end", reason: out.reason, usage: out.usage };
      }
    } catch (err) {
      if (err instanceof FencedError) throw err;
      if (!this.abort.signal.aborted) {
        this.log.error({ err: String(err) }, "generator failed");
        const code = err instanceof GeneratorError ? err.code : "generator_error";
        return {
          kind: "end",
          reason: "error",
          error: { code, message: err instanceof Error ? err.message : String(err) },
          usage: session.usage(),
        };
      }
    }
    if (this.stopped) {
      return {
        kind: "end",
        reason: "error",
        error: { code: "worker_stopped", message: "the worker shut down before this response finished" },
        usage: session.usage(),
      };
    }
    return { kind: "end", reason: "cancelled", usage: session.usage() };
  }

  /** The worker that ran this response is gone: close its log so no client waits forever. */
  private async takeOver(stored: StoredRecord): Promise<void> {
    const pos = await logPosition(this.deps.broker.jsm, this.rid);
    if (pos.last?.frame.event.kind !== "end") {
      this.log.warn({ previous: stored.record.worker, seq: pos.seq }, "worker lost mid-response; ending it");
      const writer = new EventLogWriter(this.deps.broker, this.rid, pos);
      await writer.append({
        kind: "end",
        reason: "error",
        error: { code: "worker_lost", message: "the worker generating this response stopped" },
        usage: { prompt_tokens: 0, completion_tokens: 0 },
      });
    }
    await this.markEnded("error");
  }

  private async markEnded(reason: string): Promise<void> {
    await this.deps.broker.records.mutate(this.rid, (r) =>
      r.status === "ended" ? null : { ...r, status: "ended", reason },
    );
  }

  private onControl(m: Msg): void {
    let req;
    try {
      req = controlRequestSchema.parse(m.json());
    } catch {
      this.log.warn("malformed control message ignored");
      return;
    }
    if (req.op === "cancel") {
      this.log.info({ state: this.state }, "cancel received");
      this.abort.abort();
      this.afterEnd(() => this.reply(m, { ok: true }));
      return;
    }
    if (req.op === "status") return this.reply(m, { ok: true });
    this.reply(m, this.takeSteer(req.text));
  }

  private takeSteer(text: string): ControlReply {
    const finished: ControlReply = { ok: false, code: "finished", message: "the response has ended" };
    if (this.state === "starting") {
      this.earlySteers.push(text);
      return { ok: true };
    }
    if (this.state !== "running" || this.abort.signal.aborted || !this.session?.steer(text)) return finished;
    this.log.info("steer taken");
    return { ok: true };
  }

  private afterEnd(fn: () => void): void {
    if (this.state === "ended") fn();
    else this.endWaiters.push(fn);
  }

  private reply(m: Msg, body: ControlReply): void {
    if (m.reply) m.respond(JSON.stringify(body));
  }
}
