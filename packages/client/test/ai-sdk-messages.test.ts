import { test } from "node:test";
import assert from "node:assert/strict";
import type { UIMessage } from "ai";
import { generationBodySchema } from "@unbroken/protocol";
import { uiMessagesToChatMessages } from "../src/ai-sdk-messages.js";

const user = (id: string, text: string): UIMessage => ({ id, role: "user", parts: [{ type: "text", text }] });

test("an agent loop's assistant message: its calls with results, the tool messages, then the text after them", () => {
  const assistant = {
    id: "a1",
    role: "assistant",
    parts: [
      { type: "step-start" },
      { type: "reasoning", text: "thinking", state: "done" },
      { type: "text", text: "Let me look.", state: "done" },
      { type: "tool-get_time", toolCallId: "call_1", state: "output-available", input: { timezone: "UTC" }, output: { time: "12:00" } },
      { type: "dynamic-tool", toolName: "lookup", toolCallId: "call_2", state: "output-error", input: {}, errorText: "no such thing" },
      { type: "step-start" },
      { type: "text", text: "It is noon.", state: "done" },
    ],
  } as UIMessage;
  const messages = uiMessagesToChatMessages([user("u1", "what is the time? use get_time"), assistant]);
  assert.deepEqual(messages, [
    { role: "user", content: "what is the time? use get_time" },
    {
      role: "assistant",
      content: "Let me look.",
      tool_calls: [
        { id: "call_1", type: "function", function: { name: "get_time", arguments: '{"timezone":"UTC"}' } },
        { id: "call_2", type: "function", function: { name: "lookup", arguments: "{}" } },
      ],
    },
    { role: "tool", tool_call_id: "call_1", content: '{"time":"12:00"}' },
    { role: "tool", tool_call_id: "call_2", content: "Error: no such thing" },
    { role: "assistant", content: "It is noon." },
  ]);
  assert.equal(generationBodySchema.safeParse({ messages }).success, true, "the edge takes them");
});

test("string outputs go back as they are; calls without a result and dropped calls are left out", () => {
  const assistant = {
    id: "a1",
    role: "assistant",
    parts: [
      {
        type: "tool-x",
        toolCallId: "c0",
        state: "output-error",
        input: undefined,
        errorText: "dropped: x",
        toolMetadata: { unbrokenDropped: true },
      },
      { type: "tool-get_time", toolCallId: "c1", state: "output-available", input: {}, output: "12:00" },
      { type: "tool-get_time", toolCallId: "c2", state: "input-available", input: {} },
    ],
  } as UIMessage;
  assert.deepEqual(uiMessagesToChatMessages([user("u", "hi"), assistant]), [
    { role: "user", content: "hi" },
    { role: "assistant", content: "", tool_calls: [{ id: "c1", type: "function", function: { name: "get_time", arguments: "{}" } }] },
    { role: "tool", tool_call_id: "c1", content: "12:00" },
  ]);
});

test("a steer splits an assistant message; empty messages are left out", () => {
  const assistant = {
    id: "a1",
    role: "assistant",
    parts: [
      { type: "text", text: "one" },
      { type: "steering-message", id: "s", parts: [{ type: "text", text: "shorter" }] },
      { type: "text", text: "two" },
    ],
  } as UIMessage;
  assert.deepEqual(uiMessagesToChatMessages([user("u", ""), assistant]), [
    { role: "assistant", content: "one" },
    { role: "user", content: "shorter" },
    { role: "assistant", content: "two" },
  ]);
});

test("cut to the last 256 messages, never starting with a tool message whose call was cut off", () => {
  const calls = (from: number): UIMessage => ({
    id: `a${from}`,
    role: "assistant",
    parts: Array.from(
      { length: 120 },
      (_, i) =>
        ({ type: "tool-t", toolCallId: `c${from + i}`, state: "output-available", input: {}, output: "r" }) as UIMessage["parts"][number],
    ),
  });
  const users = Array.from({ length: 20 }, (_, i) => user(`u${i}`, `m${i}`));
  // 121 + 20 + 121 messages: the cut falls among the first answer's tool messages.
  const messages = uiMessagesToChatMessages([calls(0), ...users, calls(1000)]);
  assert.equal(messages[0]?.role, "user");
  assert.equal(messages.length, 141);
  assert.equal(generationBodySchema.safeParse({ messages }).success, true);
});
