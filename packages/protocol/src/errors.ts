/** The stable error codes of wire protocol v1. */
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
 * An error that crosses a boundary (wire, NATS, process) with a stable code.
 * `cause` keeps the underlying failure for logs; only `code` and `message` are ever sent.
 */
export class ProtocolError extends Error {
  readonly code: ErrorCode;
  readonly rid: string | undefined;

  constructor(code: ErrorCode, message: string, opts: { cause?: unknown; rid?: string } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "ProtocolError";
    this.code = code;
    this.rid = opts.rid;
  }
}

export function isProtocolError(err: unknown): err is ProtocolError {
  return err instanceof ProtocolError;
}
