// A streamed chat completion whose worker is killed (SIGKILL) in the middle of a tool call:
// the chat stream is the answer's log as chunks, so the call it shows must be the one an
// uninterrupted run makes, once, complete. Real worker and edge processes; TAKEOVER_TIMEOUT
// 2 s so the other worker takes over soon.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startNatsServer, type NatsServerHandle, type ServiceHandle } from "@unbroken/testing";
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
  const services: ServiceHandle[] = [];
  let openai: OpenAI;
  let watcher: RawClient;
  let workers: ServiceHandle[];

  before(async () => {
    nats = await startNatsServer();
    const env = { NATS_URL: nats.url, SCRIPTED_TPS: "20", TAKEOVER_TIMEOUT: "2s", CONCURRENCY: "2", LOG_LEVEL: "debug" };
    workers = [await startWorker("ca", env), await startWorker("cb", env)];
    const edge = await startEdge({ NATS_URL: nats.url });
    services.push(...workers, edge);
    openai = new OpenAI({ baseURL: `http://127.0.0.1:${edge.port}/v1`, apiKey: "unused-with-auth-off", maxRetries: 0 });
    watcher = await RawClient.connect(wsUrl(edge));
  });
  after(async () => {
    watcher?.close();
    await Promise.allSettled(services.map((s) => s.kill()));
    await nats?.stop();
  });

  it("SIGKILL between a call's tool_call and tool_done: the stream shows that call once, complete, as an uninterrupted run does", async () => {
    const rid = "chatcmpl-failover-mid-call";
    const stream = await openai.chat.completions.create(REQUEST, { headers: { "x-unbroken-rid": rid } });
    const chunks: ChatCompletionChunk[] = [];
    const read = eachWithin(stream, (c) => chunks.push(c), "the chat stream's end", 90_000);
    assert.equal((await watcher.request({ type: "subscribe", rid })).type, "ok");
    const runner = await runnerOf(workers, rid);
    await watcher.next((f) => f.type === "event" && f.rid === rid && (f.event as { kind: string }).kind === "tool_args");
    await runner.kill();
    await read;

    const log = await watcher.untilEnd(rid, 60_000);
    assertWhole(log);
    const kinds = log.map((e) => e.event.kind);
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

    const reference = callsOf(await collect(await openai.chat.completions.create(REQUEST)));
    assert.deepEqual(
      reference.map((c) => [c.id, c.name, c.arguments]),
      [[call.id, call.name, call.arguments]],
      "the same call (its id too) as an uninterrupted run",
    );
  });
});

async function collect(stream: AsyncIterable<ChatCompletionChunk>): Promise<ChatCompletionChunk[]> {
  const chunks: ChatCompletionChunk[] = [];
  await eachWithin(stream, (c) => chunks.push(c), "the reference stream's end", 60_000);
  return chunks;
}
