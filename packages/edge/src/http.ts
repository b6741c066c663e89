import { ProtocolError } from "@unbroken/protocol";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import type { Authenticate } from "./auth.js";
import { bearerToken, sendError, sendJson } from "./http-util.js";
import type { ResponseService } from "./responses.js";
import { chatCompletions } from "./chat-completions.js";
import { cancelResponse, createResponse, steerResponse } from "./rest.js";
import { streamEvents } from "./sse.js";
import { serveStatic } from "./static.js";
import type { SubscriptionDeps } from "./subscription.js";

/** What the HTTP handlers share; built once by the server. */
export interface HttpContext {
  ready(): boolean;
  responses: ResponseService;
  subscriptions: SubscriptionDeps;
  /** The owner a request acts as: from `Authorization: Bearer` when auth is on. */
  owner(req: IncomingMessage): Promise<string>;
  heartbeatMs: number;
  maxBodyBytes: number;
  /** Directory of the demo page, served at `/`; none when undefined. */
  webRoot: string | undefined;
  log: Logger;
}

export function ownerFromRequest(authenticate: Authenticate): (req: IncomingMessage) => Promise<string> {
  return async (req) => authenticate(bearerToken(req));
}

type Route = (ctx: HttpContext, m: RegExpExecArray, req: IncomingMessage, res: ServerResponse, q: URLSearchParams) => Promise<void>;

const ROUTES: Array<[method: string, pattern: RegExp, route: Route]> = [
  ["POST", /^\/v1\/responses$/, (ctx, _m, req, res) => createResponse(ctx, req, res)],
  ["POST", /^\/v1\/chat\/completions$/, (ctx, _m, req, res) => chatCompletions(ctx, req, res)],
  ["GET", /^\/v1\/responses\/([^/]+)\/events$/, (ctx, m, req, res, q) => streamEvents(ctx, m[1] as string, q, req, res)],
  ["POST", /^\/v1\/responses\/([^/]+)\/cancel$/, (ctx, m, req, res) => cancelResponse(ctx, m[1] as string, req, res)],
  ["POST", /^\/v1\/responses\/([^/]+)\/steer$/, (ctx, m, req, res) => steerResponse(ctx, m[1] as string, req, res)],
];

/** HTTP beside the socket: probes, the REST and SSE forms of the protocol, the demo page. */
export function httpHandler(ctx: HttpContext): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    void handle(ctx, req, res).catch((err) => sendError(res, err, ctx.log));
  };
}

async function handle(ctx: HttpContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? "/", "http://edge");
  const method = req.method ?? "GET";
  if (url.pathname === "/healthz") return sendJson(res, 200, { status: "ok" });
  if (url.pathname === "/readyz") {
    const ready = ctx.ready();
    return sendJson(res, ready ? 200 : 503, { status: ready ? "ready" : "nats unreachable" });
  }
  let pathMatched = false;
  for (const [m, pattern, route] of ROUTES) {
    const match = pattern.exec(url.pathname);
    if (!match) continue;
    pathMatched = true;
    if (m === method) return route(ctx, match, req, res, url.searchParams);
  }
  if (pathMatched) return sendJson(res, 405, { code: "bad_request", message: `method ${method} not allowed here` });
  if ((method === "GET" || method === "HEAD") && ctx.webRoot && (await serveStatic(ctx.webRoot, url.pathname, req, res))) return;
  throw new ProtocolError("not_found", "no such path");
}
