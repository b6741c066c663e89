// Tool calls through the openai bridge, as OpenAI and vLLM stream them, with split chunks.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { GenerationBody } from "@unbroken/protocol";
import { ROLE_STEP, answer, openaiToolCall, toolAnswer, vllmToolCall } from "@unbroken/testing";
import { TIME_TOOL, WEATHER_TOOL, argsOf, assertCode, generator, run, serve, shapes } from "./openai-harness.js";

const ASK: GenerationBody = {
  messages: [{ role: "user", content: "Weather in Paris and the time?" }],
  tools: [WEATHER_TOOL, TIME_TOOL],
  tool_choice: "auto",
};

test("OpenAI style: id and name first, argument fragments, two calls one after another, events split across reads", async () => {
  const paris = '{"city":"Paris"}';
  const calls = [...openaiToolCall(0, "call_A1", "get_weather", paris, 3), ...openaiToolCall(1, "call_B2", "get_time", "{}")];
  // A tool_calls delta with no function object at all (seen mid-call) changes nothing.
  calls.splice(2, 0, { tool: { index: 0 } });
  const { fake, baseUrl } = await serve([{ steps: toolAnswer(calls, { usage: [40, 17] }), split: 7 }]);
  const r = await run(generator(baseUrl), ASK);
  assert.equal(r.error, undefined);
  assert.deepEqual(shapes(r.outputs), [
    "call:call_A1:get_weather",
    'args:call_A1:{"c',
    "args:call_A1:ity",
    'args:call_A1:":"',
    "args:call_A1:Par",
    'args:call_A1:is"',
    "args:call_A1:}",
    `done:call_A1:${paris}`,
    "call:call_B2:get_time",
    "args:call_B2:{}",
    "done:call_B2:{}",
    "<tool_calls>",
  ]);
  assert.deepEqual(r.done?.usage, { prompt_tokens: 40, completion_tokens: 17 });
  const sent = fake.requests[0]!.body;
  assert.deepEqual(sent.tools, [WEATHER_TOOL, TIME_TOOL]);
  assert.equal(sent.tool_choice, "auto");
  assert.deepEqual(sent.stream_options, { include_usage: true });
  assert.equal(r.session.steer("after the calls"), false);
});

test("vLLM style: name without arguments, then the whole arguments; the last piece rides on the finish chunk", async () => {
  const args = '{"city": "Lyon"}';
  const steps = [
    ROLE_STEP,
    ...vllmToolCall(0, "chatcmpl-tool-9f2c", "get_weather", args.slice(0, 9)),
    // vLLM's finish chunk carries what its partial-JSON parser held back, beside finish_reason.
    { finish: "tool_calls", delta: { tool_calls: [{ index: 0, function: { arguments: args.slice(9) } }] } },
    { usage: { prompt_tokens: 12, completion_tokens: 9 } },
    { done: true as const },
  ];
  const { baseUrl } = await serve([{ steps, split: 2 }]);
  const r = await run(generator(baseUrl), ASK);
  assert.equal(r.error, undefined);
  assert.deepEqual(shapes(r.outputs), [
    "call:chatcmpl-tool-9f2c:get_weather",
    'args:chatcmpl-tool-9f2c:{"city": ',
    'args:chatcmpl-tool-9f2c:"Lyon"}',
    `done:chatcmpl-tool-9f2c:${args}`,
    "<tool_calls>",
  ]);
});

test("name and arguments in the first chunk (vLLM with a named tool_choice); the id after the name waits for it", async () => {
  const steps = [
    ROLE_STEP,
    { tool: { index: 0, id: "chatcmpl-tool-1", name: "get_weather", arguments: '{"city":"Oslo"}' } },
    // A second call whose id comes one chunk after its name and first piece.
    { tool: { index: 1, name: "get_time", arguments: "{" } },
    { tool: { index: 1, id: "chatcmpl-tool-2", arguments: "}" } },
    { finish: "tool_calls" },
    { done: true as const },
  ];
  const { fake, baseUrl } = await serve([{ steps }]);
  const body: GenerationBody = { ...ASK, tool_choice: { type: "function", function: { name: "get_weather" } } };
  const r = await run(generator(baseUrl), body);
  assert.equal(r.error, undefined);
  assert.deepEqual(shapes(r.outputs), [
    "call:chatcmpl-tool-1:get_weather",
    'args:chatcmpl-tool-1:{"city":"Oslo"}',
    'done:chatcmpl-tool-1:{"city":"Oslo"}',
    "call:chatcmpl-tool-2:get_time",
    "args:chatcmpl-tool-2:{}", // what came before the id, at once
    "done:chatcmpl-tool-2:{}",
    "<tool_calls>",
  ]);
  assert.deepEqual(fake.requests[0]!.body.tool_choice, { type: "function", function: { name: "get_weather" } });
  // No usage reported: one completion token per streamed piece.
  assert.equal(r.done?.usage.completion_tokens, 3);
  const late = r.outputs.find((o) => o.type === "tool_args" && o.id === "chatcmpl-tool-2");
  assert.equal(late?.type === "tool_args" && late.tokens, 2, "both pieces count");
});

test("text before a call is written first; a call with no argument text completes as {}", async () => {
  const steps = [
    ROLE_STEP,
    { text: "Let me check." },
    { tool: { index: 0, id: "c1", name: "get_time" } },
    { finish: "tool_calls" },
    { done: true as const },
  ];
  const { baseUrl } = await serve([{ steps }]);
  const r = await run(generator(baseUrl), ASK);
  assert.equal(r.error, undefined);
  assert.deepEqual(shapes(r.outputs), ["text:Let me check.", "call:c1:get_time", "done:c1:{}", "<tool_calls>"]);
});

test("a server that ends calls with finish_reason stop (Ollama) still ends with tool_calls", async () => {
  const steps = [ROLE_STEP, ...openaiToolCall(0, "call_x", "get_time", "{}"), { finish: "stop" }, { done: true as const }];
  const { baseUrl } = await serve([{ steps }]);
  const r = await run(generator(baseUrl), ASK);
  assert.equal(r.done?.reason, "tool_calls");
});

test("arguments that are not JSON: the call is dropped and the response ends with upstream_bad_response naming it", async () => {
  const { baseUrl } = await serve([{ steps: toolAnswer(openaiToolCall(0, "call_bad", "get_weather", '{"city": Par')) }]);
  const r = await run(generator(baseUrl), ASK);
  assertCode(r, "upstream_bad_response");
  assert.match((r.error as Error).message, /call_bad/);
  assert.deepEqual(shapes(r.outputs).slice(-1), ["dropped:call_bad:invalid_arguments"]);
});

test("finish_reason length in the middle of a call drops it and ends with length", async () => {
  const steps = [ROLE_STEP, ...openaiToolCall(0, "call_L", "get_weather", '{"ci'), { finish: "length" }, { done: true as const }];
  const { baseUrl } = await serve([{ steps }]);
  const r = await run(generator(baseUrl), ASK);
  assert.deepEqual(shapes(r.outputs).slice(-2), ["dropped:call_L:length", "<length>"]);
});

test("assistant tool_calls and tool messages go upstream in OpenAI's shape", async () => {
  const { fake, baseUrl } = await serve([{ steps: answer(["It is ", "sunny."]) }]);
  const body: GenerationBody = {
    messages: [
      { role: "user", content: "Weather in Paris?" },
      {
        role: "assistant",
        content: "",
        tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } }],
      },
      { role: "tool", tool_call_id: "call_1", content: "sunny, 21°C" },
    ],
    tools: [WEATHER_TOOL],
  };
  const r = await run(generator(baseUrl), body);
  assert.equal(r.text, "It is sunny.");
  assert.equal(r.done?.reason, "stop");
  assert.deepEqual(fake.requests[0]!.body.messages, [
    { role: "user", content: "Weather in Paris?" },
    {
      role: "assistant",
      content: null,
      tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } }],
    },
    { role: "tool", tool_call_id: "call_1", content: "sunny, 21°C" },
  ]);
  assert.equal(fake.requests[0]!.body.tool_choice, undefined, "not sent when not given");
});

test("a stream cut in the middle of the only call: dropped, asked again, the new call (same id from the server) gets a unique id", async () => {
  const { fake, baseUrl } = await serve([
    { steps: [ROLE_STEP, { text: "Checking." }, ...openaiToolCall(0, "call_0", "get_weather", '{"city":'), { destroy: true }] },
    { steps: toolAnswer(openaiToolCall(0, "call_0", "get_weather", '{"city":"Rome"}', 50)) },
  ]);
  const r = await run(generator(baseUrl), ASK);
  assert.equal(r.error, undefined);
  assert.deepEqual(shapes(r.outputs), [
    "text:Checking.",
    "call:call_0:get_weather",
    'args:call_0:{"ci',
    'args:call_0:ty":',
    "dropped:call_0:upstream_interrupted",
    "call:call_0_2:get_weather",
    'args:call_0_2:{"city":"Rome"}',
    'done:call_0_2:{"city":"Rome"}',
    "<tool_calls>",
  ]);
  assert.equal(fake.requests.length, 2);
  assert.deepEqual(
    fake.requests[1]!.body.messages.slice(-2).map((m: { role: string }) => m.role),
    ["assistant", "user"],
  );
  assert.equal(fake.requests[1]!.body.messages.at(-2).content, "Checking.");
});

test("a stream cut after a complete call: the open one is dropped and the answer ends with tool_calls, not asked again", async () => {
  const { fake, baseUrl } = await serve([
    {
      steps: [
        ROLE_STEP,
        ...openaiToolCall(0, "call_1", "get_time", "{}"),
        ...openaiToolCall(1, "call_2", "get_weather", '{"ci'),
        { destroy: true },
      ],
    },
  ]);
  const r = await run(generator(baseUrl), ASK);
  assert.equal(r.error, undefined);
  assert.deepEqual(shapes(r.outputs).slice(-5), [
    "done:call_1:{}",
    "call:call_2:get_weather",
    'args:call_2:{"ci',
    "dropped:call_2:upstream_interrupted",
    "<tool_calls>",
  ]);
  assert.equal(fake.requests.length, 1);
});

test("a steer during a call is refused and the request is not restarted: the call completes intact", async () => {
  const steps = [
    ROLE_STEP,
    { text: "Sure." },
    ...openaiToolCall(0, "call_s", "get_weather", '{"city":"Bern"}', 2),
    { finish: "tool_calls" },
    { done: true as const },
  ];
  const { fake, baseUrl } = await serve([{ steps }]);
  const answers: boolean[] = [];
  const r = await run(generator(baseUrl), ASK, {
    onOutput: (out, s) => {
      if (out.type === "tool_args" && answers.length === 0) answers.push(s.steer("use celsius"));
    },
  });
  assert.equal(r.error, undefined);
  assert.deepEqual(answers, [false]);
  assert.equal(argsOf(r.outputs, "call_s"), '{"city":"Bern"}');
  assert.equal(r.outputs.filter((o) => o.type === "steer").length, 0);
  assert.equal(r.done?.reason, "tool_calls");
  assert.equal(fake.requests.length, 1);
});

test("a steer before the call begins is applied at once; the continuation makes the call", async () => {
  const { fake, baseUrl } = await serve([
    { steps: [ROLE_STEP, { text: "Let me" }, { hang: true }] },
    { steps: toolAnswer(openaiToolCall(0, "call_t", "get_time", "{}")) },
  ]);
  const r = await run(generator(baseUrl), ASK, { onToken: (n, s) => n === 1 && assert.equal(s.steer("only the time"), true) });
  assert.equal(r.error, undefined);
  assert.deepEqual(shapes(r.outputs), [
    "text:Let me",
    "steer:only the time",
    "call:call_t:get_time",
    "args:call_t:{}",
    "done:call_t:{}",
    "<tool_calls>",
  ]);
  assert.deepEqual(fake.requests[1]!.body.tools, [WEATHER_TOOL, TIME_TOOL], "the continuation offers the tools too");
});
