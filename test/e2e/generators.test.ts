import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { FakeOpenAI, ROLE_STEP, answer, openaiToolCall, toolAnswer, writeTinyGguf } from "@unbroken/testing";
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
    // One script per upstream request, in the order the tests below make them.
    upstream = new FakeOpenAI([
      { steps: answer(["Rivers", " run", " to", " the", " sea", "."], { usage: [9, 6] }) },
      // OpenAI's shapes: reasoning, then a call whose arguments come in fragments; SSE split.
      {
        steps: toolAnswer(openaiToolCall(0, "call_w1", "get_weather", '{"city":"Paris"}', 5), {
          reasoning: ["The user ", "wants weather."],
          usage: [30, 12, 4],
        }),
        split: 9,
      },
      {
        steps: [ROLE_STEP, { reasoning: "The tool said sunny." }, ...answer(["Sunny", " in", " Paris."], { usage: [50, 4] }).slice(1)],
      },
    ]);
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
  it("streams reasoning and a tool call over the WebSocket, then the answer to the tool's result", async () => {
    const c = await RawClient.connect(stack.url);
    const tools = [
      { type: "function", function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } } },
    ];
    const question = { role: "user", content: "Weather in Paris?" };
    const first = await c.request({
      type: "generate",
      messages: [question],
      tools,
      tool_choice: "auto",
      params: { reasoning_effort: "medium" },
    });
    const events = await c.untilEnd(first.rid);
    assert.deepEqual(seqs(events), range(1, events.length));
    const kinds = events.map((e) => e.event.kind).filter((k, i, all) => k !== all[i - 1]);
    assert.deepEqual(kinds, ["start", "reasoning", "tool_call", "tool_args", "tool_done", "end"]);
    const of = <K extends string>(kind: K) => events.map((e) => e.event).filter((e) => e.kind === kind) as Array<Record<string, unknown>>;
    assert.deepEqual(of("tool_call"), [{ kind: "tool_call", id: "call_w1", name: "get_weather" }]);
    const args = of("tool_args")
      .map((e) => e.text)
      .join("");
    assert.deepEqual([args, of("tool_done")[0]?.arguments], ['{"city":"Paris"}', '{"city":"Paris"}']);
    assert.equal(
      of("reasoning")
        .map((e) => e.text)
        .join(""),
      "The user wants weather.",
    );
    const end = events.at(-1)!.event;
    assert.deepEqual(end.kind === "end" && [end.reason, end.usage], [
      "tool_calls",
      { prompt_tokens: 30, completion_tokens: 12, reasoning_tokens: 4 },
    ]);
    // tools and tool_choice reach the worker once the edge keeps them in the record (branch i11-edge).
    const sent = upstream.requests[1]!.body as { tools: unknown; tool_choice: unknown; reasoning_effort: unknown };
    assert.deepEqual([sent.tools, sent.tool_choice, sent.reasoning_effort], [tools, "auto", "medium"]);

    const call = { id: "call_w1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } };
    const followUp = [
      question,
      { role: "assistant", content: null, tool_calls: [call] },
      { role: "tool", tool_call_id: "call_w1", content: "sunny" },
    ];
    const second = await c.request({ type: "generate", messages: followUp, tools });
    const answered = await c.untilEnd(second.rid);
    const order = answered.map((e) => e.event.kind);
    assert.ok(order.lastIndexOf("reasoning") < order.indexOf("token"), "reasoning comes before the text");
    assert.equal(textOf(answered), "Sunny in Paris.");
    const done = answered.at(-1)!.event;
    assert.equal(done.kind === "end" && done.reason, "stop");
    assert.deepEqual((upstream.requests[2]!.body as { messages: unknown }).messages, followUp);
    c.close();
  });
});

describe("GENERATOR=openai through the stack: an upstream failure", () => {
  const marker = "SECRET-upstream-c0ffee";
  let stack: Stack;
  let upstream: FakeOpenAI;
  let baseUrl: string;
  before(async () => {
    // Every request fails; the body names a secret and an internal address, as a proxy's error page might.
    upstream = new FakeOpenAI([{ status: 500, body: JSON.stringify({ error: { message: `${marker} from http://10.9.8.7:8000/v1` } }) }]);
    baseUrl = await upstream.start();
    stack = await Stack.start({ workerEnv: { OPENAI_BASE_URL: baseUrl, OPENAI_MODEL: "fake-model" } });
  });
  after(async () => {
    await stack.stop();
    await upstream.close();
  });

  it("an upstream 500's body and the upstream's URL never reach the client: the code and the status do", async () => {
    const c = await RawClient.connect(stack.url);
    const { rid } = await c.request({ type: "generate", prompt: "fail please", params: { max_tokens: 5 } });
    const end = (await c.untilEnd(rid, 60_000)).at(-1)!.event;
    assert.ok(end.kind === "end" && end.reason === "error", JSON.stringify(end));
    assert.equal(end.error?.code, "upstream_error");
    assert.equal(end.error?.message, "the upstream answered HTTP 500");
    c.close();
    const http = stack.url.replace(/^ws/, "http").replace(/\/v1\/ws$/, "");
    const chat = await fetch(`${http}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ messages: [{ role: "user", content: "fail again" }], stream: true }),
    });
    const streamed = await chat.text();
    assert.match(streamed, /"code":"upstream_error"/);
    for (const leak of [marker, "10.9.8.7", baseUrl, new URL(baseUrl).host])
      for (const seen of [JSON.stringify(end), streamed]) assert.ok(!seen.includes(leak), `${leak} reached the client: ${seen}`);
  });
});
