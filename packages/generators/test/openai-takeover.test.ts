// The openai bridge taking over a log with reasoning and tool calls (resume rules in docs/generators.md).
import assert from "node:assert/strict";
import { test } from "node:test";
import type { GenerationBody } from "@unbroken/protocol";
import type { ResumeState, ResumedOutput } from "../src/generator.js";
import { CUT_CONTINUE } from "../src/openai-messages.js";
import { ROLE_STEP, answer, openaiToolCall, toolAnswer, vllmToolCall } from "@unbroken/testing";
import { TIME_TOOL, WEATHER_TOOL, generator, run, serve, shapes } from "./openai-harness.js";

const ASK: GenerationBody = {
  messages: [{ role: "user", content: "Weather in Paris?" }],
  tools: [WEATHER_TOOL, TIME_TOOL],
  params: { reasoning_effort: "low" },
};

/** A ResumeState as the worker's takeover builds it from a log of these outputs. */
function logOf(outputs: ResumedOutput[]): ResumeState {
  const tokens: string[] = [];
  const steers: ResumeState["steers"] = [];
  let generated = 0;
  let reasoningTokens = 0;
  for (const o of outputs) {
    if (o.type === "token") tokens.push(o.text);
    if (o.type === "steer") steers.push({ at: tokens.length, text: o.text });
    if (o.type === "token" || o.type === "reasoning" || o.type === "tool_args") generated += o.tokens;
    if (o.type === "reasoning") reasoningTokens += o.tokens;
  }
  return { tokens, steers, generated, reasoningTokens, outputs };
}

test("reasoning and text logged: the continuation's reasoning is ignored, the text goes on after the logged text", async () => {
  const { fake, baseUrl } = await serve([{ steps: [ROLE_STEP, { reasoning: "Thinking again" }, ...answer([" is mild", "."]).slice(1)] }]);
  const resume = logOf([
    { type: "reasoning", text: "Paris in spring", tokens: 3 },
    { type: "token", text: "The weather", tokens: 2 },
  ]);
  const r = await run(generator(baseUrl), { prompt: "Weather in Paris?" }, { resume });
  assert.equal(r.error, undefined);
  assert.deepEqual(shapes(r.outputs), ["text: is mild", "text:.", "<stop>"]);
  assert.deepEqual(fake.requests[0]!.body.messages, [
    { role: "user", content: "Weather in Paris?" },
    { role: "assistant", content: "The weather" },
    { role: "user", content: CUT_CONTINUE },
  ]);
  // Usage: 5 logged tokens (3 reasoning) plus the continuation's own report (answer(): 2, no
  // details, so its one reasoning piece counts as one reasoning token though it was not written).
  assert.deepEqual(r.done?.usage, { prompt_tokens: 5, completion_tokens: 7, reasoning_tokens: 4 });
});

test("a call left open and none complete: tool_dropped worker_lost, then asked again; the new call has the server's new id", async () => {
  const { fake, baseUrl } = await serve([
    { steps: toolAnswer(vllmToolCall(0, "chatcmpl-tool-new", "get_weather", '{"city": "Paris"}'), { reasoning: ["again"] }) },
  ]);
  const resume = logOf([
    { type: "reasoning", text: "Need the weather", tokens: 3 },
    { type: "tool_call", id: "chatcmpl-tool-old", name: "get_weather" },
    { type: "tool_args", id: "chatcmpl-tool-old", text: '{"city": "Pa', tokens: 4 },
  ]);
  const r = await run(generator(baseUrl), ASK, { resume });
  assert.equal(r.error, undefined);
  assert.deepEqual(shapes(r.outputs), [
    "dropped:chatcmpl-tool-old:worker_lost",
    "call:chatcmpl-tool-new:get_weather",
    'args:chatcmpl-tool-new:{"city": "Paris"}',
    'done:chatcmpl-tool-new:{"city": "Paris"}',
    "<tool_calls>",
  ]);
  assert.equal(fake.requests.length, 1);
  const sent = fake.requests[0]!.body;
  assert.deepEqual(sent.messages, ASK.messages, "no text was logged: the same request again");
  assert.deepEqual([sent.tools, sent.reasoning_effort], [[WEATHER_TOOL, TIME_TOOL], "low"]);
});

test("a complete call logged (and one open after it): the open one is dropped and the answer ends with tool_calls, no request", async () => {
  const { fake, baseUrl } = await serve([{ steps: answer(["never asked"]) }]);
  const resume = logOf([
    { type: "tool_call", id: "call_1", name: "get_time" },
    { type: "tool_args", id: "call_1", text: "{}", tokens: 1 },
    { type: "tool_done", id: "call_1", arguments: "{}" },
    { type: "tool_call", id: "call_2", name: "get_weather" },
    { type: "tool_args", id: "call_2", text: '{"ci', tokens: 2 },
  ]);
  const r = await run(generator(baseUrl), ASK, { resume });
  assert.equal(r.error, undefined);
  assert.deepEqual(shapes(r.outputs), ["dropped:call_2:worker_lost", "<tool_calls>"]);
  assert.deepEqual(r.done?.usage, { prompt_tokens: 0, completion_tokens: 3 });
  assert.equal(fake.requests.length, 0);
  assert.equal(r.session.steer("too late"), false);
});

test("a log whose call was already dropped by the lost worker continues normally; a repeated server id is made unique", async () => {
  const { baseUrl } = await serve([{ steps: toolAnswer(openaiToolCall(0, "call_0", "get_time", "{}")) }]);
  const resume = logOf([
    { type: "tool_call", id: "call_0", name: "get_time" },
    { type: "tool_dropped", id: "call_0", reason: "upstream_interrupted" },
  ]);
  const r = await run(generator(baseUrl), ASK, { resume });
  assert.deepEqual(shapes(r.outputs), ["call:call_0_2:get_time", "args:call_0_2:{}", "done:call_0_2:{}", "<tool_calls>"]);
});
