// Retention (docs/protocol.md "Retention and gone"): a response past RETENTION answers `gone`
// (SSE 410) while the edge can still tell it existed, then `not_found`; a log whose events
// expired never leaves a reader waiting.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { Broker, silentLog } from "@unbroken/store";
import { NatsTools } from "@unbroken/testing";
import { RawClient, tokenCount, type Frame } from "../helpers/raw-client.js";
import { Stack } from "../helpers/stack.js";

const newRid = () => randomBytes(16).toString("base64url");

/** Polls `probe` until `done` says so; fails naming `what` after a generous `ms`. */
async function poll<T>(probe: () => Promise<T>, done: (v: T) => boolean, what: string, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (done(v)) return v;
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(v)} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe("with RETENTION=2s", () => {
  let stack: Stack;
  before(async () => {
    stack = await Stack.start({ edgeEnv: { RETENTION: "2s" }, workerEnv: { RETENTION: "2s", SCRIPTED_TPS: "0" } });
  });
  after(async () => {
    await stack?.stop();
  });

  it("an expired response is gone (SSE 410), an unknown rid not_found; later (past 2 × RETENTION) not_found", async () => {
    const c = await RawClient.connect(stack.url);
    const { rid } = await c.request({ type: "generate", prompt: "short lived", params: { max_tokens: 3 } });
    const events = await c.untilEnd(rid);
    assert.equal(tokenCount(events), 3);
    const sse = (r: string) => fetch(`http://127.0.0.1:${stack.edges[0]!.port}/v1/responses/${r}/events`);
    const subscribe = (r: string) => c.request({ type: "subscribe", rid: r });
    const codes: string[] = [];
    const gone = await poll(
      () => subscribe(rid),
      (f: Frame) => {
        codes.push(f.code ?? f.type);
        return f.type === "error";
      },
      "the response expiring",
    );
    assert.equal(gone.code, "gone", `the first error after expiry (${codes.join(", ")})`);
    assert.equal(gone.rid, rid);
    assert.equal((await sse(rid)).status, 410);
    assert.equal((await subscribe(newRid())).code, "not_found");
    assert.equal((await sse(newRid())).status, 404);
    // Once the edge's own memory of the rid expires too, it can no longer tell: not_found.
    const later = await poll(
      () => subscribe(rid),
      (f: Frame) => f.code !== "gone",
      "the rid being forgotten",
    );
    assert.equal(later.code, "not_found");
    c.close();
  });
  it("a thread's turns expire with their answers: a turn kept by a reader opens as gone, and the thread is then unknown", async () => {
    const c = await RawClient.connect(stack.url);
    const thread = newRid();
    const { rid } = await c.request({ type: "generate", thread, prompt: "short lived turn", params: { max_tokens: 2 } });
    await c.untilEnd(rid);
    assert.equal((await c.request({ type: "follow", thread })).type, "ok");
    const turn = await c.next((f) => f.type === "turn" && f.thread === thread);
    assert.equal(turn.rid, rid);
    const expired = await poll(
      () => c.request({ type: "subscribe", rid: turn.rid }),
      (f: Frame) => f.type === "error",
      "the turn's answer expiring",
    );
    assert.equal(expired.code, "gone");
    const unknown = await poll(
      () => c.request({ type: "follow", thread }),
      (f: Frame) => f.type === "error",
      "the thread's last turn expiring",
    );
    assert.equal(unknown.code, "not_found", "with AUTH=none an expired thread is an unknown one");
    c.close();
  });
});

describe("events expired under a record that is still there", () => {
  let stack: Stack;
  let broker: Broker;
  let tools: NatsTools;
  before(async () => {
    stack = await Stack.start({ workerEnv: { SCRIPTED_TPS: "0" } });
    broker = await Broker.connect({ url: stack.nats.url, name: "test", retentionMs: 24 * 3_600_000, log: silentLog });
    tools = await NatsTools.connect(stack.nats.url);
  });
  after(async () => {
    await tools?.close();
    await broker?.close();
    await stack?.stop();
  });

  /** What JetStream's max_age does to a log: its oldest events go (all but the last `keep`). */
  const expire = (rid: string, keep?: number) => tools.purgeEvents(rid, keep);

  /** A response that has ended: its `end` read, and its record updated after it. */
  async function ended(c: RawClient, tokens: number): Promise<{ rid: string; count: number }> {
    const { rid } = await c.request({ type: "generate", prompt: "to expire", params: { max_tokens: tokens } });
    const count = (await c.untilEnd(rid)).length;
    await poll(
      () => broker.records.get(rid),
      (s) => s?.record.status === "ended",
      "the record saying ended",
    );
    return { rid, count };
  }

  it("an ended response with no event left: subscribe and SSE answer gone / 410", async () => {
    const c = await RawClient.connect(stack.url);
    const { rid } = await ended(c, 3);
    await expire(rid);
    const err = await c.request({ type: "subscribe", rid });
    assert.equal(err.code, "gone", JSON.stringify(err));
    const res = await fetch(`http://127.0.0.1:${stack.edges[0]!.port}/v1/responses/${rid}/events`);
    assert.equal(res.status, 410);
    assert.equal(((await res.json()) as { code: string }).code, "gone");
    c.close();
  });

  it("the first events expired: reading from the start is gone, reading what is left works", async () => {
    const c = await RawClient.connect(stack.url);
    const { rid, count } = await ended(c, 8);
    await expire(rid, 3);
    assert.equal((await c.request({ type: "subscribe", rid, after: 0 })).code, "gone");
    const d = await RawClient.connect(stack.url);
    assert.equal((await d.request({ type: "subscribe", rid, after: count - 3 })).type, "ok");
    const events = await d.untilEnd(rid);
    assert.deepEqual(
      events.map((e) => e.seq),
      [count - 2, count - 1, count],
    );
    c.close();
    d.close();
  });
});
