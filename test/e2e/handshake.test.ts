// Handshake conformance (PROTOCOL.md "Handshake", "Transport"): hello/welcome, commands
// before hello, the hello timeout, client pings, and the WebSocket heartbeat.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import WebSocket from "ws";
import { RawClient, type Frame } from "../helpers/raw-client.js";
import { Stack } from "../helpers/stack.js";
import { within } from "../helpers/within.js";

let stack: Stack;
/** Default edge (10 s hello timeout, 15 s heartbeat) and one with short timers. */
let slowUrl: string;
let fastUrl: string;

/** A RawClient on a socket opened with our own `ws` options (the helper's constructor is private). */
async function openWith(url: string, opts: WebSocket.ClientOptions): Promise<RawClient> {
  const ws = new WebSocket(url, opts);
  const client = new (RawClient as unknown as new (ws: WebSocket) => RawClient)(ws);
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  return client;
}

const errorOrWelcome = (f: Frame) => f.type === "welcome" || f.type === "error";

before(async () => {
  stack = await Stack.start({ edges: 1, workers: 1 });
  slowUrl = stack.url;
  fastUrl = (await stack.addEdge({ HELLO_TIMEOUT: "300ms", HEARTBEAT: "100ms" })).url;
});

after(async () => {
  await stack.stop();
});

describe("handshake", () => {
  it("hello is answered by welcome with protocol 1, a session string and heartbeat_ms", async () => {
    const c = await RawClient.open(slowUrl);
    c.send({ type: "hello" });
    const w = await c.next(errorOrWelcome);
    assert.equal(w.type, "welcome", JSON.stringify(w));
    assert.equal(w.protocol, 1);
    assert.equal(typeof w.session, "string");
    assert.ok(w.session.length > 0);
    assert.equal(typeof w.heartbeat_ms, "number");
    assert.equal(w.heartbeat_ms, 15_000, "default HEARTBEAT is 15s");
    const c2 = await RawClient.open(fastUrl);
    c2.send({ type: "hello" });
    const w2 = await c2.next(errorOrWelcome);
    assert.equal(w2.type, "welcome");
    assert.equal(w2.heartbeat_ms, 100, "heartbeat_ms reflects HEARTBEAT=100ms");
    assert.notEqual(w2.session, w.session, "each socket gets its own session");
    c.close();
    c2.close();
  });

  it("a command before hello gets unauthorized, the socket stays open and a later hello works", async () => {
    const c = await RawClient.open(slowUrl);
    c.send({ type: "subscribe", rid: "abcdefgh12", id: "early-1" });
    const err = await c.next((f) => f.id === "early-1");
    assert.equal(err.type, "error");
    assert.equal(err.code, "unauthorized");
    c.send({ type: "generate", prompt: "hi", id: "early-2" });
    const err2 = await c.next((f) => f.id === "early-2");
    assert.equal(err2.type, "error");
    assert.equal(err2.code, "unauthorized");
    assert.equal(c.frames.filter((f) => f.type === "accepted").length, 0);
    assert.equal(c.ws.readyState, WebSocket.OPEN);
    const from = c.frames.length;
    c.send({ type: "hello", id: "h" });
    const w = await c.next(errorOrWelcome, 15_000, from);
    assert.equal(w.type, "welcome", JSON.stringify(w));
    const acc = await c.request({ type: "generate", prompt: "say hi", params: { max_tokens: 3 } });
    assert.equal(acc.type, "accepted", JSON.stringify(acc));
    const events = await c.untilEnd(acc.rid);
    assert.equal(events.at(-1)?.event.kind, "end");
    c.close();
  });

  it("no hello within HELLO_TIMEOUT: error unauthorized, then close 4401", async () => {
    const c = await RawClient.open(fastUrl);
    const err = await c.next((f) => f.type === "error", 10_000);
    assert.equal(err.code, "unauthorized");
    const closed = await within(c.closed, "socket close");
    assert.equal(closed.code, 4401);
    assert.equal(c.frames.filter((f) => f.type === "welcome").length, 0);
  });

  it("a hello in time is not cut off by HELLO_TIMEOUT", async () => {
    const c = await RawClient.connect(fastUrl);
    // Outlive the hello timeout by several heartbeats, counted by pings received.
    let pings = 0;
    await within(new Promise<void>((resolve) => c.ws.on("ping", () => ++pings === 6 && resolve())), "6 pings");
    assert.equal(c.ws.readyState, WebSocket.OPEN);
    assert.equal(c.frames.filter((f) => f.type === "error").length, 0, JSON.stringify(c.frames));
    assert.equal((await c.request({ type: "ping" })).type, "pong");
    c.close();
  });

  it("ping frame gets pong with the same id, before and after hello", async () => {
    const c = await RawClient.open(slowUrl);
    c.send({ type: "ping", id: "before-hello" });
    const p1 = await c.next((f) => f.id === "before-hello");
    assert.deepEqual(p1, { type: "pong", id: "before-hello" });
    c.send({ type: "ping" });
    const p0 = await c.next((f) => f.type === "pong" && f.id === undefined);
    assert.deepEqual(p0, { type: "pong" });
    c.send({ type: "hello" });
    assert.equal((await c.next(errorOrWelcome)).type, "welcome");
    c.send({ type: "ping", id: "after-hello" });
    const p2 = await c.next((f) => f.id === "after-hello");
    assert.deepEqual(p2, { type: "pong", id: "after-hello" });
    c.close();
  });

  it("a second hello gets bad_request and the session keeps working", async () => {
    const c = await RawClient.connect(slowUrl);
    const err = await c.request({ type: "hello" });
    assert.equal(err.type, "error");
    assert.equal(err.code, "bad_request");
    assert.equal(c.frames.filter((f) => f.type === "welcome").length, 1);
    assert.equal(c.ws.readyState, WebSocket.OPEN);
    assert.equal((await c.request({ type: "ping" })).type, "pong");
    c.close();
  });

  it("hello and generate pipelined in the same tick: welcome, then accepted, then the events", async () => {
    const c = await RawClient.open(slowUrl);
    c.send({ type: "hello" });
    c.send({ type: "generate", id: "g1", prompt: "pipelined", params: { max_tokens: 5 } });
    const acc = await c.next((f) => f.id === "g1");
    assert.equal(acc.type, "accepted", JSON.stringify(acc));
    assert.equal(acc.existing, false);
    const welcomeAt = c.frames.findIndex((f) => f.type === "welcome");
    const acceptedAt = c.frames.indexOf(acc);
    assert.ok(welcomeAt >= 0 && welcomeAt < acceptedAt, `order: ${JSON.stringify(c.frames)}`);
    const events = await c.untilEnd(acc.rid);
    assert.deepEqual(
      events.map((e) => e.seq),
      events.map((_, i) => i + 1),
    );
    assert.equal(events[0]?.event.kind, "start");
    const end = events.at(-1)?.event;
    assert.equal(end?.kind, "end");
    assert.equal(end?.kind === "end" && end.reason, "length");
    assert.equal(c.frames.filter((f) => f.type === "error").length, 0, JSON.stringify(c.frames));
    c.close();
  });
});

describe("heartbeat", () => {
  it("a client that does not answer pings is closed with 1011; a normal client stays connected", async () => {
    const good = await RawClient.connect(fastUrl);
    const mute = await openWith(fastUrl, { autoPong: false });
    // Counted from the socket's opening: on a busy machine the first ping can come before `welcome`.
    let mutePings = 0;
    mute.ws.on("ping", () => mutePings++);
    mute.send({ type: "hello" });
    assert.equal((await mute.next(errorOrWelcome)).type, "welcome");

    const closed = await within(mute.closed, "socket close");
    assert.equal(closed.code, 1011, `mute client closed with ${closed.code} ${closed.reason}`);
    assert.ok(mutePings >= 2, `the edge pinged the mute client (${mutePings} pings) before closing it`);

    // The good client answers every ping: it must outlive several more heartbeats.
    let pings = 0;
    await within(new Promise<void>((resolve) => good.ws.on("ping", () => ++pings === 5 && resolve())), "5 pings");
    assert.equal(good.ws.readyState, WebSocket.OPEN);
    assert.equal((await good.request({ type: "ping" })).type, "pong");
    const acc = await good.request({ type: "generate", prompt: "still here", params: { max_tokens: 3 } });
    assert.equal(acc.type, "accepted");
    assert.equal((await good.untilEnd(acc.rid)).at(-1)?.event.kind, "end");
    good.close();
  });
});
