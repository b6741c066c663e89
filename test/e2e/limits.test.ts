// Limits (docs/protocol.md "Limits"): each one configurable, each breach a clear error.
// No worker runs until the last test, so generations stay queued (they count as running)
// for as long as a test needs them: nothing here depends on timing.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { SignJWT } from "jose";
import WebSocket from "ws";
import { RawClient } from "../helpers/raw-client.js";
import { Stack } from "../helpers/stack.js";

const SECRET = "limits-secret-limits-secret-limits";
const key = new TextEncoder().encode(SECRET);
const token = (sub: string) => new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject(sub).setExpirationTime("1h").sign(key);
const rid = () => randomBytes(16).toString("base64url");

let stack: Stack;
let http: string;
const connect = async (sub: string) => RawClient.connect(stack.url, await token(sub));
const queued = (c: RawClient, extra: Record<string, unknown> = {}) =>
  c.request({ type: "generate", prompt: "wait in the queue", ...extra });

before(async () => {
  stack = await Stack.start({
    workers: 0,
    edgeEnv: {
      AUTH: "jwt",
      JWT_SECRET: SECRET,
      QUEUE_TIMEOUT: "10m",
      MAX_GENERATIONS_PER_SOCKET: "2",
      MAX_GENERATIONS_PER_OWNER: "4",
      MAX_SUBSCRIPTIONS_PER_SOCKET: "3",
      STEER_RATE: "0.001",
      STEER_BURST: "2",
      MAX_PROMPT_BYTES: "1000",
      MAX_TOKENS_CEILING: "40",
    },
  });
  http = `http://127.0.0.1:${stack.edges[0]!.port}`;
});

after(async () => {
  await stack?.stop();
});

describe("limits", () => {
  it("concurrent generations per socket: rate_limited past MAX_GENERATIONS_PER_SOCKET; a re-sent generate passes; a cancel frees a slot", async () => {
    const a = await connect("alice");
    const first = await queued(a, { rid: rid() });
    assert.equal(first.type, "accepted");
    assert.equal((await queued(a)).type, "accepted");
    const refused = await queued(a);
    assert.equal(refused.code, "rate_limited", JSON.stringify(refused));
    assert.match(refused.message, /MAX_GENERATIONS_PER_SOCKET/);
    // The same rid again starts nothing, so it is not refused.
    const again = await queued(a, { rid: first.rid });
    assert.equal(again.type, "accepted", JSON.stringify(again));
    assert.equal(again.existing, true);
    // Another socket of the same owner has slots of its own.
    const a2 = await connect("alice");
    assert.equal((await queued(a2)).type, "accepted");
    assert.equal((await a.request({ type: "cancel", rid: first.rid })).type, "ok");
    await a.untilEnd(first.rid);
    assert.equal((await queued(a)).type, "accepted", "the ended response no longer counts");
    a.close();
    a2.close();
  });

  it("concurrent generations per owner: rate_limited past MAX_GENERATIONS_PER_OWNER on sockets and over HTTP; other owners unaffected", async () => {
    const b1 = await connect("bob");
    const b2 = await connect("bob");
    const b3 = await connect("bob");
    for (const c of [b1, b1, b2, b2]) assert.equal((await queued(c)).type, "accepted");
    const refused = await queued(b3);
    assert.equal(refused.code, "rate_limited", JSON.stringify(refused));
    assert.match(refused.message, /MAX_GENERATIONS_PER_OWNER/);
    const res = await fetch(`${http}/v1/generate`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${await token("bob")}` },
      body: JSON.stringify({ prompt: "one more" }),
    });
    assert.equal(res.status, 429);
    assert.equal(((await res.json()) as { code: string }).code, "rate_limited");
    const carol = await connect("carol");
    assert.equal((await queued(carol)).type, "accepted");
    for (const c of [b1, b2, b3, carol]) c.close();
  });

  it("subscriptions per socket: rate_limited past MAX_SUBSCRIPTIONS_PER_SOCKET; re-subscribing is fine; unsubscribe frees one", async () => {
    const makers = [await connect("dave"), await connect("dave")];
    const rids: string[] = [];
    for (const c of [makers[0]!, makers[0]!, makers[1]!, makers[1]!]) rids.push((await queued(c)).rid);
    const reader = await connect("dave");
    for (const r of rids.slice(0, 3)) assert.equal((await reader.request({ type: "subscribe", rid: r })).type, "ok");
    const refused = await reader.request({ type: "subscribe", rid: rids[3] });
    assert.equal(refused.code, "rate_limited", JSON.stringify(refused));
    assert.equal(refused.rid, rids[3]);
    assert.match(refused.message, /MAX_SUBSCRIPTIONS_PER_SOCKET/);
    assert.equal((await reader.request({ type: "subscribe", rid: rids[0], after: 0 })).type, "ok", "replacing one is not a new one");
    assert.equal((await reader.request({ type: "unsubscribe", rid: rids[1] })).type, "ok");
    assert.equal((await reader.request({ type: "subscribe", rid: rids[3] })).type, "ok");
    // A generate opens a subscription too.
    const gen = await queued(reader);
    assert.equal(gen.code, "rate_limited", JSON.stringify(gen));
    for (const c of [...makers, reader]) c.close();
  });

  it("steer rate: a token bucket per response (STEER_RATE, STEER_BURST)", async () => {
    const c = await connect("erin");
    const [r1, r2] = [(await queued(c)).rid, (await queued(c)).rid];
    assert.equal((await c.request({ type: "steer", rid: r1, text: "one" })).type, "ok");
    assert.equal((await c.request({ type: "steer", rid: r1, text: "two" })).type, "ok");
    const refused = await c.request({ type: "steer", rid: r1, text: "three" });
    assert.equal(refused.code, "rate_limited", JSON.stringify(refused));
    assert.match(refused.message, /STEER_RATE/);
    assert.equal((await c.request({ type: "steer", rid: r2, text: "another response" })).type, "ok");
    const res = await fetch(`${http}/v1/responses/${r1}/steer`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${await token("erin")}` },
      body: JSON.stringify({ text: "over http" }),
    });
    assert.equal(res.status, 429);
    c.close();
  });

  it("prompt size: too_large past MAX_PROMPT_BYTES (UTF-8 bytes), on the socket, REST and chat completions", async () => {
    const c = await connect("frank");
    assert.equal((await queued(c, { prompt: "a".repeat(1000) })).type, "accepted");
    const big = await queued(c, { prompt: "é".repeat(501) });
    assert.equal(big.code, "too_large", JSON.stringify(big));
    assert.match(big.message, /MAX_PROMPT_BYTES/);
    const messages = [
      { role: "system", content: "s".repeat(600) },
      { role: "user", content: "u".repeat(600) },
    ];
    assert.equal((await c.request({ type: "generate", messages })).code, "too_large");
    assert.equal(c.frames.filter((f) => f.type === "accepted").length, 1);
    const auth = { "content-type": "application/json", authorization: `Bearer ${await token("frank")}` };
    const rest = await fetch(`${http}/v1/generate`, { method: "POST", headers: auth, body: JSON.stringify({ prompt: "x".repeat(1001) }) });
    assert.equal(rest.status, 413);
    assert.equal(((await rest.json()) as { code: string }).code, "too_large");
    const chat = await fetch(`${http}/v1/chat/completions`, { method: "POST", headers: auth, body: JSON.stringify({ messages }) });
    assert.equal(chat.status, 413);
    c.close();
  });

  it("prompt size counts the tools' schemas, the calls' arguments and the tool results (socket and chat completions)", async () => {
    const c = await connect("heidi");
    const tool = (name: string, description: string) => ({
      type: "function",
      function: { name, description, parameters: { type: "object" } },
    });
    const tools = [tool("a", "d".repeat(450)), tool("b", "d".repeat(450))];
    const big = await queued(c, { tools });
    assert.equal(big.code, "too_large", JSON.stringify(big));
    assert.match(big.message, /tools \d+\); at most 1000 \(MAX_PROMPT_BYTES\)/);
    assert.equal((await queued(c, { tools: tools.slice(0, 1) })).type, "accepted", "one of them fits");
    const call = { id: "call_1", type: "function", function: { name: "a", arguments: JSON.stringify({ text: "x".repeat(500) }) } };
    const agentTurn = [
      { role: "user", content: "use a" },
      { role: "assistant", content: null, tool_calls: [call] },
      { role: "tool", tool_call_id: "call_1", content: "r".repeat(500) },
    ];
    const turn = await c.request({ type: "generate", messages: agentTurn });
    assert.equal(turn.code, "too_large", `arguments and the result add up: ${JSON.stringify(turn)}`);
    assert.equal((await c.request({ type: "generate", messages: agentTurn.slice(0, 2) })).type, "accepted");
    const auth = { "content-type": "application/json", authorization: `Bearer ${await token("heidi")}` };
    const chat = await fetch(`${http}/v1/chat/completions`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ model: "any", messages: [{ role: "user", content: "hi" }], tools }),
    });
    assert.equal(chat.status, 413);
    const reply = (await chat.json()) as { error: { code: string; message: string } };
    assert.equal(reply.error.code, "too_large");
    assert.match(reply.error.message, /MAX_PROMPT_BYTES/);
    c.close();
  });

  it("max_tokens ceiling: above MAX_TOKENS_CEILING is bad_request; without max_tokens the ceiling applies", async () => {
    const c = await connect("grace");
    const over = await queued(c, { params: { max_tokens: 41 } });
    assert.equal(over.code, "bad_request", JSON.stringify(over));
    assert.match(over.message, /MAX_TOKENS_CEILING/);
    await stack.addWorker({ SCRIPTED_TPS: "0" });
    const at = await c.request({ type: "generate", prompt: "write 10 words", params: { max_tokens: 40 } });
    assert.equal(at.type, "accepted");
    const open = await c.request({ type: "generate", prompt: "write 300 words without a max" });
    assert.equal(open.type, "accepted");
    const end = (await c.untilEnd(open.rid, 60_000)).at(-1)!.event;
    assert.equal(end.kind === "end" && end.reason, "length");
    assert.equal(end.kind === "end" && end.usage.completion_tokens, 40);
    c.close();
  });
});

describe("connection rate per client address", () => {
  it("past CONNECTION_BURST the upgrade is refused with 429, and /v1 HTTP requests get 429 rate_limited", async () => {
    const edge = await stack.addEdge({ AUTH: "none", CONNECTION_RATE: "0.001", CONNECTION_BURST: "3" });
    const open = await Promise.all([0, 1, 2].map(() => RawClient.connect(edge.url)));
    const refused = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(edge.url);
      ws.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
      ws.on("open", () => reject(new Error("the fourth socket was accepted")));
      ws.on("error", reject);
    });
    assert.equal(refused, 429);
    const res = await fetch(`http://127.0.0.1:${edge.port}/v1/generate`, { method: "POST", body: "{}" });
    assert.equal(res.status, 429);
    assert.equal(((await res.json()) as { code: string }).code, "rate_limited");
    assert.equal((await fetch(`http://127.0.0.1:${edge.port}/healthz`)).status, 200, "probes are not limited");
    assert.equal((await open[0]!.request({ type: "ping" })).type, "pong", "open sockets are untouched");
    for (const c of open) c.close();
  });

  it("the 429s carry retry-after, and once the bucket refills at CONNECTION_RATE a connection is accepted again", async () => {
    // One token every 2 s, two at once: the four requests below go out well within 2 s.
    const edge = await stack.addEdge({ AUTH: "none", CONNECTION_RATE: "0.5", CONNECTION_BURST: "2" });
    const upgrade = () =>
      new Promise<{ status: number; retryAfter?: string; ws?: WebSocket }>((resolve, reject) => {
        const ws = new WebSocket(edge.url);
        ws.on("unexpected-response", (_req, res) => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers["retry-after"] }));
        ws.on("open", () => resolve({ status: 101, ws }));
        ws.on("error", reject);
      });
    const open = [await upgrade(), await upgrade()];
    assert.deepEqual(
      open.map((o) => o.status),
      [101, 101],
    );
    const refused = await upgrade();
    assert.deepEqual(refused, { status: 429, retryAfter: "1" });
    const res = await fetch(`http://127.0.0.1:${edge.port}/v1/responses/${rid()}/events`);
    assert.equal(res.status, 429);
    assert.equal(res.headers.get("retry-after"), "1");
    assert.equal(((await res.json()) as { code: string }).code, "rate_limited");
    // Refused attempts take no token: polling waits for the refill without delaying it.
    const deadline = Date.now() + 30_000;
    let again = await upgrade();
    while (again.status === 429 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      again = await upgrade();
    }
    assert.equal(again.status, 101, "a connection is accepted again once a token has refilled");
    assert.equal((await upgrade()).status, 429, "and only one: the bucket is empty again");
    for (const o of [...open, again]) o.ws?.close();
  });

  it("with TRUST_PROXY the address is the last X-Forwarded-For entry", async () => {
    const edge = await stack.addEdge({ AUTH: "none", CONNECTION_RATE: "0.001", CONNECTION_BURST: "1", TRUST_PROXY: "true" });
    const get = (xff: string) =>
      fetch(`http://127.0.0.1:${edge.port}/v1/responses/${rid()}/events`, { headers: { "x-forwarded-for": xff } });
    assert.equal((await get("10.0.0.9, 192.0.2.1")).status, 404);
    assert.equal((await get("10.0.0.8, 192.0.2.1")).status, 429, "same last entry: same bucket");
    assert.equal((await get("192.0.2.2")).status, 404);
  });
});
