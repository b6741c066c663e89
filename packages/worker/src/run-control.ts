import type { ControlReply } from "@unbroken/protocol";
import type { ControlCall, ControlChannel, ControlListener } from "@unbroken/store";
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
  call: ControlCall;
  timer: NodeJS.Timeout;
}

/**
 * The control subject of one response (`llm.ctl.<rid>`) while this worker runs it:
 * status, cancel and steer requests, and their replies.
 */
export class RunControl {
  private sub: ControlListener | undefined;
  private readonly early: string[] = [];
  private readonly steers: SteerWaiter[] = [];
  private readonly cancels: ControlCall[] = [];
  private parting: Parting | undefined;

  constructor(
    private readonly channel: ControlChannel,
    private readonly rid: string,
    private readonly target: ControlTarget,
    private readonly log: Logger,
  ) {}

  /** Tells a worker still running the response with a lower epoch to stop (see `fence`). */
  fence(epoch: number): void {
    this.channel.fence(this.rid, epoch);
  }

  /**
   * Listens before the record says running: the subscription is in place before the claim
   * that tells edges where to send cancel and steer (and an edge that still finds nobody retries).
   */
  listen(): void {
    this.sub = this.channel.listen(this.rid, (call) => this.onRequest(call));
  }

  /** Steers that came before the run began writing: it logs and applies them first. */
  takeEarly(): string[] {
    return this.early.splice(0);
  }

  /** A `steer` event is in the log: its request (if it came through here) gets `ok`. */
  logged(text: string): void {
    this.take(text)?.respond({ ok: true });
  }

  /**
   * A steer the run took early could not be applied after all (it came while the log ended
   * inside a tool call, and the generator refused it): its request gets `finished`.
   */
  refused(text: string): void {
    this.take(text)?.respond(FINISHED);
  }

  /** The waiting request of a steer with this text, no longer waiting. */
  private take(text: string): ControlCall | undefined {
    const i = this.steers.findIndex((w) => w.text === text);
    const w = this.steers[i];
    if (!w) return undefined;
    this.steers.splice(i, 1);
    clearTimeout(w.timer);
    return w.call;
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
    if (how === "ended") setTimeout(() => sub?.close(), CONTROL_LINGER_MS).unref();
    else sub?.close();
  }

  private answer(how: Parting): void {
    this.parting = how;
    for (const w of this.steers.splice(0)) {
      clearTimeout(w.timer);
      if (how !== "lost") w.call.respond(how === "ended" ? FINISHED : RETRY);
    }
    // A cancel is answered only once the log has its end: by this run, or by the next owner.
    for (const call of this.cancels.splice(0)) if (how === "ended") call.respond({ ok: true });
  }

  private onRequest(call: ControlCall): void {
    if (this.parting === "lost" || this.parting === "released") return;
    const req = call.request;
    if (req.op === "status") {
      call.respond({ ok: true });
      return;
    }
    if (req.op === "fence") {
      this.target.fenced(req.epoch);
      return;
    }
    if (req.op === "cancel") {
      if (this.parting === "ended") {
        call.respond({ ok: true });
        return;
      }
      this.log.info({ started: this.target.started() }, "cancel received");
      this.cancels.push(call);
      this.target.cancel();
      return;
    }
    if (this.parting === "ended") {
      call.respond(FINISHED);
      return;
    }
    if (!this.target.started()) this.early.push(req.text);
    else if (!this.target.steer(req.text)) {
      call.respond(FINISHED);
      return;
    } else this.log.info("steer taken");
    const timer = setTimeout(() => this.logged(req.text), STEER_REPLY_MAX_MS);
    this.steers.push({ text: req.text, call, timer });
  }
}
