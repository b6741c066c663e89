import { createParser, type EventSourceMessage } from "eventsource-parser";
import { within } from "./within.js";

export interface SseRead {
  status: number;
  headers: Headers;
  messages: EventSourceMessage[];
  comments: string[];
  /** The raw body text, to check for lines the parser would hide (e.g. `event:`). */
  raw: string;
}

/**
 * Reads an SSE response to its end (or until `stop` says so), parsing it with a maintained
 * parser. Non-2xx answers come back with their status and JSON body text in `raw`. A stream
 * that has not ended (or satisfied `stop`) after `timeoutMs` fails the read, naming what came.
 */
export async function readSse(
  url: string,
  init: RequestInit = {},
  /** Checked after each event and each chunk: true ends the read early. */
  stop?: (read: SseRead) => boolean,
  timeoutMs = 60_000,
): Promise<SseRead> {
  const deadline = Date.now() + timeoutMs;
  const controller = new AbortController();
  const res = await fetch(url, { ...init, signal: controller.signal });
  const read: SseRead = { status: res.status, headers: res.headers, messages: [], comments: [], raw: "" };
  let stopped = false;
  const parser = createParser({
    onEvent: (m) => {
      read.messages.push(m);
      if (stop?.(read)) stopped = true;
    },
    onComment: (c) => read.comments.push(c),
  });
  const decoder = new TextDecoder();
  const reader = res.body!.getReader();
  try {
    while (!stopped) {
      const what = `SSE ${url}: the stream's end (${read.messages.length} events so far, last id ${read.messages.at(-1)?.id})`;
      const { done, value } = await within(reader.read(), what, Math.max(1, deadline - Date.now()));
      if (done) break;
      const text = decoder.decode(value, { stream: true });
      read.raw += text;
      if (res.ok) parser.feed(text);
      if (stop?.(read)) stopped = true;
    }
  } finally {
    controller.abort();
  }
  return read;
}

/**
 * An SSE response read as it comes, for streams that do not end (a thread's turns): the
 * events so far, `next` to wait for one, and `close` to hang up.
 */
export class LiveSse {
  readonly messages: EventSourceMessage[] = [];
  /** Set once the server closed the stream. */
  ended = false;
  private waiters: Array<() => void> = [];
  /** Settles once the stream is over (closed by the server, or by `close`). */
  readonly done: Promise<void>;

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  private constructor(
    readonly res: Response,
    private readonly controller: AbortController,
  ) {
    const parser = createParser({ onEvent: (m) => this.messages.push(m) });
    const decoder = new TextDecoder();
    this.done = (async () => {
      // A refusal's body is left for the caller to read.
      if (!res.ok) {
        this.ended = true;
        return;
      }
      const reader = res.body!.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          parser.feed(decoder.decode(value, { stream: true }));
          this.wake();
        }
      } catch {
        // Aborted by close(), or the connection dropped: either way the stream is over.
      }
      this.ended = true;
      this.wake();
    })();
  }

  /** Opens `url`; a non-2xx answer is returned as it is (read its body from `res`). */
  static async open(url: string, init: RequestInit = {}): Promise<LiveSse> {
    const controller = new AbortController();
    const res = await fetch(url, { ...init, signal: controller.signal });
    return new LiveSse(res, controller);
  }

  /** The first event from `from` on that `check` accepts; fails naming `what` if none comes. */
  async next(check: (m: EventSourceMessage) => boolean, what: string, from = 0, ms = 30_000): Promise<EventSourceMessage> {
    const wait = (async () => {
      for (;;) {
        const found = this.messages.slice(from).find(check);
        if (found) return found;
        if (this.ended) throw new Error(`${what}: the stream ended first, after ${this.messages.length} events`);
        await new Promise<void>((r) => this.waiters.push(r));
      }
    })();
    return within(wait, `${what} (${this.messages.length} events so far)`, ms);
  }

  async close(): Promise<void> {
    this.controller.abort();
    await this.done;
  }
}
