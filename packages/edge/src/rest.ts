import { ProtocolError, generateFrameSchema, wholeSeconds } from "@unbroken/protocol";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { HttpContext } from "./http-context.js";
import { describeIssues, readJsonBody, sendJson } from "./http-util.js";

/**
 * `POST /v1/generate`: the body of a `generate` frame; 202 `{rid, existing, created_at}` once durably
 * queued, with the events' address in `Location`. (Cancel and steer are the Responses API's
 * `POST /v1/responses/{rid}/cancel` and `/steer`, which act on any response.)
 */
export async function generate(ctx: HttpContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const principal = await ctx.principal(req);
  const body = await readJsonBody(req, ctx.maxBodyBytes);
  if (typeof body !== "object" || body === null || Array.isArray(body))
    throw new ProtocolError("bad_request", "body must be a JSON object");
  const parsed = generateFrameSchema.safeParse({ ...body, type: "generate" });
  if (!parsed.success) throw new ProtocolError("bad_request", describeIssues(parsed.error.issues));
  const { rid, existing, record } = await ctx.responses.generate(principal, parsed.data);
  // created_at (whole seconds) is what a response-scoped token for this response must carry.
  const createdAt = wholeSeconds(record.created_at);
  sendJson(res, 202, { rid, existing, created_at: createdAt }, { location: `/v1/responses/${rid}/events` });
}
