import { test } from "node:test";
import assert from "node:assert/strict";
import type { UIMessageChunk } from "ai";
import type { ResponseEvent } from "@unbroken/protocol";
import { ChunkMapper } from "../src/ai-sdk-chunks.js";
import type { ResponseEventFrame } from "../src/frames.js";

const RID = "rid_abcdefgh";
const usage = { prompt_tokens: 3, completion_tokens: 9 };

function frames(events: ResponseEvent[]): ResponseEventFrame[] {
  return events.map((event, i) => ({ type: "event", rid: RID, seq: i + 1, event }));
}
function mapAll(events: ResponseEvent[]): UIMessageChunk[] {
  const mapper = new ChunkMapper(RID);
  return frames(events).flatMap((f) => mapper.map(f));
}

/** An agent turn's first answer: reasoning, then a call streamed in two deltas. */
const TURN: ResponseEvent[] = [
  { kind: "start", model: "scripted", created_at: "2026-01-01T00:00:00Z" },
  { kind: "reasoning", text: "Let me " },
  { kind: "reasoning", text: "think." },
  { kind: "tool_call", id: "call_1", name: "get_time" },
  { kind: "tool_args", id: "call_1", text: '{"timezone":' },
  { kind: "tool_args", id: "call_1", text: '"UTC"}' },
  { kind: "tool_done", id: "call_1", arguments: '{"timezone":"UTC"}' },
  { kind: "end", reason: "tool_calls", usage },
];

test("reasoning maps to reasoning-start/delta/end, a call to tool-input-start/delta/available, the end to tool-calls", () => {
  assert.deepEqual(mapAll(TURN), [
    { type: "reasoning-start", id: "reasoning-2" },
    { type: "reasoning-delta", id: "reasoning-2", delta: "Let me " },
    { type: "reasoning-delta", id: "reasoning-2", delta: "think." },
    { type: "reasoning-end", id: "reasoning-2" },
    { type: "tool-input-start", toolCallId: "call_1", toolName: "get_time" },
    { type: "tool-input-delta", toolCallId: "call_1", inputTextDelta: '{"timezone":' },
    { type: "tool-input-delta", toolCallId: "call_1", inputTextDelta: '"UTC"}' },
    { type: "tool-input-available", toolCallId: "call_1", toolName: "get_time", input: { timezone: "UTC" } },
    { type: "finish-step" },
    { type: "finish", finishReason: "tool-calls" },
  ]);
});

test("a replay from the first event maps to the same chunks (same ids), so a rebuilt message is the same", () => {
  assert.deepEqual(mapAll(TURN), mapAll(TURN));
});

test("text after reasoning is its own part; a steer splits the text into two parts around its marker", () => {
  const chunks = mapAll([
    { kind: "reasoning", text: "hm" },
    { kind: "token", text: "a" },
    { kind: "steer", text: "shorter" },
    { kind: "token", text: "b" },
    { kind: "end", reason: "stop", usage },
  ]);
  assert.deepEqual(
    chunks.map((c) => c.type),
    [
      "reasoning-start",
      "reasoning-delta",
      "reasoning-end",
      "text-start",
      "text-delta",
      "text-end",
      "steering-message",
      "text-start",
      "text-delta",
      "text-end",
      "finish-step",
      "finish",
    ],
  );
  const starts = chunks.filter((c) => c.type === "text-start").map((c) => (c as { id: string }).id);
  assert.equal(new Set(starts).size, 2, "the text after the steer has a new id");
});

test("a dropped call is a tool-input-error marked as dropped, then a new step; the answer goes on", () => {
  const chunks = mapAll([
    { kind: "tool_call", id: "call_1", name: "get_time" },
    { kind: "tool_args", id: "call_1", text: '{"time' },
    { kind: "tool_dropped", id: "call_1", reason: "upstream cannot resume" },
    { kind: "token", text: "ok" },
    { kind: "end", reason: "stop", usage },
  ]);
  const error = chunks.find((c) => c.type === "tool-input-error");
  assert.deepEqual(error, {
    type: "tool-input-error",
    toolCallId: "call_1",
    toolName: "get_time",
    input: undefined,
    errorText: "dropped: upstream cannot resume",
    toolMetadata: { unbrokenDropped: true },
  });
  assert.deepEqual(chunks.map((c) => c.type).slice(2), [
    "tool-input-error",
    "finish-step",
    "start-step",
    "text-start",
    "text-delta",
    "text-end",
    "finish-step",
    "finish",
  ]);
});

test("an error end: the open text ends, then error, finish-step and finish; kinds it does not know map to nothing", () => {
  const mapper = new ChunkMapper(RID);
  assert.deepEqual(mapper.map({ type: "event", rid: RID, seq: 1, event: { kind: "token", text: "x" } }).length, 2);
  const unknown = { type: "event", rid: RID, seq: 2, event: { kind: "later_kind" } } as unknown as ResponseEventFrame;
  assert.deepEqual(mapper.map(unknown), []);
  const end: ResponseEventFrame = {
    type: "event",
    rid: RID,
    seq: 3,
    event: { kind: "end", reason: "error", error: { code: "internal", message: "boom" }, usage },
  };
  assert.deepEqual(mapper.map(end), [
    { type: "text-end", id: "text-1" },
    { type: "error", errorText: "internal: boom" },
    { type: "finish-step" },
    { type: "finish", finishReason: "error" },
  ]);
});
