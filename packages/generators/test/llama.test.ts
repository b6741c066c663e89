import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import type { GenerationBody } from "@unbroken/protocol";
import { makeTempDir, tinyVocab, writeCorruptGguf, writeTinyGguf, type CorruptKind, type TempDir } from "@unbroken/testing";
import { pino } from "pino";
import { GeneratorError, type GenerationOutput } from "../src/generator.js";
import { LlamaGenerator } from "../src/llama.js";
import { assertGeneratorError, modelProcesses, runSession, type Run, type RunOptions } from "./llama-harness.js";

// Real node-llama-cpp on a tiny random-weight GGUF written here (no download), one thread.
// Random weights say nothing sensible, so the tests compare token sequences, not meaning;
// fixed seeds make them deterministic.

const log = pino({ level: process.env.LOG_LEVEL ?? "silent" });
let dir: TempDir;
let modelPath: string;
let gen: LlamaGenerator;

before(async () => {
  dir = await makeTempDir("unbroken-llama-");
  modelPath = path.join(dir.path, "tiny.gguf");
  await writeTinyGguf(modelPath);
  gen = await LlamaGenerator.create({ modelPath, threads: 1, gpu: false, concurrency: 2, log });
});

after(async () => {
  await gen?.close();
  await dir?.remove();
});

function run(body: GenerationBody, opts: RunOptions = {}): Promise<Run> {
  return runSession(opts.generator ?? gen, body, opts);
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const RIVER: GenerationBody = { prompt: "Tell me about the river valley", params: { seed: 7, max_tokens: 60 } };

test("the model loads once and is named from its metadata", () => {
  assert.deepEqual(gen.status(), { state: "ready" });
  assert.equal(gen.model, "unbroken-tiny");
  assert.equal(modelProcesses().length, 1);
});

test("streams text chunk by chunk, each carrying its token count", async () => {
  const r = await run(RIVER);
  assert.ok(r.tokens.length >= 10, `only ${r.tokens.length} chunks`);
  assert.ok(r.text.length > 0);
  for (const out of r.outputs) {
    if (out.type !== "token") continue;
    assert.ok(out.text.length > 0);
    assert.ok(out.tokens >= 1);
    assert.doesNotMatch(out.text, LONE_SURROGATE, "no chunk splits a character");
  }
  const counted = r.outputs.reduce((n, o) => n + (o.type === "token" ? o.tokens : 0), 0);
  assert.ok(r.done);
  assert.ok(counted <= r.done.usage.completion_tokens);
  assert.ok(r.done.usage.prompt_tokens > 5);
  // Same request and seed, same tokens.
  const again = await run(RIVER);
  assert.deepEqual(again.tokens, r.tokens);
  assert.equal(again.text, r.text);
});

test("a character made of several byte tokens arrives whole, in one chunk", async () => {
  // Random weights pick byte tokens (<0xE8> <0xB0> <0x86> ...) often enough that some
  // form a valid multi-byte character; the chunk carrying it counts all its tokens.
  const pieces = new Set(tinyVocab().tokens.flatMap((t) => [...t]));
  const r = await run({ prompt: "Tell me about 日本語 and café", params: { seed: 3, max_tokens: 500, temperature: 1.2 } });
  const whole = r.outputs.filter(
    (o) => o.type === "token" && o.tokens >= 2 && [...o.text].some((c) => c > "\x7f" && c !== "\uFFFD" && !pieces.has(c)),
  );
  assert.ok(whole.length > 0, "a multi-byte character assembled from byte tokens");
  for (const o of r.outputs) if (o.type === "token") assert.doesNotMatch(o.text, LONE_SURROGATE);
});

test("max_tokens ends with length and completion_tokens equal to max_tokens", async () => {
  for (const max of [1, 25]) {
    const r = await run({ prompt: "write a long story", params: { seed: 3, max_tokens: max } });
    assert.equal(r.done?.reason, "length");
    assert.equal(r.done?.usage.completion_tokens, max);
    assert.deepEqual(r.session.usage(), r.done?.usage);
    assert.ok((r.done?.usage.prompt_tokens ?? 0) > 0);
    assert.ok(r.tokens.length <= max);
    assert.equal(r.session.steer("too late"), false, "nothing can follow the last token");
  }
});

test("a stop sequence ends the answer before it, with reason stop", async () => {
  const free = await run(RIVER);
  // A piece of text from the middle of the unstopped answer.
  const at = free.tokens.findIndex(
    (t, i) => i >= 5 && t.trim().length >= 2 && free.text.indexOf(t) === free.tokens.slice(0, i).join("").length,
  );
  assert.ok(at > 0, "a usable stop text");
  const stop = free.tokens[at] as string;
  const r = await run({ ...RIVER, params: { ...RIVER.params, stop: ["ZZZ-never", stop] } });
  assert.equal(r.done?.reason, "stop");
  assert.equal(r.text, free.tokens.slice(0, at).join(""));
  assert.ok(!r.text.includes(stop));
});

test("seed, temperature and top_p shape the sampling", async () => {
  const a = await run({ ...RIVER, params: { seed: 1, max_tokens: 30 } });
  const b = await run({ ...RIVER, params: { seed: 2, max_tokens: 30 } });
  assert.notDeepEqual(a.tokens, b.tokens);
  // Greedy: the seed does not matter.
  const g1 = await run({ ...RIVER, params: { seed: 1, max_tokens: 30, temperature: 0 } });
  const g2 = await run({ ...RIVER, params: { seed: 2, max_tokens: 30, temperature: 0 } });
  assert.deepEqual(g1.tokens, g2.tokens);
  // A tiny top_p keeps only the most likely token: greedy again.
  const p1 = await run({ ...RIVER, params: { seed: 9, max_tokens: 30, temperature: 1, top_p: 0.01 } });
  assert.deepEqual(p1.tokens, g1.tokens);
});

test("messages use the model's chat template; a prompt is one user message", async () => {
  const p = await run({ prompt: "hello there", params: { seed: 5, max_tokens: 20 } });
  const m = await run({ messages: [{ role: "user", content: "hello there" }], params: { seed: 5, max_tokens: 20 } });
  assert.deepEqual(m.tokens, p.tokens);
  assert.equal(m.done?.usage.prompt_tokens, p.done?.usage.prompt_tokens);
  const s = await run({
    messages: [
      { role: "system", content: "be brief" },
      { role: "user", content: "hello there" },
    ],
    params: { seed: 5, max_tokens: 20 },
  });
  assert.ok((s.done?.usage.prompt_tokens ?? 0) > (p.done?.usage.prompt_tokens ?? 0));
  assert.notDeepEqual(s.tokens, p.tokens);
});

test("cancel stops at once: the partial answer is kept, no done, usage counts it", async () => {
  const r = await run({ ...RIVER, params: { seed: 7 } }, { abortAfter: 6 });
  assert.equal(r.error, undefined);
  assert.equal(r.done, undefined);
  assert.equal(r.tokens.length, 6, "nothing after the cancel");
  const usage = r.session.usage();
  assert.ok(usage.completion_tokens >= 6, JSON.stringify(usage));
  assert.ok(usage.prompt_tokens > 0);
  assert.equal(r.session.steer("after cancel"), false);
  // The sequence it used is free again and clean.
  const next = await run(RIVER);
  assert.equal(next.done?.reason, "length");
});

test("steer mid-stream: a steer output at a token boundary, then a different continuation", async () => {
  const plain = await run(RIVER);
  const steered = await run(RIVER, { steerAfter: { tokens: 8, text: "Talk about mountains instead." } });
  assert.equal(steered.steerAt.length, 1);
  const at = steered.steerAt[0] as number;
  assert.ok(at >= 8 && at < steered.tokens.length, `steer after ${at} of ${steered.tokens.length} tokens`);
  const steerOut = steered.outputs.find((o) => o.type === "steer");
  assert.deepEqual(steerOut, { type: "steer", text: "Talk about mountains instead." });
  // The same answer up to the steer, another one after it.
  assert.deepEqual(steered.tokens.slice(0, at), plain.tokens.slice(0, at));
  assert.notDeepEqual(steered.tokens.slice(at, at + 10), plain.tokens.slice(at, at + 10));
  // max_tokens counts across the steer; the instruction adds to the prompt.
  assert.equal(steered.done?.reason, "length");
  assert.equal(steered.done?.usage.completion_tokens, 60);
  assert.ok((steered.done?.usage.prompt_tokens ?? 0) > (plain.done?.usage.prompt_tokens ?? 0));
});

test("steers given up front shape the answer from its first token, with no steer output", async () => {
  const plain = await run(RIVER);
  const r = await run(RIVER, { steers: ["Answer in one word."] });
  assert.equal(r.steerAt.length, 0);
  assert.ok(r.tokens.length > 0);
  assert.notDeepEqual(r.tokens.slice(0, 10), plain.tokens.slice(0, 10));
  assert.ok((r.done?.usage.prompt_tokens ?? 0) > (plain.done?.usage.prompt_tokens ?? 0));
});

test("a steer sent before the first token comes before every token", async () => {
  const ac = new AbortController();
  const session = gen.start({ rid: "ridllama02", body: RIVER, steers: [], signal: ac.signal });
  assert.equal(session.steer("Be terse."), true);
  const outputs: GenerationOutput[] = [];
  for await (const out of session) outputs.push(out);
  assert.deepEqual(outputs[0], { type: "steer", text: "Be terse." });
  assert.equal(outputs.at(-1)?.type, "done");
  assert.ok(outputs.filter((o) => o.type === "token").length > 0);
});

test("two sessions run at once and both complete", async () => {
  const [a, b] = await Promise.all([
    run({ prompt: "first question", params: { seed: 1, max_tokens: 40 } }),
    run({ prompt: "second question", params: { seed: 2, max_tokens: 40 } }),
  ]);
  for (const r of [a, b]) {
    assert.equal(r.error, undefined);
    assert.equal(r.done?.reason, "length");
    assert.ok(r.tokens.length > 0);
  }
  assert.notDeepEqual(a.tokens, b.tokens);
});

test("a model process that dies mid-generation fails its sessions with model_crashed; the next one reloads", async () => {
  // 3,000 tokens take the model a second or more, so the kill lands mid-generation; should
  // a starved test process see the end first, it tries again.
  let outcome: { tokens: number; error: unknown } | undefined;
  for (let attempt = 0; attempt < 5 && outcome === undefined; attempt++) {
    const ac = new AbortController();
    const body: GenerationBody = { prompt: "a long one", params: { seed: 4 + attempt, max_tokens: 3000 } };
    const session = gen.start({ rid: "ridllama03", body, steers: [], signal: ac.signal });
    let tokens = 0;
    try {
      for await (const out of session) {
        if (out.type === "token" && ++tokens === 3) for (const pid of modelProcesses()) process.kill(pid, "SIGKILL");
      }
    } catch (err) {
      outcome = { tokens, error: err };
    }
  }
  assert.ok(outcome, "a generation was in flight when its process died");
  assert.ok(outcome.tokens >= 3, "the tokens before the crash were yielded");
  const err = assertGeneratorError(outcome.error, ["model_crashed"]);
  assert.doesNotMatch(err.message, /SIGKILL/, "how the process died is for the log");
  assert.match(err.detail ?? "", /SIGKILL/);
  assert.equal(gen.status().state, "failed");
  const r = await run(RIVER);
  assert.equal(r.error, undefined);
  assert.equal(r.done?.reason, "length");
  assert.equal(gen.status().state, "ready");
  assert.equal(gen.model, "unbroken-tiny");
});

async function failingGenerator(file: string): Promise<LlamaGenerator> {
  const g = await LlamaGenerator.create({ modelPath: file, threads: 1, gpu: false, concurrency: 1, log });
  assert.equal(g.status().state, "failed");
  assert.ok((g.status().error ?? "").length > 0);
  return g;
}

test("a missing model file: create resolves, every session fails with model_unavailable", async () => {
  const file = path.join(dir.path, "nope.gguf");
  const g = await failingGenerator(file);
  try {
    assert.equal(g.model, "nope.gguf");
    for (let i = 0; i < 3; i++) {
      const r = await run(RIVER, { generator: g });
      const err = assertGeneratorError(r.error, ["model_unavailable"]);
      // The path is the operator's business: it is in the detail (the worker's log), never in the message.
      assert.ok(!err.message.includes(dir.path) && !err.message.includes("nope.gguf"), err.message);
      assert.match(err.detail ?? "", /nope\.gguf/);
      assert.equal(r.tokens.length, 0);
    }
  } finally {
    await g.close();
  }
});

test("a file that is not a GGUF fails with model_unavailable", async () => {
  const file = path.join(dir.path, "notes.gguf");
  writeFileSync(file, "this is not a model\n".repeat(50));
  const g = await failingGenerator(file);
  try {
    assertGeneratorError((await run(RIVER, { generator: g })).error, ["model_unavailable"]);
  } finally {
    await g.close();
  }
});

for (const kind of ["truncated", "shape", "heads"] satisfies CorruptKind[]) {
  test(`a corrupt model (${kind}) fails every session promptly; this process survives`, async () => {
    const file = path.join(dir.path, `corrupt-${kind}.gguf`);
    await writeCorruptGguf(file, kind);
    const g = await failingGenerator(file);
    try {
      for (let i = 0; i < 2; i++) {
        const r = await run(RIVER, { generator: g });
        assertGeneratorError(r.error, ["model_unavailable", "model_crashed"]);
      }
      if (kind === "heads") assert.match(g.status().error ?? "", /SIGABRT|GGML_ASSERT/);
    } finally {
      await g.close();
    }
    assert.equal(modelProcesses().length, 1, "only the shared generator's process is left");
  });
}

test("close ends the model process and what runs in it; later sessions fail with model_unavailable", async () => {
  const g = await LlamaGenerator.create({ modelPath, threads: 1, gpu: false, concurrency: 1, log });
  assert.equal(modelProcesses().length, 2);
  const ac = new AbortController();
  const body: GenerationBody = { prompt: "go on", params: { seed: 1, max_tokens: 3000 } };
  const running = g.start({ rid: "ridllama04", body, steers: [], signal: ac.signal });
  const closed = g.close();
  await assert.rejects(async () => {
    for await (const out of running) void out;
  }, GeneratorError);
  await closed;
  assert.equal(modelProcesses().length, 1);
  assertGeneratorError((await run(RIVER, { generator: g })).error, ["model_unavailable"]);
});

test("reasoning_effort does not disturb a model without thought segments: same text, no reasoning", async () => {
  const plain = await run(RIVER);
  for (const effort of ["none", "low", "high"] as const) {
    const r = await run({ ...RIVER, params: { ...RIVER.params, reasoning_effort: effort } });
    assert.equal(r.error, undefined, effort);
    assert.equal(r.text, plain.text, `${effort}: the tiny model's ChatML wrapper has no thought segments`);
    assert.ok(!r.outputs.some((o) => o.type === "reasoning"), effort);
    assert.equal(r.done?.usage.reasoning_tokens, undefined, effort);
  }
});

test("tools, tool calls and tool results end at once with a clear unsupported error", async () => {
  const tools: GenerationBody["tools"] = [{ type: "function", function: { name: "local_time" } }];
  const offered = await run({ ...RIVER, tools });
  const err = assertGeneratorError(offered.error, ["unsupported"]);
  assert.match(err.message, /llama backend does not support tool calls/);
  assert.match(err.message, /OpenAI-compatible backend/);
  assert.deepEqual(offered.outputs, [], "nothing was generated");
  const history = await run({
    messages: [
      { role: "user", content: "what time is it?" },
      {
        role: "assistant",
        content: "",
        tool_calls: [{ id: "call_1", type: "function", function: { name: "local_time", arguments: "{}" } }],
      },
      { role: "tool", tool_call_id: "call_1", content: "12:00" },
    ],
    params: RIVER.params,
  });
  assert.match(assertGeneratorError(history.error, ["unsupported"]).message, /tool calls or tool results/);
  // tool_choice "none": the tools may not be called, so they are no obstacle.
  const none = await run({ ...RIVER, tools, tool_choice: "none" });
  assert.equal(none.error, undefined);
  assert.equal(none.text, (await run(RIVER)).text);
});
