import type { ResponseEvent } from "@unbroken/protocol";

export interface CoalescePolicy {
  /** COALESCE_MS; 0 turns coalescing off: every token is an event of its own. */
  maxDelayMs: number;
  /**
   * How long a token may be held back right now to travel with the ones after it: 0 while
   * the worker is idle, more as it gets busier (see worker.ts).
   */
  delayMs(): number;
}

/** Past this much gathered text an event is sent at once, whatever the policy. */
const MAX_EVENT_TEXT = 16_384;
/** Past this much text waiting behind a write, the generator is made to wait for it. */
const MAX_BACKLOG = 65_536;

/**
 * Turns a response's tokens into `token` events. Every event costs the same to store and
 * deliver however many tokens it carries, so tokens are gathered when sending one event per
 * token would cost more than it is worth: always while the response's previous write is in
 * flight (an idle path then still sends each token at once), and for up to `delayMs()`
 * while the worker is busy, except the first. Writes stay one at a time per response, in order.
 */
export class TokenCoalescer {
  private pending: string[] = [];
  /** How many generated tokens each pending text holds. */
  private counts: number[] = [];
  private pendingBytes = 0;
  /** performance.now() of the oldest pending token. */
  private since = 0;
  private inFlight: Promise<void> | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private failure: { err: unknown } | undefined;
  /** No token event sent yet: the first one is never held back (time to first token is what a reader notices most). */
  private first = true;

  constructor(
    private readonly write: (event: ResponseEvent) => Promise<void>,
    private readonly policy: CoalescePolicy,
  ) {}

  /**
   * Takes a token. Returns a promise only when the caller must wait before the next one:
   * a write failed (it rejects), or too much text waits behind a slow write.
   */
  add(text: string, tokens = 1): Promise<void> | undefined {
    if (this.failure) return Promise.reject(this.failure.err);
    if (text.length === 0) return undefined;
    if (this.pending.length === 0) this.since = performance.now();
    this.pending.push(text);
    this.counts.push(tokens);
    this.pendingBytes += text.length;
    this.pump();
    if (this.pendingBytes > MAX_BACKLOG && this.inFlight) return this.settled();
    return undefined;
  }

  /** Writes everything gathered and waits for it: before a steer or `end`. */
  async flush(): Promise<void> {
    this.clearTimer();
    while (!this.failure && (this.inFlight || this.pending.length > 0)) {
      if (this.inFlight) await this.inFlight;
      else this.send();
    }
    if (this.failure) throw this.failure.err;
  }

  /** Drops what is gathered and stops the timer (the response is lost or failed). */
  stop(): void {
    this.clearTimer();
    this.pending = [];
    this.counts = [];
    this.pendingBytes = 0;
  }

  private async settled(): Promise<void> {
    await this.inFlight;
    if (this.failure) throw this.failure.err;
  }

  private pump(): void {
    if (this.inFlight || this.pending.length === 0 || this.failure) return;
    const delay = this.policy.maxDelayMs > 0 && !this.first && this.pendingBytes < MAX_EVENT_TEXT ? this.policy.delayMs() : 0;
    if (delay > 0) {
      const wait = this.since + delay - performance.now();
      if (wait >= 1) {
        this.timer ??= setTimeout(() => {
          this.timer = undefined;
          this.pump();
        }, wait);
        return;
      }
    }
    this.send();
  }

  private send(): void {
    this.clearTimer();
    this.first = false;
    let text: string;
    let n: number;
    if (this.policy.maxDelayMs > 0) {
      text = this.pending.length === 1 ? (this.pending[0] as string) : this.pending.join("");
      n = this.counts.reduce((a, b) => a + b, 0);
      this.pending = [];
      this.counts = [];
      this.pendingBytes = 0;
    } else {
      text = this.pending.shift() as string;
      n = this.counts.shift() as number;
      this.pendingBytes -= text.length;
      this.since = performance.now();
    }
    // `n` only when the event holds other than one token: usage counts tokens, not events.
    this.inFlight = this.write(n === 1 ? { kind: "token", text } : { kind: "token", text, n }).then(
      () => {
        this.inFlight = undefined;
        this.pump();
      },
      (err: unknown) => {
        this.inFlight = undefined;
        this.failure = { err };
        this.stop();
      },
    );
  }

  private clearTimer(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
