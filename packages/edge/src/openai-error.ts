import { ProtocolError } from "@unbroken/protocol";
import { toProtocolError } from "@unbroken/store";
import type { ServerResponse } from "node:http";
import type { HttpContext } from "./http-context.js";
import { sendJson, statusOf } from "./http-util.js";

/**
 * Errors of the OpenAI front doors in OpenAI's shape (`{"error":{message,type,code,param}}`)
 * with the project's stable codes as `type` and `code`, so OpenAI's SDKs show the message.
 */
export function writeOpenAIError(res: ServerResponse, e: ProtocolError): void {
  sendJson(res, statusOf(e.code), { error: { message: e.message, type: e.code, code: e.code, param: null } });
}

/** A front door's failure: counted, logged when internal, answered (or the stream cut when it already began). */
export function sendOpenAIError(ctx: HttpContext, res: ServerResponse, err: unknown): void {
  const e = err instanceof ProtocolError ? err : toProtocolError(err);
  ctx.metrics.error(e.code, "http");
  if (e.code === "internal") ctx.log.error({ err: String(err), stack: (err as Error)?.stack }, "request failed");
  if (res.headersSent) return void res.destroy();
  writeOpenAIError(res, e);
}
