import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { RawClient, range, seqs, textOf } from "../helpers/raw-client.js";
import { Stack } from "../helpers/stack.js";

// PROTOCOL "Events" guarantees, checked on several responses streaming at once.
describe("event log guarantees", () => {
  let stack: Stack;
  before(async () => {
    stack = await Stack.start({ workerEnv: { SCRIPTED_TPS: "300" } });
  });
  after(() => stack.stop());

  it("gives each response contiguous seqs from 1, start first and exactly one end last", async () => {
    const c = await RawClient.connect(stack.url);
    const accepted = await Promise.all(
      [0, 1, 2, 3, 4].map((i) =>
        c.request({ type: "generate", prompt: `response number ${i}`, params: { max_tokens: 40 + i * 7, seed: i } }),
      ),
    );
    for (const [i, a] of accepted.entries()) {
      assert.equal(a.type, "accepted");
      assert.equal(a.existing, false);
      const events = await c.untilEnd(a.rid);
      assert.deepEqual(seqs(events), range(1, events.length));
      assert.equal(events[0]?.event.kind, "start");
      assert.equal(events.filter((e) => e.event.kind === "end").length, 1);
      const end = events.at(-1)?.event;
      assert.equal(end?.kind, "end");
      if (end?.kind !== "end") return;
      assert.equal(end.reason, "length");
      assert.equal(end.usage.completion_tokens, 40 + i * 7);
      // Tokens may share an event (coalescing); each scripted token is one word.
      assert.equal(textOf(events).trim().split(/\s+/).length, 40 + i * 7);
      assert.match(events[0]?.event.kind === "start" ? events[0].event.created_at : "", /^\d{4}-\d\d-\d\dT.*Z$/);
    }
    c.close();
  });

  it("reads the same text live, from a mid-stream subscriber, and after the end", async () => {
    const live = await RawClient.connect(stack.url);
    const rids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const a = await live.request({ type: "generate", prompt: `write 120 words on topic ${i}` });
      rids.push(a.rid);
    }
    // A second socket joins while they stream, from the start.
    await live.next((f) => f.type === "event" && f.rid === rids[0] && f.seq >= 5);
    const joiner = await RawClient.connect(stack.url);
    for (const rid of rids) assert.equal((await joiner.request({ type: "subscribe", rid })).type, "ok");
    for (const rid of rids) {
      const liveEvents = await live.untilEnd(rid);
      const joined = await joiner.untilEnd(rid);
      const later = await RawClient.connect(stack.url);
      assert.equal((await later.request({ type: "subscribe", rid, after: 0 })).type, "ok");
      const replayed = await later.untilEnd(rid);
      later.close();
      assert.ok(textOf(liveEvents).length > 0);
      assert.equal(textOf(joined), textOf(liveEvents));
      assert.equal(textOf(replayed), textOf(liveEvents));
      assert.deepEqual(seqs(replayed), range(1, liveEvents.length));
      assert.deepEqual(seqs(joined), range(1, liveEvents.length));
    }
    live.close();
    joiner.close();
  });

  it("resumes a replay from any after, and sends nothing after the end when after is past it", async () => {
    const c = await RawClient.connect(stack.url);
    const { rid } = await c.request({ type: "generate", prompt: "short one", params: { max_tokens: 12 } });
    const all = await c.untilEnd(rid);
    const mid = Math.floor(all.length / 2);
    const r = await RawClient.connect(stack.url);
    assert.equal((await r.request({ type: "subscribe", rid, after: mid })).type, "ok");
    const tail = await r.untilEnd(rid);
    assert.deepEqual(seqs(tail), range(mid + 1, all.length));
    const { rid: other } = await c.request({ type: "generate", prompt: "another short one", params: { max_tokens: 2 } });
    const otherAll = await c.untilEnd(other);
    const n = r.frames.length;
    assert.equal((await r.request({ type: "subscribe", rid, after: all.length })).type, "ok");
    // The bound: a replay asked for after it, on the same socket, has come to its end.
    assert.equal((await r.request({ type: "subscribe", rid: other, after: otherAll.length - 1 })).type, "ok");
    await r.next((f) => f.type === "event" && f.rid === other && f.event.kind === "end", 15_000, n);
    assert.deepEqual(
      r.frames.slice(n).filter((f) => f.type === "event" && f.rid === rid),
      [],
    );
    c.close();
    r.close();
  });

  it("restarts a subscription from the new after when subscribe is repeated, and unsubscribe stops it", async () => {
    const c = await RawClient.connect(stack.url);
    const { rid } = await c.request({ type: "generate", prompt: "a repeated subscribe", params: { max_tokens: 20 } });
    const all = await c.untilEnd(rid);
    // Tokens may share events, so "after" is counted back from the end the log has.
    const after = all.length - 3;
    const r = await RawClient.connect(stack.url);
    await r.request({ type: "subscribe", rid, after: 0 });
    await r.untilEnd(rid);
    const mark = r.frames.length;
    await r.request({ type: "subscribe", rid, after });
    await r.next((f) => f.type === "event" && f.event.kind === "end", 15_000, mark);
    assert.deepEqual(seqs(r.events(rid).filter((_, i, arr) => i >= arr.length - (all.length - after))), range(after + 1, all.length));
    assert.equal((await r.request({ type: "unsubscribe", rid })).type, "ok");
    assert.equal((await r.request({ type: "unsubscribe", rid: "NeverSubscribed1" })).type, "ok");
    c.close();
    r.close();
  });
});
