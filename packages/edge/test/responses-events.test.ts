import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { ResponseEvent, ResponseRecord } from "@unbroken/protocol";
import { ResponsesFold, type ResponsesEvent } from "../src/responses-events.js";
import { parseItemId } from "../src/responses-object.js";

const RID = "resp_abc-DEF_123";

function record(openai?: ResponseRecord["openai"]): ResponseRecord {
  return {
    v: 1,
    rid: RID,
    owner: "anonymous",
    status: "running",
    created_at: "2026-01-01T00:00:10.500Z",
    request: {
      messages: [{ role: "user", content: "what is the weather in Paris" }],
      params: { max_tokens: 100, reasoning_effort: "low" },
      tools: [{ type: "function", function: { name: "get_weather", parameters: { type: "object" } } }],
      tool_choice: "auto",
    },
    steers: [],
    epoch: 1,
    ...(openai ? { openai } : {}),
  };
}

const usage = { prompt_tokens: 7, completion_tokens: 9, reasoning_tokens: 3 };

/** An agent turn: reasoning, text, a call (split arguments), a steer and a handover in between, then the end. */
const AGENT_TURN: ResponseEvent[] = [
  { kind: "start", model: "scripted", created_at: "x" },
  { kind: "reasoning", text: "The user ", n: 2 },
  { kind: "reasoning", text: "asks." },
  { kind: "steer", text: "be brief" },
  { kind: "token", text: "Let me " },
  { kind: "handover", worker: "w2", epoch: 2, reason: "lost" },
  { kind: "token", text: "check." },
  { kind: "tool_call", id: "call_1", name: "get_weather" },
  { kind: "tool_args", id: "call_1", text: '{"city":' },
  { kind: "tool_args", id: "call_1", text: '"Paris"}' },
  { kind: "tool_done", id: "call_1", arguments: '{"city":"Paris"}' },
  { kind: "end", reason: "tool_calls", usage },
];

function foldAll(events: ResponseEvent[], rec = record()): { fold: ResponsesFold; out: ResponsesEvent[] } {
  const fold = new ResponsesFold(rec);
  const out = [...fold.created()];
  for (const e of events) out.push(...fold.apply(e));
  return { fold, out };
}

describe("ResponsesFold", () => {
  test("an agent turn becomes OpenAI's Responses events, numbered from 0 without a gap", () => {
    const { out } = foldAll(AGENT_TURN);
    assert.deepEqual(
      out.map((e) => e.type),
      [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.reasoning_text.delta",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
      ],
    );
    assert.deepEqual(
      out.map((e) => e.sequence_number),
      out.map((_, i) => i),
    );
    const argsDone = out.find((e) => e.type === "response.function_call_arguments.done");
    assert.deepEqual(argsDone, {
      type: "response.function_call_arguments.done",
      sequence_number: 19,
      item_id: `fc_${RID}_2`,
      output_index: 2,
      name: "get_weather",
      arguments: '{"city":"Paris"}',
    });
    const textDelta = out.find((e) => e.type === "response.output_text.delta");
    assert.deepEqual(textDelta, {
      type: "response.output_text.delta",
      sequence_number: 11,
      item_id: `msg_${RID}_1`,
      output_index: 1,
      content_index: 0,
      delta: "Let me ",
      logprobs: [],
    });
  });

  test("the same log gives the same events on every read", () => {
    assert.deepEqual(foldAll(AGENT_TURN).out, foldAll(AGENT_TURN).out);
  });

  test("the object: output items, output_text, usage with reasoning tokens, the request's fields", () => {
    const { fold } = foldAll(AGENT_TURN, record({ background: true, instructions: "be kind", metadata: { a: "b" }, model: "gpt-x" }));
    const o = fold.object();
    assert.equal(o.id, RID);
    assert.equal(o.object, "response");
    assert.equal(o.status, "completed");
    assert.equal(o.created_at, Date.parse("2026-01-01T00:00:10.500Z") / 1000 - 0.5);
    assert.equal(o.model, "scripted", "the model that ran, from the start event");
    assert.equal(o.output_text, "Let me check.");
    assert.deepEqual(o.metadata, { a: "b" });
    assert.equal(o.instructions, "be kind");
    assert.equal(o.background, true);
    assert.equal(o.max_output_tokens, 100);
    assert.deepEqual(o.reasoning, { effort: "low", summary: null });
    assert.deepEqual(o.tools, [{ type: "function", name: "get_weather", description: null, parameters: { type: "object" }, strict: null }]);
    assert.deepEqual(o.usage, {
      input_tokens: 7,
      input_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 },
      output_tokens: 9,
      output_tokens_details: { reasoning_tokens: 3 },
      total_tokens: 16,
    });
    assert.deepEqual(o.output, [
      {
        id: `rs_${RID}_0`,
        type: "reasoning",
        summary: [],
        content: [{ type: "reasoning_text", text: "The user asks." }],
        status: "completed",
      },
      {
        id: `msg_${RID}_1`,
        type: "message",
        role: "assistant",
        status: "completed",
        content: [{ type: "output_text", text: "Let me check.", annotations: [], logprobs: [] }],
      },
      {
        id: `fc_${RID}_2`,
        type: "function_call",
        call_id: "call_1",
        name: "get_weather",
        arguments: '{"city":"Paris"}',
        status: "completed",
      },
    ]);
  });

  test("status before and while it runs: queued (background) or in_progress, items in progress", () => {
    assert.equal(
      new ResponsesFold(record({ background: true, instructions: null, metadata: null, model: null })).object().status,
      "queued",
    );
    const { fold } = foldAll(AGENT_TURN.slice(0, 5));
    const o = fold.object();
    assert.equal(o.status, "in_progress");
    assert.equal(o.usage, undefined);
    assert.deepEqual(
      (o.output as Array<{ status: string }>).map((i) => i.status),
      ["completed", "in_progress"],
    );
  });

  test("length ends incomplete (max_output_tokens); the open message is incomplete", () => {
    const { fold, out } = foldAll([
      { kind: "start", model: "m", created_at: "x" },
      { kind: "token", text: "cut" },
      { kind: "end", reason: "length", usage },
    ]);
    assert.equal(out.at(-1)?.type, "response.incomplete");
    const o = fold.object();
    assert.deepEqual([o.status, o.incomplete_details], ["incomplete", { reason: "max_output_tokens" }]);
    assert.equal((o.output as Array<{ status: string }>)[0]?.status, "incomplete");
  });

  test("an error ends failed with the project's code; a cancel ends cancelled", () => {
    const failed = foldAll([{ kind: "end", reason: "error", error: { code: "no_worker", message: "nobody" }, usage }]);
    assert.deepEqual(
      failed.out.map((e) => e.type),
      ["response.created", "response.in_progress", "response.failed"],
    );
    assert.deepEqual(failed.fold.object().error, { code: "no_worker", message: "nobody" });
    const cancelled = foldAll([
      { kind: "start", model: "m", created_at: "x" },
      { kind: "end", reason: "cancelled", usage },
    ]);
    assert.equal(cancelled.out.at(-1)?.type, "response.cancelled");
    assert.equal(cancelled.fold.object().status, "cancelled");
  });

  test("a dropped call is an output item done with status incomplete, no arguments.done; the answer goes on", () => {
    const { fold, out } = foldAll([
      { kind: "start", model: "m", created_at: "x" },
      { kind: "tool_call", id: "call_x", name: "get_weather" },
      { kind: "tool_args", id: "call_x", text: '{"ci' },
      { kind: "tool_dropped", id: "call_x", reason: "cannot continue" },
      { kind: "token", text: "Sorry." },
      { kind: "end", reason: "stop", usage },
    ]);
    assert.ok(!out.some((e) => e.type === "response.function_call_arguments.done"));
    const done = out.find((e) => e.type === "response.output_item.done") as ResponsesEvent & { item: { status: string } };
    assert.equal(done.item.status, "incomplete");
    assert.deepEqual(
      (fold.object().output as Array<{ type: string; status: string }>).map((i) => [i.type, i.status]),
      [
        ["function_call", "incomplete"],
        ["message", "completed"],
      ],
    );
  });

  test("nothing after the end; kinds it does not know change nothing", () => {
    const { fold } = foldAll([
      { kind: "start", model: "m", created_at: "x" },
      { kind: "end", reason: "stop", usage },
    ]);
    assert.deepEqual(fold.apply({ kind: "token", text: "late" }), []);
    const other = new ResponsesFold(record());
    other.apply({ kind: "start", model: "m", created_at: "x" });
    assert.deepEqual(other.apply({ kind: "future_kind" } as unknown as ResponseEvent), []);
  });

  test("item ids name the response and the output index", () => {
    assert.deepEqual(parseItemId(`fc_${RID}_2`), { kind: "fc", rid: RID, index: 2 });
    assert.equal(parseItemId("msg_short_1"), undefined);
    assert.equal(parseItemId("item_abc"), undefined);
  });
});
