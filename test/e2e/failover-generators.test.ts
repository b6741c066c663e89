import assert from "node:assert/strict";
import path from "node:path";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import {
  FakeOpenAI,
  ROLE_STEP,
  answer,
  openaiToolCall,
  toolAnswer,
  makeTempDir,
  startNatsServer,
  writeCorruptGguf,
  writeTinyGguf,
  type NatsServerHandle,
  type ServiceHandle,
  type TempDir,
} from "@unbroken/testing";
import { RawClient, textOf } from "../helpers/raw-client.js";
import { assertWhole, handovers, msUntil, runnerOf, startEdge, startWorker, wsUrl } from "../helpers/failover.js";

// Failover and stalls with the model-backed generators, in real worker processes: llama
// on a tiny GGUF written here (continues the partial answer), a llama worker whose model
// cannot load (the response ends with its error, never hangs), and an OpenAI upstream
// that hangs (STALL_TIMEOUT ends the response and frees the slot); an OpenAI worker killed in
// the middle of a tool call (the next one drops the open call and asks the upstream again).

describe("failover and stalls with model-backed generators", () => {
  let nats: NatsServerHandle;
  let dir: TempDir;
  let model: string;
  let corrupt: string;
  let services: ServiceHandle[] = [];
  let c: RawClient | undefined;
  const timings: string[] = [];

  before(async () => {
    dir = await makeTempDir("unbroken-failover-");
    model = path.join(dir.path, "tiny.gguf");
    corrupt = path.join(dir.path, "corrupt.gguf");
    await writeTinyGguf(model);
    await writeCorruptGguf(corrupt, "truncated");
  });
  after(async () => {
    await dir?.remove();
    for (const t of timings) console.log(`# failover timing: ${t}`);
  });
  beforeEach(async () => {
    nats = await startNatsServer();
  });
  afterEach(async () => {
    c?.close();
    await Promise.allSettled(services.map((s) => s.kill()));
    services = [];
    await nats.stop();
  });

  async function edge(): Promise<RawClient> {
    const e = await startEdge({ NATS_URL: nats.url });
    services.push(e);
    c = await RawClient.connect(wsUrl(e));
    return c;
  }

  const llamaEnv = (modelPath: string): Record<string, string> => ({
    NATS_URL: nats.url,
    MODEL_PATH: modelPath,
    LLAMA_THREADS: "1",
    LLAMA_GPU: "false",
    CONCURRENCY: "1",
    TAKEOVER_TIMEOUT: "2s",
  });

  it("llama: killed mid-answer, another llama worker continues the partial answer", async () => {
    const [a, b] = [await startWorker("la", llamaEnv(model)), await startWorker("lb", llamaEnv(model))];
    services.push(a, b);
    const client = await edge();
    const { rid } = await client.request({
      type: "generate",
      prompt: "Tell me about the river valley",
      params: { seed: 3, max_tokens: 3000 },
    });
    const runner = await runnerOf([a, b], rid);
    await client.next((f) => f.type === "event" && f.rid === rid && f.seq >= 20, 60_000);
    const killedAt = Date.now();
    await runner.kill();
    const took = await msUntil(
      client,
      killedAt,
      (f) => f.type === "event" && f.rid === rid && (f.event as { kind: string }).kind === "handover",
    );
    timings.push(`llama, SIGKILL → handover event at the client: ${took} ms (TAKEOVER_TIMEOUT 2 s)`);
    const events = await client.untilEnd(rid, 120_000);
    const end = assertWhole(events);
    assert.ok(end.reason === "stop" || end.reason === "length", JSON.stringify(end));
    const [marker] = handovers(events);
    assert.ok(marker);
    assert.equal(marker.worker, runner === a ? "lb" : "la");
    const before = textOf(events.slice(0, marker.seq - 1));
    assert.ok(before.length > 0, "the dead worker wrote text");
    assert.ok(textOf(events).startsWith(before));
    assert.ok(end.usage.completion_tokens <= 3000);
    const other = runner === a ? b : a;
    const line = await other.waitForLine((o) => o.msg === "generation continued" && o.rid === rid);
    assert.ok(line.resumed > 0, "the new worker was given the text so far");
  });

  it("a worker whose model cannot load takes the response over and ends it with model_unavailable", async () => {
    const env = { NATS_URL: nats.url, SCRIPTED_TPS: "40", TAKEOVER_TIMEOUT: "2s", CONCURRENCY: "1" };
    const a = await startWorker("sa", env);
    services.push(a);
    const client = await edge();
    const { rid } = await client.request({ type: "generate", prompt: "write 300 words for a broken successor" });
    await client.next((f) => f.type === "event" && f.rid === rid && f.seq >= 5);
    const b = await startWorker("broken", llamaEnv(corrupt));
    services.push(b);
    await a.kill();
    const events = await client.untilEnd(rid, 60_000);
    const end = assertWhole(events);
    assert.equal(end.reason, "error");
    assert.equal(end.error?.code, "model_unavailable");
    assert.equal(handovers(events)[0]?.worker, "broken");
  });

  it("an upstream that hangs: STALL_TIMEOUT ends the response with stalled, and the worker serves the next one", async () => {
    const fake = new FakeOpenAI([{ steps: [{ text: "Half" }, { text: " an" }, { hang: true }] }, { steps: answer(["All", " good."]) }]);
    const baseUrl = await fake.start();
    try {
      const w = await startWorker("oa", {
        NATS_URL: nats.url,
        OPENAI_BASE_URL: baseUrl,
        OPENAI_MODEL: "fake-model",
        STALL_TIMEOUT: "1s",
        CONCURRENCY: "1",
      });
      services.push(w);
      const client = await edge();
      const { rid } = await client.request({ type: "generate", prompt: "hang please" });
      const events = await client.untilEnd(rid, 60_000);
      const end = assertWhole(events);
      assert.equal(end.reason, "error");
      assert.equal(end.error?.code, "stalled");
      assert.equal(textOf(events), "Half an");
      await fake.requests[0]!.closedByClient; // the stalled upstream request was closed
      const next = await client.request({ type: "generate", prompt: "now answer" });
      const rest = await client.untilEnd(next.rid, 60_000);
      assert.equal(assertWhole(rest).reason, "stop");
      assert.equal(textOf(rest), "All good.");
    } finally {
      await fake.close();
    }
  });
  it("openai: killed -9 in the middle of a tool call, the next worker drops the open call and the upstream makes it again", async () => {
    const fake = new FakeOpenAI([
      {
        steps: [
          ROLE_STEP,
          { reasoning: "Need the weather." },
          ...openaiToolCall(0, "call_lost", "get_weather", '{"city":', 4),
          { hang: true },
        ],
      },
      { steps: toolAnswer(openaiToolCall(0, "call_again", "get_weather", '{"city":"Paris"}'), { reasoning: ["Thinking again."] }) },
    ]);
    const baseUrl = await fake.start();
    try {
      const env = { NATS_URL: nats.url, OPENAI_BASE_URL: baseUrl, OPENAI_MODEL: "fake-model", CONCURRENCY: "1", TAKEOVER_TIMEOUT: "2s" };
      const [a, b] = [await startWorker("oa", env), await startWorker("ob", env)];
      services.push(a, b);
      const client = await edge();
      const { rid } = await client.request({ type: "generate", messages: [{ role: "user", content: "Weather in Paris?" }] });
      const runner = await runnerOf([a, b], rid);
      await client.next((f) => f.type === "event" && f.rid === rid && f.event.kind === "tool_args", 60_000);
      await runner.kill();
      const events = await client.untilEnd(rid, 60_000);
      const end = assertWhole(events);
      assert.equal(end.reason, "tool_calls");
      const after = handovers(events)[0]!.seq;
      const kinds = events.filter((e) => e.seq > after).map((e) => e.event.kind);
      assert.deepEqual([...new Set(kinds)], ["tool_dropped", "tool_call", "tool_args", "tool_done", "end"]);
      const ev = events.map((e) => e.event as Record<string, unknown>);
      assert.deepEqual(
        ev.filter((e) => e.kind === "tool_dropped"),
        [{ kind: "tool_dropped", id: "call_lost", reason: "worker_lost" }],
      );
      const done = ev.filter((e) => e.kind === "tool_done");
      assert.deepEqual(done, [{ kind: "tool_done", id: "call_again", arguments: '{"city":"Paris"}' }]);
      const reasoning = ev.filter((e) => e.kind === "reasoning").map((e) => e.text);
      assert.equal(reasoning.join(""), "Need the weather.", "the continuation's reasoning is not written again");
      assert.equal(fake.requests.length, 2);
    } finally {
      await fake.close();
    }
  });
});
