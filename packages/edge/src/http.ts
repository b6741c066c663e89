import { ProtocolError } from "@unbroken/protocol";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Authenticate, Principal } from "./auth.js";
import { chatCompletions } from "./chat-completions.js";
import type { HttpContext } from "./http-context.js";
import { guardApiRequest } from "./http-guard.js";
import { bearerToken, sendError, sendJson } from "./http-util.js";
import { listModels } from "./models.js";
import { generate } from "./rest.js";
import { cancelResponse, createResponses, retrieveResponse, steerResponse } from "./responses-api.js";
import { streamEvents } from "./sse.js";
import { serveStatic } from "./static.js";
import { threadTurns } from "./thread-http.js";

export type { HttpContext } from "./http-context.js";

export function principalFromRequest(authenticate: Authenticate): (req: IncomingMessage) => Promise<Principal> {
  return async (req) => authenticate(bearerToken(req));
}

type Route = (ctx: HttpContext, m: RegExpExecArray, req: IncomingMessage, res: ServerResponse, q: URLSearchParams) => Promise<void>;

const ROUTES: Array<[method: string, pattern: RegExp, route: Route]> = [
  ["POST", /^\/v1\/generate$/, (ctx, _m, req, res) => generate(ctx, req, res)],
  ["POST", /^\/v1\/chat\/completions$/, (ctx, _m, req, res) => chatCompletions(ctx, req, res)],
  ["GET", /^\/v1\/models$/, (ctx, _m, req, res) => listModels(ctx, req, res)],
  ["POST", /^\/v1\/responses$/, (ctx, _m, req, res) => createResponses(ctx, req, res)],
  ["GET", /^\/v1\/responses\/([^/]+)$/, (ctx, m, req, res, q) => retrieveResponse(ctx, m[1] as string, q, req, res)],
  ["GET", /^\/v1\/responses\/([^/]+)\/events$/, (ctx, m, req, res, q) => streamEvents(ctx, m[1] as string, q, req, res)],
  ["POST", /^\/v1\/responses\/([^/]+)\/cancel$/, (ctx, m, req, res) => cancelResponse(ctx, m[1] as string, req, res)],
  ["POST", /^\/v1\/responses\/([^/]+)\/steer$/, (ctx, m, req, res) => steerResponse(ctx, m[1] as string, req, res)],
  ["GET", /^\/v1\/threads\/([^/]+)\/turns$/, (ctx, m, req, res, q) => threadTurns(ctx, m[1] as string, q, req, res)],
];

/** HTTP beside the socket: probes, the REST and SSE forms of the protocol, OpenAI-compatible APIs, the demo page. */
export function httpHandler(ctx: HttpContext): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    void handle(ctx, req, res).catch((err) => ctx.metrics.error(sendError(res, err, ctx.log), "http"));
  };
}

async function handle(ctx: HttpContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = parseUrl(req.url);
  const method = req.method ?? "GET";
  if (url.pathname === "/healthz") return sendJson(res, 200, { status: "ok" });
  if (url.pathname === "/metrics" && (method === "GET" || method === "HEAD")) return ctx.metrics.serve(res);
  if (url.pathname === "/readyz") {
    const ready = ctx.ready();
    return sendJson(res, ready ? 200 : 503, { status: ready ? "ready" : "nats unreachable" });
  }
  if (url.pathname.startsWith("/v1/") && ctx.connections && !ctx.connections.take(ctx.address(req))) {
    const { rate, burst } = ctx.connections;
    const message = `too many requests from this address: ${rate} per second, ${burst} at once (CONNECTION_RATE, CONNECTION_BURST)`;
    ctx.metrics.error("rate_limited", "http");
    return sendJson(res, 429, { code: "rate_limited", message }, { "retry-after": "1" });
  }
  if (url.pathname.startsWith("/v1/") && guardApiRequest(ctx, req, res, url.pathname)) return;
  let pathMatched = false;
  for (const [m, pattern, route] of ROUTES) {
    const match = pattern.exec(url.pathname);
    if (!match) continue;
    pathMatched = true;
    if (m === method) return route(ctx, match, req, res, url.searchParams);
  }
  if (pathMatched) {
    ctx.metrics.error("bad_request", "http");
    return sendJson(res, 405, { code: "bad_request", message: `method ${method} not allowed here` });
  }
  if ((method === "GET" || method === "HEAD") && ctx.webRoot && (await serveStatic(ctx.webRoot, url.pathname, req, res))) return;
  throw new ProtocolError("not_found", "no such path");
}

/** The request target as a URL; a target that is not one is `bad_request`, never a crash. */
function parseUrl(target: string | undefined): URL {
  try {
    return new URL(target ?? "/", "http://edge");
  } catch {
    throw new ProtocolError("bad_request", "the request target is not a valid URL");
  }
}
