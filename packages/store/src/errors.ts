import { ProtocolError, type StoreErrorCode } from "@unbroken/protocol";
import { isUnreachable } from "./nats-errors.js";

export { isUnreachable } from "./nats-errors.js";

/** A failure of the store, with its code (STORE_ERROR_CODES) and the NATS failure behind it. */
export class StoreError extends Error {
  readonly code: StoreErrorCode;
  constructor(code: StoreErrorCode, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "StoreError";
    this.code = code;
  }
}

/** Another writer (or an earlier life of this one) owns the next position of the log. */
export class FencedError extends StoreError {
  constructor(rid: string, seq: number, cause?: unknown) {
    super("fenced", `event ${seq} of ${rid} was written by another writer`, cause);
    this.name = "FencedError";
  }
}

/** Maps a store or NATS failure to what a client is told; anything unknown is `internal`. */
export function toProtocolError(err: unknown, rid?: string): ProtocolError {
  if (err instanceof ProtocolError) return err;
  const opts = rid === undefined ? { cause: err } : { cause: err, rid };
  if ((err instanceof StoreError && err.code === "unavailable") || isUnreachable(err)) {
    return new ProtocolError("unavailable", "the message broker cannot be reached; retry", opts);
  }
  return new ProtocolError("internal", "internal error", opts);
}
