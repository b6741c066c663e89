import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { newMessagesOf, storedTurnSchema, workRequestSchema, type ResponseRecord } from "../src/index.js";

const record = (rid: string): ResponseRecord => ({
  v: 1,
  rid,
  owner: "anonymous",
  status: "queued",
  created_at: "2026-12-02T18:00:00.000Z",
  request: { prompt: "hello" },
  steers: [],
  epoch: 0,
});

describe("workRequestSchema", () => {
  test("takes a bare rid (older edges) and a rid with its record and revision", () => {
    assert.deepEqual(workRequestSchema.parse({ rid: "abcdefgh1234" }), { rid: "abcdefgh1234" });
    const full = { rid: "abcdefgh1234", record: record("abcdefgh1234"), revision: 7 };
    assert.deepEqual(workRequestSchema.parse(full), full);
  });

  test("refuses a record of another rid, a record without its revision, and a bad rid", () => {
    assert.equal(workRequestSchema.safeParse({ rid: "abcdefgh1234", record: record("zzzzzzzz9999"), revision: 7 }).success, false);
    assert.equal(workRequestSchema.safeParse({ rid: "abcdefgh1234", record: record("abcdefgh1234") }).success, false);
    assert.equal(workRequestSchema.safeParse({ rid: "abcdefgh1234", revision: 0 }).success, false);
    assert.equal(workRequestSchema.safeParse({ rid: "a.b.c.d.e" }).success, false);
  });
});

describe("newMessagesOf: what a generate brings to its thread", () => {
  test("a first turn brings everything; later ones what follows the last assistant message", () => {
    const sys = { role: "system" as const, content: "be brief" };
    const q1 = { role: "user" as const, content: "hi" };
    const a1 = { role: "assistant" as const, content: "hello" };
    const q2 = { role: "user" as const, content: "and then?" };
    assert.deepEqual(newMessagesOf({ messages: [sys, q1] }), [sys, q1]);
    assert.deepEqual(newMessagesOf({ messages: [sys, q1, a1, q2] }), [q2]);
    assert.deepEqual(newMessagesOf({ messages: [sys, q1, a1] }), [], "a continuation after the answer brings nothing new");
  });

  test("tool results after the call are the new messages; a prompt is one user message", () => {
    const call = {
      role: "assistant" as const,
      content: "",
      tool_calls: [{ id: "call_1", type: "function" as const, function: { name: "get_time", arguments: "{}" } }],
    };
    const result = { role: "tool" as const, tool_call_id: "call_1", content: "12:00" };
    assert.deepEqual(newMessagesOf({ messages: [{ role: "user", content: "time?" }, call, result] }), [result]);
    assert.deepEqual(newMessagesOf({ prompt: "hello there" }), [{ role: "user", content: "hello there" }]);
  });
});

describe("storedTurnSchema", () => {
  const turn = {
    v: 1,
    thread: "thread-0001",
    seq: 1,
    rid: "abcdefgh1234",
    owner: "alice",
    messages: [{ role: "user", content: "hi" }],
    created_at: "2026-12-05T10:00:00.000Z",
    thread_created_at: "2026-12-05T10:00:00.000Z",
  };
  test("reads a turn, and refuses a bad thread id, seq 0 and a malformed message", () => {
    assert.deepEqual(storedTurnSchema.parse(turn), turn);
    assert.equal(storedTurnSchema.safeParse({ ...turn, thread: "a.b" }).success, false);
    assert.equal(storedTurnSchema.safeParse({ ...turn, seq: 0 }).success, false);
    assert.equal(storedTurnSchema.safeParse({ ...turn, messages: [{ role: "robot", content: "x" }] }).success, false);
  });
});
