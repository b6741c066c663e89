import type { ConnectionStatus } from "@unbroken/client";

export type Indicator = "connecting" | "connected" | "reconnecting" | "resumed" | "closed";

/** Events closer together than this after a reconnect belong to the catch-up burst. */
const BURST_GAP_MS = 10;

/**
 * The connection indicator: connected, reconnecting (attempt n), resumed (with how many events
 * were caught up: the burst of stored events the edge replays right after the reconnect, before
 * the live pace resumes), or closed (the edge refused the token).
 */
export class ConnectionIndicator {
  readonly #el: HTMLElement;
  readonly #text: HTMLElement;
  #state: Indicator = "connecting";
  #dropped = false;
  #catching = false;
  #caught = 0;
  #lastAt = 0;
  #note = "";
  #last: ConnectionStatus | undefined;

  constructor(el: HTMLElement) {
    this.#el = el;
    this.#text = el.querySelector(".conn-text") as HTMLElement;
    this.#render();
  }

  get state(): Indicator {
    return this.#state;
  }

  /** Extra words shown after the state (e.g. "in a tunnel"). */
  set note(note: string) {
    this.#note = note;
    this.#render();
  }

  status(s: ConnectionStatus): void {
    if (s.state === "connected") {
      this.#state = this.#dropped ? "resumed" : "connected";
      this.#catching = this.#dropped;
      this.#caught = 0;
      this.#dropped = false;
    } else if (s.state === "reconnecting") {
      this.#state = "reconnecting";
      this.#dropped = true;
      this.#catching = false;
    } else {
      this.#state = s.state;
    }
    this.#el.title = s.lastError ? `last error: ${s.lastError}` : "";
    this.#last = s;
    this.#render();
  }

  /** Every event of any response passes here, to count the catch-up after a reconnect. */
  event(): void {
    if (!this.#catching) return;
    const now = performance.now();
    if (this.#caught > 0 && now - this.#lastAt > BURST_GAP_MS) {
      this.#catching = false;
      return;
    }
    this.#caught++;
    this.#lastAt = now;
    this.#render();
  }

  #render(): void {
    const el = this.#el;
    const s = this.#last;
    el.dataset.state = this.#state;
    let text: string;
    switch (this.#state) {
      case "connecting":
        text = "connecting…";
        break;
      case "connected":
        text = "connected";
        break;
      case "reconnecting":
        text = `reconnecting… (attempt ${s?.attempt ?? 1})`;
        break;
      case "resumed":
        text = `resumed · caught up ${this.#caught} event${this.#caught === 1 ? "" : "s"}`;
        el.dataset.caught = String(this.#caught);
        break;
      default:
        text = s?.lastError?.startsWith("unauthorized")
          ? "unauthorized: open this page with ?token=<jwt>"
          : `disconnected${s?.lastError ? `: ${s.lastError}` : ""}`;
    }
    this.#text.textContent = this.#note ? `${text} · ${this.#note}` : text;
  }
}
