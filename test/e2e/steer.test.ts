import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { RawClient, range, seqs, textOf } from "../helpers/raw-client.js";
import { Stack } from "../helpers/stack.js";

describe("steer", () => {
  let stack: Stack;
  before(async () => {
    stack = await Stack.start({ workerEnv: { SCRIPTED_TPS: "60" } });
  });
  after(() => stack.stop());

  it("marks where it took effect, changes what follows, and keeps seq contiguous", async () => {
    const c = await RawClient.connect(stack.url);
    const body = { prompt: "write 150 words about the sea", params: { seed: 11 } };
    const ref = await c.request({ type: "generate", ...body });
    const { rid } = await c.request({ type: "generate", ...body });
    await c.next((f) => f.type === "event" && f.rid === rid && f.seq >= 8);
    const ok = await c.request({ type: "steer", rid, text: "talk about cats instead" });
    assert.equal(ok.type, "ok");
    const events = await c.untilEnd(rid);
    const unsteered = await c.untilEnd(ref.rid);
    assert.deepEqual(seqs(events), range(1, events.length));
    const at = events.findIndex((e) => e.event.kind === "steer");
    assert.ok(at > 0, "a steer event is in the log");
    assert.equal(events[at]!.event.kind === "steer" && events[at]!.event.text, "talk about cats instead");
    assert.equal(events.filter((e) => e.event.kind === "steer").length, 1);
    const before = textOf(events.slice(0, at));
    const afterSteer = textOf(events.slice(at));
    const reference = textOf(unsteered);
    // Compared as text: a worker may coalesce tokens into events differently in two runs.
    // Before the marker the answer is what it would have been; after it, it is not.
    assert.ok(before.length > 0, "tokens came before the steer");
    assert.equal(before, reference.slice(0, before.length));
    assert.notEqual(afterSteer, reference.slice(before.length, before.length + afterSteer.length));
    assert.match(afterSteer, /cats/);
    assert.equal(events.at(-1)!.event.kind, "end");
    c.close();
  });

  it("answers finished once the response has ended", async () => {
    const c = await RawClient.connect(stack.url);
    const { rid } = await c.request({ type: "generate", prompt: "brief", params: { max_tokens: 4 } });
    await c.untilEnd(rid);
    const reply = await c.request({ type: "steer", rid, text: "too late" });
    assert.equal(reply.type, "error");
    assert.equal(reply.code, "finished");
    assert.equal(reply.rid, rid);
    c.close();
  });
});

describe("steer while queued", () => {
  let stack: Stack;
  before(async () => {
    stack = await Stack.start({ workers: 0, workerEnv: { SCRIPTED_TPS: "0" } });
  });
  after(() => stack.stop());

  it("applies before the first token: the steer event comes right after start", async () => {
    const c = await RawClient.connect(stack.url);
    const { rid } = await c.request({ type: "generate", prompt: "queued for a while", params: { max_tokens: 30, seed: 3 } });
    assert.equal((await c.request({ type: "steer", rid, text: "mention dragons" })).type, "ok");
    assert.equal((await c.request({ type: "steer", rid, text: "and castles" })).type, "ok");
    await stack.addWorker();
    const events = await c.untilEnd(rid);
    assert.deepEqual(
      events.slice(0, 3).map((e) => e.event.kind),
      ["start", "steer", "steer"],
    );
    assert.deepEqual(
      events.slice(1, 3).map((e) => (e.event.kind === "steer" ? e.event.text : "")),
      ["mention dragons", "and castles"],
    );
    assert.match(textOf(events), /dragons|castles/);
    assert.deepEqual(seqs(events), range(1, events.length));
    c.close();
  });
});
