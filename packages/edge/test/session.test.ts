// Session driven directly: a `ws` server of the test's own makes one Session per socket, with
// deps built as server.ts builds them, on a real nats-server and a real Broker. The handshake,
// bad frames, ids, generate/subscribe/unsubscribe/cancel, the subscription limit and goaway.
// No worker runs: the test writes a response's events itself (a writer on its own broker, as
// a worker would). Authentication (AUTH=jwt) and the hello timeout are in session-auth.test.ts.
import assert from "node:assert/strict";
import { after, afterEach, before, describe, test } from "node:test";
import { newRid, type ResponseEvent } from "@unbroken/protocol";
import { Broker, ends, silentLog } from "@unbroken/store";
import type { NatsServerHandle, NatsTools } from "@unbroken/testing";
import WebSocket from "ws";
import { ANONYMOUS } from "../src/auth.js";
import { type BrokerKit, startBrokerKit } from "./broker-kit.js";
import { ClientPool, type Client, serveSessions, type Frame, type SessionServer } from "./session-kit.js";

let kit: BrokerKit;
let nats: NatsServerHandle;
let broker: Broker;
let writer: Broker;
let tools: NatsTools;
let server: SessionServer;
const pool = new ClientPool();

before(async () => {
  kit = await startBrokerKit("session-test-edge");
  ({ nats, broker, tools } = kit);
  writer = await Broker.connect({ url: nats.url, name: "session-test-worker", retentionMs: 3_600_000, log: silentLog });
  server = await serveSessions(broker, { heartbeatMs: 1_234 });
});
afterEach(() => pool.closeAll());
after(async () => {
  await server?.close();
  await writer?.close();
  await kit?.stop();
});

const open = (s = server): Promise<Client> => pool.open(s.url);
const connect = (s = server): Promise<Client> => pool.connect(s.url);

const START: ResponseEvent = { kind: "start", model: "test", created_at: new Date(0).toISOString() };
const token = (i: number): ResponseEvent => ({ kind: "token", text: ` t${i}` });
const END = ends.done("stop", { prompt_tokens: 1, completion_tokens: 2 });
const isError = (code: string) => (f: Frame) => f.type === "error" && f.code === code;

/** A generate on `c`, answered `accepted`: its rid. */
async function generate(c: Client, extra: Frame = {}): Promise<string> {
  const accepted = await c.request({ type: "generate", prompt: "hello", ...extra });
  assert.equal(accepted.type, "accepted", JSON.stringify(accepted));
  return accepted.rid as string;
}

describe("handshake", () => {
  test("hello is answered by welcome: protocol 1, this socket's session id, heartbeat_ms", async () => {
    const c = await open();
    c.send({ type: "hello" });
    const welcome = await c.next((f) => f.type === "welcome" || f.type === "error");
    const ids = [...server.sessions.keys()];
    assert.deepEqual(welcome, { type: "welcome", protocol: 1, session: ids.at(-1), heartbeat_ms: 1_234 });
    const other = await connect();
    assert.notEqual(other.frames[0]?.session, welcome.session, "each socket has its own session");
  });

  test("a command before hello is unauthorized and the socket stays open; ping is answered; then hello works", async () => {
    const c = await open();
    const refused = await c.request({ type: "subscribe", rid: newRid() });
    assert.equal(refused.type, "error");
    assert.equal(refused.code, "unauthorized");
    const refusedGenerate = await c.request({ type: "generate", prompt: "hi" });
    assert.equal(refusedGenerate.code, "unauthorized");
    await c.roundTrip();
    c.send({ type: "hello" });
    await c.next((f) => f.type === "welcome");
    assert.equal(c.ws.readyState, WebSocket.OPEN);
    await generate(c);
  });

  test("a second hello is a bad_request; the session carries on", async () => {
    const c = await connect();
    const again = await c.request({ type: "hello" });
    assert.equal(again.code, "bad_request", JSON.stringify(again));
    assert.equal(c.frames.filter((f) => f.type === "welcome").length, 1);
    await generate(c);
  });
});

describe("bad frames and ids", () => {
  test("a text frame that is not JSON is a bad_request (without id) and the socket stays open", async () => {
    const c = await connect();
    c.ws.send("{not json");
    const err = await c.next(isError("bad_request"));
    assert.equal("id" in err, false);
    await c.roundTrip();
    assert.equal(c.ws.readyState, WebSocket.OPEN);
  });

  test("a binary frame is a bad_request and the socket stays open", async () => {
    const c = await connect();
    c.ws.send(Buffer.from(JSON.stringify({ type: "ping", id: "bin" })), { binary: true });
    const err = await c.next(isError("bad_request"));
    assert.match(err.message, /binary/);
    await c.roundTrip();
    assert.equal(c.frames.filter((f) => f.type === "pong" && f.id === "bin").length, 0, "a binary ping is not answered as one");
  });

  test("an id is echoed on every kind of reply; an invalid id is answered without one", async () => {
    const c = await connect();
    c.send({ type: "ping", id: "p-1" });
    assert.equal((await c.next((f) => f.id === "p-1")).type, "pong");
    const rid = newRid();
    c.send({ type: "subscribe", rid, id: "s-1" });
    assert.deepEqual(await c.next((f) => f.id === "s-1"), {
      type: "error",
      id: "s-1",
      rid,
      code: "not_found",
      message: "no response with this rid",
    });
    c.send({ type: "generate", prompt: "hi", id: "g-1" });
    assert.equal((await c.next((f) => f.id === "g-1")).type, "accepted");
    c.send({ type: "nonsense", id: "u-1" });
    assert.equal((await c.next((f) => f.id === "u-1")).code, "bad_request", "a bad frame with a valid id keeps it");

    const from = c.frames.length;
    c.send({ type: "ping", id: 7 });
    c.send({ type: "ping", id: "x".repeat(65) });
    await c.roundTrip();
    const refused = c.frames.slice(from).filter((f) => f.type === "error");
    assert.equal(refused.length, 2, JSON.stringify(c.frames.slice(from)));
    for (const f of refused) {
      assert.equal(f.code, "bad_request");
      assert.equal("id" in f, false);
    }
  });
});

describe("commands", () => {
  test("generate: accepted, then the events written for it, as stored, to its end", async () => {
    const c = await connect();
    const session = server.sessions.get(c.frames[0]?.session);
    const rid = await generate(c);
    assert.equal(session?.subscriptions, 1, "the generate subscribed the socket");
    const w = writer.logs.writer(rid);
    for (const e of [START, token(1), token(2)]) await w.append(e);
    await writer.lifecycle.finish(w, END);
    const events = await c.untilEvents(rid, 4);
    assert.deepEqual(
      events.map((f) => [f.seq, f.event.kind]),
      [
        [1, "start"],
        [2, "token"],
        [3, "token"],
        [4, "end"],
      ],
    );
    // Byte for byte what the worker stored: the edge forwards the stored text, it re-encodes nothing.
    const texts = c.texts.filter((_, i) => c.frames[i]?.type === "event");
    assert.deepEqual(
      texts,
      (await tools.events(rid)).map((s) => JSON.stringify(s.frame)),
    );
    assert.equal(session?.subscriptions, 0, "the subscription ended with its end");
    const again = await c.request({ type: "generate", rid, prompt: "hello" });
    assert.deepEqual([again.type, again.existing], ["accepted", true]);
  });

  test("generate and cancel sent back to back run in that order: accepted, ok, then the end `cancelled`", async () => {
    const c = await connect();
    const rid = newRid();
    c.send({ type: "generate", rid, prompt: "hello", id: "g" });
    c.send({ type: "cancel", rid, id: "c" });
    const ok = await c.next((f) => f.id === "c");
    assert.equal(ok.type, "ok", JSON.stringify(ok));
    const accepted = c.frames.findIndex((f) => f.id === "g");
    assert.ok(accepted >= 0 && accepted < c.frames.indexOf(ok), "accepted before ok");
    const [end] = await c.untilEvents(rid, 1);
    assert.equal(end?.event.reason, "cancelled");
  });

  test("subscribe and unsubscribe answer ok; no event follows the unsubscribe (another socket still gets it)", async () => {
    const owner = await connect();
    const rid = await generate(owner);
    const c = await connect();
    assert.deepEqual(await c.request({ type: "subscribe", rid }), { type: "ok", id: "r1", rid, ended: false });
    const w = writer.logs.writer(rid);
    await w.append(START);
    await c.untilEvents(rid, 1);
    await owner.untilEvents(rid, 1);
    assert.deepEqual(await c.request({ type: "unsubscribe", rid }), { type: "ok", id: "r2", rid });
    await w.append(token(1));
    // The owner's socket getting it means the edge has handed it out; anything sent to `c`
    // for it would come before the answer to a ping sent after that.
    await owner.untilEvents(rid, 2);
    await c.roundTrip();
    assert.deepEqual(
      c.events(rid).map((f) => f.seq),
      [1],
    );
  });

  test("subscribe from `after`: the stored events past it, then live", async () => {
    const owner = await connect();
    const rid = await generate(owner);
    const w = writer.logs.writer(rid);
    for (const e of [START, token(1), token(2)]) await w.append(e);
    const c = await connect();
    assert.equal((await c.request({ type: "subscribe", rid, after: 2 })).type, "ok");
    await c.untilEvents(rid, 1);
    await w.append(END);
    assert.deepEqual(
      (await c.untilEvents(rid, 2)).map((f) => f.seq),
      [3, 4],
    );
  });

  test("gone: asked of an ended response whose events expired; or found after ok, when a running one's head expired", async () => {
    const c = await connect();
    const ended = await generate(c);
    const w = writer.logs.writer(ended);
    await w.append(START);
    await writer.lifecycle.finish(w, END);
    await c.untilEvents(ended, 2);
    await tools.purgeEvents(ended);
    const refused = await c.request({ type: "subscribe", rid: ended });
    assert.deepEqual([refused.type, refused.code, refused.rid], ["error", "gone", ended]);

    // Written and purged before any socket here follows it: this edge holds none of its
    // events in memory (a live tail it follows would serve a resume from there).
    const running = newRid();
    const created_at = new Date().toISOString();
    await broker.records.create({
      v: 1,
      rid: running,
      owner: ANONYMOUS,
      status: "running",
      created_at,
      request: { prompt: "hi" },
      steers: [],
      epoch: 1,
    });
    const w2 = writer.logs.writer(running);
    for (const e of [START, token(1), token(2)]) await w2.append(e);
    await tools.purgeEvents(running, 1);
    const reader = await connect();
    assert.equal((await reader.request({ type: "subscribe", rid: running })).type, "ok");
    const gone = await reader.next(isError("gone"));
    assert.equal(gone.rid, running);
    assert.equal("id" in gone, false, "not an answer to the subscribe: it came later");
    assert.deepEqual(reader.events(running), []);
  });

  test("MAX_SUBSCRIPTIONS_PER_SOCKET: one more is rate_limited; the same rid again is not one more", async () => {
    const limited = await serveSessions(broker, { limits: { subscriptionsPerSocket: 1 } });
    try {
      const c = await pool.connect(limited.url);
      const rid = await generate(c);
      const refused = await c.request({ type: "generate", prompt: "another" });
      assert.equal(refused.code, "rate_limited", JSON.stringify(refused));
      assert.match(refused.message, /MAX_SUBSCRIPTIONS_PER_SOCKET/);
      assert.equal((await c.request({ type: "subscribe", rid })).type, "ok");
      assert.equal((await c.request({ type: "unsubscribe", rid })).type, "ok");
      assert.equal((await c.request({ type: "subscribe", rid: await generate(await connect()) })).type, "ok", "a slot was freed");
    } finally {
      await limited.close();
    }
  });

  test("a socket's close closes its subscriptions", async () => {
    const own = await serveSessions(broker);
    try {
      const c = await pool.connect(own.url);
      await generate(c);
      await generate(c);
      const session = [...own.sessions.values()][0];
      assert.equal(session?.subscriptions, 2);
      c.close();
      await c.untilClosed();
      await until(
        async () => (await own.deps.metrics.registry.getSingleMetric("unbroken_edge_streams")?.get())?.values[0]?.value === 0,
        "streams closed",
      );
      assert.equal(session?.subscriptions, 0);
    } finally {
      await own.close();
    }
  });
});

test("goaway sends {type: goaway} and closes the socket with 1001", async () => {
  const c = await connect();
  const session = server.sessions.get(c.frames[0]?.session);
  assert.ok(session);
  session.goaway();
  const { code } = await c.untilClosed();
  assert.equal(code, 1001);
  assert.deepEqual(c.frames.at(-1), { type: "goaway" });
});

async function until(cond: () => Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
