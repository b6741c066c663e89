import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { FakeOpenAI, answer, writeTinyGguf } from "@unbroken/testing";
import { RawClient, range, seqs, textOf } from "../helpers/raw-client.js";
import { Stack } from "../helpers/stack.js";

// Real generators behind the whole stack: node-llama-cpp on a tiny GGUF the test writes,
// and an OpenAI-compatible upstream that is a real HTTP server.
describe("GENERATOR=llama through the stack", () => {
  let stack: Stack;
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "unbroken-gguf-"));
    const model = path.join(dir, "tiny.gguf");
    await writeTinyGguf(model);
    stack = await Stack.start({ workerEnv: { MODEL_PATH: model, LLAMA_THREADS: "1", LLAMA_GPU: "false", CONCURRENCY: "2" } });
  });
  after(async () => {
    await stack.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("streams a chat answer, with max_tokens, identical live and replayed", async () => {
    const c = await RawClient.connect(stack.url);
    const { rid } = await c.request({
      type: "generate",
      messages: [{ role: "user", content: "hello" }],
      params: { max_tokens: 40, seed: 1 },
    });
    const events = await c.untilEnd(rid, 60_000);
    assert.deepEqual(seqs(events), range(1, events.length));
    const end = events.at(-1)!.event;
    assert.equal(end.kind === "end" && end.reason, "length");
    assert.equal(end.kind === "end" && end.usage.completion_tokens, 40);
    assert.ok(end.kind === "end" && end.usage.prompt_tokens > 0);
    const r = await RawClient.connect(stack.url);
    await r.request({ type: "subscribe", rid });
    assert.equal(textOf(await r.untilEnd(rid)), textOf(events));
    c.close();
    r.close();
  });

  it("cancels (partial text kept) and steers (marker, continuation, contiguous seq)", async () => {
    const c = await RawClient.connect(stack.url);
    const long = { messages: [{ role: "user", content: "go on" }], params: { max_tokens: 3000, seed: 2 } };
    const steered = await c.request({ type: "generate", ...long });
    await c.next((f) => f.type === "event" && f.rid === steered.rid && f.seq >= 5, 60_000);
    assert.equal((await c.request({ type: "steer", rid: steered.rid, text: "be brief" })).type, "ok");
    const marker = await c.next((f) => f.type === "event" && f.rid === steered.rid && f.event.kind === "steer", 60_000);
    await c.next((f) => f.type === "event" && f.rid === steered.rid && f.event.kind === "token" && f.seq > marker.seq + 3, 60_000);
    assert.equal((await c.request({ type: "cancel", rid: steered.rid })).type, "ok");
    const events = await c.untilEnd(steered.rid, 60_000);
    const at = events.findIndex((e) => e.event.kind === "steer");
    assert.ok(at > 1);
    assert.ok(
      events.slice(at + 1).some((e) => e.event.kind === "token"),
      "text follows the steer",
    );
    assert.deepEqual(seqs(events), range(1, events.length));
    const end = events.at(-1)!.event;
    assert.equal(end.kind === "end" && end.reason, "cancelled");
    assert.ok(textOf(events).length > 0);
    c.close();
  });
});

describe("GENERATOR=openai through the stack", () => {
  let stack: Stack;
  let upstream: FakeOpenAI;
  before(async () => {
    upstream = new FakeOpenAI([{ steps: answer(["Rivers", " run", " to", " the", " sea", "."], { usage: [9, 6] }) }]);
    const baseUrl = await upstream.start();
    stack = await Stack.start({ workerEnv: { OPENAI_BASE_URL: baseUrl, OPENAI_MODEL: "fake-model" } });
  });
  after(async () => {
    await stack.stop();
    await upstream.close();
  });

  it("makes an OpenAI-compatible server's answer resumable", async () => {
    const c = await RawClient.connect(stack.url);
    const { rid } = await c.request({ type: "generate", prompt: "tell me about rivers", params: { max_tokens: 50, temperature: 0.2 } });
    const events = await c.untilEnd(rid);
    assert.equal(textOf(events), "Rivers run to the sea.");
    assert.equal(events[0]!.event.kind === "start" && events[0]!.event.model, "fake-model");
    const end = events.at(-1)!.event;
    assert.deepEqual(end.kind === "end" && [end.reason, end.usage], ["stop", { prompt_tokens: 9, completion_tokens: 6 }]);
    const sent = upstream.requests[0]!.body as { messages: unknown; max_tokens: number; temperature: number; stream: boolean };
    assert.deepEqual(sent.messages, [{ role: "user", content: "tell me about rivers" }]);
    assert.deepEqual([sent.max_tokens, sent.temperature, sent.stream], [50, 0.2, true]);
    c.close();
  });
});
