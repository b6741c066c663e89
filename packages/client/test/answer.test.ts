import { test } from "node:test";
import assert from "node:assert/strict";
import { UnbrokenError } from "../src/index.js";
import { collect, setup, START } from "./util.js";

const TOOLS = [
  {
    type: "function" as const,
    function: { name: "get_time", parameters: { type: "object", properties: { timezone: { type: "string" } } } },
  },
];

test('generate sends tools, tool_choice, reasoning_effort and OpenAI-shaped messages (null content read as "")', async (t) => {
  const { edge, client } = await setup(t);
  const messages = [
    { role: "user" as const, content: "time? get_time" },
    {
      role: "assistant" as const,
      content: null,
      tool_calls: [{ id: "call_1", type: "function" as const, function: { name: "get_time", arguments: "{}" } }],
    },
    { role: "tool" as const, tool_call_id: "call_1", content: "12:00" },
  ];
  const h = client.generate({ messages, tools: TOOLS, tool_choice: "auto", params: { reasoning_effort: "low" } });
  const gen = (await edge.nth("generate")).frame;
  assert.deepEqual(gen.messages, [messages[0], { ...messages[1], content: "" }, messages[2]]);
  assert.deepEqual(gen.tools, TOOLS);
  assert.equal(gen.tool_choice, "auto");
  assert.deepEqual(gen.params, { reasoning_effort: "low" });
  await h.accepted;
});

test("a tool message that answers no call, or a forced function not offered, is refused synchronously", async (t) => {
  const { client } = await setup(t);
  const bad = (e: unknown): boolean => e instanceof UnbrokenError && e.code === "bad_request";
  assert.throws(
    () => client.generate({ messages: [{ role: "tool", tool_call_id: "nope", content: "x" }] }),
    (e: unknown) => bad(e) && /messages\.0\.tool_call_id/.test((e as Error).message),
  );
  assert.throws(() => client.generate({ prompt: "a", tools: TOOLS, tool_choice: { type: "function", function: { name: "other" } } }), bad);
});

test("the answer: text, reasoning, complete tool calls with parsed input, and its parts", async (t) => {
  const { edge, client } = await setup(t);
  const h = client.generate({ prompt: "time? get_time", tools: TOOLS, params: { reasoning_effort: "minimal" } });
  const all = collect(h);
  await h.accepted;
  edge.append(h.rid, START);
  edge.append(h.rid, { kind: "reasoning", text: "The user " });
  edge.append(h.rid, { kind: "reasoning", text: "wants the time." });
  edge.append(h.rid, { kind: "tool_call", id: "call_0", name: "get_time" });
  edge.append(h.rid, { kind: "tool_args", id: "call_0", text: '{"time' });
  edge.append(h.rid, { kind: "tool_dropped", id: "call_0", reason: "taken over" });
  edge.append(h.rid, { kind: "token", text: "Checking." });
  edge.append(h.rid, { kind: "tool_call", id: "call_1", name: "get_time" });
  edge.append(h.rid, { kind: "tool_args", id: "call_1", text: '{"timezone"' });
  edge.append(h.rid, { kind: "tool_args", id: "call_1", text: ':"UTC"}' });
  edge.append(h.rid, { kind: "tool_done", id: "call_1", arguments: '{"timezone":"UTC"}' });
  edge.end(h.rid, "tool_calls");
  await all;
  assert.equal(h.end?.reason, "tool_calls");
  assert.equal(h.reasoning, "The user wants the time.");
  assert.equal(h.text, "Checking.");
  assert.deepEqual(h.toolCalls, [{ id: "call_1", name: "get_time", arguments: '{"timezone":"UTC"}', input: { timezone: "UTC" } }]);
  assert.deepEqual(
    h.parts.map((p) => (p.type === "tool_call" ? `${p.type}:${p.id}:${p.state}` : p.type)),
    ["reasoning", "tool_call:call_0:dropped", "text", "tool_call:call_1:done"],
  );
});

test("a call still streaming is in parts but not yet in toolCalls", async (t) => {
  const { edge, client } = await setup(t);
  const h = client.generate({ prompt: "x" });
  await h.accepted;
  edge.append(h.rid, { kind: "tool_call", id: "call_1", name: "get_time" });
  const seen = new Promise<void>((resolve) => h.onEvent((f) => f.event.kind === "tool_args" && resolve()));
  edge.append(h.rid, { kind: "tool_args", id: "call_1", text: "{" });
  await seen;
  assert.deepEqual(h.toolCalls, []);
  assert.deepEqual(h.parts, [{ type: "tool_call", id: "call_1", name: "get_time", arguments: "{", state: "streaming" }]);
});
