import type { WebSocketLike } from "@unbroken/client";

/**
 * The page's "train tunnel": the client opens its sockets through `createSocket`, so the page
 * can close the current one and refuse new ones for a while, as a dead network would. The
 * client does the rest by itself: backoff, reconnect, resume from the last seq it saw.
 */
export class Tunnel {
  readonly #sockets = new Set<WebSocket>();
  #until = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Called when the tunnel starts (with its end time) and ends (with 0). */
  onChange: (until: number) => void = () => undefined;

  get inside(): boolean {
    return this.#until > 0;
  }

  /** For `new UnbrokenClient({ createSocket })`: throwing refuses the attempt, retried with backoff. */
  readonly createSocket = (url: string): WebSocketLike => {
    if (this.inside) throw new Error("no network (in a tunnel)");
    const ws = new WebSocket(url);
    this.#sockets.add(ws);
    ws.addEventListener("close", () => this.#sockets.delete(ws));
    return ws;
  };

  /** Cuts the current socket and keeps the network away for `ms`. */
  enter(ms: number): void {
    clearTimeout(this.#timer);
    this.#until = Date.now() + ms;
    for (const ws of this.#sockets) ws.close(4000, "tunnel");
    this.#sockets.clear();
    this.onChange(this.#until);
    this.#timer = setTimeout(() => {
      this.#until = 0;
      this.onChange(0);
    }, ms);
  }
}
