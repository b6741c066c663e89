import type { IncomingMessage, ServerResponse } from "node:http";
import type { HttpContext } from "./http-context.js";
import { sendJson } from "./http-util.js";

/**
 * `GET /v1/models`, as OpenAI's API answers it: the models the running workers serve (asked of
 * them; a model served by several workers is listed once). No worker running: an empty list.
 */
export async function listModels(ctx: HttpContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  await ctx.principal(req); // with auth on, only a valid token may look
  const served = await ctx.responses.models();
  sendJson(res, 200, {
    object: "list",
    data: served.map((m) => ({ id: m.model, object: "model", created: Math.floor(m.since / 1000), owned_by: "unbroken" })),
  });
}
