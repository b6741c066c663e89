import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import { controlRequestSchema, controlSubject, type ControlReply } from "@unbroken/protocol";
import type { Logger } from "pino";

/** What the run behind a control subject does with cancel and steer. */
export interface ControlTarget {
  /** True once the generation runs (before that, steers wait for it to begin). */
  started(): boolean;
  /** Stops the generation; the run writes `end` cancelled. */
  cancel(): void;
  /** Hands a steer to the running generation; false when nothing can follow it any more. */
  steer(text: string): boolean;
  /** Another worker took the response over with this epoch. */
  fenced(epoch: number): void;
}

/** How a run left its response: what control requests still waiting are told. */
export type Parting =
  /** The run wrote `end` (or found it): cancel is settled, steers are `finished`. */
  | "ended"
  /** Handed over (or failed) without `end`: steers are retried by the edge, on the next worker. */
  | "released"
  /** Another worker owns the response: say nothing, that worker answers. */
  | "lost";

const FINISHED: ControlReply = { ok: false, code: "finished", message: "the response has ended" };
const RETRY: ControlReply = { ok: false, code: "internal", message: "the response is moving to another worker; retry" };

/** After `end`, keep answering for a moment, so a request that crossed it gets its answer. */
const CONTROL_LINGER_MS = 5_000;
/**
 * A steer is answered once its `steer` event is in the log, so an answered steer survives
 * a failover. A generation that takes long to reach a token boundary (a model still loading)
 * gets `ok` after this anyway: below the edge's 3 s wait, after which it would send the
 * steer again.
 */
const STEER_REPLY_MAX_MS = 1_500;

interface SteerWaiter {
  text: string;
  m: Msg;
  timer: NodeJS.Timeout;
}

/**
 * The control subject of one response (`llm.ctl.<rid>`) while this worker runs it:
 * status, cancel and steer requests, and their replies.
 */
export class RunControl {
  private sub: Subscription | undefined;
  private readonly early: string[] = [];
  private readonly steers: SteerWaiter[] = [];
  private readonly cancels: Msg[] = [];
  private parting: Parting | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly rid: string,
    private readonly target: ControlTarget,
    private readonly log: Logger,
  ) {}

  /** Tells a worker still running the response with a lower epoch to stop (see `fence`). */
  fence(epoch: number): void {
    this.nc.publish(controlSubject(this.rid), JSON.stringify({ op: "fence", epoch }));
  }

  /** Subscribes; resolves once the server has the subscription. */
  /**
   * Subscribes before the record says running. No flush: the server handles one
   * connection's messages in order, so the subscription is in place before the claim that
   * tells edges where to send cancel and steer (and an edge that still finds nobody retries).
   */
  listen(): void {
    this.sub = this.nc.subscribe(controlSubject(this.rid), {
      callback: (err, m) => {
        if (!err) this.onRequest(m);
      },
    });
  }

  /** Steers that came before the run began writing: it logs and applies them first. */
  takeEarly(): string[] {
    return this.early.splice(0);
  }

  /** A `steer` event is in the log: its request (if it came through here) gets `ok`. */
  logged(text: string): void {
    const i = this.steers.findIndex((w) => w.text === text);
    const w = this.steers[i];
    if (!w) return;
    this.steers.splice(i, 1);
    clearTimeout(w.timer);
    this.reply(w.m, { ok: true });
  }

  /**
   * The log has its `end`: cancels are settled and steers finished from now on, before the
   * run's last chores (the record) are done.
   */
  endLogged(): void {
    this.answer("ended");
  }

  /** The run is over: answers what waits, and stops listening (at once unless it ended). */
  part(how: Parting): void {
    this.answer(how);
    const sub = this.sub;
    if (how === "ended") setTimeout(() => sub?.unsubscribe(), CONTROL_LINGER_MS).unref();
    else sub?.unsubscribe();
  }

  private answer(how: Parting): void {
    this.parting = how;
    for (const w of this.steers.splice(0)) {
      clearTimeout(w.timer);
      if (how !== "lost") this.reply(w.m, how === "ended" ? FINISHED : RETRY);
    }
    // A cancel is answered only once the log has its end: by this run, or by the next owner.
    for (const m of this.cancels.splice(0)) if (how === "ended") this.reply(m, { ok: true });
  }

  private onRequest(m: Msg): void {
    if (this.parting === "lost" || this.parting === "released") return;
    let req;
    try {
      req = controlRequestSchema.parse(m.json());
    } catch {
      this.log.warn("malformed control message ignored");
      return;
    }
    if (req.op === "status") return this.reply(m, { ok: true });
    if (req.op === "fence") return this.target.fenced(req.epoch);
    if (req.op === "cancel") {
      if (this.parting === "ended") return this.reply(m, { ok: true });
      this.log.info({ started: this.target.started() }, "cancel received");
      this.cancels.push(m);
      this.target.cancel();
      return;
    }
    if (this.parting === "ended") return this.reply(m, FINISHED);
    if (!this.target.started()) this.early.push(req.text);
    else if (!this.target.steer(req.text)) return this.reply(m, FINISHED);
    else this.log.info("steer taken");
    const timer = setTimeout(() => this.logged(req.text), STEER_REPLY_MAX_MS);
    this.steers.push({ text: req.text, m, timer });
  }

  private reply(m: Msg, body: ControlReply): void {
    if (m.reply) m.respond(JSON.stringify(body));
  }
}
