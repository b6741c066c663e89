import { LIMITS, ProtocolError, generateFrameSchema, newRid, ridSchema, type ResponseRecord } from "@unbroken/protocol";
import { goneError, toProtocolError } from "@unbroken/store";
import type { IncomingMessage, ServerResponse } from "node:http";
import { z } from "zod";
import type { Principal } from "./auth.js";
import { streamClient, type StreamSlot } from "./budgets.js";
import type { HttpContext } from "./http-context.js";
import { chosenRid, describeIssues, readJsonBody, sendJson } from "./http-util.js";
import { EventStreamReply } from "./event-stream.js";
import { ResponsesFold, type ResponsesEvent } from "./responses-events.js";
import { echoOf, parseCreateBody, toGenerate, type ResolveItem } from "./responses-input.js";
import { sendOpenAIError } from "./openai-error.js";
import { parseItemId } from "./responses-object.js";
import { Subscription } from "./subscription.js";

/**
 * OpenAI's Responses API over unbroken's responses: the response id is the rid, the object
 * and the stream are folded from the response's log (responses-events.ts), so a stream
 * resumed with `starting_after` continues exactly where it broke off.
 */

const steerBodySchema = z.object({ text: z.string().min(1).max(LIMITS.steerText) });

/** Runs a route's work, answering its failure in OpenAI's shape. */
function answering(ctx: HttpContext, res: ServerResponse, work: () => Promise<void>): Promise<void> {
  return work().catch((err) => sendOpenAIError(ctx, res, err));
}

function checkRid(raw: string): string {
  const rid = ridSchema.safeParse(raw);
  if (!rid.success) throw new ProtocolError("bad_request", "the response id must match ^[A-Za-z0-9_-]{8,64}$");
  return rid.data;
}

/** `POST /v1/responses`. */
export const createResponses = (ctx: HttpContext, req: IncomingMessage, res: ServerResponse) =>
  answering(ctx, res, async () => {
    const principal = await ctx.principal(req);
    // As with chat completions, a client-chosen rid makes the create idempotent: a retry follows the first answer.
    const chosen = chosenRid(req);
    const body = parseCreateBody(await readJsonBody(req, ctx.maxBodyBytes));
    const rid = chosen ?? `resp_${newRid()}`;
    const asked = await toGenerate(body, rid, resolver(ctx, principal));
    const parsed = generateFrameSchema.safeParse(asked);
    if (!parsed.success) throw new ProtocolError("bad_request", describeIssues(parsed.error.issues));
    // A background create answers at once; the others are held open until the end: streams for
    // the budgets, counted before anything starts (a refused request generates nothing).
    const slot = body.background ? undefined : holdStream(ctx, principal, req, res, rid);
    let created: Awaited<ReturnType<typeof ctx.responses.generate>>;
    try {
      created = await ctx.responses.generate(principal, parsed.data, { openai: echoOf(body) });
    } catch (err) {
      slot?.release();
      throw err;
    }
    const { record, existing } = created;
    if (body.stream) return streamResponse(ctx, record, -1, res, slot);
    // A retry (same x-unbroken-rid) gets the response as it stands, not as it began.
    if (body.background) return sendJson(res, 200, (existing ? await foldStored(ctx, record) : new ResponsesFold(record)).object());
    const fold = await foldUntilEnd(ctx, record, res, undefined, slot);
    if (fold) sendJson(res, 200, fold.object());
  });

/** A slot in MAX_STREAMS_PER_OWNER / _PER_ADDRESS for a request held open, released (once) when it closes. */
function holdStream(ctx: HttpContext, principal: Principal, req: IncomingMessage, res: ServerResponse, rid: string): StreamSlot {
  const slot = ctx.responses.streams.open(streamClient(principal, ctx.address(req)), false, rid);
  res.on("close", () => slot.release());
  return slot;
}

/** `GET /v1/responses/{id}`, and with `?stream=true&starting_after=N` the events after N. */
export const retrieveResponse = (ctx: HttpContext, rawRid: string, query: URLSearchParams, req: IncomingMessage, res: ServerResponse) =>
  answering(ctx, res, async () => {
    const principal = await ctx.principal(req);
    const rid = checkRid(rawRid);
    const { stream, after } = retrieveParams(query);
    const record = await ctx.responses.authorizeRead(principal, rid, 0);
    if (!stream) return sendJson(res, 200, (await foldStored(ctx, record)).object());
    return streamResponse(ctx, record, after, res, holdStream(ctx, principal, req, res, rid));
  });

/** The query of a retrieve: `stream` true or false, `starting_after` a sequence number (-1: from the start). */
function retrieveParams(query: URLSearchParams): { stream: boolean; after: number } {
  const stream = query.get("stream") ?? "false";
  if (stream !== "true" && stream !== "false") throw new ProtocolError("bad_request", "stream: must be true or false");
  const raw = query.get("starting_after") ?? "-1";
  if (!/^(-1|\d{1,15})$/.test(raw)) throw new ProtocolError("bad_request", "starting_after: must be an integer >= -1");
  return { stream: stream === "true", after: Number(raw) };
}

/** `POST /v1/responses/{id}/cancel`: the object once the cancel is settled (as it is, if it had ended otherwise). */
export const cancelResponse = (ctx: HttpContext, rawRid: string, req: IncomingMessage, res: ServerResponse) =>
  answering(ctx, res, async () => {
    const principal = await ctx.principal(req);
    const rid = checkRid(rawRid);
    await ctx.responses.cancel(principal, rid);
    const record = await ctx.responses.authorize(principal, rid, "cancel");
    const fold = await foldUntilEnd(ctx, record, res, CANCEL_WAIT_MS);
    if (fold) sendJson(res, 200, visible(principal, fold.object()));
  });

/** `POST /v1/responses/{id}/steer` with `{"text"}` (unbroken's extension): the object once the steer is taken. */
export const steerResponse = (ctx: HttpContext, rawRid: string, req: IncomingMessage, res: ServerResponse) =>
  answering(ctx, res, async () => {
    const principal = await ctx.principal(req);
    const rid = checkRid(rawRid);
    const parsed = steerBodySchema.safeParse(await readJsonBody(req, ctx.maxBodyBytes));
    if (!parsed.success) throw new ProtocolError("bad_request", describeIssues(parsed.error.issues));
    await ctx.responses.steer(principal, rid, parsed.data.text);
    const record = await ctx.responses.authorize(principal, rid, "steer");
    sendJson(res, 200, visible(principal, (await foldStored(ctx, record)).object()));
  });

/** How long a cancel waits for the `end` to be stored after the worker settled it. */
const CANCEL_WAIT_MS = 5_000;

/** A token that may cancel or steer but not read gets the status, never the answer. */
function visible(principal: Principal, object: Record<string, unknown>): Record<string, unknown> {
  if (principal.kind !== "capability" || principal.scope.has("read")) return object;
  return { ...object, output: [], output_text: "" };
}

/** The log as stored now, folded. */
async function foldStored(ctx: HttpContext, record: ResponseRecord): Promise<ResponsesFold> {
  const fold = new ResponsesFold(record);
  const events = await ctx.subscriptions.broker.logs.readAll(record.rid).catch((err: unknown) => {
    throw toProtocolError(err, record.rid);
  });
  for (const e of events) fold.apply(e.frame.event);
  return fold;
}

/**
 * The log folded up to its `end` (or as far as it got in `timeoutMs`). Undefined when the
 * client went away first: there is nobody to answer.
 */
function foldUntilEnd(
  ctx: HttpContext,
  record: ResponseRecord,
  res: ServerResponse,
  timeoutMs?: number,
  slot?: StreamSlot,
): Promise<ResponsesFold | undefined> {
  const fold = new ResponsesFold(record);
  return new Promise((resolve, reject) => {
    const timer = timeoutMs === undefined ? undefined : setTimeout(() => finish(fold), timeoutMs);
    const finish = (value: ResponsesFold | undefined) => {
      clearTimeout(timer);
      sub.close();
      resolve(value);
    };
    const sub = new Subscription(
      ctx.subscriptions,
      record.rid,
      0,
      (e) => fold.apply(e.frame.event),
      () => finish(fold),
      {
        transport: "responses",
        onGone: () => {
          clearTimeout(timer);
          reject(goneError(record.rid));
        },
        slot,
      },
    );
    res.on("close", () => finish(undefined));
    sub.start(record);
  });
}

/**
 * The Responses events of rid after sequence number `after`, as SSE, replayed from the log and
 * then live until the terminal event. Each event is `event: <type>`, `id: <sequence_number>`
 * and `data: <event>`, as OpenAI sends them (the id line lets an EventSource resume too).
 */
function streamResponse(ctx: HttpContext, record: ResponseRecord, after: number, res: ServerResponse, slot?: StreamSlot): void {
  // A reader cut off as slow resumes with starting_after like after any drop.
  const reply = new EventStreamReply(ctx, res, { rid: record.rid }, "responses");
  const write = (events: ResponsesEvent[]) => {
    let text = "";
    for (const e of events)
      if (e.sequence_number > after) text += `event: ${e.type}\nid: ${e.sequence_number}\ndata: ${JSON.stringify(e)}\n\n`;
    if (text !== "") reply.write(text);
  };
  const fold = new ResponsesFold(record);
  write(fold.created());
  const stop = () => reply.end();
  const sub = new Subscription(ctx.subscriptions, record.rid, 0, (e) => write(fold.apply(e.frame.event)), stop, {
    transport: "responses",
    onGone: stop,
    // A replay waits for the reader instead (as the native SSE stream's does).
    pace: reply.pace,
    slot,
  });
  reply.follow(sub);
  sub.start(record);
}

/**
 * Looks up an `item_reference`: an item id of ours names the response and the output index; the
 * caller must be allowed to read that response. A reasoning item adds no message (null).
 */
function resolver(ctx: HttpContext, principal: Principal): ResolveItem {
  return async (id) => {
    const ref = parseItemId(id);
    if (!ref) return undefined;
    if (ref.kind === "rs") return null;
    const record = await ctx.responses.authorize(principal, ref.rid, "read").catch(() => undefined);
    if (!record) return undefined;
    const part = (await foldStored(ctx, record)).part(ref.index);
    if (part?.type === "text" && ref.kind === "msg") return { type: "message", role: "assistant", content: part.text };
    if (part?.type === "tool_call" && part.state === "done" && ref.kind === "fc")
      return { type: "function_call", call_id: part.id, name: part.name, arguments: part.arguments };
    return undefined;
  };
}
