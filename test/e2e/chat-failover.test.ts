// A streamed chat completion whose worker is killed (SIGKILL) in the middle of a tool call:
// the chat stream is the answer's log as chunks, so the call it shows must be the one an
// uninterrupted run makes, once, complete; a call the next worker drops (an OpenAI upstream
// cannot continue half-written arguments) is never shown. Real worker and edge processes;
// TAKEOVER_TIMEOUT 2 s so the other worker takes over soon.
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import {
  FakeOpenAI,
  ROLE_STEP,
  openaiToolCall,
  startNatsServer,
  toolAnswer,
  type NatsServerHandle,
  type ServiceHandle,
} from "@unbroken/testing";
import OpenAI from "openai";
import type { ChatCompletionChunk, ChatCompletionCreateParamsStreaming } from "openai/resources/chat/completions";
import { RawClient } from "../helpers/raw-client.js";
import { assertWhole, handovers, runnerOf, startEdge, startWorker, wsUrl } from "../helpers/failover.js";
import { eachWithin } from "../helpers/within.js";

// Ten required properties: some forty argument deltas, two seconds at 20 tokens a second.
const properties = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`p${i}`, { type: "string" }]));
const REQUEST: ChatCompletionCreateParamsStreaming = {
  model: "scripted",
  messages: [{ role: "user", content: "Fill the form with fill_form." }],
  tools: [
    { type: "function", function: { name: "fill_form", parameters: { type: "object", properties, required: Object.keys(properties) } } },
  ],
  seed: 11,
  stream: true,
};

/** The tool calls of a chat stream, as OpenAI's clients accumulate them by index. */
function callsOf(chunks: ChatCompletionChunk[]): Array<{ id: string; name: string; arguments: string; pieces: number }> {
  const calls: Array<{ id: string; name: string; arguments: string; pieces: number }> = [];
  for (const d of chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? [])) {
    if (d.id !== undefined) calls[d.index] = { id: d.id, name: d.function?.name ?? "", arguments: "", pieces: 0 };
    const call = calls[d.index];
    assert.ok(call, `a fragment of call ${d.index} before its first chunk`);
    call.arguments += d.function?.arguments ?? "";
    call.pieces++;
  }
  return calls;
}

describe("chat completions across a worker failover", () => {
  let nats: NatsServerHandle;
  let services: ServiceHandle[] = [];
  let watcher: RawClient | undefined;

  beforeEach(async () => {
    nats = await startNatsServer();
  });
  afterEach(async () => {
    watcher?.close();
    await Promise.allSettled(services.map((s) => s.kill()));
    services = [];
    await nats.stop();
  });

  /** Two workers with `env`, an edge, the official client on it and a socket to watch the log. */
  async function stack(env: Record<string, string>): Promise<{ workers: ServiceHandle[]; openai: OpenAI; watcher: RawClient }> {
    const workerEnv = { NATS_URL: nats.url, TAKEOVER_TIMEOUT: "2s", LOG_LEVEL: "debug", ...env };
    const workers = [await startWorker("ca", workerEnv), await startWorker("cb", workerEnv)];
    const edge = await startEdge({ NATS_URL: nats.url });
    services.push(...workers, edge);
    const openai = new OpenAI({ baseURL: `http://127.0.0.1:${edge.port}/v1`, apiKey: "unused-with-auth-off", maxRetries: 0 });
    watcher = await RawClient.connect(wsUrl(edge));
    return { workers, openai, watcher };
  }

  /** Starts the stream under rid, kills its worker at the call's first argument delta; the chunks and the log. */
  async function killMidCall(
    s: { workers: ServiceHandle[]; openai: OpenAI; watcher: RawClient },
    request: ChatCompletionCreateParamsStreaming,
    rid: string,
  ) {
    const stream = await s.openai.chat.completions.create(request, { headers: { "x-unbroken-rid": rid } });
    const chunks: ChatCompletionChunk[] = [];
    const read = eachWithin(stream, (c) => chunks.push(c), "the chat stream's end", 90_000);
    assert.equal((await s.watcher.request({ type: "subscribe", rid })).type, "ok");
    const runner = await runnerOf(s.workers, rid);
    await s.watcher.next((f) => f.type === "event" && f.rid === rid && (f.event as { kind: string }).kind === "tool_args", 60_000);
    await runner.kill();
    await read;
    const log = await s.watcher.untilEnd(rid, 60_000);
    assertWhole(log);
    return { chunks, log, kinds: log.map((e) => e.event.kind) };
  }

  it("SIGKILL between a call's tool_call and tool_done: the stream shows that call once, complete, as an uninterrupted run does", async () => {
    const s = await stack({ SCRIPTED_TPS: "20", CONCURRENCY: "2" });
    const { chunks, log, kinds } = await killMidCall(s, REQUEST, "chatcmpl-failover-mid-call");
    const [handover] = handovers(log);
    assert.ok(handover, `the log shows the handover: ${kinds.join(" ")}`);
    const at = log.findIndex((e) => e.seq === handover.seq);
    assert.ok(kinds.indexOf("tool_call") < at && at < kinds.indexOf("tool_done"), `the kill fell inside the call: ${kinds.join(" ")}`);

    const calls = callsOf(chunks);
    assert.equal(calls.length, 1, "one call, shown once");
    const call = calls[0]!;
    assert.equal(call.name, "fill_form");
    assert.deepEqual(JSON.parse(call.arguments), Object.fromEntries(Object.keys(properties).map((k) => [k, "sample"])));
    assert.equal(
      chunks.map((c) => c.choices[0]?.finish_reason).find((f) => f != null),
      "tool_calls",
    );

    const reference = callsOf(await collect(await s.openai.chat.completions.create(REQUEST)));
    assert.deepEqual(
      reference.map((c) => [c.id, c.name, c.arguments]),
      [[call.id, call.name, call.arguments]],
      "the same call (its id too) as an uninterrupted run",
    );
  });

  it("a call the next worker drops (an OpenAI upstream cannot continue it) is never shown: only the call made again, as index 0", async () => {
    const fake = new FakeOpenAI([
      { steps: [ROLE_STEP, ...openaiToolCall(0, "call_lost", "get_weather", '{"city":', 4), { hang: true }] },
      { steps: toolAnswer(openaiToolCall(0, "call_again", "get_weather", '{"city":"Paris"}')) },
    ]);
    const baseUrl = await fake.start();
    try {
      const s = await stack({ OPENAI_BASE_URL: baseUrl, OPENAI_MODEL: "fake-model", CONCURRENCY: "1" });
      const request: ChatCompletionCreateParamsStreaming = {
        model: "fake-model",
        messages: [{ role: "user", content: "Weather in Paris?" }],
        tools: [{ type: "function", function: { name: "get_weather", parameters: { type: "object" } } }],
        stream: true,
      };
      const { chunks, kinds } = await killMidCall(s, request, "chatcmpl-failover-dropped");
      assert.ok(kinds.includes("tool_dropped"), `the log holds the dropped call: ${kinds.join(" ")}`);
      const calls = callsOf(chunks);
      assert.deepEqual(
        calls.map((c) => [c.id, c.name, c.arguments]),
        [["call_again", "get_weather", '{"city":"Paris"}']],
      );
      assert.ok(!JSON.stringify(chunks).includes("call_lost"), "nothing of the dropped call was sent");
      assert.equal(
        chunks.map((c) => c.choices[0]?.finish_reason).find((f) => f != null),
        "tool_calls",
      );
    } finally {
      await fake.close();
    }
  });
});

async function collect(stream: AsyncIterable<ChatCompletionChunk>): Promise<ChatCompletionChunk[]> {
  const chunks: ChatCompletionChunk[] = [];
  await eachWithin(stream, (c) => chunks.push(c), "the reference stream's end", 60_000);
  return chunks;
}
