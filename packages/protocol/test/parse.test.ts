import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseClientFrame, type ParseResult } from "../src/parse.js";
import { LIMITS } from "../src/frames.js";

const RID = "abcdEFGH1234_-xy";

function ok(text: string | object): Record<string, unknown> {
  const r = parseClientFrame(typeof text === "string" ? text : JSON.stringify(text));
  if (!r.ok) assert.fail(`expected ok, got error: ${r.error.message}`);
  return r.frame as unknown as Record<string, unknown>;
}

function bad(text: string | object): Extract<ParseResult, { ok: false }>["error"] {
  const r = parseClientFrame(typeof text === "string" ? text : JSON.stringify(text));
  assert.equal(r.ok, false, `expected bad_request for ${typeof text === "string" ? text : JSON.stringify(text)}`);
  if (r.ok) throw new Error("unreachable");
  assert.equal(r.error.type, "error");
  assert.equal(r.error.code, "bad_request");
  assert.equal(typeof r.error.message, "string");
  assert.ok(r.error.message.length > 0);
  return r.error;
}

describe("parseClientFrame: shape of the text", () => {
  test("not JSON is bad_request without id", () => {
    for (const t of ["", "{", "hello", "{'type':'ping'}", '{"type":"ping",}']) {
      const e = bad(t);
      assert.equal(e.id, undefined);
      assert.equal(Object.hasOwn(e, "id"), false);
    }
  });

  test("JSON that is not an object is bad_request", () => {
    for (const t of ["[]", '[{"type":"ping"}]', "null", "42", '"ping"', "true"]) {
      const e = bad(t);
      assert.equal(Object.hasOwn(e, "id"), false);
    }
  });

  test("missing or non-string type is bad_request, echoing a valid id", () => {
    assert.equal(bad({ id: "a1" }).id, "a1");
    assert.equal(bad({ type: 5, id: "a2" }).id, "a2");
    assert.equal(bad({ type: null }).id, undefined);
  });

  test("unknown type is bad_request with the id; prototype names are unknown too", () => {
    assert.equal(bad({ type: "pong", id: "x" }).id, "x");
    assert.equal(bad({ type: "event", id: "x" }).id, "x");
    for (const t of ["toString", "constructor", "__proto__", "hasOwnProperty", "PING", ""]) bad({ type: t });
  });
});

describe("parseClientFrame: id rules", () => {
  test("a string id of up to 64 characters is kept on the frame and echoed on errors", () => {
    const id64 = "i".repeat(LIMITS.frameId);
    assert.equal(ok({ type: "ping", id: id64 }).id, id64);
    assert.equal(ok({ type: "ping", id: "" }).id, "");
    assert.equal(bad({ type: "subscribe", id: id64 }).id, id64);
  });

  test("an id that is not a string of at most 64 characters is bad_request answered without id", () => {
    for (const id of ["i".repeat(65), 7, null, true, { a: 1 }, ["x"]]) {
      const e = bad({ type: "ping", id });
      assert.equal(Object.hasOwn(e, "id"), false, `id ${JSON.stringify(id)} must not be echoed`);
    }
    // Even when the rest of the frame is also wrong, a bad id is never echoed.
    assert.equal(Object.hasOwn(bad({ type: "nope", id: 12 }), "id"), false);
  });

  test("frames without id parse without one", () => {
    assert.equal(ok({ type: "ping" }).id, undefined);
  });
});

describe("parseClientFrame: each frame type", () => {
  test("hello with and without token", () => {
    assert.deepEqual(ok({ type: "hello", token: "t.o.k" }), { type: "hello", token: "t.o.k" });
    assert.deepEqual(ok({ type: "hello" }), { type: "hello" });
    bad({ type: "hello", token: 5 });
  });

  test("ping", () => {
    assert.deepEqual(ok('{"type":"ping","id":"p"}'), { type: "ping", id: "p" });
  });

  test("subscribe: after defaults to 0 and must be a non-negative integer", () => {
    assert.deepEqual(ok({ type: "subscribe", rid: RID }), { type: "subscribe", rid: RID, after: 0 });
    assert.equal(ok({ type: "subscribe", rid: RID, after: 17 }).after, 17);
    for (const after of [-1, 1.5, "3", null]) bad({ type: "subscribe", rid: RID, after });
    bad({ type: "subscribe" });
    bad({ type: "subscribe", rid: "short" });
    bad({ type: "subscribe", rid: "llm.ev.abcdefgh" });
  });

  test("unsubscribe and cancel need a valid rid", () => {
    for (const type of ["unsubscribe", "cancel"]) {
      assert.deepEqual(ok({ type, rid: RID, id: "c" }), { type, rid: RID, id: "c" });
      assert.equal(bad({ type, id: "c" }).id, "c");
      bad({ type, rid: "abc def ghi" });
      bad({ type, rid: "abcdefgh>" });
    }
  });

  test("steer needs rid and text of 1..4096 characters", () => {
    assert.deepEqual(ok({ type: "steer", rid: RID, text: "be brief" }), { type: "steer", rid: RID, text: "be brief" });
    ok({ type: "steer", rid: RID, text: "x".repeat(LIMITS.steerText) });
    bad({ type: "steer", rid: RID, text: "" });
    bad({ type: "steer", rid: RID, text: "x".repeat(LIMITS.steerText + 1) });
    bad({ type: "steer", rid: RID });
    bad({ type: "steer", text: "hi" });
  });

  test("follow and unfollow name a thread by the rid's rules; follow's after defaults to 0", () => {
    assert.deepEqual(ok({ type: "follow", thread: RID }), { type: "follow", thread: RID, after: 0 });
    assert.deepEqual(ok({ type: "follow", thread: RID, after: 7, id: "f" }), { type: "follow", thread: RID, after: 7, id: "f" });
    assert.deepEqual(ok({ type: "unfollow", thread: RID }), { type: "unfollow", thread: RID });
    bad({ type: "follow" });
    bad({ type: "follow", thread: "a.b.c.d.e.f" });
    bad({ type: "follow", thread: RID, after: -1 });
    bad({ type: "follow", thread: RID, after: 1.5 });
    bad({ type: "follow", thread: RID, after: LIMITS.turnSeq + 1 });
    bad({ type: "unfollow", thread: "short" });
    assert.equal(ok({ type: "generate", prompt: "hi", thread: RID }).type, "generate");
    bad({ type: "generate", prompt: "hi", thread: "no>wild*cards" });
  });

  test("generate with a prompt or with messages", () => {
    assert.deepEqual(ok({ type: "generate", prompt: "hi" }), { type: "generate", prompt: "hi" });
    const f = ok({
      type: "generate",
      id: "g1",
      rid: RID,
      messages: [
        { role: "system", content: "s" },
        { role: "user", content: "u" },
        { role: "assistant", content: "a" },
      ],
      params: { max_tokens: 10, temperature: 0.7, top_p: 0.9, seed: 3, stop: ["\n", "END"] },
      after: 4,
    });
    assert.equal(f.rid, RID);
    assert.equal(f.after, 4);
    assert.deepEqual(f.params, { max_tokens: 10, temperature: 0.7, top_p: 0.9, seed: 3, stop: ["\n", "END"] });
    assert.equal((f.messages as unknown[]).length, 3);
  });

  test("generate needs exactly one of messages and prompt", () => {
    assert.equal(bad({ type: "generate", id: "g" }).id, "g");
    bad({ type: "generate", prompt: "p", messages: [{ role: "user", content: "m" }] });
    bad({ type: "generate", messages: [] });
    bad({ type: "generate", messages: [{ role: "tool", content: "m" }] });
    bad({ type: "generate", messages: [{ role: "user" }] });
    bad({ type: "generate", prompt: 5 });
    bad({ type: "generate", prompt: "p", rid: "bad.rid.x" });
    bad({ type: "generate", prompt: "p", after: -1 });
  });

  test("generate params bounds", () => {
    const p = (params: object) => ({ type: "generate", prompt: "p", params });
    for (const good of [
      { max_tokens: 1 },
      { max_tokens: LIMITS.maxTokens },
      { temperature: 0 },
      { temperature: 2 },
      { top_p: 1 },
      { top_p: 0.01 },
      { seed: -5 },
      { stop: "x" },
      { stop: ["a", "b", "c", "d"] },
      { stop: "s".repeat(LIMITS.stopLength) },
      {},
    ])
      ok(p(good));
    for (const wrong of [
      { max_tokens: 0 },
      { max_tokens: LIMITS.maxTokens + 1 },
      { max_tokens: 1.5 },
      { max_tokens: "10" },
      { temperature: -0.1 },
      { temperature: 2.01 },
      { top_p: 0 },
      { top_p: 1.1 },
      { seed: 0.5 },
      { stop: "" },
      { stop: [""] },
      { stop: ["a", "b", "c", "d", "e"] },
      { stop: "s".repeat(LIMITS.stopLength + 1) },
      { stop: 3 },
    ])
      bad(p(wrong));
    bad({ type: "generate", prompt: "p", params: "fast" });
  });

  test("unknown extra fields are ignored, not refused, and not passed on", () => {
    const f = ok({ type: "ping", extra: 1, nested: { a: [1] } });
    assert.deepEqual(f, { type: "ping" });
    const g = ok({ type: "generate", prompt: "p", colour: "blue", params: { max_tokens: 3, foo: true } });
    assert.equal(Object.hasOwn(g, "colour"), false);
    assert.deepEqual(g.params, { max_tokens: 3 });
    assert.deepEqual(ok({ type: "subscribe", rid: RID, after: 2, whatever: null }), { type: "subscribe", rid: RID, after: 2 });
  });

  test("the error message names the failing field", () => {
    assert.match(bad({ type: "subscribe", rid: RID, after: -1 }).message, /after/);
    assert.match(bad({ type: "generate", prompt: "p", params: { top_p: 0 } }).message, /top_p/);
  });
});

describe("parseClientFrame: tools and OpenAI-shaped messages", () => {
  const tools = [
    { type: "function", function: { name: "get_time", parameters: { type: "object", properties: { zone: { type: "string" } } } } },
  ];
  const turn = [
    { role: "user", content: "What time is it?" },
    { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "get_time", arguments: "{}" } }] },
    { role: "tool", tool_call_id: "call_1", content: "12:00" },
  ];

  test("an agent turn with tools, a forced function and reasoning effort is accepted; null content reads as empty", () => {
    const f = ok({
      type: "generate",
      messages: turn,
      tools,
      tool_choice: { type: "function", function: { name: "get_time" } },
      params: { reasoning_effort: "low" },
    });
    assert.equal((f.messages as Array<{ content: string }>)[1]?.content, "");
    assert.equal((f.tools as unknown[]).length, 1);
  });

  test("bad shapes name the field", () => {
    const msg = (frame: object) => bad({ type: "generate", ...frame }).message;
    assert.match(
      msg({
        messages: [
          { role: "user", content: "x" },
          { role: "tool", tool_call_id: "nope", content: "r" },
        ],
      }),
      /messages\.1\.tool_call_id/,
    );
    assert.match(msg({ messages: turn, tools: [{ type: "function", function: { name: "has space" } }] }), /tools\.0\.function\.name/);
    assert.match(msg({ messages: turn, tools, tool_choice: { type: "function", function: { name: "other" } } }), /tool_choice/);
    assert.match(msg({ prompt: "p", tool_choice: "required" }), /tool_choice/);
    assert.match(msg({ messages: turn, tools: [...tools, ...tools] }), /tools/);
    assert.match(msg({ prompt: "p", params: { reasoning_effort: "extreme" } }), /params\.reasoning_effort/);
    assert.match(
      msg({ prompt: "p", tools: Array.from({ length: LIMITS.tools + 1 }, (_, i) => ({ type: "function", function: { name: `f${i}` } })) }),
      /tools/,
    );
  });
});
