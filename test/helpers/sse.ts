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
