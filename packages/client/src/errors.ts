import type { ErrorCode } from "@unbroken/protocol";

/**
 * Codes an `UnbrokenError` carries: the protocol's error codes, plus the client's own
 * `disconnected` (the socket dropped while waiting for a reply that cannot safely be retried),
 * `closed` (the client was closed, or the handle unsubscribed) and `timeout`
 * (no reply within `requestTimeoutMs`). A later edge may send codes this version does not know.
 */
export type UnbrokenErrorCode = ErrorCode | "disconnected" | "closed" | "timeout" | (string & {});

export class UnbrokenError extends Error {
  readonly code: UnbrokenErrorCode;
  readonly rid: string | undefined;

  constructor(code: UnbrokenErrorCode, message: string, opts: { rid?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "UnbrokenError";
    this.code = code;
    this.rid = opts.rid;
  }
}

export function isUnbrokenError(err: unknown): err is UnbrokenError {
  return err instanceof UnbrokenError;
}

/** Calls a user callback; an exception is reported asynchronously, as an EventTarget would. */
export function callSafely<A extends unknown[]>(fn: (...args: A) => unknown, ...args: A): void {
  try {
    fn(...args);
  } catch (err) {
    queueMicrotask(() => {
      throw err;
    });
  }
}
