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
 * A generated delta the coalescer gathers: text, reasoning, or a tool call's argument text.
 * Shaped as the generator's output, so the runner hands that over as it is (no copy per token).
 */
export interface Delta {
  type: "token" | "reasoning" | "tool_args";
  /** The tool call's id (`tool_args` only). */
  id?: string;
  text: string;
  tokens: number;
}

/** Deltas of one kind (and call) waiting to be written, gathered into one event when coalescing. */
interface Run {
  kind: Delta["type"];
  id: string | undefined;
  texts: string[];
  /** How many generated tokens each text holds. */
  counts: number[];
}

/**
 * Turns a response's deltas into `token`, `reasoning` and `tool_args` events; deltas of
 * different kinds (or calls) never share an event, and keep their order. Every event costs the same to store and
 * deliver however many tokens it carries, so tokens are gathered when sending one event per
 * token would cost more than it is worth: always while the response's previous write is in
 * flight (an idle path then still sends each token at once), and for up to `delayMs()`
 * while the worker is busy, except the first. Writes stay one at a time per response, in order.
 */
export class DeltaCoalescer {
  private pending: Run[] = [];
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
  add(delta: Delta): Promise<void> | undefined {
    if (this.failure) return Promise.reject(this.failure.err);
    const { text } = delta;
    if (text.length === 0) return undefined;
    if (this.pending.length === 0) this.since = performance.now();
    const last = this.pending.at(-1);
    if (last && last.kind === delta.type && last.id === delta.id) {
      last.texts.push(text);
      last.counts.push(delta.tokens);
    } else this.pending.push({ kind: delta.type, id: delta.id, texts: [text], counts: [delta.tokens] });
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
    const run = this.pending[0] as Run;
    let text: string;
    let n: number;
    if (this.policy.maxDelayMs > 0) {
      // The whole first run: a run of another kind behind it goes in the next event.
      text = run.texts.length === 1 ? (run.texts[0] as string) : run.texts.join("");
      n = run.counts.reduce((a, b) => a + b, 0);
      this.pending.shift();
    } else {
      text = run.texts.shift() as string;
      n = run.counts.shift() as number;
      if (run.texts.length === 0) this.pending.shift();
    }
    this.pendingBytes -= text.length;
    if (this.pending.length > 0) this.since = performance.now();
    this.inFlight = this.write(eventOf(run, text, n)).then(
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

/** `n` only when the event holds other than one token: usage counts tokens, not events. */
function eventOf(run: Run, text: string, n: number): ResponseEvent {
  const counted = n === 1 ? {} : { n };
  if (run.kind === "tool_args") return { kind: "tool_args", id: run.id as string, text, ...counted };
  return { kind: run.kind, text, ...counted };
}
