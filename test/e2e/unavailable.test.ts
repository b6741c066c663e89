import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { RawClient, range, seqs, tokenCount } from "../helpers/raw-client.js";
import { Stack } from "../helpers/stack.js";

async function readyz(port: number): Promise<number> {
  return (await fetch(`http://127.0.0.1:${port}/readyz`)).status;
}

async function until(cond: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("when the edge cannot reach NATS", () => {
  let stack: Stack;
  before(async () => {
    stack = await Stack.start({ workerEnv: { SCRIPTED_TPS: "40" } });
  });
  after(() => stack.stop());

  it("answers unavailable, keeps sockets open, and resumes subscriptions with no gap or duplicate", async () => {
    const port = stack.edges[0]!.port;
    assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
    assert.equal(await readyz(port), 200);
    const c = await RawClient.connect(stack.url);
    const { rid } = await c.request({ type: "generate", prompt: "write 150 words through an outage", params: { max_tokens: 150 } });
    await c.next((f) => f.type === "event" && f.rid === rid && f.seq >= 5);

    await stack.nats.kill("SIGKILL");
    await until(async () => (await readyz(port)) === 503);
    for (const frame of [
      { type: "generate", prompt: "now?" },
      { type: "subscribe", rid },
      { type: "cancel", rid },
      { type: "steer", rid, text: "hello?" },
    ]) {
      const reply = await c.request(frame);
      assert.equal(reply.type, "error", JSON.stringify(reply));
      assert.equal(reply.code, "unavailable");
    }
    assert.equal((await c.request({ type: "ping" })).type, "pong");
    assert.equal((await c.request({ type: "unsubscribe", rid: "SomeOtherRid1" })).type, "ok");

    await stack.nats.restart();
    await until(async () => (await readyz(port)) === 200);
    const events = await c.untilEnd(rid, 60_000);
    assert.deepEqual(seqs(events), range(1, events.length));
    const end = events.at(-1)!.event;
    assert.equal(end.kind, "end");
    assert.equal(end.kind === "end" && end.reason, "length");
    assert.equal(tokenCount(events), 150);
    c.close();
  });
});

describe("a request no worker begins", () => {
  let stack: Stack;
  before(async () => {
    stack = await Stack.start({ workers: 0, edgeEnv: { QUEUE_TIMEOUT: "400ms" }, workerEnv: { QUEUE_TIMEOUT: "400ms" } });
  });
  after(() => stack.stop());

  it("ends with error no_worker after QUEUE_TIMEOUT, and a late worker does not start it", async () => {
    const c = await RawClient.connect(stack.url);
    const { rid } = await c.request({ type: "generate", prompt: "is anybody there" });
    const events = await c.untilEnd(rid);
    assert.equal(events.length, 1);
    const end = events[0]!.event;
    assert.equal(end.kind === "end" && end.reason, "error");
    assert.equal(end.kind === "end" && end.error?.code, "no_worker");
    assert.deepEqual(end.kind === "end" && end.usage, { prompt_tokens: 0, completion_tokens: 0 });
    await stack.addWorker({ SCRIPTED_TPS: "0" });
    const { rid: next } = await c.request({ type: "generate", prompt: "second", params: { max_tokens: 3 } });
    await c.untilEnd(next);
    const r = await RawClient.connect(stack.url);
    await r.request({ type: "subscribe", rid });
    await r.untilEnd(rid);
    assert.equal(r.events(rid).length, 1);
    c.close();
    r.close();
  });

  it("is ended by a late subscriber when the accepting edge is gone", async () => {
    // Closing the socket that generated it takes its subscription (and timer) away.
    const c = await RawClient.connect(stack.url);
    await stack.workers[0]?.close();
    stack.workers.length = 0;
    const { rid } = await c.request({ type: "generate", prompt: "orphaned in the queue" });
    c.terminate();
    await new Promise((r) => setTimeout(r, 600));
    const r = await RawClient.connect(stack.url);
    assert.equal((await r.request({ type: "subscribe", rid })).type, "ok");
    const events = await r.untilEnd(rid);
    assert.equal(events.length, 1);
    assert.equal(events[0]!.event.kind === "end" && events[0]!.event.error?.code, "no_worker");
    r.close();
  });
});
