import type { ErrorCode } from "./codes.js";

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
