import assert from "node:assert/strict";
import { test } from "node:test";
import { AnswerParts, type PartChange } from "../src/parts.js";

const fold = (events: Array<{ kind: string; [k: string]: unknown }>) => {
  const parts = new AnswerParts();
  const changes: PartChange[] = [];
  for (const e of events) changes.push(...parts.apply(e));
  return { parts, changes: changes.map((c) => `${c.type}:${c.index}${c.type === "delta" ? `:${c.delta}` : ""}`) };
};

test("an agent turn folds into reasoning, text and a complete tool call, in order", () => {
  const { parts, changes } = fold([
    { kind: "start", model: "m", created_at: "" },
    { kind: "reasoning", text: "The user " },
    { kind: "steer", text: "be brief" },
    { kind: "reasoning", text: "wants the time." },
    { kind: "token", text: "Let me check." },
    { kind: "tool_call", id: "call_1", name: "get_time" },
    { kind: "tool_args", id: "call_1", text: '{"zone":' },
    { kind: "tool_args", id: "call_1", text: '"UTC"}' },
    { kind: "tool_done", id: "call_1", arguments: '{"zone":"UTC"}' },
    { kind: "end", reason: "tool_calls", usage: { prompt_tokens: 1, completion_tokens: 5 } },
  ]);
  assert.equal(parts.reasoning, "The user wants the time.");
  assert.equal(parts.text, "Let me check.");
  assert.deepEqual(parts.toolCalls, [{ id: "call_1", name: "get_time", arguments: '{"zone":"UTC"}', input: { zone: "UTC" } }]);
  assert.deepEqual(changes, [
    "start:0",
    "delta:0:The user ",
    "delta:0:wants the time.",
    "end:0",
    "start:1",
    "delta:1:Let me check.",
    "end:1",
    "start:2",
    'delta:2:{"zone":',
    'delta:2:"UTC"}',
    "end:2",
  ]);
});

test("a dropped call is not a tool call, a handover does not split a part, and unknown kinds change nothing", () => {
  const { parts, changes } = fold([
    { kind: "token", text: "a" },
    { kind: "handover", worker: "w2", epoch: 2, reason: "lost" },
    { kind: "token", text: "b" },
    { kind: "future_kind", text: "x" },
    { kind: "tool_call", id: "c1", name: "f" },
    { kind: "tool_args", id: "c1", text: "{" },
    { kind: "tool_args", id: "other", text: "ignored" },
    { kind: "tool_dropped", id: "c1", reason: "worker_lost" },
    { kind: "tool_call", id: "c2", name: "f" },
    { kind: "tool_done", id: "c2", arguments: "{}" },
  ]);
  assert.equal(parts.text, "ab");
  assert.equal(parts.parts.length, 3);
  assert.equal(parts.parts[1]?.type === "tool_call" && parts.parts[1].state, "dropped");
  assert.deepEqual(
    parts.toolCalls.map((c) => c.id),
    ["c2"],
  );
  assert.deepEqual(changes, ["start:0", "delta:0:a", "delta:0:b", "end:0", "start:1", "delta:1:{", "end:1", "start:2", "end:2"]);
});
