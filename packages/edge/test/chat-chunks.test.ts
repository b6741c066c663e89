import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { EndEvent } from "@unbroken/protocol";
import { type ChatDelta, ChatStreamDeltas, ChatWholeMessage, chatUsage } from "../src/chat-chunks.js";

type Event = { kind: string; [key: string]: unknown };

const start: Event = { kind: "start", model: "scripted", created_at: "2026-01-01T00:00:00Z" };
const end = (reason: EndEvent["reason"], completion = 9, reasoning?: number): EndEvent => ({
  kind: "end",
  reason,
  usage: { prompt_tokens: 3, completion_tokens: completion, ...(reasoning === undefined ? {} : { reasoning_tokens: reasoning }) },
});

/** An agent turn's log: reasoning, a call whose arguments come in three deltas, the end. */
const callTurn: Event[] = [
  start,
  { kind: "reasoning", text: "The user wants " },
  { kind: "reasoning", text: "the weather.", n: 3 },
  { kind: "tool_call", id: "call_1", name: "get_weather" },
  { kind: "tool_args", id: "call_1", text: '{"city"' },
  { kind: "tool_args", id: "call_1", text: ':"Par' },
  { kind: "tool_args", id: "call_1", text: 'is"}' },
  { kind: "tool_done", id: "call_1", arguments: '{"city":"Paris"}' },
  end("tool_calls", 9, 5),
];

function streamed(events: Event[]): { deltas: ChatDelta[]; finish: string } {
  const s = new ChatStreamDeltas();
  const deltas: ChatDelta[] = [];
  let finish = "";
  for (const e of events) {
    deltas.push(...s.event(e));
    if (e.kind === "end") {
      deltas.push(...s.roleIfUnsent());
      finish = s.finishReason(e as EndEvent);
    }
  }
  return { deltas, finish };
}

describe("ChatStreamDeltas", () => {
  test("reasoning as reasoning_content (and reasoning), a call as OpenAI streams one, finish tool_calls", () => {
    const { deltas, finish } = streamed(callTurn);
    assert.deepEqual(deltas, [
      { role: "assistant" },
      { reasoning_content: "The user wants ", reasoning: "The user wants " },
      { reasoning_content: "the weather.", reasoning: "the weather." },
      { tool_calls: [{ index: 0, id: "call_1", type: "function", function: { name: "get_weather", arguments: "" } }] },
      { tool_calls: [{ index: 0, function: { arguments: '{"city"' } }] },
      { tool_calls: [{ index: 0, function: { arguments: ':"Par' } }] },
      { tool_calls: [{ index: 0, function: { arguments: 'is"}' } }] },
    ]);
    assert.equal(finish, "tool_calls");
  });

  test("a call's chunks are held back until tool_done: nothing of it shows before", () => {
    const s = new ChatStreamDeltas();
    const before = callTurn.slice(0, 7).flatMap((e) => s.event(e));
    assert.equal(before.filter((d) => d.tool_calls).length, 0);
    assert.equal(s.event(callTurn[7] as Event).length, 4, "the call's four chunks, at once");
  });

  test("text after a steer and a handover goes on in content; the role comes once, alone, at the first start", () => {
    const { deltas, finish } = streamed([
      start,
      { kind: "token", text: "Hel" },
      { kind: "steer", text: "shorter" },
      { kind: "handover", worker: "w2", epoch: 2, reason: "lost" },
      start,
      { kind: "token", text: "lo", n: 2 },
      end("stop", 3),
    ]);
    assert.deepEqual(deltas, [{ role: "assistant" }, { content: "Hel" }, { content: "lo" }]);
    assert.equal(finish, "stop");
  });

  test("a dropped call is never shown and takes no index; the next call is index 0, a later one 1", () => {
    const { deltas, finish } = streamed([
      start,
      { kind: "tool_call", id: "call_a", name: "f" },
      { kind: "tool_args", id: "call_a", text: '{"x":' },
      { kind: "handover", worker: "w2", epoch: 2, reason: "lost" },
      { kind: "tool_dropped", id: "call_a", reason: "the upstream cannot continue a call" },
      { kind: "tool_call", id: "call_b", name: "f" },
      { kind: "tool_args", id: "call_b", text: "{}" },
      { kind: "tool_done", id: "call_b", arguments: "{}" },
      { kind: "tool_call", id: "call_c", name: "g" },
      { kind: "tool_done", id: "call_c", arguments: "{}" },
      end("tool_calls", 4),
    ]);
    const calls = deltas.flatMap((d) => d.tool_calls ?? []);
    assert.deepEqual(
      calls.map((c) => [c.index, c.id, c.function.arguments]),
      [
        [0, "call_b", ""],
        [0, undefined, "{}"],
        [1, "call_c", ""],
        [1, undefined, "{}"],
      ],
    );
    assert.equal(deltas[0]?.role, "assistant");
    assert.equal(finish, "tool_calls");
  });

  test("a call left open by the end (max_tokens) is not shown; a tool_calls end without a shown call finishes stop", () => {
    const open = streamed([start, { kind: "tool_call", id: "c", name: "f" }, { kind: "tool_args", id: "c", text: "{" }, end("length", 2)]);
    assert.deepEqual(open.deltas, [{ role: "assistant" }], "only the role");
    assert.equal(open.finish, "length");
    const dropped = streamed([
      start,
      { kind: "tool_call", id: "c", name: "f" },
      { kind: "tool_dropped", id: "c", reason: "x" },
      end("tool_calls"),
    ]);
    assert.equal(dropped.finish, "stop");
  });

  test("an answer that ended before it began (cancelled while queued) still gets the role, as OpenAI always sends it", () => {
    const { deltas, finish } = streamed([end("cancelled", 0)]);
    assert.deepEqual(deltas, [{ role: "assistant", content: "" }]);
    assert.equal(finish, "stop");
  });

  test("arguments that tool_done states differently from the deltas: the complete text wins", () => {
    const { deltas } = streamed([
      start,
      { kind: "tool_call", id: "c", name: "f" },
      { kind: "tool_args", id: "c", text: '{"a":' },
      { kind: "tool_done", id: "c", arguments: '{"a":1}' },
      end("tool_calls"),
    ]);
    assert.equal(
      deltas
        .flatMap((d) => d.tool_calls ?? [])
        .map((c) => c.function.arguments)
        .join(""),
      '{"a":1}',
    );
  });

  test("cancelled and error end as stop; kinds it does not know change nothing", () => {
    assert.equal(streamed([start, { kind: "token", text: "a" }, end("cancelled", 1)]).finish, "stop");
    assert.deepEqual(streamed([start, { kind: "future_kind", text: "x" }, { kind: "token", text: "a" }]).deltas, [
      { role: "assistant" },
      { content: "a" },
    ]);
  });
});

describe("ChatWholeMessage", () => {
  const whole = (events: Event[]) => {
    const m = new ChatWholeMessage();
    for (const e of events) m.event(e);
    return m;
  };

  test("a call-only answer: content null, the complete calls, reasoning_content", () => {
    const m = whole(callTurn);
    assert.deepEqual(m.message(), {
      role: "assistant",
      content: null,
      refusal: null,
      reasoning_content: "The user wants the weather.",
      reasoning: "The user wants the weather.",
      tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } }],
    });
    assert.equal(m.finishReason(callTurn.at(-1) as EndEvent), "tool_calls");
  });

  test("a text answer has no tool_calls and no reasoning fields; a dropped call is left out", () => {
    const m = whole([
      start,
      { kind: "tool_call", id: "c", name: "f" },
      { kind: "tool_dropped", id: "c", reason: "x" },
      { kind: "token", text: "It is sunny." },
      end("stop"),
    ]);
    assert.deepEqual(m.message(), { role: "assistant", content: "It is sunny.", refusal: null });
    assert.equal(m.finishReason(end("tool_calls")), "stop", "no call to run");
    assert.deepEqual(whole([start, end("length", 0)]).message(), { role: "assistant", content: "", refusal: null });
  });
});

test("chatUsage: total_tokens and completion_tokens_details.reasoning_tokens (0 when none)", () => {
  assert.deepEqual(chatUsage(end("stop", 9, 5).usage), {
    prompt_tokens: 3,
    completion_tokens: 9,
    total_tokens: 12,
    completion_tokens_details: { reasoning_tokens: 5 },
  });
  assert.equal(chatUsage(end("stop").usage).completion_tokens_details.reasoning_tokens, 0);
});
