import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { RawClient, range, seqs, tokenCount } from "../helpers/raw-client.js";
import { Stack } from "../helpers/stack.js";

describe("cancel", () => {
  let stack: Stack;
  before(async () => {
    stack = await Stack.start({ edges: 2, workerEnv: { SCRIPTED_TPS: "50" } });
  });
  after(() => stack.stop());

  it("ends the response with reason cancelled for every subscriber, and nothing follows", async () => {
    const a = await RawClient.connect(stack.edges[0]!.url);
    const b = await RawClient.connect(stack.edges[1]!.url);
    const { rid } = await a.request({ type: "generate", prompt: "write 500 words that get cancelled" });
    await b.request({ type: "subscribe", rid });
    await b.next((f) => f.type === "event" && f.rid === rid && f.seq >= 6);
    const ok = await b.request({ type: "cancel", rid });
    assert.equal(ok.type, "ok");
    const okAt = b.frames.indexOf(ok);
    for (const c of [a, b]) {
      const events = await c.untilEnd(rid);
      const end = events.at(-1)!.event;
      assert.equal(end.kind === "end" && end.reason, "cancelled");
      assert.deepEqual(seqs(events), range(1, events.length));
      const tokens = tokenCount(events);
      assert.equal(end.kind === "end" && end.usage.completion_tokens, tokens);
      assert.ok(tokens < 400, "the generation stopped early");
    }
    // `ok` means settled: the end is already in the log, so no token can come after it.
    assert.deepEqual(
      b.frames.slice(okAt + 1).filter((f) => f.type === "event" && f.event.kind === "token"),
      [],
    );
    a.close();
    b.close();
  });

  it("answers ok for a response that already ended, and leaves its log alone", async () => {
    const c = await RawClient.connect(stack.url);
    const { rid } = await c.request({ type: "generate", prompt: "tiny", params: { max_tokens: 3 } });
    const events = await c.untilEnd(rid);
    assert.equal((await c.request({ type: "cancel", rid })).type, "ok");
    assert.equal((await c.request({ type: "cancel", rid })).type, "ok");
    const r = await RawClient.connect(stack.url);
    await r.request({ type: "subscribe", rid });
    const again = await r.untilEnd(rid);
    assert.deepEqual(again, events);
    c.close();
    r.close();
  });
});

describe("cancel while queued", () => {
  let stack: Stack;
  before(async () => {
    stack = await Stack.start({ workers: 0, workerEnv: { SCRIPTED_TPS: "0" } });
  });
  after(() => stack.stop());

  it("writes a lone end at seq 1, and no worker starts it later", async () => {
    const c = await RawClient.connect(stack.url);
    const { rid } = await c.request({ type: "generate", prompt: "never to begin" });
    assert.equal((await c.request({ type: "cancel", rid })).type, "ok");
    const events = await c.untilEnd(rid);
    assert.equal(events.length, 1);
    assert.equal(events[0]!.seq, 1);
    assert.equal(events[0]!.event.kind === "end" && events[0]!.event.reason, "cancelled");
    // A worker arrives and drains the queue (FIFO): once a later request has completed,
    // the cancelled one has been seen and dropped.
    await stack.addWorker();
    const { rid: next } = await c.request({ type: "generate", prompt: "after the cancelled one", params: { max_tokens: 5 } });
    await c.untilEnd(next);
    const r = await RawClient.connect(stack.url);
    await r.request({ type: "subscribe", rid });
    await r.untilEnd(rid);
    assert.equal((await r.request({ type: "ping" })).type, "pong");
    assert.equal(r.events(rid).length, 1);
    c.close();
    r.close();
  });
});
