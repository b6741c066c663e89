import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { EventFrame } from "@unbroken/protocol";
import { RawClient, range, seqs, textOf, tokenCount } from "../helpers/raw-client.js";
import { Stack } from "../helpers/stack.js";

/** Reads rid through `drops` socket deaths (terminate, not close), resuming from the last seq each time. */
async function readWithDrops(urls: string[], rid: string, first: RawClient, drops: number): Promise<EventFrame[]> {
  const got: EventFrame[] = [];
  let client = first;
  for (let round = 0; ; round++) {
    const from = got.length;
    if (round < drops) {
      await client.next((f) => f.type === "event" && f.rid === rid && f.seq >= from + 8);
      client.terminate();
      got.push(...client.events(rid).filter((e) => e.seq > from));
      client = await RawClient.connect(urls[(round + 1) % urls.length] as string);
      assert.equal((await client.request({ type: "subscribe", rid, after: got.length })).type, "ok");
      continue;
    }
    const events = await client.untilEnd(rid);
    got.push(...events.filter((e) => e.seq > from));
    client.close();
    return got;
  }
}

describe("resume after a dropped socket", () => {
  let stack: Stack;
  before(async () => {
    stack = await Stack.start({ edges: 2, workerEnv: { SCRIPTED_TPS: "100" } });
  });
  after(() => stack.stop());

  for (const [name, edgesOf] of [
    ["to the same edge", (s: Stack) => [s.edges[0]!.url]],
    ["alternating between two edges", (s: Stack) => s.edges.map((e) => e.url)],
  ] as const) {
    it(`loses and duplicates nothing ${name}`, async () => {
      const urls = edgesOf(stack);
      const reference = await RawClient.connect(stack.edges[1]!.url);
      const c = await RawClient.connect(urls[0]!);
      const { rid } = await c.request({ type: "generate", prompt: "write 90 words about resuming", params: { seed: 7 } });
      await reference.request({ type: "subscribe", rid });
      const got = await readWithDrops(urls, rid, c, 3);
      const uninterrupted = await reference.untilEnd(rid);
      assert.deepEqual(seqs(got), range(1, uninterrupted.length));
      assert.equal(textOf(got), textOf(uninterrupted));
      assert.equal(got.at(-1)?.event.kind, "end");
      reference.close();
    });
  }

  it("keeps generating when the only client vanishes: disconnect is not cancel", async () => {
    const c = await RawClient.connect(stack.url);
    const { rid } = await c.request({ type: "generate", prompt: "write 60 words nobody watches", params: { max_tokens: 60 } });
    await c.next((f) => f.type === "event" && f.rid === rid && f.event.kind === "token");
    c.terminate();
    const later = await RawClient.connect(stack.edges[1]!.url);
    await later.request({ type: "subscribe", rid });
    const events = await later.untilEnd(rid);
    const end = events.at(-1)?.event;
    assert.equal(end?.kind, "end");
    assert.equal(end?.kind === "end" && end.reason, "length");
    assert.equal(tokenCount(events), 60);
    later.close();
  });

  it("stops sending a response's events after unsubscribe", async () => {
    const c = await RawClient.connect(stack.url);
    const { rid } = await c.request({ type: "generate", prompt: "write 80 words to leave", params: { max_tokens: 80 } });
    await c.next((f) => f.type === "event" && f.rid === rid && f.seq >= 3);
    const ok = await c.request({ type: "unsubscribe", rid });
    assert.equal(ok.type, "ok");
    const at = c.frames.indexOf(ok);
    // Follow the same response to its end on another socket, then look back at the first.
    const watcher = await RawClient.connect(stack.url);
    await watcher.request({ type: "subscribe", rid });
    await watcher.untilEnd(rid);
    assert.equal((await c.request({ type: "ping" })).type, "pong");
    assert.deepEqual(
      c.frames.slice(at + 1).filter((f) => f.type === "event"),
      [],
    );
    c.close();
    watcher.close();
  });
});
