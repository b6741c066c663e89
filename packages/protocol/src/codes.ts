/**
 * Every code that names a failure, declared once. Server and client share these: the wire's
 * error codes, the codes an `end` event's `error` may carry, and the store's own failures.
 */

/** Codes of `{"type":"error"}` frames and HTTP error bodies (wire protocol v1). */
export const ERROR_CODES = [
  "bad_request",
  "unauthorized",
  "forbidden",
  "not_found",
  "gone",
  "finished",
  "rate_limited",
  "too_large",
  "unavailable",
  "internal",
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/**
 * Codes of an `end` event's `error` (reason `error`): why a response ended without its answer.
 * The transport's own, then the generators'. Readers must accept codes they do not know (a
 * later version may add some), so the event schema keeps `error.code` a string.
 */
export const END_ERROR_CODES = [
  // The response lifecycle (store): a request nobody began, a worker that vanished, a generation that went silent.
  "no_worker",
  "worker_lost",
  "stalled",
  // Any generator.
  "invalid_request",
  "cannot_continue",
  // The backend cannot do what was asked (e.g. tools where it has no function calling); the message says why.
  "unsupported",
  "generator_error",
  "generator_closed",
  // llama (node-llama-cpp).
  "model_unavailable",
  "model_crashed",
  "generation_failed",
  // OpenAI-compatible upstream.
  "upstream_unauthorized",
  "upstream_rate_limited",
  "upstream_rejected",
  "upstream_error",
  "upstream_timeout",
  "upstream_unreachable",
  "upstream_interrupted",
  "upstream_bad_response",
] as const;
export type EndErrorCode = (typeof END_ERROR_CODES)[number];

/** Codes of the store's failures (never sent as such: the edge maps them to ERROR_CODES). */
export const STORE_ERROR_CODES = [
  /** Another writer owns the next position of a response's log. */
  "fenced",
  /** NATS or JetStream cannot be reached (or cannot answer yet). */
  "unavailable",
  /** A record kept changing under compare-and-set. */
  "conflict",
] as const;
export type StoreErrorCode = (typeof STORE_ERROR_CODES)[number];

export function isEndErrorCode(code: string): code is EndErrorCode {
  return (END_ERROR_CODES as readonly string[]).includes(code);
}
