// Tools and reasoning through /v1/chat/completions, driven by clients nobody here wrote: the
// official openai client and the AI SDK's OpenAI chat model. The scripted generator calls a
// tool the last user message names (arguments: every required property, strings "sample"),
// answers a tool result with "The result of <name> is <result>.", and reasons first when
// asked to (reasoning_effort low: 8 tokens).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createOpenAI } from "@ai-sdk/openai";
import { stepCountIs, streamText, tool } from "ai";
import OpenAI from "openai";
import type { ChatCompletionChunk, ChatCompletionMessageParam, ChatCompletionTool } from "openai/resources/chat/completions";
import { z } from "zod";
import { RawClient } from "../helpers/raw-client.js";
import { Stack } from "../helpers/stack.js";
import { eachWithin, within } from "../helpers/within.js";

const weather: ChatCompletionTool = {
  type: "function",
  function: {
    name: "get_weather",
    description: "The weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" }, days: { type: "integer" } }, required: ["city", "days"] },
  },
};
const ask: ChatCompletionMessageParam = { role: "user", content: "What is the weather in Paris? Use get_weather." };

/** OpenAI's chunk delta with the reasoning fields vLLM and DeepSeek add. */
type Delta = ChatCompletionChunk.Choice.Delta & { reasoning_content?: string; reasoning?: string };

async function chunksOf(stream: AsyncIterable<ChatCompletionChunk>): Promise<ChatCompletionChunk[]> {
  const chunks: ChatCompletionChunk[] = [];
  await eachWithin(stream, (c) => chunks.push(c), "the streamed completion's end");
  return chunks;
}
const deltasOf = (chunks: ChatCompletionChunk[]): Delta[] => chunks.flatMap((c) => (c.choices[0] ? [c.choices[0].delta as Delta] : []));
const finishOf = (chunks: ChatCompletionChunk[]) => chunks.map((c) => c.choices[0]?.finish_reason).find((f) => f != null);

describe("chat completions with tools and reasoning", () => {
  let stack: Stack;
  let openai: OpenAI;
  let base: string;
  before(async () => {
    stack = await Stack.start({ workerEnv: { SCRIPTED_TPS: "300" } });
    base = `http://127.0.0.1:${stack.edges[0]!.port}/v1`;
    openai = new OpenAI({ baseURL: base, apiKey: "unused-with-auth-off", maxRetries: 0 });
  });
  after(() => stack.stop());

  /** The response's own log, read on a socket. */
  async function logOf(rid: string) {
    const c = await RawClient.connect(stack.url);
    try {
      await c.request({ type: "subscribe", rid });
      return (await c.untilEnd(rid)).map((f) => f.event);
    } finally {
      c.close();
    }
  }

  it("streams a tool call as OpenAI does: a first chunk with id, type and name, then argument fragments; finish_reason tool_calls", async () => {
    const chunks = await chunksOf(
      await openai.chat.completions.create({ model: "scripted", messages: [ask], tools: [weather], stream: true }),
    );
    const calls = deltasOf(chunks).flatMap((d) => d.tool_calls ?? []);
    const [first, ...fragments] = calls;
    assert.ok(first, "a tool call was streamed");
    assert.equal(first.index, 0);
    assert.match(first.id ?? "", /^call_[0-9a-f]{16}$/);
    assert.equal(first.type, "function");
    assert.deepEqual(first.function, { name: "get_weather", arguments: "" });
    assert.ok(fragments.length >= 1, "the arguments come in fragments");
    for (const f of fragments) assert.deepEqual(Object.keys(f).sort(), ["function", "index"], JSON.stringify(f));
    for (const f of fragments) assert.deepEqual([f.index, Object.keys(f.function ?? {})], [0, ["arguments"]]);
    const args = fragments.map((f) => f.function?.arguments).join("");
    assert.deepEqual(JSON.parse(args), { city: "sample", days: 42 });
    assert.equal(finishOf(chunks), "tool_calls");
    assert.equal(
      deltasOf(chunks)
        .map((d) => d.content ?? "")
        .join(""),
      "",
      "no text",
    );
    assert.equal(deltasOf(chunks)[0]?.role, "assistant");
    const done = (await logOf(chunks[0]!.id)).find((e) => e.kind === "tool_done");
    assert.deepEqual(done, { kind: "tool_done", id: first.id, arguments: args }, "the same call the log holds");
  });

  it("answers the follow-up with the tool message in text (finish stop); the openai client's stream helper assembles both turns", async () => {
    const runner = openai.chat.completions.stream({ model: "scripted", messages: [ask], tools: [weather] });
    const first = await within(runner.finalChatCompletion(), "the call's completion", 60_000);
    const message = first.choices[0]!.message;
    assert.equal(first.choices[0]!.finish_reason, "tool_calls");
    const call = message.tool_calls?.[0];
    assert.ok(call?.type === "function");
    assert.deepEqual(JSON.parse(call.function.arguments), { city: "sample", days: 42 });
    const followUp = await chunksOf(
      await openai.chat.completions.create({
        model: "scripted",
        messages: [ask, message, { role: "tool", tool_call_id: call.id, content: "22 degrees and sunny" }],
        tools: [weather],
        stream: true,
      }),
    );
    const text = deltasOf(followUp)
      .map((d) => d.content ?? "")
      .join("");
    assert.ok(text.startsWith("The result of get_weather is 22 degrees and sunny."), text);
    assert.equal(finishOf(followUp), "stop");
    assert.equal(deltasOf(followUp).flatMap((d) => d.tool_calls ?? []).length, 0);
  });

  it("reasoning_effort: reasoning_content (and reasoning) before any text; include_usage: a last chunk with no choices and reasoning_tokens", async () => {
    const chunks = await chunksOf(
      await openai.chat.completions.create({
        model: "scripted",
        messages: [{ role: "user", content: "write 20 words" }],
        reasoning_effort: "low",
        stream: true,
        stream_options: { include_usage: true },
      }),
    );
    const deltas = deltasOf(chunks);
    const firstText = deltas.findIndex((d) => (d.content ?? "").length > 0);
    const reasoningAt = deltas.flatMap((d, i) => (d.reasoning_content ? [i] : []));
    assert.ok(reasoningAt.length > 0, "reasoning was streamed");
    assert.ok(firstText > (reasoningAt.at(-1) as number), "all of it before the text");
    for (const d of deltas) assert.equal(d.reasoning, d.reasoning_content, "both fields carry the same text");
    const usageChunk = chunks.at(-1)!;
    assert.deepEqual(usageChunk.choices, []);
    assert.equal(usageChunk.usage?.completion_tokens_details?.reasoning_tokens, 8);
    assert.equal(usageChunk.usage?.completion_tokens, 28, "20 words of text and 8 of reasoning");
    assert.equal(chunks.filter((c) => c.usage).length, 1);
    assert.equal(finishOf(chunks), "stop");
    const logged = (await logOf(usageChunk.id)).filter((e) => e.kind === "reasoning").map((e) => (e as { text: string }).text);
    assert.equal(reasoningAt.map((i) => deltas[i]!.reasoning_content).join(""), logged.join(""));
  });

  it("without streaming: message.tool_calls with JSON arguments, content null, finish tool_calls; reasoning_content and usage", async () => {
    const completion = await openai.chat.completions.create({
      model: "scripted",
      messages: [ask],
      tools: [weather],
      tool_choice: "auto",
      parallel_tool_calls: false,
      reasoning_effort: "minimal",
    });
    const choice = completion.choices[0]!;
    assert.equal(choice.finish_reason, "tool_calls");
    assert.equal(choice.message.content, null);
    const call = choice.message.tool_calls?.[0];
    assert.ok(call?.type === "function");
    assert.equal(call.function.name, "get_weather");
    assert.deepEqual(JSON.parse(call.function.arguments), { city: "sample", days: 42 });
    const reasoning = (choice.message as { reasoning_content?: string }).reasoning_content ?? "";
    assert.ok(reasoning.length > 0);
    assert.equal(completion.usage?.completion_tokens_details?.reasoning_tokens, 4);
  });

  it("the AI SDK's streamText with @ai-sdk/openai's chat model runs a two-step agent loop: a call, its execute, the answer", async () => {
    const provider = createOpenAI({ baseURL: base, apiKey: "unused-with-auth-off" });
    const executed: unknown[] = [];
    const result = streamText({
      model: provider.chat("scripted"),
      prompt: "What is the weather in Paris? Use get_weather.",
      tools: {
        get_weather: tool({
          description: "The weather in a city",
          inputSchema: z.object({ city: z.string() }),
          execute: async (input) => {
            executed.push(input);
            return `sunny in ${input.city}`;
          },
        }),
      },
      stopWhen: stepCountIs(2),
    });
    const text = await within(Promise.resolve(result.text), "the agent loop's text", 60_000);
    const steps = await result.steps;
    assert.equal(steps.length, 2);
    assert.equal(steps[0]!.finishReason, "tool-calls");
    assert.deepEqual(
      steps[0]!.toolCalls.map((c) => [c.toolName, c.input]),
      [["get_weather", { city: "sample" }]],
    );
    assert.deepEqual(executed, [{ city: "sample" }]);
    assert.equal(steps[1]!.finishReason, "stop");
    assert.ok(text.includes("The result of get_weather is"), text);
    assert.ok(text.includes("sunny in sample"), text);
  });
});
