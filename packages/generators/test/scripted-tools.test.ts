import assert from "node:assert/strict";
import { test } from "node:test";
import type { GenerationBody, Tool } from "@unbroken/protocol";
import {
  argumentChunks,
  argumentsFor,
  callId,
  chosenTool,
  mentions,
  plannedCall,
  toolResultLead,
  valueFor,
} from "../src/scripted-tools.js";

const tool = (name: string, parameters?: Record<string, unknown>): Tool => ({
  type: "function",
  function: { name, ...(parameters ? { parameters } : {}) },
});
const WEATHER = tool("get_weather", {
  type: "object",
  properties: { city: { type: "string" }, days: { type: "integer" }, metric: { type: "boolean" } },
  required: ["city", "days", "metric"],
});
const TIME = tool("local_time");

test("a tool is named as a whole word, in any case", () => {
  assert.equal(mentions("What is the GET_WEATHER in Paris?", "get_weather"), true);
  assert.equal(mentions("call local-time now", "local-time"), true);
  assert.equal(mentions("get_weathers", "get_weather"), false);
  assert.equal(mentions("my_get_weather", "get_weather"), false);
  assert.equal(mentions("get_weather2", "get_weather"), false);
});

test("which tool: the first of `tools` the last user message names; tool_choice none/required/forced", () => {
  const ask = (content: string, extra: Partial<GenerationBody> = {}): GenerationBody => ({
    messages: [{ role: "user", content }],
    tools: [WEATHER, TIME],
    ...extra,
  });
  assert.equal(chosenTool(ask("local_time and get_weather please"))?.function.name, "get_weather", "tools order, not text order");
  assert.equal(chosenTool(ask("use local_time"))?.function.name, "local_time");
  assert.equal(chosenTool(ask("tell me a story")), undefined);
  assert.equal(chosenTool(ask("get_weather", { tool_choice: "none" })), undefined);
  assert.equal(chosenTool(ask("tell me a story", { tool_choice: "required" }))?.function.name, "get_weather");
  const forced = { type: "function" as const, function: { name: "local_time" } };
  assert.equal(chosenTool(ask("get_weather", { tool_choice: forced }))?.function.name, "local_time");
  assert.equal(chosenTool({ prompt: "the local_time?", tools: [WEATHER, TIME] })?.function.name, "local_time");
  assert.equal(chosenTool({ prompt: "the local_time?" }), undefined, "no tools offered");
  // Only the last message counts, and only when it is the user's.
  const earlier: GenerationBody = {
    messages: [
      { role: "user", content: "get_weather" },
      { role: "assistant", content: "Which city?" },
      { role: "user", content: "Paris" },
    ],
    tools: [WEATHER],
  };
  assert.equal(chosenTool(earlier), undefined);
});

test("arguments fill every required property with a value of its type", () => {
  assert.deepEqual(argumentsFor(WEATHER.function.parameters), { city: "sample", days: 42, metric: true });
  const schema = {
    type: "object",
    properties: {
      unit: { type: "string", enum: ["celsius", "fahrenheit"] },
      ratio: { type: "number" },
      tags: { type: "array", items: { type: "string" } },
      where: { type: "object", properties: { lat: { type: "number" }, name: { type: "string" } }, required: ["lat"] },
      maybe: { type: ["null", "string"] },
      either: { anyOf: [{ type: "null" }, { type: "integer" }] },
      fixed: { const: "v1" },
      untyped: {},
      optional: { type: "string" },
    },
    required: ["unit", "ratio", "tags", "where", "maybe", "either", "fixed", "untyped", "missing"],
  };
  assert.deepEqual(argumentsFor(schema), {
    unit: "celsius",
    ratio: 42,
    tags: [],
    where: { lat: 42 },
    maybe: "sample",
    either: 42,
    fixed: "v1",
    untyped: "sample",
    missing: "sample",
  });
  assert.deepEqual(argumentsFor(undefined), {});
  assert.deepEqual(argumentsFor({ type: "object", properties: { a: { type: "string" } } }), {}, "nothing required");
  assert.deepEqual(valueFor({ type: "object" }), {});
  // A schema that refers to itself without end stops at a bounded depth.
  const deep: Record<string, unknown> = { type: "object", required: ["next"], properties: {} };
  (deep.properties as Record<string, unknown>).next = deep;
  assert.doesNotThrow(() => JSON.stringify(argumentsFor(deep)));
});

test("the planned call: a stable id from prompt, seed and index, and JSON arguments that parse", () => {
  const body: GenerationBody = { prompt: "get_weather in Oslo", tools: [WEATHER] };
  const call = plannedCall(body, "get_weather in Oslo", 7);
  assert.ok(call);
  assert.match(call.id, /^call_[0-9a-f]{16}$/);
  assert.equal(call.name, "get_weather");
  assert.deepEqual(JSON.parse(call.arguments), { city: "sample", days: 42, metric: true });
  assert.equal(callId("get_weather in Oslo", 7, 0), call.id);
  assert.notEqual(callId("get_weather in Oslo", 8, 0), call.id, "another seed");
  assert.notEqual(callId("get_weather in Bergen", 7, 0), call.id, "another prompt");
  assert.notEqual(callId("get_weather in Oslo", 7, 1), call.id, "another call");
});

test("argument chunks are several tokens that join to the JSON text exactly", () => {
  const json = JSON.stringify({ city: "New York", days: 42, metric: true, tags: [] });
  const chunks = argumentChunks(json);
  assert.ok(chunks.length >= 8, String(chunks.length));
  assert.equal(chunks.join(""), json);
  assert.deepEqual(argumentChunks("{}"), ["{}"]);
});

test("after a tool result the answer begins with it, naming the function the call used", () => {
  const lead = toolResultLead([
    { role: "user", content: "get_weather" },
    {
      role: "assistant",
      content: "",
      tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: "{}" } }],
    },
    { role: "tool", tool_call_id: "call_1", content: `sunny and ${"warm ".repeat(60)}` },
  ]);
  assert.ok(lead);
  const text = lead.join("");
  assert.ok(text.startsWith("The result of get_weather is sunny and warm"), text);
  assert.equal(text, `The result of get_weather is ${`sunny and ${"warm ".repeat(60)}`.slice(0, 200)}.`);
  assert.equal(toolResultLead([{ role: "user", content: "hi" }]), undefined);
});
