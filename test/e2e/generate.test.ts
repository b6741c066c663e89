import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { RID_PATTERN } from "@unbroken/protocol";
import { RawClient, range, seqs, textOf, tokenCount } from "../helpers/raw-client.js";
import { Stack } from "../helpers/stack.js";

describe("generate", () => {
  let stack: Stack;
  before(async () => {
    stack = await Stack.start({ edges: 2, workerEnv: { SCRIPTED_TPS: "200" } });
  });
  after(() => stack.stop());

  it("chooses an unguessable rid when the client gives none", async () => {
    const c = await RawClient.connect(stack.url);
    const a = await c.request({ type: "generate", messages: [{ role: "user", content: "hi" }], params: { max_tokens: 2 } });
    const b = await c.request({ type: "generate", messages: [{ role: "user", content: "hi" }], params: { max_tokens: 2 } });
    assert.match(a.rid, RID_PATTERN);
    assert.notEqual(a.rid, b.rid);
    assert.ok(a.rid.length >= 16, "at least 96 random bits");
    await c.untilEnd(a.rid);
    await c.untilEnd(b.rid);
    c.close();
  });

  it("is idempotent by rid: a repeat starts nothing and the first body wins", async () => {
    const rid = "client-chosen-rid-0001";
    const c = await RawClient.connect(stack.edges[0]!.url);
    const first = await c.request({ type: "generate", rid, prompt: "the first body", params: { max_tokens: 25, seed: 1 } });
    assert.deepEqual([first.type, first.rid, first.existing], ["accepted", rid, false]);
    const again = await c.request({ type: "generate", rid, prompt: "the first body", params: { max_tokens: 25, seed: 1 } });
    assert.deepEqual([again.type, again.existing], ["accepted", true]);
    // Another socket, another edge, another body: still the same response.
    const d = await RawClient.connect(stack.edges[1]!.url);
    const other = await d.request({ type: "generate", rid, prompt: "a different body", params: { max_tokens: 99 }, after: 2 });
    assert.deepEqual([other.type, other.existing], ["accepted", true]);
    // The repeat on the same socket restarted its subscription (from after 0), as a
    // repeated subscribe does, so read the whole log afresh.
    const fromThird = await d.untilEnd(rid);
    const r = await RawClient.connect(stack.url);
    await r.request({ type: "subscribe", rid });
    const events = await r.untilEnd(rid);
    r.close();
    assert.deepEqual(seqs(events), range(1, events.length));
    assert.deepEqual(seqs(fromThird), range(3, events.length));
    assert.equal(events.filter((e) => e.event.kind === "start").length, 1);
    assert.equal(tokenCount(events), 25);
    assert.equal(textOf(fromThird), textOf(events.slice(2)));
    c.close();
    d.close();
  });
});
