import { ProtocolError, threadIdSchema, wholeSeconds } from "@unbroken/protocol";
import { toProtocolError } from "@unbroken/store";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Principal } from "./auth.js";
import { streamClient } from "./budgets.js";
import { EventStreamReply } from "./event-stream.js";
import type { HttpContext } from "./http-context.js";
import { sendJson } from "./http-util.js";
import { resumeAfter } from "./sse.js";
import { turnFrame } from "./threads.js";
import { TokenExpiry } from "./token-expiry.js";

/** A page's size when `?limit=` is not given, and the most one may ask for. */
const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;

/** The parameter `name` as an integer in [min, max], `fallback` when absent; 400 naming it otherwise. */
function intParam(query: URLSearchParams, name: string, fallback: number, min: number, max: number): number {
  const text = query.get(name);
  if (text === null) return fallback;
  const n = /^\d{1,15}$/.test(text) ? Number(text) : Number.NaN;
  if (!(n >= min && n <= max)) {
    throw new ProtocolError("bad_request", `${name} must be an integer from ${min} to ${max === Number.MAX_SAFE_INTEGER ? "…" : max}`);
  }
  return n;
}

/**
 * Whether the request asks for Server-Sent Events: `?stream=true`, or (without `stream`) an
 * `Accept` naming `text/event-stream`, which is what the browser's EventSource sends.
 */
function wantsStream(req: IncomingMessage, query: URLSearchParams): boolean {
  const stream = query.get("stream");
  if (stream === "true") return true;
  if (stream === "false") return false;
  if (stream !== null) throw new ProtocolError("bad_request", "stream must be true or false");
  const accept = req.headers.accept ?? "";
  return accept.split(",").some((part) => part.split(";")[0]?.trim().toLowerCase() === "text/event-stream");
}

/**
 * `GET /v1/threads/{thread}/turns`: the thread's turns after `after`, as a JSON page or (asked
 * for with `Accept: text/event-stream` or `?stream=true`) as Server-Sent Events that follow the
 * thread live. Read like the socket's `follow`: its owner, or a token scoped to the thread;
 * another owner's thread and an unknown one answer the same 403 (404 with auth off).
 */
export async function threadTurns(
  ctx: HttpContext,
  rawThread: string,
  query: URLSearchParams,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const principal = await ctx.principal(req);
  const parsed = threadIdSchema.safeParse(rawThread);
  if (!parsed.success) throw new ProtocolError("bad_request", "thread must match ^[A-Za-z0-9_-]{8,64}$");
  const thread = parsed.data;
  if (wantsStream(req, query)) return streamTurns(ctx, principal, thread, resumeAfter(req, query), req, res);
  const after = intParam(query, "after", 0, 0, Number.MAX_SAFE_INTEGER);
  const limit = intParam(query, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT);
  const last = await ctx.responses.threads.authorizeRead(principal, thread);
  const { turns, more } = await ctx.responses.threads.page(thread, after, limit);
  sendJson(res, 200, {
    object: "list",
    thread,
    // What a thread-scoped token must carry as `created_at` (docs/http.md, "Threads").
    created_at: wholeSeconds(last.turn.thread_created_at),
    // The socket's own turn frames, `type` included, so one parser reads both doors.
    data: turns,
    has_more: more,
    last_seq: turns.at(-1)?.seq ?? after,
  });
}

/**
 * The thread's turns after `after` as Server-Sent Events: `id: <seq>` and `data: <the socket's
 * turn frame>` with no `event:` line (EventSource's onmessage sees them), stored ones first,
 * then live ones. A thread never ends, so neither does the stream: it closes when the reader
 * goes, is cut off as a slow reader, the follow fails, or the token expires; an EventSource
 * then reconnects with Last-Event-ID and resumes exactly.
 */
async function streamTurns(
  ctx: HttpContext,
  principal: Principal,
  thread: string,
  after: number,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  await ctx.responses.threads.authorizeRead(principal, thread);
  // Gone while it was checked: its `close` has passed, so nothing would release a slot.
  if (res.destroyed) return;
  // Counted from here (429 while nothing is written yet) until the stream closes, once.
  const slot = ctx.responses.streams.open(streamClient(principal, ctx.address(req)));
  const reply = new EventStreamReply(ctx, res, { thread }, "sse");
  // A stream that never ends would outlive its token: it closes at `exp`, and the reconnect
  // with the same token is refused (401), which stops an EventSource.
  const expiry = new TokenExpiry(principal.expiresAt, () => reply.end(": token expired\n\n"));
  res.on("close", () => {
    expiry.clear();
    slot.release();
  });
  res.write(": unbroken\n\n");
  const follower = ctx.responses.threads.follow({
    thread,
    after,
    onTurn: (turn) => {
      reply.write(`id: ${turn.seq}\ndata: ${JSON.stringify(turnFrame(turn))}\n\n`);
      return reply.pace();
    },
    onError: (err) => {
      const e = toProtocolError(err);
      if (e.code === "internal") ctx.log.error({ thread, err: String(err) }, "thread stream failed");
      // The reader reconnects with Last-Event-ID, as after any drop.
      reply.end(`: error ${e.code}\n\n`);
    },
  });
  reply.follow({ close: () => follower.stop() });
  ctx.log.debug({ thread, after }, "streaming a thread");
  void follower.run();
}
