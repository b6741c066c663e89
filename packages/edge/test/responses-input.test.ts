import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ProtocolError, generateFrameSchema } from "@unbroken/protocol";
import { echoOf, parseCreateBody, toGenerate, type ResolveItem } from "../src/responses-input.js";

const none: ResolveItem = async () => undefined;
const badRequest = (field: string) => (e: unknown) => e instanceof ProtocolError && e.code === "bad_request" && e.message.startsWith(field);
const generateOf = async (body: unknown, resolve = none) => {
  const frame = generateFrameSchema.parse(await toGenerate(parseCreateBody(body), "resp_test0001", resolve));
  return frame;
};

describe("Responses input → generate", () => {
  test("an item type named like an Object.prototype key is refused as unsupported, not a crash", async () => {
    for (const type of ["__proto__", "toString", "constructor", "hasOwnProperty"])
      await assert.rejects(generateOf({ input: [{ type }] }), badRequest("input.0.type"), type);
  });

  test("a string input is one user message; instructions come first as a system message", async () => {
    const f = await generateOf({ model: "gpt-x", input: "hello", instructions: "be brief" });
    assert.deepEqual(f.messages, [
      { role: "system", content: "be brief" },
      { role: "user", content: "hello" },
    ]);
    assert.equal(f.rid, "resp_test0001");
  });

  test("items: messages with parts, developer as system, function calls joined to the assistant turn, outputs as tool messages", async () => {
    const f = await generateOf({
      input: [
        { role: "developer", content: "use tools" },
        {
          type: "message",
          role: "user",
          content: [
            { type: "input_text", text: "weather " },
            { type: "input_text", text: "in Paris?" },
          ],
        },
        { type: "reasoning", id: "rs_1", summary: [] },
        {
          type: "message",
          role: "assistant",
          content: [{ type: "output_text", text: "Checking.", annotations: [] }],
          status: "completed",
          id: "m1",
        },
        { type: "function_call", call_id: "call_1", name: "get_weather", arguments: '{"city":"Paris"}', id: "fc_1", status: "completed" },
        { type: "function_call", call_id: "call_2", name: "get_time", arguments: "{}" },
        { type: "function_call_output", call_id: "call_1", output: "sunny" },
        { type: "function_call_output", call_id: "call_2", output: [{ type: "input_text", text: "noon" }] },
      ],
    });
    assert.deepEqual(f.messages, [
      { role: "system", content: "use tools" },
      { role: "user", content: "weather in Paris?" },
      {
        role: "assistant",
        content: "Checking.",
        tool_calls: [
          { id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } },
          { id: "call_2", type: "function", function: { name: "get_time", arguments: "{}" } },
        ],
      },
      { role: "tool", tool_call_id: "call_1", content: "sunny" },
      { role: "tool", tool_call_id: "call_2", content: "noon" },
    ]);
  });

  test("a function call with no assistant message before it gets one of its own", async () => {
    const f = await generateOf({
      input: [
        { role: "user", content: "x" },
        { type: "function_call", call_id: "c", name: "f", arguments: "{}" },
        { type: "function_call_output", call_id: "c", output: "1" },
      ],
    });
    assert.deepEqual(f.messages?.[1], {
      role: "assistant",
      content: "",
      tool_calls: [{ id: "c", type: "function", function: { name: "f", arguments: "{}" } }],
    });
  });

  test("tools, tool_choice, reasoning effort and sampling become the generate's", async () => {
    const f = await generateOf({
      input: "x",
      tools: [{ type: "function", name: "get_weather", description: "weather", parameters: { type: "object" }, strict: true }],
      tool_choice: { type: "function", name: "get_weather" },
      reasoning: { effort: "xhigh", summary: "auto" },
      max_output_tokens: 50,
      temperature: 0.2,
      top_p: 0.9,
    });
    assert.deepEqual(f.tools, [
      { type: "function", function: { name: "get_weather", description: "weather", parameters: { type: "object" }, strict: true } },
    ]);
    assert.deepEqual(f.tool_choice, { type: "function", function: { name: "get_weather" } });
    assert.deepEqual(f.params, { max_tokens: 50, temperature: 0.2, top_p: 0.9, reasoning_effort: "high" });
  });

  test("item references: ours resolve, reasoning ones add nothing, unknown ones are refused", async () => {
    const resolve: ResolveItem = async (id) =>
      id === "msg_resp_prev0001_1" ? { type: "message", role: "assistant", content: "Earlier." } : id.startsWith("rs_") ? null : undefined;
    const f = await generateOf(
      {
        input: [
          { role: "user", content: "x" },
          { type: "item_reference", id: "rs_resp_prev0001_0" },
          { type: "item_reference", id: "msg_resp_prev0001_1" },
          { role: "user", content: "y" },
        ],
      },
      resolve,
    );
    assert.deepEqual(f.messages?.[1], { role: "assistant", content: "Earlier." });
    await assert.rejects(generateOf({ input: [{ type: "item_reference", id: "msg_other" }] }, resolve), badRequest("input.0.id"));
  });

  test("what it cannot do is refused naming the field", async () => {
    const cases: Array<[unknown, string]> = [
      [{ input: "x", tools: [{ type: "web_search" }] }, "tools.0.type"],
      [{ input: "x", tool_choice: { type: "file_search" } }, "tool_choice"],
      [{ input: [{ role: "user", content: [{ type: "input_image", image_url: "u" }] }] }, "input.0.content"],
      [{ input: [{ type: "computer_call", id: "c" }] }, "input.0.type"],
      [{ input: [{ type: "function_call_output", output: "x" }] }, "input.0.call_id"],
      [{ input: "x", previous_response_id: "resp_1" }, "previous_response_id"],
      [{ input: "x", text: { format: { type: "json_schema" } } }, "text.format.type"],
      [{ input: "x", metadata: { k: "v".repeat(513) } }, "metadata.k"],
      [{ input: "x", max_output_tokens: 0 }, "max_output_tokens"],
      [{ model: "m" }, "input"],
      [[], "body"],
      // Named as the request names them, not as the generate frame does (tools.0.function.name).
      [{ input: "x", tools: [{ type: "function", name: "get weather" }] }, "tools.0.name"],
      [{ input: "x", tools: [{ type: "function", name: "f" }], tool_choice: { type: "function", name: "" } }, "tool_choice.name"],
      [{ input: [{ type: "function_call", call_id: "", name: "f", arguments: "{}" }] }, "input.0.call_id"],
      [{ input: [{ type: "function_call", call_id: "c1", name: "a b", arguments: "{}" }] }, "input.0.name"],
      [{ input: [{ type: "function_call_output", call_id: "x".repeat(129), output: "o" }] }, "input.0.call_id"],
    ];
    for (const [body, field] of cases) await assert.rejects(generateOf(body), badRequest(field), JSON.stringify(body));
  });

  test("accepts and ignores what it need not honour (store, include, parallel_tool_calls, text format text)", async () => {
    const body = parseCreateBody({
      input: "x",
      store: false,
      include: ["reasoning.encrypted_content"],
      parallel_tool_calls: false,
      text: { format: { type: "text" } },
      user: "u",
    });
    assert.deepEqual(echoOf(body), { background: false, instructions: null, metadata: null, model: null });
  });
});
