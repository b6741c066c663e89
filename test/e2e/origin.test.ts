import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { spawnService, startNatsServer, type NatsServerHandle, type ServiceHandle } from "@unbroken/testing";
import { WebSocket } from "ws";
import { RawClient } from "../helpers/raw-client.js";
import { EDGE_MAIN, WORKER_MAIN } from "../helpers/topology.js";

// A web page on another site must not use an edge its visitor can reach (a local one above all):
// the edge refuses foreign origins on the socket and the HTTP API, and takes only JSON bodies, so
// a cross-site form post starts nothing. Real edge and worker processes.

const FOREIGN = "http://evil.example";
const LISTED = "https://app.example";

/** The socket's answer to an upgrade: `open`, or the HTTP status and body that refused it. */
function upgrade(url: string, origin?: string, host?: string): Promise<{ status: number | "open"; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { ...(origin === undefined ? {} : { origin }), ...(host === undefined ? {} : { headers: { host } }) });
    ws.once("open", () => {
      ws.close();
      resolve({ status: "open", body: "" });
    });
    ws.once("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.once("error", reject);
  });
}

/** Exit code and stderr of an edge process that should refuse to start. */
function runToExit(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [EDGE_MAIN], { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    child.on("exit", (code) => resolve({ code, stderr }));
  });
}

describe("origin policy and JSON-only bodies (edge and worker processes)", () => {
  let nats: NatsServerHandle;
  let edge: ServiceHandle;
  let widened: ServiceHandle;
  const services: ServiceHandle[] = [];
  const http = (s: ServiceHandle, p: string) => `http://127.0.0.1:${s.port}${p}`;
  const ws = (s: ServiceHandle) => `ws://127.0.0.1:${s.port}/v1/ws`;
  let rids = 0;
  const rid = () => `origin-test-${process.pid}-${rids++}`;
  const post = (s: ServiceHandle, p: string, body: unknown, headers: Record<string, string>) =>
    fetch(http(s, p), { method: "POST", headers, body: typeof body === "string" ? body : JSON.stringify(body) });
  /** Whether the response exists: the Responses API finds any response by its rid. */
  const exists = async (s: ServiceHandle, id: string): Promise<boolean> => {
    const res = await fetch(http(s, `/v1/responses/${id}`));
    await res.arrayBuffer();
    assert.ok(res.status === 200 || res.status === 404, `GET /v1/responses/${id}: ${res.status}`);
    return res.status === 200;
  };

  before(async () => {
    nats = await startNatsServer();
    const env = { NATS_URL: nats.url, PORT: "0" };
    edge = await spawnService({ name: "edge", script: EDGE_MAIN, env, readyMsg: "listening", timeoutMs: 30_000 });
    services.push(edge);
    widened = await spawnService({
      name: "edge (ALLOWED_ORIGINS)",
      script: EDGE_MAIN,
      env: { ...env, ALLOWED_ORIGINS: `${LISTED}, http://other.example:3000` },
      readyMsg: "listening",
      timeoutMs: 30_000,
    });
    services.push(widened);
    services.push(
      await spawnService({
        name: "worker",
        script: WORKER_MAIN,
        env: { NATS_URL: nats.url, METRICS_PORT: "0" },
        readyMsg: "ready",
        timeoutMs: 30_000,
      }),
    );
  });
  after(async () => {
    await Promise.allSettled(services.map((s) => s.kill()));
    await nats?.stop();
  });

  it("refuses a WebSocket upgrade from a foreign origin with 403; its own origin and origin-less clients connect", async () => {
    const refused = await upgrade(ws(edge), FOREIGN);
    assert.equal(refused.status, 403);
    assert.match(refused.body, /evil\.example.*ALLOWED_ORIGINS/);
    assert.equal((await upgrade(ws(edge), `http://127.0.0.1:${edge.port}`)).status, "open");
    const localhost = `localhost:${edge.port}`;
    assert.equal((await upgrade(ws(edge), `http://${localhost}`, localhost)).status, "open", "another loopback name, with its Host");
    // A page whose name was rebound to 127.0.0.1 (DNS rebinding): Origin and Host agree, but it is not a loopback name.
    const rebound = `rebound.example:${edge.port}`;
    assert.equal((await upgrade(ws(edge), `http://${rebound}`, rebound)).status, 403);
    assert.equal((await upgrade(ws(edge), LISTED)).status, 403, "listed only on the other edge");
    const client = await RawClient.connect(ws(edge));
    const reply = await client.request({ type: "generate", prompt: "origin-less", params: { max_tokens: 3 } });
    assert.equal(reply.type, "accepted", JSON.stringify(reply));
    client.close();
  });

  it("refuses HTTP API requests from a foreign origin with 403 forbidden and no CORS headers, and starts nothing", async () => {
    const id = rid();
    const refused = await post(
      edge,
      "/v1/generate",
      { rid: id, prompt: "drive-by" },
      { "content-type": "application/json", origin: FOREIGN },
    );
    assert.equal(refused.status, 403);
    const body = (await refused.json()) as { code: string; message: string };
    assert.equal(body.code, "forbidden");
    assert.match(body.message, /ALLOWED_ORIGINS/);
    assert.equal(refused.headers.get("access-control-allow-origin"), null);
    const models = await fetch(http(edge, "/v1/models"), { headers: { origin: FOREIGN } });
    assert.equal(models.status, 403);
    assert.equal(((await models.json()) as { code: string }).code, "forbidden");
    const chat = await post(
      edge,
      "/v1/chat/completions",
      { messages: [{ role: "user", content: "hi" }] },
      {
        "content-type": "application/json",
        origin: FOREIGN,
      },
    );
    assert.equal(chat.status, 403);
    assert.equal(((await chat.json()) as { error: { code: string } }).error.code, "forbidden", "OpenAI's shape on its paths");
    const preflight = await fetch(http(edge, "/v1/generate"), {
      method: "OPTIONS",
      headers: { origin: FOREIGN, "access-control-request-method": "POST" },
    });
    assert.equal(preflight.status, 403);
    assert.equal(preflight.headers.get("access-control-allow-origin"), null);
    await preflight.arrayBuffer();
    assert.equal(await exists(edge, id), false);
    // The demo page and the probes are not the API: served whatever the origin.
    assert.equal((await fetch(http(edge, "/healthz"), { headers: { origin: FOREIGN } })).status, 200);
  });

  it("serves its own origin and origin-less clients over HTTP, without CORS headers", async () => {
    for (const headers of [{ origin: `http://127.0.0.1:${edge.port}` }, {}] as Array<Record<string, string>>) {
      const id = rid();
      const res = await post(
        edge,
        "/v1/generate",
        { rid: id, prompt: "a long one", params: { max_tokens: 2000 } },
        {
          "content-type": "application/json; charset=utf-8",
          ...headers,
        },
      );
      assert.equal(res.status, 202, await res.text());
      assert.equal(res.headers.get("access-control-allow-origin"), null);
      assert.equal(await exists(edge, id), true);
      // A POST without a body needs no content type.
      const cancel = await fetch(http(edge, `/v1/responses/${id}/cancel`), { method: "POST", headers });
      assert.equal(cancel.status, 200, await cancel.text());
    }
  });

  it("answers a cross-site text/plain (or form) POST with 415 and starts nothing, on every front door", async () => {
    const doors: Array<[string, (id: string) => unknown]> = [
      ["/v1/generate", (id) => ({ rid: id, prompt: "form post" })],
      ["/v1/chat/completions", () => ({ model: "scripted", messages: [{ role: "user", content: "form post" }] })],
      ["/v1/responses", () => ({ model: "scripted", input: "form post", background: true })],
    ];
    for (const [p, body] of doors) {
      for (const type of ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]) {
        const id = rid();
        // No Origin: what a browser without origin checks (or an allowed page) would get past the first gate.
        const res = await post(edge, p, body(id), { "content-type": type, "x-unbroken-rid": id });
        assert.equal(res.status, 415, `${p} ${type}`);
        const text = await res.text();
        assert.match(text, /"bad_request"/);
        assert.ok(text.includes(type.split(";")[0] as string), `${p}: the message names the content type: ${text}`);
        assert.match(text, /application\/json/);
        assert.equal(await exists(edge, id), false, `${p} ${type} created ${id}`);
      }
    }
    // The same request as JSON does start one (the check above can fail).
    const id = rid();
    const res = await post(
      edge,
      "/v1/chat/completions",
      { model: "scripted", messages: [{ role: "user", content: "json" }], max_tokens: 3 },
      {
        "content-type": "application/json",
        "x-unbroken-rid": id,
      },
    );
    assert.equal(res.status, 200, await res.text());
    assert.equal(await exists(edge, id), true);
  });

  it("ALLOWED_ORIGINS admits a listed origin, with CORS headers and a preflight; others stay refused", async () => {
    assert.equal((await upgrade(ws(widened), LISTED)).status, "open");
    assert.equal((await upgrade(ws(widened), FOREIGN)).status, 403);
    const preflight = await fetch(http(widened, "/v1/generate"), {
      method: "OPTIONS",
      headers: { origin: LISTED, "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type" },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get("access-control-allow-origin"), LISTED);
    assert.match(preflight.headers.get("access-control-allow-methods") ?? "", /POST/);
    const allowHeaders = preflight.headers.get("access-control-allow-headers") ?? "";
    for (const h of ["authorization", "content-type", "last-event-id", "x-unbroken-rid"]) assert.ok(allowHeaders.includes(h), h);
    const id = rid();
    const res = await post(
      widened,
      "/v1/generate",
      { rid: id, prompt: "from the app", params: { max_tokens: 3 } },
      {
        "content-type": "application/json",
        origin: LISTED,
      },
    );
    assert.equal(res.status, 202, await res.text());
    assert.equal(res.headers.get("access-control-allow-origin"), LISTED);
    assert.match(res.headers.get("access-control-expose-headers") ?? "", /x-unbroken-rid.*location/);
    assert.equal(await exists(widened, id), true);
    const other = await fetch(http(widened, "/v1/models"), { headers: { origin: FOREIGN } });
    assert.equal(other.status, 403);
    assert.equal(other.headers.get("access-control-allow-origin"), null);
    await other.arrayBuffer();
  });

  it("AUTH=none on 0.0.0.0 refuses to start, saying why and how; ALLOW_ANONYMOUS=true starts it", async () => {
    const refused = await runToExit({ NATS_URL: nats.url, PORT: "0", HOST: "0.0.0.0" });
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /AUTH=none on a HOST that is not loopback/);
    assert.match(refused.stderr, /AUTH=jwt with JWT_SECRET/);
    assert.match(refused.stderr, /ALLOW_ANONYMOUS=true/);
    const open = await spawnService({
      name: "anonymous edge",
      script: EDGE_MAIN,
      env: { NATS_URL: nats.url, PORT: "0", HOST: "0.0.0.0", ALLOW_ANONYMOUS: "true" },
      readyMsg: "listening",
      timeoutMs: 30_000,
    });
    services.push(open);
    const client = await RawClient.connect(ws(open));
    client.close();
  });
});
