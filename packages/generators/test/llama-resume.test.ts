import assert from "node:assert/strict";
import path from "node:path";
import { after, before, test } from "node:test";
import type { GenerationBody } from "@unbroken/protocol";
import { makeTempDir, writeTinyGguf, type TempDir } from "@unbroken/testing";
import { pino } from "pino";
import type { GenerationOutput, ResumeState } from "../src/generator.js";
import { LlamaGenerator } from "../src/llama.js";

// A llama worker taking a response over continues the partial answer: the text so far
// starts the model's turn, and max_tokens and usage count both workers' tokens.

let dir: TempDir;
let gen: LlamaGenerator;

before(async () => {
  dir = await makeTempDir("unbroken-llama-resume-");
  const modelPath = path.join(dir.path, "tiny.gguf");
  await writeTinyGguf(modelPath);
  gen = await LlamaGenerator.create({ modelPath, threads: 1, gpu: false, concurrency: 1, log: pino({ level: "silent" }) });
});

after(async () => {
  await gen?.close();
  await dir?.remove();
});

async function outputsOf(body: GenerationBody, resume?: ResumeState): Promise<GenerationOutput[]> {
  const session = gen.start({ rid: "ridllamares", body, steers: [], signal: new AbortController().signal, ...(resume ? { resume } : {}) });
  const outputs: GenerationOutput[] = [];
  for await (const out of session) outputs.push(out);
  return outputs;
}

const tokensOf = (outputs: GenerationOutput[]): string[] => outputs.flatMap((o) => (o.type === "token" ? [o.text] : []));

test("a resumed session continues the partial answer up to max_tokens in all", async () => {
  const body: GenerationBody = { prompt: "Tell me about the river valley", params: { seed: 7, max_tokens: 40 } };
  const first = tokensOf(await outputsOf(body)).slice(0, 8);
  assert.equal(first.length, 8);
  const resume: ResumeState = {
    tokens: first,
    steers: [
      { at: 0, text: "be brief" },
      { at: 5, text: "talk about boats" },
    ],
  };
  const rest = await outputsOf(body, resume);
  const done = rest.at(-1);
  assert.equal(done?.type, "done");
  if (done?.type !== "done") return;
  assert.equal(done.reason, "length");
  assert.equal(done.usage.completion_tokens, 40, "the resumed text counts towards max_tokens");
  assert.ok(tokensOf(rest).length > 0, "it wrote more");
  assert.ok(!rest.some((o) => o.type === "steer"), "the logged steers are not yielded again");
});

test("a response resumed after reasoning continues: the reasoning is a thought segment of the model turn", async () => {
  const body: GenerationBody = { prompt: "Tell me about the river valley", params: { seed: 7, max_tokens: 30 } };
  const first = tokensOf(await outputsOf(body)).slice(0, 4);
  // Logged by a worker serving a thinking model; this model's ChatML wrapper has no thought
  // segments, so the reasoning joins the prompt as the wrapper renders it, and the text goes on.
  const resume: ResumeState = {
    tokens: first,
    steers: [],
    generated: 6,
    reasoningTokens: 2,
    outputs: [
      { type: "reasoning", text: "Rivers", tokens: 1 },
      { type: "reasoning", text: " flow.", tokens: 1 },
      ...first.map((text) => ({ type: "token" as const, text, tokens: 1 })),
    ],
  };
  const rest = await outputsOf(body, resume);
  const done = rest.at(-1);
  assert.equal(done?.type, "done", JSON.stringify(rest.at(-1)));
  if (done?.type !== "done") return;
  assert.equal(done.reason, "length");
  assert.ok(tokensOf(rest).length > 0, "it wrote more");
  assert.ok(!rest.some((o) => o.type === "reasoning"), "no reasoning yielded again");
});
