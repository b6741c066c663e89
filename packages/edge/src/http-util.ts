import { ProtocolError, isRid, type ErrorCode } from "@unbroken/protocol";
import { toProtocolError } from "@unbroken/store";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";

const STATUS: Record<ErrorCode, number> = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  gone: 410,
  finished: 409,
  rate_limited: 429,
  too_large: 413,
  unavailable: 503,
  internal: 500,
};

export function statusOf(code: ErrorCode): number {
  return STATUS[code];
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": String(Buffer.byteLength(text)), ...headers });
  res.end(text);
}

/** Answers with `{code, message}` and the status that fits the code; returns the code. */
export function sendError(res: ServerResponse, err: unknown, log: Logger): ErrorCode {
  const e = toProtocolError(err);
  if (e.code === "internal") log.error({ err: String(err), stack: (err as Error)?.stack }, "request failed");
  if (res.headersSent) {
    res.destroy();
    return e.code;
  }
  sendJson(res, statusOf(e.code), { code: e.code, message: e.message });
  return e.code;
}

/** The token of `Authorization: Bearer <token>`, if the header is there. */
export function bearerToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (!header) return undefined;
  const m = /^Bearer\s+(.+)$/i.exec(header);
  return m ? (m[1] as string).trim() : "";
}

/**
 * The rid a request chose with `x-unbroken-rid` (which makes it idempotent), undefined without
 * the header. A malformed one is refused rather than replaced: a retry under a fresh rid would
 * run the model again, which is what the header is there to prevent.
 */
export function chosenRid(req: IncomingMessage): string | undefined {
  const raw = req.headers["x-unbroken-rid"];
  if (raw === undefined) return undefined;
  if (typeof raw === "string" && isRid(raw)) return raw;
  throw new ProtocolError("bad_request", "x-unbroken-rid: must match ^[A-Za-z0-9_-]{8,64}$");
}

/** Reads a JSON request body of at most `limit` bytes; `too_large` beyond it. */
export async function readJsonBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > limit) throw new ProtocolError("too_large", `request body over ${limit} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new ProtocolError("too_large", `request body over ${limit} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  try {
    return JSON.parse(text.length === 0 ? "{}" : text);
  } catch {
    throw new ProtocolError("bad_request", "request body is not valid JSON");
  }
}

interface Issue {
  path: PropertyKey[];
  message: string;
  code?: string;
  errors?: Issue[][];
}

/**
 * A union that no option matched reports the option that got furthest: an option of the
 * wrong type fails at its root, the one meant fails deeper (`content.1.type` of an array of
 * parts rather than "not a string" of `content`) or on its value (a string outside an enum).
 */
function innermost(issue: Issue): Issue {
  if (issue.code !== "invalid_union" || !issue.errors) return issue;
  const score = (i: Issue) => i.path.length * 2 + (i.code === "invalid_type" ? 0 : 1);
  let best: Issue | undefined;
  for (const branch of issue.errors) {
    const first = branch[0];
    if (first && score(first) > (best ? score(best) : 0)) best = first;
  }
  if (!best) return issue;
  const inner = innermost(best);
  return { path: [...issue.path, ...inner.path], message: inner.message };
}

/** Zod issues in one line, like the socket's bad_request messages. */
export function describeIssues(issues: ReadonlyArray<Issue>): string {
  const first = issues[0] && innermost(issues[0]);
  if (!first) return "invalid request";
  return `${first.path.length ? `${first.path.map(String).join(".")}: ` : ""}${first.message}`;
}
