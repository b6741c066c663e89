import { ProtocolError } from "@unbroken/protocol";

/** Codes of the store's own failures; the edge maps them to protocol codes. */
export type StoreErrorCode = "fenced" | "unavailable" | "conflict";

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

// JetStreamNotEnabled is how @nats-io/jetstream reports a 503 (no responders) to a JetStream
// publish or API call; on a cluster that is also what a stream answers while it elects a new
// leader after losing a node, for a few seconds: a moment to retry, like a timeout.
const UNREACHABLE = new Set(["TimeoutError", "NoRespondersError", "ClosedConnectionError", "RequestError", "JetStreamNotEnabled"]);

/** True for failures that mean "NATS (or JetStream) cannot be reached right now". */
export function isUnreachable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (UNREACHABLE.has(err.name)) return true;
  const code = (err as { code?: unknown }).code;
  if (code === "TIMEOUT" || code === "503" || code === "CONNECTION_CLOSED" || code === "CONNECTION_DRAINING") return true;
  return /timeout|no responders|closed|disconnect|draining|jetstream is not enabled/i.test(err.message);
}

/** Maps a NATS failure to what a client is told; anything unknown is `internal`. */
export function toProtocolError(err: unknown, rid?: string): ProtocolError {
  if (err instanceof ProtocolError) return err;
  const opts = rid === undefined ? { cause: err } : { cause: err, rid };
  if (isUnreachable(err)) return new ProtocolError("unavailable", "the message broker cannot be reached; retry", opts);
  return new ProtocolError("internal", "internal error", opts);
}
