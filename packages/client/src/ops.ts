import { Backoff, type BackoffOptions } from "./backoff.js";
import type { Connection } from "./connection.js";
import { UnbrokenError } from "./errors.js";
import type { ErrorInfo } from "./frames.js";
import type { AcceptedFrame, OkFrame, PongFrame } from "@unbroken/protocol";

export type Reply = AcceptedFrame | OkFrame | PongFrame | ErrorInfo;
/** Gets the reply to a command, or null when the socket dropped before it came. */
export type ReplyHandler = (reply: Reply | null) => void;

export interface OpPolicy {
  /**
   * When the socket drops before the reply: `resend` on the next socket (idempotent commands),
   * reject with `disconnected` (the command may or may not have taken effect), or `resolve`.
   */
  onDrop: "resend" | "disconnected" | "resolve";
  /** Retry with backoff when the edge answers `unavailable`. */
  retryUnavailable: boolean;
  /** Wait for this before the first send (still within the deadline). */
  gate?: Promise<unknown> | undefined;
}

type CommandFrame = { type: "cancel" | "steer" | "unsubscribe"; rid: string; text?: string } | { type: "unfollow"; thread: string };

/**
 * Command ids and replies: each frame sent carries a fresh id (`c1`, `c2`, …) and its reply is
 * routed back by it. Also runs the one-shot commands (cancel, steer, unsubscribe, unfollow) to their reply.
 */
export class Ops {
  readonly #conn: Connection;
  readonly #timeoutMs: number;
  readonly #backoff: BackoffOptions;
  readonly #pending = new Map<string, ReplyHandler>();
  /** Commands waiting for a welcomed socket. */
  readonly #waiting = new Set<() => void>();
  readonly #running = new Set<(err: UnbrokenError) => void>();
  #counter = 0;
  #closedError: UnbrokenError | undefined;

  constructor(conn: Connection, timeoutMs: number, backoff: BackoffOptions) {
    this.#conn = conn;
    this.#timeoutMs = timeoutMs;
    this.#backoff = backoff;
  }

  nextId(): string {
    return `c${++this.#counter}`;
  }

  expect(id: string, handler: ReplyHandler): void {
    this.#pending.set(id, handler);
  }

  forget(id: string): void {
    this.#pending.delete(id);
  }

  /** Routes a reply; false when no command waits for this id. */
  reply(id: string, frame: Reply): boolean {
    const handler = this.#pending.get(id);
    if (handler === undefined) return false;
    this.#pending.delete(id);
    handler(frame);
    return true;
  }

  onWelcome(): void {
    const waiting = [...this.#waiting];
    this.#waiting.clear();
    for (const send of waiting) send();
  }

  onDrop(): void {
    const handlers = [...this.#pending.values()];
    this.#pending.clear();
    for (const h of handlers) h(null);
  }

  /** Fails every command in flight; nothing is sent any more. */
  shutdown(err: UnbrokenError): void {
    this.#closedError = err;
    for (const fail of [...this.#running]) fail(err);
    this.#running.clear();
    this.#waiting.clear();
    this.#pending.clear();
  }

  /** Sends a command (now, or once a socket is welcomed) and settles on its reply. */
  run(frame: CommandFrame, policy: OpPolicy): Promise<void> {
    if (this.#closedError) return Promise.reject(this.#closedError);
    const about = "rid" in frame ? { rid: frame.rid } : {};
    return new Promise<void>((resolve, reject) => {
      const backoff = new Backoff(this.#backoff);
      let settled = false;
      let id: string | undefined;
      let retry: ReturnType<typeof setTimeout> | undefined;
      const finish = (err?: UnbrokenError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        clearTimeout(retry);
        this.#running.delete(finish);
        this.#waiting.delete(send);
        if (id !== undefined) this.#pending.delete(id);
        if (err) reject(err);
        else resolve();
      };
      const deadline = setTimeout(() => {
        finish(new UnbrokenError("timeout", `no reply to ${frame.type} within ${this.#timeoutMs} ms`, about));
      }, this.#timeoutMs);
      const onReply = (reply: Reply | null): void => {
        id = undefined;
        if (reply === null) {
          if (policy.onDrop === "resend") this.#waiting.add(send);
          else if (policy.onDrop === "resolve") finish();
          else {
            const msg = `the connection dropped before the edge answered ${frame.type}: it may or may not have been recorded`;
            finish(new UnbrokenError("disconnected", msg, about));
          }
        } else if (reply.type !== "error") {
          finish();
        } else if (reply.code === "unavailable" && policy.retryUnavailable) {
          retry = setTimeout(send, backoff.next());
        } else {
          finish(new UnbrokenError(reply.code, reply.message, about));
        }
      };
      const send = (): void => {
        retry = undefined;
        if (settled) return;
        if (!this.#conn.ready) {
          this.#waiting.add(send);
          return;
        }
        id = this.nextId();
        this.#pending.set(id, onReply);
        this.#conn.send({ ...frame, id });
      };
      this.#running.add(finish);
      if (policy.gate) policy.gate.then(send, send);
      else send();
    });
  }
}
