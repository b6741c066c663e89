// Reasoning through the openai bridge: both field names, split chunks, usage, steer and cut.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { GenerationBody } from "@unbroken/protocol";
import { ROLE_STEP, type Step, chunk } from "@unbroken/testing";
import { PROMPT, generator, run, serve, shapes } from "./openai-harness.js";

const THINK: GenerationBody = { prompt: "Is 9.11 larger than 9.8?", params: { reasoning_effort: "high" } };

/** Reasoning, then text, finish stop, optional usage and [DONE]. */
function thoughtful(thoughts: string[], words: string[], field?: "reasoning_content" | "reasoning" | "both", usage?: Step): Step[] {
  return [
    ROLE_STEP,
    ...thoughts.map((reasoning): Step => ({ reasoning, ...(field ? { field } : {}) })),
    ...words.map((text): Step => ({ text })),
    { finish: "stop" },
    ...(usage ? [usage] : []),
    { done: true },
  ];
}

test("vLLM's reasoning_content comes before the text; reasoning_effort goes upstream; reasoning_tokens from completion_tokens_details", async () => {
  const usage: Step = { usage: { prompt_tokens: 11, completion_tokens: 30, reasoning_tokens: 24 } };
  const { fake, baseUrl } = await serve([{ steps: thoughtful(["Compare ", "decimals: ", ".80 > .11"], ["No", "."], undefined, usage) }]);
  const r = await run(generator(baseUrl), THINK);
  assert.equal(r.error, undefined);
  assert.deepEqual(shapes(r.outputs), ["think:Compare ", "think:decimals: ", "think:.80 > .11", "text:No", "text:.", "<stop>"]);
  assert.deepEqual(r.done?.usage, { prompt_tokens: 11, completion_tokens: 30, reasoning_tokens: 24 });
  assert.equal(fake.requests[0]!.body.reasoning_effort, "high");
});

test("newer vLLM's delta.reasoning; a server sending both fields is read once; multi-byte text split byte by byte", async () => {
  for (const field of ["reasoning", "both"] as const) {
    const { baseUrl } = await serve([{ steps: thoughtful(["Déjà vu — ", "naïve"], ["Réponse"], field), split: 1 }]);
    const r = await run(generator(baseUrl), THINK);
    assert.equal(r.error, undefined);
    assert.deepEqual(shapes(r.outputs), ["think:Déjà vu — ", "think:naïve", "text:Réponse", "<stop>"], field);
    // No usage reported: one token per piece, the reasoning ones counted apart.
    assert.deepEqual(r.done?.usage, { prompt_tokens: 0, completion_tokens: 3, reasoning_tokens: 2 }, field);
  }
});

test("a chunk with both reasoning and content yields the reasoning first", async () => {
  const steps: Step[] = [
    ROLE_STEP,
    { reasoning: "almost done" },
    { chunk: chunk({ reasoning_content: " thinking.", content: "Answer:" }) },
    { text: " 42" },
    { finish: "stop" },
    { done: true },
  ];
  const { baseUrl } = await serve([{ steps }]);
  const r = await run(generator(baseUrl), PROMPT);
  assert.deepEqual(shapes(r.outputs), ["think:almost done", "think: thinking.", "text:Answer:", "text: 42", "<stop>"]);
});

test("a steer during reasoning is applied; the continuation's reasoning is new thinking and is written", async () => {
  const { fake, baseUrl } = await serve([
    { steps: [ROLE_STEP, { reasoning: "Let me think" }, { hang: true }] },
    { steps: thoughtful(["Briefly then"], ["Yes."]) },
  ]);
  const r = await run(generator(baseUrl), THINK, {
    onOutput: (out, s) => void (out.type === "reasoning" && out.text === "Let me think" && assert.equal(s.steer("be brief"), true)),
  });
  assert.equal(r.error, undefined);
  assert.deepEqual(shapes(r.outputs), ["think:Let me think", "steer:be brief", "think:Briefly then", "text:Yes.", "<stop>"]);
  // Nothing was written as text: the instruction joins the user message, no assistant partial.
  assert.deepEqual(fake.requests[1]!.body.messages, [{ role: "user", content: `${THINK.prompt}\n\nbe brief` }]);
});

test("a stream cut after reasoning: the continuation's reasoning is not written again, its text is", async () => {
  const { fake, baseUrl } = await serve([
    { steps: [ROLE_STEP, { reasoning: "First, " }, { reasoning: "compare." }, { text: "No" }, { destroy: true }] },
    { steps: thoughtful(["The user was cut off; "], [", 9.8 is larger."]) },
  ]);
  const r = await run(generator(baseUrl), THINK);
  assert.equal(r.error, undefined);
  assert.deepEqual(shapes(r.outputs), ["think:First, ", "think:compare.", "text:No", "text:, 9.8 is larger.", "<stop>"]);
  assert.equal(fake.requests[1]!.body.messages.at(-2).content, "No");
  // The skipped reasoning was generated all the same: it counts.
  assert.deepEqual(r.done?.usage, { prompt_tokens: 0, completion_tokens: 5, reasoning_tokens: 3 });
});
