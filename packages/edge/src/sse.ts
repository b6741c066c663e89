import { ProtocolError, ridSchema } from "@unbroken/protocol";
import type { IncomingMessage, ServerResponse } from "node:http";
import { streamClient } from "./budgets.js";
import type { HttpContext } from "./http-context.js";
import { EventStreamReply } from "./event-stream.js";
import { Subscription } from "./subscription.js";

/** Where a reader resumes: `Last-Event-ID` wins over `?after=`; both mean "seq > n". */
export function resumeAfter(req: IncomingMessage, query: URLSearchParams): number {
  const raw = req.headers["last-event-id"] ?? query.get("after") ?? "0";
  const text = Array.isArray(raw) ? (raw[0] ?? "0") : raw;
  if (!/^\d{1,15}$/.test(text.trim())) throw new ProtocolError("bad_request", "Last-Event-ID / after must be a non-negative integer");
  return Number(text);
}

/**
 * `GET /v1/responses/{rid}/events`: the same log as the socket, as Server-Sent Events.
 * Each event is `id: <seq>` plus `data: <the socket's event frame>` with no `event:` line,
 * so EventSource's onmessage sees them all; comments keep an idle stream open; the stream
 * closes after `end`, and a reconnect from that `end` (the EventSource's own) gets 204, which
 * stops it. A reader that stops reading (MAX_SOCKET_BUFFER bytes waiting) is cut
 * off; it reconnects with Last-Event-ID like after any drop.
 */
export async function streamEvents(
  ctx: HttpContext,
  rawRid: string,
  query: URLSearchParams,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const principal = await ctx.principal(req);
  const rid = ridSchema.safeParse(rawRid);
  if (!rid.success) throw new ProtocolError("bad_request", "rid must match ^[A-Za-z0-9_-]{8,64}$");
  const after = resumeAfter(req, query);
  const record = await ctx.responses.authorizeRead(principal, rid.data, after);
  // An EventSource reconnects by itself after the stream closes at `end`, with Last-Event-ID at
  // that end: 204 is what makes it stop (a stream that closed at once again would be retried
  // for ever, every few seconds).
  if (await ctx.responses.readToEnd(record, after)) {
    res.writeHead(204).end();
    return;
  }
  // Gone while it was checked: its `close` has passed, so nothing would release a slot.
  if (res.destroyed) return;
  // Counted from here (429 while nothing is written yet) until the stream closes, once.
  const slot = ctx.responses.streams.open(streamClient(principal, ctx.address(req)), false, rid.data);
  res.on("close", () => slot.release());
  const reply = new EventStreamReply(ctx, res, { rid: rid.data }, "sse");
  res.write(": unbroken\n\n");
  const sub = new Subscription(
    ctx.subscriptions,
    rid.data,
    after,
    (e) => reply.write(`id: ${e.seq}\ndata: ${e.raw}\n\n`),
    () => reply.end(),
    {
      transport: "sse",
      // Expired under a reader: a reconnect (Last-Event-ID) is then answered 410.
      onGone: () => reply.end(": gone\n\n"),
      pace: reply.pace,
      slot,
    },
  );
  reply.follow(sub);
  sub.start(record);
  await ctx.responses.expireIfStale(record).catch(() => false);
}
