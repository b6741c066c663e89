import type { IncomingMessage, ServerResponse } from "node:http";

export interface HttpDeps {
  ready(): boolean;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

/** Plain HTTP beside the socket: liveness and readiness probes. */
export function httpHandler(deps: HttpDeps): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") return json(res, 405, { code: "bad_request", message: "method not allowed" });
    if (path === "/healthz") return json(res, 200, { status: "ok" });
    if (path === "/readyz") {
      const ready = deps.ready();
      return json(res, ready ? 200 : 503, { status: ready ? "ready" : "nats unreachable" });
    }
    json(res, 404, { code: "not_found", message: "no such path" });
  };
}
