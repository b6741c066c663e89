import { LIMITS, ProtocolError, generateFrameSchema, ridSchema } from "@unbroken/protocol";
import type { IncomingMessage, ServerResponse } from "node:http";
import { z } from "zod";
import type { HttpContext } from "./http-context.js";
import { describeIssues, readJsonBody, sendJson } from "./http-util.js";

const steerBodySchema = z.object({ text: z.string().min(1).max(LIMITS.steerText) });

function parseOrThrow<T>(schema: z.ZodType<T>, value: unknown): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new ProtocolError("bad_request", describeIssues(parsed.error.issues));
  return parsed.data;
}

/** `POST /v1/responses`: the body of a `generate` frame; 202 once durably queued. */
export async function createResponse(ctx: HttpContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const principal = await ctx.principal(req);
  const body = await readJsonBody(req, ctx.maxBodyBytes);
  if (typeof body !== "object" || body === null || Array.isArray(body))
    throw new ProtocolError("bad_request", "body must be a JSON object");
  const frame = parseOrThrow(generateFrameSchema, { ...body, type: "generate" });
  const { rid, existing } = await ctx.responses.generate(principal, frame);
  sendJson(res, 202, { rid, existing }, { location: `/v1/responses/${rid}/events` });
}

/** `POST /v1/responses/{rid}/cancel`: 200 once cancelling is settled. */
export async function cancelResponse(ctx: HttpContext, rid: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const principal = await ctx.principal(req);
  await ctx.responses.cancel(principal, parseOrThrow(ridSchema, rid));
  sendJson(res, 200, {});
}

/** `POST /v1/responses/{rid}/steer` with `{"text"}`: 200 once recorded, 409 when finished. */
export async function steerResponse(ctx: HttpContext, rid: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const principal = await ctx.principal(req);
  const { text } = parseOrThrow(steerBodySchema, await readJsonBody(req, ctx.maxBodyBytes));
  await ctx.responses.steer(principal, parseOrThrow(ridSchema, rid), text);
  sendJson(res, 200, {});
}
