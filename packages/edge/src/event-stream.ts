import type { ServerResponse } from "node:http";
import type { HttpContext } from "./http-context.js";
import { drained } from "./limits.js";

/** What an event stream closes when it cuts its reader off. */
interface Closable {
  close(): void;
}

/** What a stream follows, for its log lines: `{rid}` of a response, `{thread}` of a thread. */
export type StreamTopic = { rid: string } | { thread: string };

/**
 * A Server-Sent Events answer that follows a log (a response's, for the native event stream
 * and the Responses API's; a thread's, for its turns): its headers, a keepalive comment every HEARTBEAT, and the slow-reader
 * rule. A reader with more than MAX_SOCKET_BUFFER bytes waiting is cut off (it resumes like
 * after any drop); a replay waits for the reader instead (`pace`, handed to the Subscription).
 */
export class EventStreamReply {
  private readonly heartbeat: ReturnType<typeof setInterval>;
  private readonly limit: number;
  private sub: Closable | undefined;

  constructor(
    private readonly ctx: HttpContext,
    private readonly res: ServerResponse,
    private readonly topic: StreamTopic,
    private readonly transport: "sse" | "responses",
  ) {
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-transform",
      connection: "keep-alive",
      // Proxies such as nginx would otherwise hold tokens back in their buffers.
      "x-accel-buffering": "no",
    });
    this.heartbeat = setInterval(() => res.write(": keepalive\n\n"), ctx.heartbeatMs);
    this.limit = ctx.limits.maxSocketBuffer;
    res.on("close", () => {
      clearInterval(this.heartbeat);
      this.sub?.close();
    });
  }

  /** The subscription (or turn follower) this stream delivers: closed when the reader goes or is cut off. */
  follow(sub: Closable): void {
    this.sub = sub;
  }

  /** Writes `text`, or cuts the reader off when too much already waits for it. */
  write(text: string): void {
    if (this.res.writableLength > this.limit) this.cut();
    else this.res.write(text);
  }

  /** The stream is complete (after `end`, or gone with `text` as its last word). */
  end(text?: string): void {
    clearInterval(this.heartbeat);
    this.res.end(text);
  }

  /** The Subscription's `pace`: past half the buffer, wait until a quarter is left (or cut). */
  readonly pace = (): Promise<void> | undefined =>
    this.res.writableLength > this.limit / 2
      ? drained(
          () => (this.res.destroyed ? 0 : this.res.writableLength),
          this.limit / 4,
          () => this.cut(),
        )
      : undefined;

  private cut(): void {
    const { res } = this;
    if (res.destroyed) return;
    const reader = this.transport === "sse" ? "SSE" : "Responses";
    this.ctx.log.warn({ ...this.topic, buffered: res.writableLength }, `slow ${reader} reader: closing the stream`);
    this.sub?.close();
    res.destroy();
    this.ctx.onSlowConsumer?.(this.transport);
  }
}
