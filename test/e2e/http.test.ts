import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { SignJWT } from "jose";
import { RawClient, range, seqs, textOf } from "../helpers/raw-client.js";
import { readSse } from "../helpers/sse.js";
import { Stack } from "../helpers/stack.js";

const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });

// PROTOCOL "HTTP beside it": the same log and commands without a WebSocket.
describe("HTTP and Server-Sent Events", () => {
  let stack: Stack;
  let base: string;
  before(async () => {
    stack = await Stack.start({ workerEnv: { SCRIPTED_TPS: "150" }, edgeEnv: { HEARTBEAT: "100ms", MAX_BODY_BYTES: "4096" } });
    base = `http://127.0.0.1:${stack.edges[0]!.port}`;
  });
  after(() => stack.stop());

  it("starts a response with POST and streams the socket's frames as SSE, id = seq, closed after end", async () => {
    const created = await post(`${base}/v1/generate`, { prompt: "write 40 words over http", params: { seed: 4 } });
    assert.equal(created.status, 202);
    const { rid, existing, created_at } = (await created.json()) as { rid: string; existing: boolean; created_at: number };
    assert.equal(existing, false);
    assert.ok(Number.isInteger(created_at) && created_at > 0, "created_at: the response's creation time in whole seconds");
    const sse = await readSse(`${base}/v1/responses/${rid}/events`);
    assert.equal(sse.status, 200);
    assert.match(sse.headers.get("content-type") ?? "", /^text\/event-stream/);
    assert.doesNotMatch(sse.raw, /^event:/m);
    const frames = sse.messages.map((m) => JSON.parse(m.data));
    assert.deepEqual(
      sse.messages.map((m) => Number(m.id)),
      range(1, frames.length),
    );
    assert.deepEqual(
      frames.map((f) => f.seq),
      range(1, frames.length),
    );
    assert.equal(frames.at(-1).event.kind, "end");
    // The socket reads exactly the same frames.
    const ws = await RawClient.connect(stack.url);
    await ws.request({ type: "subscribe", rid });
    assert.deepEqual(await ws.untilEnd(rid), frames);
    ws.close();
    const again = await post(`${base}/v1/generate`, { rid, prompt: "ignored" });
    assert.deepEqual([again.status, await again.json()], [202, { rid, existing: true, created_at }], "the first response's created_at");
  });

  it("resumes exactly from Last-Event-ID, which wins over ?after=", async () => {
    const { rid } = (await (await post(`${base}/v1/generate`, { prompt: "write 60 words to resume" })).json()) as { rid: string };
    const first = await readSse(`${base}/v1/responses/${rid}/events`, {}, (r) => Number(r.messages.at(-1)?.id) >= 10);
    const lastId = first.messages.at(-1)!.id!;
    const rest = await readSse(`${base}/v1/responses/${rid}/events?after=3`, { headers: { "last-event-id": lastId } });
    const all = [...first.messages, ...rest.messages].map((m) => JSON.parse(m.data));
    assert.deepEqual(seqs(all), range(1, all.length));
    const byAfter = await readSse(`${base}/v1/responses/${rid}/events?after=${all.length - 2}`);
    assert.deepEqual(
      byAfter.messages.map((m) => Number(m.id)),
      [all.length - 1, all.length],
    );
    const whole = await readSse(`${base}/v1/responses/${rid}/events`);
    assert.equal(textOf(all), textOf(whole.messages.map((m) => JSON.parse(m.data))));
  });

  it("a reconnect from the end it already has gets 204 (an EventSource stops); one before it gets the rest", async () => {
    const { rid } = (await (await post(`${base}/v1/generate`, { prompt: "write 20 words then reconnect" })).json()) as { rid: string };
    const whole = await readSse(`${base}/v1/responses/${rid}/events`);
    const endId = whole.messages.at(-1)!.id!;
    const atEnd = await fetch(`${base}/v1/responses/${rid}/events`, { headers: { "last-event-id": endId } });
    assert.equal(atEnd.status, 204);
    assert.equal(await atEnd.text(), "");
    const before = await readSse(`${base}/v1/responses/${rid}/events`, { headers: { "last-event-id": String(Number(endId) - 1) } });
    assert.equal(before.status, 200);
    assert.deepEqual(
      before.messages.map((m) => m.id),
      [endId],
    );
  });

  it("cancels and steers over HTTP; steering an ended response is 409", async () => {
    const { rid } = (await (await post(`${base}/v1/generate`, { prompt: "write 400 words to steer then stop" })).json()) as {
      rid: string;
    };
    await readSse(`${base}/v1/responses/${rid}/events`, {}, (r) => Number(r.messages.at(-1)?.id) >= 5);
    // Cancel and steer are OpenAI's Responses API routes (and its extension): they answer the response object.
    const steer = await post(`${base}/v1/responses/${rid}/steer`, { text: "about lighthouses" });
    assert.equal(steer.status, 200);
    assert.equal(((await steer.json()) as { id: string }).id, rid);
    const cancel = await post(`${base}/v1/responses/${rid}/cancel`, {});
    assert.equal(cancel.status, 200);
    assert.deepEqual(((await cancel.json()) as { status: string }).status, "cancelled");
    const events = (await readSse(`${base}/v1/responses/${rid}/events`)).messages.map((m) => JSON.parse(m.data));
    assert.equal(events.filter((e) => e.event.kind === "steer").length, 1);
    assert.equal(events.at(-1).event.reason, "cancelled");
    const late = await post(`${base}/v1/responses/${rid}/steer`, { text: "too late" });
    assert.equal(late.status, 409);
    assert.equal(((await late.json()) as { error: { code: string } }).error.code, "finished");
  });

  it("keeps an idle stream alive with comments", async () => {
    // No worker: the response stays queued, so its stream has nothing but keepalives.
    await stack.workers[0]!.close();
    stack.workers.length = 0;
    const { rid } = (await (await post(`${base}/v1/generate`, { prompt: "waits in the queue" })).json()) as { rid: string };
    const sse = await readSse(
      `${base}/v1/responses/${rid}/events`,
      {},
      (r) => r.comments.filter((c) => c.includes("keepalive")).length >= 3,
    );
    assert.equal(sse.status, 200);
    assert.equal(sse.messages.length, 0);
    assert.ok(sse.comments.filter((c) => c.includes("keepalive")).length >= 3);
  });

  it("answers errors as JSON with fitting statuses", async () => {
    const cases: Array<[Promise<Response>, number, string]> = [
      [fetch(`${base}/v1/responses/UnknownRid123/events`), 404, "not_found"],
      [fetch(`${base}/v1/responses/bad.rid.here/events`), 400, "bad_request"],
      [fetch(`${base}/v1/responses/UnknownRid123/events?after=-1`), 400, "bad_request"],
      [post(`${base}/v1/generate`, "{not json"), 400, "bad_request"],
      [post(`${base}/v1/generate`, { prompt: "x", messages: [] }), 400, "bad_request"],
      [post(`${base}/v1/generate`, { prompt: "x".repeat(5000) }), 413, "too_large"],
      [fetch(`${base}/no/such/path`), 404, "not_found"],
      // OpenAI's routes answer in its shape, {"error":{code,message,...}}, with the same codes.
      [post(`${base}/v1/responses/UnknownRid123/cancel`, {}), 404, "not_found"],
      [post(`${base}/v1/responses/UnknownRid123/steer`, { text: "" }), 400, "bad_request"],
      [fetch(`${base}/v1/responses/bad.rid.here`), 400, "bad_request"],
    ];
    for (const [pending, status, code] of cases) {
      const res = await pending;
      assert.equal(res.status, status, `${res.url}`);
      const body = (await res.json()) as { code?: string; error?: { code: string } };
      const openAIRoute = /\/v1\/responses\/[^/]+(\/cancel|\/steer)?$/.test(new URL(res.url).pathname);
      assert.equal(openAIRoute ? body.error?.code : body.code, code);
    }
  });
});

describe("HTTP with auth on", () => {
  let stack: Stack;
  let base: string;
  const key = new TextEncoder().encode("http-secret-http-secret-http-secret");
  const token = (sub: string) => new SignJWT({}).setSubject(sub).setProtectedHeader({ alg: "HS256" }).setExpirationTime("1h").sign(key);
  before(async () => {
    stack = await Stack.start({
      edgeEnv: { AUTH: "jwt", JWT_SECRET: "http-secret-http-secret-http-secret" },
      workerEnv: { SCRIPTED_TPS: "200" },
    });
    base = `http://127.0.0.1:${stack.edges[0]!.port}`;
  });
  after(() => stack.stop());

  it("needs a bearer token and shows an owner only its own responses", async () => {
    assert.equal((await fetch(`${base}/v1/models`)).status, 401, "models need a token too");
    assert.equal((await post(`${base}/v1/generate`, { prompt: "x" })).status, 401);
    assert.equal((await post(`${base}/v1/generate`, { prompt: "x" }, { authorization: "Bearer nonsense" })).status, 401);
    const alice = { authorization: `Bearer ${await token("alice")}` };
    const bob = { authorization: `Bearer ${await token("bob")}` };
    const { rid } = (await (await post(`${base}/v1/generate`, { prompt: "alice's", params: { max_tokens: 5 } }, alice)).json()) as {
      rid: string;
    };
    const mine = await readSse(`${base}/v1/responses/${rid}/events`, { headers: alice });
    assert.equal(mine.status, 200);
    assert.equal(JSON.parse(mine.messages.at(-1)!.data).event.kind, "end");
    const theirs = await fetch(`${base}/v1/responses/${rid}/events`, { headers: bob });
    const missing = await fetch(`${base}/v1/responses/NoSuchRid999/events`, { headers: bob });
    assert.equal(theirs.status, 403);
    assert.equal(missing.status, 403);
    assert.deepEqual(await theirs.json(), await missing.json());
    assert.equal((await post(`${base}/v1/responses/${rid}/cancel`, {}, bob)).status, 403);
    assert.equal((await fetch(`${base}/v1/responses/${rid}/events`)).status, 401);
  });
});
