import type { WebSocket } from "ws";

/**
 * Pings every socket each interval and closes, with 1011, one that left two pings in a
 * row unanswered. One timer for all sockets, owned by the server.
 */
export class Heartbeat {
  private readonly missed = new Map<WebSocket, number>();
  /** Who to tell when a socket is closed for unanswered pings (its session, for the drop metric). */
  private readonly timedOut = new Map<WebSocket, () => void>();
  private readonly timer: ReturnType<typeof setInterval>;

  constructor(intervalMs: number) {
    this.timer = setInterval(() => this.beat(), intervalMs);
    this.timer.unref();
  }

  /** `onTimeout` is told before the socket is closed for unanswered pings. */
  add(ws: WebSocket, onTimeout?: () => void): void {
    this.missed.set(ws, 0);
    if (onTimeout) this.timedOut.set(ws, onTimeout);
    ws.on("pong", () => this.missed.set(ws, 0));
    ws.on("close", () => {
      this.missed.delete(ws);
      this.timedOut.delete(ws);
    });
  }

  private beat(): void {
    for (const [ws, missed] of this.missed) {
      if (missed >= 2) {
        this.missed.delete(ws);
        this.timedOut.get(ws)?.();
        ws.close(1011, "heartbeat timeout");
        // A peer that stopped answering pings will not finish a closing handshake either.
        setTimeout(() => ws.terminate(), 1_000).unref();
        continue;
      }
      this.missed.set(ws, missed + 1);
      ws.ping();
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.missed.clear();
    this.timedOut.clear();
  }
}
