import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ProtocolError } from "@unbroken/protocol";
import { parseChatRequest, toGenerate } from "../src/chat-request.js";

const weather = {
  type: "function",
  function: {
    name: "get_weather",
    description: "the weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};
const call = { id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } };

/** The generate frame of a body, or the bad_request message it gets. */
function translate(body: Record<string, unknown>) {
  return toGenerate(parseChatRequest(body), "chatcmpl-test-0001");
}
function refusal(body: Record<string, unknown>): string {
  try {
    translate(body);
  } catch (err) {
    assert.ok(err instanceof ProtocolError && err.code === "bad_request", String(err));
    return err.message;
  }
  assert.fail("accepted");
}

describe("chat request → generate", () => {
  test("an agent turn: developer → system, text parts joined, assistant tool_calls with content null, a tool message", () => {
    const frame = translate({
      model: "any",
      messages: [
        {
          role: "developer",
          content: [
            { type: "text", text: "be " },
            { type: "text", text: "brief" },
          ],
        },
        { role: "user", content: "weather in Paris?" },
        { role: "assistant", content: null, tool_calls: [call] },
        { role: "tool", tool_call_id: "call_1", content: [{ type: "text", text: "sunny" }] },
      ],
      tools: [weather],
      tool_choice: "auto",
      parallel_tool_calls: true,
    });
    assert.deepEqual(frame.messages, [
      { role: "system", content: "be brief" },
      { role: "user", content: "weather in Paris?" },
      { role: "assistant", content: "", tool_calls: [call] },
      { role: "tool", tool_call_id: "call_1", content: "sunny" },
    ]);
    assert.deepEqual(frame.tools, [weather]);
    assert.equal(frame.tool_choice, "auto");
    assert.equal(frame.rid, "chatcmpl-test-0001");
  });

  test("params: max_completion_tokens over max_tokens, sampling, stop, reasoning_effort (xhigh and max → high)", () => {
    const frame = translate({
      messages: [{ role: "user", content: "x" }],
      max_tokens: 5,
      max_completion_tokens: 7,
      temperature: 0.5,
      top_p: 0.9,
      seed: 1,
      stop: ["\n"],
      reasoning_effort: "low",
      stream_options: { include_usage: true },
    });
    assert.deepEqual(frame.params, { max_tokens: 7, temperature: 0.5, top_p: 0.9, seed: 1, stop: ["\n"], reasoning_effort: "low" });
    for (const e of ["xhigh", "max"])
      assert.equal(translate({ messages: [{ role: "user", content: "x" }], reasoning_effort: e }).params?.reasoning_effort, "high");
    const plain = translate({ messages: [{ role: "user", content: "x" }], max_tokens: 5, tools: null, tool_choice: null });
    assert.deepEqual(plain.params, { max_tokens: 5 });
    assert.equal("tools" in plain, false);
    assert.equal("tool_choice" in plain, false);
  });

  test("an assistant message's refusal parts are not input; its text parts are", () => {
    const frame = translate({
      messages: [
        { role: "user", content: "x" },
        {
          role: "assistant",
          content: [
            { type: "refusal", refusal: "no" },
            { type: "text", text: "ok" },
          ],
        },
        { role: "user", content: "y" },
      ],
    });
    assert.equal(frame.messages?.[1]?.content, "ok");
  });
});

describe("bad shapes get bad_request naming the field", () => {
  const user = { role: "user", content: "x" };
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    [
      "an image part",
      {
        messages: [
          {
            role: "user",
            content: [
              { type: "text", text: "a" },
              { type: "image_url", image_url: { url: "x" } },
            ],
          },
        ],
      },
      /^messages\.0\.content\.1\.type: only text parts/,
    ],
    ["an unknown role", { messages: [{ role: "function", content: "x" }] }, /^messages\.0\.role:/],
    ["a tool message without tool_call_id", { messages: [user, { role: "tool", content: "x" }] }, /^messages\.1\.tool_call_id:/],
    [
      "a tool message answering no call",
      { messages: [user, { role: "tool", tool_call_id: "call_9", content: "x" }] },
      /^messages\.1\.tool_call_id: answers no tool call/,
    ],
    [
      "a call without a function name",
      {
        messages: [user, { role: "assistant", content: null, tool_calls: [{ id: "c", type: "function", function: { arguments: "{}" } }] }],
      },
      /^messages\.1\.tool_calls\.0\.function\.name:/,
    ],
    ["a custom tool", { messages: [user], tools: [{ type: "custom", custom: { name: "x" } }] }, /^tools\.0\.type:/],
    [
      "a function name with a space",
      { messages: [user], tools: [{ type: "function", function: { name: "get weather" } }] },
      /^tools\.0\.function\.name:/,
    ],
    [
      "parameters not an object",
      { messages: [user], tools: [{ type: "function", function: { name: "f", parameters: "{}" } }] },
      /^tools\.0\.function\.parameters:/,
    ],
    [
      "a forced function not offered",
      { messages: [user], tools: [weather], tool_choice: { type: "function", function: { name: "other" } } },
      /^tool_choice\.function\.name: names no function/,
    ],
    ["tool_choice required without tools", { messages: [user], tool_choice: "required" }, /^tool_choice: asks for a tool call/],
    ["an unknown tool_choice", { messages: [user], tools: [weather], tool_choice: "sometimes" }, /^tool_choice:/],
    ["two tools of one name", { messages: [user], tools: [weather, weather] }, /^tools: function names must be unique/],
    ["an unknown reasoning_effort", { messages: [user], reasoning_effort: "extreme" }, /^reasoning_effort:/],
    ["n of 2", { messages: [user], n: 2 }, /^n:/],
    // A stop string of nothing would stop before the first token; the record could not be read back.
    ["an empty stop string", { messages: [user], stop: "" }, /^stop:/],
    ["an empty stop string in a list", { messages: [user], stop: ["END", ""] }, /^stop\.1:/],
    ["five stop strings", { messages: [user], stop: ["a", "b", "c", "d", "e"] }, /^stop:/],
    ["a stop string over 64 characters", { messages: [user], stop: ["x".repeat(65)] }, /^stop\.0:/],
    ["structured output", { messages: [user], response_format: { type: "json_object" } }, /^response_format\.type: only text output/],
    ["log probabilities", { messages: [user], logprobs: true }, /^logprobs: log probabilities are not supported/],
    ["audio output", { messages: [user], modalities: ["text", "audio"] }, /^modalities\.1: only text output/],
    ["a model name of 300 characters", { messages: [user], model: "m".repeat(300) }, /^model:/],
    [
      "129 tools",
      { messages: [user], tools: Array.from({ length: 129 }, (_, i) => ({ type: "function", function: { name: `f${i}` } })) },
      /^tools:/,
    ],
  ];
  for (const [name, body, expected] of cases)
    test(name, () => {
      assert.match(refusal(body), expected);
    });
});
