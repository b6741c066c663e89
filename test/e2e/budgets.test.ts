// Budgets per client (docs/protocol.md "Limits"): open streams per owner and per address over
// every door, frames per socket, steers per owner and per response. No worker runs, so
// responses stay queued and streams stay open for as long as a test holds them; each test
// that counts streams has an edge of its own, so no other test's streams are in its counts.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Edge } from "@unbroken/edge";
import { SignJWT } from "jose";
import { RawClient } from "../helpers/raw-client.js";
import { Stack } from "../helpers/stack.js";

const SECRET = "budgets-secret-budgets-secret-budgets";
const key = new TextEncoder().encode(SECRET);
const token = (sub: string) => new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject(sub).setExpirationTime("1h").sign(key);

let stack: Stack;

before(async () => {
  stack = await Stack.start({ workers: 0, edgeEnv: { AUTH: "jwt", JWT_SECRET: SECRET, QUEUE_TIMEOUT: "10m" } });
});

after(async () => {
  await stack?.stop();
});

const base = (edge: Edge) => `http://127.0.0.1:${edge.port}`;
const headers = async (sub: string) => ({ "content-type": "application/json", authorization: `Bearer ${await token(sub)}` });

/** A queued response of `sub`, made over REST (which holds no stream). */
async function queuedRid(edge: Edge, sub: string): Promise<string> {
  const res = await fetch(`${base(edge)}/v1/generate`, {
    method: "POST",
    headers: await headers(sub),
    body: JSON.stringify({ prompt: "wait in the queue" }),
  });
  assert.equal(res.status, 202, await res.clone().text());
  return ((await res.json()) as { rid: string }).rid;
}

/** An HTTP request held open (a stream); `close` aborts it. */
async function hold(url: string, init: RequestInit): Promise<{ status: number; body: string; close(): void }> {
  const controller = new AbortController();
  const res = await fetch(url, { ...init, signal: controller.signal });
  const body = res.ok ? "" : await res.text();
  return { status: res.status, body, close: () => controller.abort() };
}

/** Retries `attempt` until it answers true: a closed stream frees its slot once the edge saw the close. */
async function eventually(attempt: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await attempt())) {
    if (Date.now() > deadline) assert.fail(`${what}: not within 15 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("open streams", () => {
  it("per owner: socket subscriptions, SSE, chat completions and Responses streams count together; over the cap 429 / rate_limited naming MAX_STREAMS_PER_OWNER; a closed stream frees its slot", async () => {
    const edge = await stack.addEdge({ MAX_STREAMS_PER_OWNER: "3", MAX_STREAMS_PER_ADDRESS: "100" });
    const rids = await Promise.all([0, 1, 2, 3].map(() => queuedRid(edge, "olga")));
    const auth = await headers("olga");
    const ws = await RawClient.connect(edge.url, await token("olga"));
    for (const r of rids.slice(0, 2)) assert.equal((await ws.request({ type: "subscribe", rid: r })).type, "ok");
    const sse = await hold(`${base(edge)}/v1/responses/${rids[2]}/events`, { headers: auth });
    assert.equal(sse.status, 200, sse.body);

    const refused = await ws.request({ type: "subscribe", rid: rids[3] });
    assert.equal(refused.code, "rate_limited", JSON.stringify(refused));
    assert.match(refused.message, /MAX_STREAMS_PER_OWNER/);
    const generate = await ws.request({ type: "generate", prompt: "one more" });
    assert.equal(generate.code, "rate_limited", "a generate opens a stream too");
    assert.equal((await ws.request({ type: "subscribe", rid: rids[0], after: 0 })).type, "ok", "replacing one is not a new one");
    const chat = await hold(`${base(edge)}/v1/chat/completions`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ model: "any", stream: true, messages: [{ role: "user", content: "hi" }] }),
    });
    assert.equal(chat.status, 429);
    assert.match(chat.body, /MAX_STREAMS_PER_OWNER/);
    const wholeChat = await hold(`${base(edge)}/v1/chat/completions`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ model: "any", messages: [{ role: "user", content: "hi" }] }),
    });
    assert.equal(wholeChat.status, 429, "a completion answered whole is held open too");
    const responses = await hold(`${base(edge)}/v1/responses`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ model: "any", input: "hi", stream: true }),
    });
    assert.equal(responses.status, 429);
    assert.match(responses.body, /MAX_STREAMS_PER_OWNER/);
    const retrieve = await hold(`${base(edge)}/v1/responses/${rids[3]}?stream=true`, { headers: auth });
    assert.equal(retrieve.status, 429);
    const moreSse = await hold(`${base(edge)}/v1/responses/${rids[3]}/events`, { headers: auth });
    assert.equal(moreSse.status, 429);
    assert.match(moreSse.body, /"code":"rate_limited".*MAX_STREAMS_PER_OWNER/);

    const other = await RawClient.connect(edge.url, await token("piotr"));
    assert.equal((await other.request({ type: "generate", prompt: "another owner" })).type, "accepted", "other owners are unaffected");

    sse.close();
    await eventually(async () => {
      const chatAgain = await hold(`${base(edge)}/v1/chat/completions`, {
        method: "POST",
        headers: auth,
        body: JSON.stringify({ model: "any", stream: true, messages: [{ role: "user", content: "now" }] }),
      });
      if (chatAgain.status === 200) chatAgain.close();
      return chatAgain.status === 200;
    }, "a chat stream once the SSE stream closed");
    // The chat stream closed too: its slot and the unsubscribed one are free again.
    assert.equal((await ws.request({ type: "unsubscribe", rid: rids[1] })).type, "ok");
    await eventually(async () => (await ws.request({ type: "subscribe", rid: rids[3] })).type === "ok", "a subscription");
    for (const c of [ws, other]) c.close();
  });

  it("per address: streams of every owner from one address count together (MAX_STREAMS_PER_ADDRESS); a closed socket frees its streams", async () => {
    const edge = await stack.addEdge({ MAX_STREAMS_PER_OWNER: "100", MAX_STREAMS_PER_ADDRESS: "3" });
    const a = await RawClient.connect(edge.url, await token("quinn"));
    for (let i = 0; i < 2; i++) assert.equal((await a.request({ type: "generate", prompt: "q" })).type, "accepted");
    const r = await queuedRid(edge, "ruth");
    const sse = await hold(`${base(edge)}/v1/responses/${r}/events`, { headers: await headers("ruth") });
    assert.equal(sse.status, 200, sse.body);
    const b = await RawClient.connect(edge.url, await token("sam"));
    const refused = await b.request({ type: "generate", prompt: "s" });
    assert.equal(refused.code, "rate_limited", JSON.stringify(refused));
    assert.match(refused.message, /MAX_STREAMS_PER_ADDRESS/);
    const chat = await hold(`${base(edge)}/v1/chat/completions`, {
      method: "POST",
      headers: await headers("sam"),
      body: JSON.stringify({ model: "any", stream: true, messages: [{ role: "user", content: "hi" }] }),
    });
    assert.equal(chat.status, 429);
    assert.match(chat.body, /MAX_STREAMS_PER_ADDRESS/);
    a.close();
    await eventually(async () => (await b.request({ type: "generate", prompt: "s" })).type === "accepted", "a generate once a closed");
    b.close();
    sse.close();
  });
});

describe("frames per socket", () => {
  it("past FRAME_BURST frames (pings included) are refused rate_limited with their id; a socket that keeps on is closed with 1008", async () => {
    const edge = await stack.addEdge({ FRAME_RATE: "0.001", FRAME_BURST: "10" });
    const c = await RawClient.connect(edge.url, await token("tess"));
    // The hello took one token: 9 are left.
    for (let i = 0; i < 20; i++) c.send({ type: "ping", id: `p${i}` });
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => c.next((f) => f.id === `p${i}`)));
    assert.equal(replies.filter((f) => f.type === "pong").length, 9);
    const refused = replies.filter((f) => f.type === "error");
    assert.equal(refused.length, 11);
    for (const f of refused) {
      assert.equal(f.code, "rate_limited");
      assert.match(f.message, /FRAME_RATE/);
    }
    assert.deepEqual(
      replies.map((f) => f.type),
      [...Array(9).fill("pong"), ...Array(11).fill("error")],
      "the first frames pass, the rest are refused",
    );
    // 32 refusals in a row are tolerated; the one after closes the socket.
    for (let i = 0; i < 40; i++) c.send({ type: "ping" });
    assert.equal((await c.closed).code, 1008);
    const errors = c.frames.filter((f) => f.type === "error").length;
    assert.equal(errors, 32, "one error per refused frame, none past the close");
    const fresh = await RawClient.connect(edge.url, await token("tess"));
    assert.equal((await fresh.request({ type: "ping" })).type, "pong", "the budget is per socket");
    fresh.close();
  });
});

describe("steers", () => {
  it("a steer storm over many responses of one owner is cut by STEER_RATE_PER_OWNER; another owner is unaffected", async () => {
    const edge = await stack.addEdge({ STEER_RATE_PER_OWNER: "0.001", STEER_BURST_PER_OWNER: "4" });
    const rids = await Promise.all(Array.from({ length: 8 }, () => queuedRid(edge, "uma")));
    const c = await RawClient.connect(edge.url, await token("uma"));
    const answers = [];
    for (const r of rids) answers.push(await c.request({ type: "steer", rid: r, text: "faster" }));
    assert.deepEqual(
      answers.map((a) => a.type),
      [...Array(4).fill("ok"), ...Array(4).fill("error")],
      JSON.stringify(answers),
    );
    for (const a of answers.slice(4)) {
      assert.equal(a.code, "rate_limited");
      assert.match(a.message, /STEER_RATE_PER_OWNER/);
    }
    const res = await fetch(`${base(edge)}/v1/responses/${rids[0]}/steer`, {
      method: "POST",
      headers: await headers("uma"),
      body: JSON.stringify({ text: "over http" }),
    });
    assert.equal(res.status, 429);
    assert.match(await res.text(), /STEER_RATE_PER_OWNER/);
    const other = await RawClient.connect(edge.url, await token("vera"));
    const own = await queuedRid(edge, "vera");
    assert.equal((await other.request({ type: "steer", rid: own, text: "mine" })).type, "ok", "another owner has its own budget");
    for (const x of [c, other]) x.close();
  });

  it("a response takes at most MAX_STEERS_PER_RESPONSE steers, whatever the rate allows", async () => {
    const edge = await stack.addEdge({ MAX_STEERS_PER_RESPONSE: "3", STEER_BURST: "10" });
    const r = await queuedRid(edge, "wanda");
    const c = await RawClient.connect(edge.url, await token("wanda"));
    for (let i = 0; i < 3; i++) assert.equal((await c.request({ type: "steer", rid: r, text: `s${i}` })).type, "ok");
    const refused = await c.request({ type: "steer", rid: r, text: "one too many" });
    assert.equal(refused.code, "rate_limited", JSON.stringify(refused));
    assert.equal(refused.rid, r);
    assert.match(refused.message, /MAX_STEERS_PER_RESPONSE/);
    const res = await fetch(`${base(edge)}/v1/responses/${r}/steer`, {
      method: "POST",
      headers: await headers("wanda"),
      body: JSON.stringify({ text: "over http" }),
    });
    assert.equal(res.status, 429);
    assert.match(await res.text(), /MAX_STEERS_PER_RESPONSE/);
    const another = await queuedRid(edge, "wanda");
    assert.equal((await c.request({ type: "steer", rid: another, text: "fresh" })).type, "ok", "the cap is per response");
    c.close();
  });
});
