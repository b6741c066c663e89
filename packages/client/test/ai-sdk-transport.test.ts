import { test } from "node:test";
import assert from "node:assert/strict";
import type { UIMessage, UIMessageChunk } from "ai";
import { UnbrokenChatTransport, type Tool } from "../src/index.js";
import { setup, START } from "./util.js";

const TOOL: Tool = { type: "function", function: { name: "get_time", parameters: { type: "object", properties: {} } } };
const OTHER: Tool = { type: "function", function: { name: "other" } };
const user: UIMessage = { id: "u1", role: "user", parts: [{ type: "text", text: "time? get_time" }] };

async function readAll(stream: ReadableStream<UIMessageChunk>): Promise<UIMessageChunk[]> {
  const out: UIMessageChunk[] = [];
  const reader = stream.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return out;
    out.push(value);
  }
}

function send(transport: UnbrokenChatTransport, messages: UIMessage[], body?: object) {
  return transport.sendMessages({ trigger: "submit-message", chatId: "c1", messageId: undefined, messages, abortSignal: undefined, body });
}

test("tools, tool_choice and reasoning_effort from the constructor; a request's body replaces them (params merged)", async (t) => {
  const { edge, client } = await setup(t);
  const transport = new UnbrokenChatTransport({ client, tools: [TOOL], reasoning_effort: "low", params: { max_tokens: 50 } });
  await send(transport, [user]);
  const first = (await edge.nth("generate", 1)).frame;
  assert.deepEqual(first.tools, [TOOL]);
  assert.equal(first.tool_choice, undefined);
  assert.deepEqual(first.params, { max_tokens: 50, reasoning_effort: "low" });

  await send(transport, [user], { tools: [OTHER], tool_choice: "required", params: { seed: 7 }, reasoning_effort: "high", unrelated: 1 });
  const second = (await edge.nth("generate", 2)).frame;
  assert.deepEqual(second.tools, [OTHER]);
  assert.equal(second.tool_choice, "required");
  assert.deepEqual(second.params, { max_tokens: 50, seed: 7, reasoning_effort: "high" });
});

test("a tool_choice naming no offered function is refused before anything is sent", async (t) => {
  const { client } = await setup(t);
  const transport = new UnbrokenChatTransport({ client, tools: [TOOL] });
  await assert.rejects(send(transport, [user], { tool_choice: { type: "function", function: { name: "nope" } } }), { code: "bad_request" });
});

test("an agent loop's next answer streams into the assistant message it continues, with the results as tool messages", async (t) => {
  const { edge, client } = await setup(t);
  const transport = new UnbrokenChatTransport({ client, tools: [TOOL] });
  const assistant = {
    id: "rid_of_the_first_answer",
    role: "assistant",
    parts: [{ type: "step-start" }, { type: "tool-get_time", toolCallId: "call_1", state: "output-available", input: {}, output: "12:00" }],
  } as UIMessage;
  const stream = await send(transport, [user, assistant]);
  const gen = (await edge.nth("generate")).frame;
  assert.deepEqual(gen.messages, [
    { role: "user", content: "time? get_time" },
    { role: "assistant", content: "", tool_calls: [{ id: "call_1", type: "function", function: { name: "get_time", arguments: "{}" } }] },
    { role: "tool", tool_call_id: "call_1", content: "12:00" },
  ]);
  const rid = gen.rid as string;
  edge.append(rid, START);
  edge.tokens(rid, "It is noon.");
  edge.end(rid);
  const chunks = await readAll(stream);
  assert.deepEqual(chunks.slice(0, 2), [{ type: "start", messageId: "rid_of_the_first_answer" }, { type: "start-step" }]);
  assert.deepEqual(chunks.at(-1), { type: "finish", finishReason: "stop" });
});

test("a reconnect to a continuing answer keeps its message id (from the store)", async (t) => {
  const { edge, client } = await setup(t);
  const records = new Map<string, { rid: string; messageId?: string }>();
  const store = {
    get: (k: string) => records.get(k),
    set: (k: string, v: { rid: string; messageId?: string }) => void records.set(k, v),
    delete: (k: string) => void records.delete(k),
  };
  const transport = new UnbrokenChatTransport({ client, store });
  const assistant: UIMessage = { id: "m_first", role: "assistant", parts: [] };
  await send(transport, [user, assistant]);
  await edge.nth("generate");
  const record = records.get("c1");
  assert.equal(record?.messageId, "m_first");
  transport.close();
  const again = await transport.reconnectToStream({ chatId: "c1" });
  assert.ok(again);
  const reader = again.getReader();
  assert.deepEqual((await reader.read()).value, { type: "start", messageId: "m_first" });
  await reader.cancel();
});
