import assert from "node:assert/strict";
import { test } from "node:test";
import type { GenerationOutput } from "../src/generator.js";
import type { FromChild, ToChild } from "../src/llama-messages.js";
import { chunkKind } from "../src/llama-run.js";
import { LlamaSession, type SessionHost, unsupportedByLlama } from "../src/llama-session.js";

// The worker-side half of a llama generation, against a recording host: what the model
// process would say arrives as messages, so thought segments can be tested without a model
// whose chat wrapper has them (the project's tiny GGUF is ChatML, which has none).

function host(): SessionHost & { sent: ToChild[] } {
  const sent: ToChild[] = [];
  return { sent, send: (m) => sent.push(m), contextSize: () => 512, detach: () => undefined };
}

test("thought chunks are reasoning outputs, text chunks tokens; usage carries reasoning_tokens", async () => {
  const h = host();
  const session = new LlamaSession(
    "g1",
    { rid: "ridllamas1", body: { prompt: "hi", params: { reasoning_effort: "low" } }, steers: [], signal: new AbortController().signal },
    h,
  );
  session.begin();
  const start = h.sent[0] as Extract<ToChild, { type: "start" }>;
  assert.equal(start.params.reasoning_effort, "low");
  const usage = (completion: number, reasoning?: number) => ({
    prompt_tokens: 3,
    completion_tokens: completion,
    ...(reasoning ? { reasoning_tokens: reasoning } : {}),
  });
  const messages: FromChild[] = [
    { type: "thought", id: "g1", text: "Let me think", tokens: 3, usage: usage(3, 3) },
    { type: "chunk", id: "g1", text: "Hello", tokens: 1, usage: usage(4, 3) },
    { type: "end", id: "g1", reason: "stop", usage: usage(4, 3) },
  ];
  for (const m of messages) session.onMessage(m);
  const outputs: GenerationOutput[] = [];
  for await (const out of session) outputs.push(out);
  assert.deepEqual(outputs, [
    { type: "reasoning", text: "Let me think", tokens: 3 },
    { type: "token", text: "Hello", tokens: 1 },
    { type: "done", reason: "stop", usage: usage(4, 3) },
  ]);
});

test("a resumed session hands the model its logged reasoning and text", () => {
  const h = host();
  const session = new LlamaSession(
    "g2",
    {
      rid: "ridllamas2",
      body: { prompt: "hi" },
      steers: [],
      signal: new AbortController().signal,
      resume: {
        tokens: ["The", " answer"],
        steers: [],
        outputs: [
          { type: "reasoning", text: "Think", tokens: 1 },
          { type: "reasoning", text: "ing.", tokens: 1 },
          { type: "token", text: "The", tokens: 1 },
          { type: "token", text: " answer", tokens: 1 },
        ],
      },
    },
    h,
  );
  session.begin();
  const start = h.sent[0] as Extract<ToChild, { type: "start" }>;
  assert.equal(start.resumeReasoning, "Thinking.");
  assert.equal(start.resumeText, "The answer");
});

test("chunkKind: text is answer, a thought segment is reasoning, comments and empty chunks are neither", () => {
  assert.equal(chunkKind({ type: undefined, segmentType: undefined, text: "a" }), "chunk");
  assert.equal(chunkKind({ type: "segment", segmentType: "thought", text: "hmm" }), "thought");
  assert.equal(chunkKind({ type: "segment", segmentType: "comment", text: "note" }), undefined);
  assert.equal(chunkKind({ type: "segment", segmentType: "thought", text: "" }), undefined);
});

test("unsupportedByLlama names why for tools and tool content, and passes tool_choice none", () => {
  const tools = [{ type: "function" as const, function: { name: "f" } }];
  assert.match(unsupportedByLlama({ prompt: "x", tools }) ?? "", /^tools were offered, but the llama backend does not support tool calls/);
  assert.equal(unsupportedByLlama({ prompt: "x", tools, tool_choice: "none" }), undefined);
  assert.equal(unsupportedByLlama({ prompt: "x" }), undefined);
  assert.match(
    unsupportedByLlama({
      messages: [
        { role: "user", content: "x" },
        { role: "assistant", content: "", tool_calls: [{ id: "c", type: "function", function: { name: "f", arguments: "{}" } }] },
      ],
    }) ?? "",
    /tool calls or tool results/,
  );
});
