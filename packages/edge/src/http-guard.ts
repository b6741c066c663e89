import type { ErrorCode } from "@unbroken/protocol";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { HttpContext } from "./http-context.js";
import { sendJson } from "./http-util.js";
import { refusedOriginMessage } from "./origin.js";

/** What a foreign page admitted by ALLOWED_ORIGINS may send and read. */
const CORS_ALLOW_HEADERS = "authorization, content-type, last-event-id, x-unbroken-rid";
const CORS_EXPOSE_HEADERS = "x-unbroken-rid, location";
const CORS_METHODS = "GET, POST";
/** How long a browser may reuse a preflight's answer. */
const PREFLIGHT_MAX_AGE_S = "600";

/**
 * The checks every `/v1/` request passes before its route: its origin (403 `forbidden`, no
 * CORS headers), a CORS preflight (answered here), and a POST body that is JSON (415). Returns
 * true when it answered the request itself.
 */
export function guardApiRequest(ctx: HttpContext, req: IncomingMessage, res: ServerResponse, pathname: string): boolean {
  const verdict = ctx.origins.check(req);
  if (!verdict.allowed) {
    ctx.log.warn({ origin: verdict.origin, path: pathname }, "request refused: origin not allowed (ALLOWED_ORIGINS)");
    refuse(ctx, res, pathname, 403, "forbidden", refusedOriginMessage(verdict.origin));
    return true;
  }
  if (verdict.cors !== undefined) {
    res.setHeader("access-control-allow-origin", verdict.cors);
    res.setHeader("access-control-expose-headers", CORS_EXPOSE_HEADERS);
    res.setHeader("vary", "origin");
  }
  if (req.method === "OPTIONS") {
    const preflight =
      verdict.cors === undefined
        ? {}
        : {
            "access-control-allow-methods": CORS_METHODS,
            "access-control-allow-headers": CORS_ALLOW_HEADERS,
            "access-control-max-age": PREFLIGHT_MAX_AGE_S,
          };
    res.writeHead(204, { allow: `${CORS_METHODS}, OPTIONS`, ...preflight }).end();
    return true;
  }
  const type = req.headers["content-type"];
  if (req.method === "POST" && hasBody(req) && !isJson(type)) {
    const what = type === undefined ? "a body without content-type" : `content-type ${JSON.stringify(type)}`;
    refuse(ctx, res, pathname, 415, "bad_request", `${what} is not accepted: request bodies must be application/json`);
    return true;
  }
  return false;
}

/**
 * A body is there when it is announced: a content length above 0, or chunks. A POST without
 * one (a cancel) needs no content type.
 */
function hasBody(req: IncomingMessage): boolean {
  return req.headers["transfer-encoding"] !== undefined || Number(req.headers["content-length"] ?? 0) > 0;
}

/** `application/json`, with parameters (`; charset=utf-8`) or without. */
function isJson(type: string | undefined): boolean {
  return type?.split(";")[0]?.trim().toLowerCase() === "application/json";
}

/**
 * The paths whose errors come in OpenAI's shape, so their SDKs show the message (docs/http.md,
 * "Auth and status codes"); the rest answer `{code, message}`.
 */
function isOpenAIPath(pathname: string): boolean {
  if (pathname.startsWith("/v1/chat/")) return true;
  return pathname.startsWith("/v1/responses") && !pathname.endsWith("/events");
}

function refuse(ctx: HttpContext, res: ServerResponse, pathname: string, status: number, code: ErrorCode, message: string): void {
  ctx.metrics.error(code, "http");
  const body = isOpenAIPath(pathname) ? { error: { message, type: code, code, param: null } } : { code, message };
  sendJson(res, status, body);
}
