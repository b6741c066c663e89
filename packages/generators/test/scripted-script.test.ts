import assert from "node:assert/strict";
import { test } from "node:test";
import type { GenerationBody, Tool } from "@unbroken/protocol";
import type { GenerationOutput, GenerationSession } from "../src/generator.js";
import { ScriptedGenerator, promptText } from "../src/scripted.js";

// The scripted answer's parts: reasoning, a tool call, the text after a tool result, and
// steers at safe boundaries (docs/generators.md, "The scripted generator").

const WORDLIKE = /^(\n\n| )?[A-Za-z]+[.,;!?]?$/;
const gen = new ScriptedGenerator({ tokensPerSecond: 0 });
const PROMPT: GenerationBody = { prompt: "Tell me about the river valley", params: { seed: 11 } };

const WEATHER: Tool = {
  type: "function",
  function: {
    name: "get_weather",
    parameters: {
      type: "object",
      properties: { city: { type: "string" }, days: { type: "integer" }, metric: { type: "boolean" }, hours: { type: "array" } },
      required: ["city", "days", "metric", "hours"],
    },
  },
};
const TIME: Tool = { type: "function", function: { name: "local_time" } };
const ASK_WEATHER: GenerationBody = {
  messages: [{ role: "user", content: "What does get_weather say for Oslo?" }],
  tools: [WEATHER, TIME],
};

/** Every output of a session; `onOutput` may steer (or abort) as they come. */
async function outputsOf(
  body: GenerationBody,
  onOutput?: (out: GenerationOutput, session: GenerationSession) => void,
): Promise<{ outputs: GenerationOutput[]; session: GenerationSession }> {
  const session = gen.start({ rid: "ridtyped01", body, steers: [], signal: new AbortController().signal });
  const outputs: GenerationOutput[] = [];
  for await (const out of session) {
    outputs.push(out);
    onOutput?.(out, session);
  }
  return { outputs, session };
}

const types = (outputs: GenerationOutput[]): string[] => outputs.map((o) => o.type).filter((t, i, all) => t !== all[i - 1]);
const textOf = (outputs: GenerationOutput[], type: "token" | "reasoning" | "tool_args"): string =>
  outputs.map((o) => (o.type === type ? o.text : "")).join("");
const doneOf = (outputs: GenerationOutput[]) => outputs.at(-1) as Extract<GenerationOutput, { type: "done" }>;

test("reasoning_effort: reasoning first (4/8/16/32 tokens), then the text; usage counts both", async () => {
  const plain = (await outputsOf(PROMPT)).outputs;
  const plainDone = doneOf(plain);
  for (const [effort, n] of [
    ["minimal", 4],
    ["low", 8],
    ["medium", 16],
    ["high", 32],
  ] as const) {
    const { outputs } = await outputsOf({ ...PROMPT, params: { ...PROMPT.params, reasoning_effort: effort } });
    assert.deepEqual(types(outputs), ["reasoning", "token", "done"], effort);
    const reasoning = outputs.filter((o) => o.type === "reasoning");
    assert.equal(reasoning.length, n, effort);
    for (const r of reasoning) assert.match(r.text, WORDLIKE);
    assert.equal(textOf(outputs, "token"), textOf(plain, "token"), "the text is the one without reasoning");
    const done = doneOf(outputs);
    assert.equal(done.reason, "stop");
    assert.deepEqual(done.usage, {
      ...plainDone.usage,
      completion_tokens: plainDone.usage.completion_tokens + n,
      reasoning_tokens: n,
    });
  }
  const none = await outputsOf({ ...PROMPT, params: { ...PROMPT.params, reasoning_effort: "none" } });
  assert.deepEqual(types(none.outputs), ["token", "done"]);
  assert.equal(doneOf(none.outputs).usage.reasoning_tokens, undefined);
  // max_tokens counts reasoning tokens too.
  const capped = await outputsOf({ ...PROMPT, params: { reasoning_effort: "high", max_tokens: 10 } });
  assert.deepEqual(types(capped.outputs), ["reasoning", "done"]);
  assert.equal(doneOf(capped.outputs).reason, "length");
});

test("a tool named by the last user message is called: arguments that parse, fill every required property, end tool_calls", async () => {
  const { outputs } = await outputsOf({ ...ASK_WEATHER, params: { reasoning_effort: "low" } });
  assert.deepEqual(types(outputs), ["reasoning", "tool_call", "tool_args", "tool_done", "done"]);
  const call = outputs.find((o) => o.type === "tool_call") as Extract<GenerationOutput, { type: "tool_call" }>;
  assert.match(call.id, /^call_[0-9a-f]{16}$/);
  assert.equal(call.name, "get_weather");
  const args = outputs.filter((o) => o.type === "tool_args");
  assert.ok(args.length > 3, "the arguments stream in several deltas");
  assert.ok(args.every((a) => a.id === call.id && a.tokens === 1));
  const done = outputs.find((o) => o.type === "tool_done") as Extract<GenerationOutput, { type: "tool_done" }>;
  assert.equal(done.id, call.id);
  assert.equal(done.arguments, textOf(outputs, "tool_args"));
  assert.deepEqual(JSON.parse(done.arguments), { city: "sample", days: 42, metric: true, hours: [] });
  const end = doneOf(outputs);
  assert.equal(end.reason, "tool_calls");
  assert.equal(end.usage.completion_tokens, 8 + args.length, "argument tokens count");
  assert.equal(end.usage.reasoning_tokens, 8);
  // Deterministic: the same request writes the same call.
  assert.deepEqual((await outputsOf({ ...ASK_WEATHER, params: { reasoning_effort: "low" } })).outputs, outputs);
});

test("tool_choice: none answers with text, required calls the first tool, a forced function is called", async () => {
  assert.deepEqual(types((await outputsOf({ ...ASK_WEATHER, tool_choice: "none" })).outputs), ["token", "done"]);
  const story: GenerationBody = { prompt: "tell me a story", tools: [WEATHER, TIME] };
  assert.deepEqual(types((await outputsOf(story)).outputs), ["token", "done"], "auto, nothing named: text");
  const required = (await outputsOf({ ...story, tool_choice: "required" })).outputs;
  assert.equal((required.find((o) => o.type === "tool_call") as { name?: string }).name, "get_weather");
  assert.equal(doneOf(required).reason, "tool_calls");
  const forced = (await outputsOf({ ...ASK_WEATHER, tool_choice: { type: "function", function: { name: "local_time" } } })).outputs;
  assert.deepEqual(types(forced), ["tool_call", "tool_args", "tool_done", "done"]);
  assert.equal((forced.find((o) => o.type === "tool_call") as { name?: string }).name, "local_time");
  assert.equal((forced.find((o) => o.type === "tool_done") as { arguments?: string }).arguments, "{}");
});

test("after a tool message the answer is text that begins with the result", async () => {
  const first = (await outputsOf(ASK_WEATHER)).outputs;
  const call = first.find((o) => o.type === "tool_call") as Extract<GenerationOutput, { type: "tool_call" }>;
  const done = first.find((o) => o.type === "tool_done") as Extract<GenerationOutput, { type: "tool_done" }>;
  const followUp: GenerationBody = {
    messages: [
      ...(ASK_WEATHER.messages ?? []),
      {
        role: "assistant",
        content: "",
        tool_calls: [{ id: call.id, type: "function", function: { name: call.name, arguments: done.arguments } }],
      },
      { role: "tool", tool_call_id: call.id, content: "12°C and cloudy" },
    ],
    tools: ASK_WEATHER.tools,
  };
  const { outputs } = await outputsOf(followUp);
  assert.deepEqual(types(outputs), ["token", "done"]);
  const text = textOf(outputs, "token");
  assert.ok(text.startsWith("The result of get_weather is 12°C and cloudy. "), text);
  assert.ok(text.length > 60, "scripted prose follows");
  assert.equal(doneOf(outputs).reason, "stop");
  // Another result is another conversation: another answer after the lead sentence.
  const other = textOf(
    (
      await outputsOf({
        ...followUp,
        messages: [...(followUp.messages ?? []).slice(0, -1), { role: "tool", tool_call_id: call.id, content: "rain" }],
      })
    ).outputs,
    "token",
  );
  assert.notEqual(other.replace(/^[^.]*\./, ""), text.replace(/^[^.]*\./, ""));
});

test("a steer during a call waits for its tool_done; one after the last call is refused", async () => {
  let taken: boolean | undefined;
  let late: boolean | undefined;
  const { outputs } = await outputsOf(ASK_WEATHER, (out, session) => {
    if (out.type === "tool_args" && taken === undefined) taken = session.steer("use metric units");
    if (out.type === "tool_done") late = session.steer("too late");
  });
  assert.equal(taken, true, "taken while the call streams");
  assert.equal(late, false, "refused once the last call is complete");
  assert.deepEqual(types(outputs), ["tool_call", "tool_args", "tool_done", "steer", "done"]);
  assert.deepEqual(outputs.at(-2), { type: "steer", text: "use metric units" });
  assert.equal(doneOf(outputs).reason, "tool_calls");
  // The call is the one an unsteered session writes.
  const plain = (await outputsOf(ASK_WEATHER)).outputs;
  assert.deepEqual(outputs.slice(0, -2), plain.slice(0, -1));
});

test("a steer during reasoning is applied at once, and what follows changes", async () => {
  const body: GenerationBody = { ...PROMPT, params: { ...PROMPT.params, reasoning_effort: "medium" } };
  const plain = (await outputsOf(body)).outputs;
  let n = 0;
  const { outputs } = await outputsOf(body, (out, session) => {
    if (out.type === "reasoning" && ++n === 3) session.steer("think about cats");
  });
  assert.deepEqual(types(outputs), ["reasoning", "steer", "reasoning", "token", "done"]);
  assert.deepEqual(outputs.slice(0, 3), plain.slice(0, 3));
  assert.equal(outputs.filter((o) => o.type === "reasoning").length, 16);
  assert.notEqual(textOf(outputs, "token"), textOf(plain, "token"));
});

test("max_tokens inside a call drops it: tool_dropped, then done length", async () => {
  const { outputs } = await outputsOf({ ...ASK_WEATHER, params: { max_tokens: 5 } });
  assert.deepEqual(types(outputs), ["tool_call", "tool_args", "tool_dropped", "done"]);
  assert.equal(outputs.filter((o) => o.type === "tool_args").length, 5);
  assert.equal(doneOf(outputs).reason, "length");
  assert.equal(doneOf(outputs).usage.completion_tokens, 5);
});

test("promptText: tool calls and tool results are part of the conversation's text", () => {
  const text = promptText({
    messages: [
      { role: "user", content: "weather?" },
      {
        role: "assistant",
        content: "",
        tool_calls: [{ id: "call_a", type: "function", function: { name: "get_weather", arguments: '{"city":"Oslo"}' } }],
      },
      { role: "tool", tool_call_id: "call_a", content: "cold" },
    ],
  });
  assert.match(text, /get_weather\(\{"city":"Oslo"\}\)/);
  assert.match(text, /call_a: cold/);
});
