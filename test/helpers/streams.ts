import { within } from "./within.js";

// Reading web streams and async iterables in tests, each within a deadline: a stream that
// stalls fails the test, naming what it waited for, instead of hanging it.

/** How long one read below may take in all. */
export const READ_MS = 60_000;

/**
 * Reads chunks into `chunks` until `stopWhen` holds (then the stream ending first is a failure),
 * or without `stopWhen` until the stream ends; fails naming `what` after READ_MS.
 */
export async function readInto<T>(
  reader: ReadableStreamDefaultReader<T>,
  chunks: T[],
  stopWhen?: (chunks: T[]) => boolean,
  what = "the stream's end",
): Promise<T[]> {
  const deadline = Date.now() + READ_MS;
  while (!stopWhen?.(chunks)) {
    const { done, value } = await within(reader.read(), `${what} (${chunks.length} chunks so far)`, Math.max(1, deadline - Date.now()));
    if (done) {
      if (stopWhen) throw new Error(`${what}: the stream ended first, after ${chunks.length} chunks`);
      return chunks;
    }
    chunks.push(value);
  }
  return chunks;
}

/** Reads chunks until the stream ends, or until `stopWhen` says so (the reader is then released, not cancelled). */
export async function read<T>(stream: ReadableStream<T>, stopWhen?: (chunks: T[]) => boolean): Promise<T[]> {
  const reader = stream.getReader();
  try {
    return await readInto(reader, [], stopWhen);
  } finally {
    reader.releaseLock();
  }
}

/** Array.fromAsync, which Node 20 lacks; fails after READ_MS rather than wait for ever. */
export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  const all = (async () => {
    for await (const item of items) out.push(item);
    return out;
  })();
  return within(all, "the end of the stream", READ_MS);
}
