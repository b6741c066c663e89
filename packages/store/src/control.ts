import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import { controlReplySchema, controlRequestSchema, controlSubject, type ControlReply, type ControlRequest } from "@unbroken/protocol";
import type { Log } from "./log.js";
import { isNoResponders, isTimeout } from "./nats-errors.js";

/** What a control request came to: the worker's reply, nobody listening, or no answer in time. */
export type ControlOutcome = ControlReply | "no_worker" | "no_reply";

/** One control request as the worker running the response receives it. */
export interface ControlCall {
  readonly request: ControlRequest;
  /** Answers the sender (a `fence` has nobody to answer: a no-op). */
  respond(reply: ControlReply): void;
}

/** The worker's subscription to one response's control subject. */
export interface ControlListener {
  close(): void;
}

/**
 * Cancel, steer and status for the worker that runs a response, on `llm.ctl.<rid>`
 * (request-reply on core NATS: nothing is stored), and the `fence` a worker that took a
 * response over publishes to the one it took it from.
 */
export class ControlChannel {
  constructor(
    private readonly nc: NatsConnection,
    private readonly log: Log,
    private readonly connected: () => boolean,
  ) {}

  /**
   * Asks the worker running rid. `no_worker`: nobody listens. `no_reply`: the request went
   * unanswered, which happens when the worker finished and stopped listening while it was
   * in flight; the caller looks at the log to tell that from a slow worker. Throws when NATS
   * cannot be reached.
   */
  async request(rid: string, req: ControlRequest, timeoutMs: number): Promise<ControlOutcome> {
    try {
      const msg = await this.nc.request(controlSubject(rid), JSON.stringify(req), { timeout: timeoutMs });
      return controlReplySchema.parse(msg.json());
    } catch (err) {
      if (isNoResponders(err)) return "no_worker";
      if (this.connected() && isTimeout(err)) return "no_reply";
      throw err;
    }
  }

  /**
   * Subscribes to rid's control subject; `onCall` gets every well-formed request (malformed
   * ones are logged and ignored). No flush: the server handles one connection's messages in
   * order, so the subscription is in place before anything this connection publishes next
   * (the claim that tells edges where to send cancel and steer).
   */
  listen(rid: string, onCall: (call: ControlCall) => void): ControlListener {
    const sub: Subscription = this.nc.subscribe(controlSubject(rid), {
      callback: (err, m) => {
        if (err) return;
        const parsed = controlRequestSchema.safeParse(safeJson(m));
        if (!parsed.success) {
          this.log.warn({ rid }, "malformed control message ignored");
          return;
        }
        onCall({ request: parsed.data, respond: (reply) => respond(m, reply) });
      },
    });
    return { close: () => sub.unsubscribe() };
  }

  /** Tells a worker still running rid with a lower epoch to stop (no reply). */
  fence(rid: string, epoch: number): void {
    this.nc.publish(controlSubject(rid), JSON.stringify({ op: "fence", epoch }));
  }
}

function respond(m: Msg, reply: ControlReply): void {
  if (m.reply) m.respond(JSON.stringify(reply));
}

function safeJson(m: Msg): unknown {
  try {
    return m.json();
  } catch {
    return undefined;
  }
}
