import { setTimeout as sleep } from "node:timers/promises";
import {
  LIMITS,
  ProtocolError,
  newMessagesOf,
  newRid,
  type ControlRequest,
  type GenerateFrame,
  type ResponseRecord,
} from "@unbroken/protocol";
import { ends, goneError, toProtocolError, type Broker, type ControlOutcome, type ServedModel } from "@unbroken/store";
import type { Logger } from "pino";
import { generatingOwner, madeFor, type Principal, type Scope, type ThreadReader } from "./auth.js";
import { StreamBudget } from "./budgets.js";
import type { EdgeLimits } from "./config.js";
import { KnownOwners } from "./known-owners.js";
import { ActiveGenerations, checkRequest, rateLimited } from "./limits.js";
import type { EdgeMetrics } from "./metrics.js";
import { storableRecord } from "./record-check.js";
import { ThreadService } from "./threads.js";
import { Steering } from "./steering.js";

export interface ResponseServiceOptions {
  /** Auth on: a missing rid answers like another owner's (forbidden), never not_found. */
  authOn: boolean;
  queueTimeoutMs: number;
  /** How long to wait for the worker to settle a cancel or take a steer. */
  controlTimeoutMs?: number;
  limits: EdgeLimits;
  /** Counts generates, cancels and steers, whichever way they came (socket, REST, chat completions). */
  metrics?: EdgeMetrics;
}

/** Where a generate comes from: a socket's session id (for the per-socket limit), or HTTP. */
export interface GenerateSource {
  session?: string;
  /** Kept on the record for OpenAI's Responses API (see ResponseRecord.openai). */
  openai?: ResponseRecord["openai"];
}

const HIDDEN = "no response with this rid is accessible to you";

/**
 * What the edge does to responses on a client's behalf, independent of any socket:
 * create (idempotently), authorize, cancel, steer. All state lives in NATS.
 */
export class ResponseService {
  /** Generations started through this edge and not ended, per socket and per owner. */
  readonly generations: ActiveGenerations;
  /** Streams open through this edge, of every kind, per client and per address. */
  readonly streams: StreamBudget;
  private readonly steering: Steering;
  /** Threads: who may append and read, their limits, their turns. */
  readonly threads: ThreadService;
  private readonly owners = new KnownOwners();

  constructor(
    private readonly broker: Broker,
    private readonly opts: ResponseServiceOptions,
    private readonly log: Logger,
  ) {
    this.generations = new ActiveGenerations(async (rid) => {
      const stored = await broker.records.get(rid);
      return stored !== null && stored.record.status !== "ended";
    }, log);
    this.steering = new Steering(broker, opts.limits, {
      authorize: (p, rid) => this.authorize(p, rid, "steer"),
      control: (rid, req) => this.control(rid, req),
    });
    this.streams = new StreamBudget(opts.limits.streamsPerOwner, opts.limits.streamsPerAddress);
    this.threads = new ThreadService(broker, { authOn: opts.authOn, limits: opts.limits }, log);
  }

  private ensureConnected(): void {
    if (!this.broker.connected) throw new ProtocolError("unavailable", "the message broker cannot be reached; retry");
  }

  async generate(
    principal: Principal,
    asked: GenerateFrame,
    source: GenerateSource = {},
  ): Promise<{ rid: string; existing: boolean; record: ResponseRecord }> {
    const owner = generatingOwner(principal);
    const frame = checkRequest(asked, this.opts.limits, LIMITS.maxTokens);
    this.ensureConnected();
    const rid = frame.rid ?? newRid();
    const ownerKey = `o:${owner}`;
    const tracked = this.generations.has(ownerKey, rid);
    await this.admit(owner, ownerKey, source.session, rid, frame.rid !== undefined);
    try {
      const result = await this.create(owner, rid, frame, source.openai);
      this.generations.confirm(rid);
      this.owners.set(rid, owner);
      this.opts.metrics?.generated(result.existing);
      return result;
    } catch (err) {
      if (!tracked) this.generations.remove(rid);
      throw err;
    }
  }

  /**
   * Reserves a slot under the socket's and the owner's limits, asking the store about the
   * slots when one is full. A generate re-sent for an existing response starts nothing and
   * passes.
   */
  private async admit(owner: string, ownerKey: string, session: string | undefined, rid: string, clientRid: boolean): Promise<void> {
    const { generationsPerSocket, generationsPerOwner } = this.opts.limits;
    const keys: Array<[string, number]> = [[ownerKey, generationsPerOwner]];
    if (session !== undefined) keys.push([`s:${session}`, generationsPerSocket]);
    let full = this.generations.tryAdd(rid, keys);
    if (full === undefined) return;
    await this.generations.prune(full);
    full = this.generations.tryAdd(rid, keys);
    if (full === undefined) return;
    if (clientRid) {
      const stored = await this.broker.records.get(rid).catch(() => null);
      if (stored?.record.owner === owner) return;
    }
    throw full === ownerKey
      ? rateLimited(`at most ${generationsPerOwner} generations of one owner may run at once on this edge (MAX_GENERATIONS_PER_OWNER)`, rid)
      : rateLimited(`at most ${generationsPerSocket} generations started on one socket may run at once (MAX_GENERATIONS_PER_SOCKET)`, rid);
  }

  private async create(
    owner: string,
    rid: string,
    frame: GenerateFrame,
    openai: ResponseRecord["openai"],
  ): Promise<{ rid: string; existing: boolean; record: ResponseRecord }> {
    const { messages, prompt, params, tools, tool_choice, thread } = frame;
    const request = { messages, prompt, params, tools, tool_choice };
    const turn = await this.threads.admit(owner, frame);
    const record = storableRecord({
      v: 1,
      rid,
      owner,
      status: "queued",
      created_at: new Date().toISOString(),
      request: request as ResponseRecord["request"],
      steers: [],
      epoch: 0,
      ...(openai ? { openai } : {}),
      ...(thread ? { thread } : {}),
    });
    try {
      const revision = await this.broker.records.create(record);
      if (revision === null) return await this.existing(owner, rid);
      // Not awaited: the rid's owner entry only serves a later `gone`, never this generate.
      void this.broker.owners.remember(rid, owner);
      if (turn) await this.threads.append(turn, record);
      await this.broker.enqueueNew({ rid, record, revision });
      this.log.info({ rid, owner }, "response queued");
      return { rid, existing: false, record };
    } catch (err) {
      throw toProtocolError(err, rid);
    }
  }

  /** The rid is taken: the same owner gets it back (starting nothing); anyone else is refused. */
  private async existing(owner: string, rid: string): Promise<{ rid: string; existing: boolean; record: ResponseRecord }> {
    const stored = await this.broker.records.get(rid);
    if (!stored || stored.record.owner !== owner) {
      throw new ProtocolError("forbidden", "this rid is taken", { rid });
    }
    // Heals a first generate whose record landed but whose turn or request did not: their msg
    // ids make this a no-op when they did land.
    if (stored.record.status === "queued") {
      const { thread, request } = stored.record;
      if (thread) await this.threads.append({ thread, owner, messages: newMessagesOf(request) }, stored.record);
      await this.broker.enqueue({ rid, ...stored });
    }
    return { rid, existing: true, record: stored.record };
  }

  /**
   * The record of rid if `principal` may do `action` to it; otherwise the error that reveals
   * nothing (forbidden, or not_found with auth off). An owner may do everything to its own
   * responses; a capability token exactly its scope to its one rid. A response past RETENTION
   * is `gone` for whoever could have used it.
   */
  async authorize(principal: Principal, rid: string, action: Scope): Promise<ResponseRecord> {
    if (principal.kind === "capability") {
      if (principal.rid !== rid) throw new ProtocolError("forbidden", HIDDEN, { rid });
      if (!principal.scope.has(action)) throw new ProtocolError("forbidden", `this token does not allow ${action}`, { rid });
      if (Date.now() >= principal.expiresAt) throw new ProtocolError("unauthorized", "the token has expired", { rid });
    }
    if (principal.kind === "thread") return this.authorizeThreadReader(principal, rid, action);
    this.ensureConnected();
    const allowed = (owner: string) => principal.kind === "capability" || principal.owner === owner;
    try {
      const stored = await this.broker.records.get(rid);
      if (stored) this.owners.set(rid, stored.record.owner);
      // A capability token made for an earlier response of this rid (past RETENTION, created
      // again since) opens nothing: the same answer as for an unknown rid.
      if (stored && principal.kind === "capability" && !madeFor(principal, stored.record)) {
        throw new ProtocolError("forbidden", HIDDEN, { rid });
      }
      if (stored && allowed(stored.record.owner)) return stored.record;
      if (!stored) {
        const former = await this.broker.owners.former(rid);
        if (former !== undefined && allowed(former)) throw goneError(rid);
      }
      if (this.opts.authOn || stored) throw new ProtocolError("forbidden", HIDDEN, { rid });
      throw new ProtocolError("not_found", "no response with this rid", { rid });
    } catch (err) {
      throw toProtocolError(err, rid);
    }
  }

  /** A thread-scoped token reads the responses its thread started, and does nothing else. */
  private async authorizeThreadReader(principal: ThreadReader, rid: string, action: Scope): Promise<ResponseRecord> {
    if (action !== "read") throw new ProtocolError("forbidden", `this token does not allow ${action}`, { rid });
    if (Date.now() >= principal.expiresAt) throw new ProtocolError("unauthorized", "the token has expired", { rid });
    this.ensureConnected();
    try {
      const stored = await this.broker.records.get(rid);
      if (stored && (await this.threads.readerMayRead(principal, stored.record))) return stored.record;
      throw new ProtocolError("forbidden", HIDDEN, { rid });
    } catch (err) {
      throw toProtocolError(err, rid);
    }
  }

  /**
   * Like `authorize` for reading from `after`, and `gone` when those events have expired. The
   * check is made before answering for an ended response; should it fail (NATS busy electing
   * a leader), the reader's follower still finds out and says `gone` after `ok`.
   */
  async authorizeRead(principal: Principal, rid: string, after: number): Promise<ResponseRecord> {
    const record = await this.authorize(principal, rid, "read");
    if (record.status !== "ended") return record;
    try {
      await this.broker.lifecycle.assertReadable(record, after);
    } catch (err) {
      if (err instanceof ProtocolError && err.code === "gone") throw err;
      this.log.debug({ rid, err: String(err) }, "could not check the log's first event");
    }
    return record;
  }

  /**
   * True when a reader after `after` already has rid's `end`: nothing more will ever come. The
   * log decides, not the record (which is marked ended just after the `end` is stored); one
   * lookup per resume, none for a first read. A read error answers false: the reader is then
   * served as usual.
   */
  async readToEnd(record: ResponseRecord, after: number): Promise<boolean> {
    if (record.status === "queued" || after === 0) return false;
    const last = await this.broker.logs.last(record.rid).catch(() => null);
    return last?.kind === "end" && last.seq <= after;
  }

  /** The models the running workers serve (`GET /v1/models`). */
  models(): Promise<ServedModel[]> {
    this.ensureConnected();
    return this.broker.models.list().catch((err: unknown) => {
      throw toProtocolError(err);
    });
  }

  /** Ends rid with `no_worker` if it has waited in the queue past QUEUE_TIMEOUT. */
  expireIfStale(record: ResponseRecord): Promise<boolean> {
    return this.broker.lifecycle.expireIfStale(record, this.opts.queueTimeoutMs);
  }

  async cancel(principal: Principal, rid: string): Promise<void> {
    this.opts.metrics?.cancelReceived(rid);
    try {
      await this.settleCancel(principal, rid);
    } finally {
      this.opts.metrics?.cancelSettled(rid);
    }
  }

  private async settleCancel(principal: Principal, rid: string): Promise<void> {
    // The owner of a rid this edge knows, cancelling it while it runs (the usual Stop): ask
    // its worker straight away. Anything else (queued, ended, no worker) goes the long way.
    if (principal.kind === "owner" && this.owners.get(rid) === principal.owner && this.broker.connected) {
      const reply = await this.control(rid, { op: "cancel" }).catch(() => "no_reply" as const);
      if (reply !== "no_worker" && reply !== "no_reply") {
        this.log.info({ rid }, "cancel settled by worker");
        return;
      }
    }
    let record = await this.authorize(principal, rid, "cancel");
    try {
      for (let attempt = 0; attempt < 10; attempt++) {
        if (record.status === "ended") return;
        if (record.status === "queued") {
          if (await this.broker.lifecycle.endQueued(rid, ends.cancelled())) {
            this.log.info({ rid }, "cancelled while queued");
            return;
          }
        } else {
          const reply = await this.control(rid, { op: "cancel" });
          if (reply === "no_worker" || reply === "no_reply") {
            if (await this.broker.lifecycle.hasEnded(rid)) return;
            if (reply === "no_worker" && attempt >= 3) {
              await this.broker.lifecycle.endOrphan(rid, ends.cancelled());
              return;
            }
          } else {
            this.log.info({ rid }, "cancel settled by worker");
            return;
          }
        }
        await sleep(50 * (attempt + 1));
        record = await this.authorize(principal, rid, "cancel");
      }
    } catch (err) {
      throw toProtocolError(err, rid);
    }
    throw new ProtocolError("unavailable", "cancel could not be settled; retry", { rid });
  }

  /** Steers rid: see Steering (budgets, then the worker, or the record while queued). */
  steer(principal: Principal, rid: string, text: string): Promise<void> {
    this.opts.metrics?.steerReceived();
    return this.steering.steer(principal, rid, text);
  }

  /** Asks the worker running rid (see ControlChannel.request). */
  private control(rid: string, req: ControlRequest): Promise<ControlOutcome> {
    return this.broker.control.request(rid, req, this.controlTimeoutMs);
  }

  /**
   * A subscriber saw no event for ORPHAN_TIMEOUT: end the response `worker_lost` when no worker
   * answers for it. True when it has ended (by this call or before).
   */
  endIfAbandoned(rid: string): Promise<boolean> {
    return this.broker.lifecycle.endIfAbandoned(rid, this.controlTimeoutMs);
  }

  private get controlTimeoutMs(): number {
    return this.opts.controlTimeoutMs ?? 3_000;
  }
}
