import assert from "node:assert/strict";
import { test } from "node:test";
import type { GenerationBody } from "@unbroken/protocol";
import type { GenerationOutput, GenerationSession } from "../src/generator.js";
import { ScriptedGenerator } from "../src/scripted.js";

const WORDLIKE = /^(\n\n| )?[A-Za-z]+[.,;!?]?$/;
const gen = new ScriptedGenerator({ tokensPerSecond: 0 });

interface Run {
  outputs: GenerationOutput[];
  tokens: string[];
  text: string;
  done: Extract<GenerationOutput, { type: "done" }> | undefined;
  session: GenerationSession;
  /** Index into `tokens` where each steer output appeared (tokens seen before it). */
  steerAt: number[];
}

interface RunOptions {
  steers?: string[];
  /** After this many tokens, call session.steer(text). */
  steerAfter?: { tokens: number; text: string };
  abortAfter?: number;
  tps?: number;
}

async function run(body: GenerationBody, opts: RunOptions = {}): Promise<Run> {
  const ac = new AbortController();
  const g = opts.tps === undefined ? gen : new ScriptedGenerator({ tokensPerSecond: opts.tps });
  const session = g.start({ rid: "ridridrid1", body, steers: opts.steers ?? [], signal: ac.signal });
  const outputs: GenerationOutput[] = [];
  const tokens: string[] = [];
  const steerAt: number[] = [];
  let done: Run["done"];
  for await (const out of session) {
    outputs.push(out);
    if (out.type === "token") {
      tokens.push(out.text);
      assert.equal(out.tokens, 1);
      if (opts.steerAfter && tokens.length === opts.steerAfter.tokens) assert.equal(session.steer(opts.steerAfter.text), true);
      if (opts.abortAfter !== undefined && tokens.length === opts.abortAfter) ac.abort();
    } else if (out.type === "steer") steerAt.push(tokens.length);
    else if (out.type === "done") {
      assert.equal(done, undefined, "only one done");
      done = out;
    }
  }
  if (done) assert.equal(outputs.at(-1), done, "done is the last output");
  return { outputs, tokens, text: tokens.join(""), done, session, steerAt };
}

const PROMPT: GenerationBody = { prompt: "Tell me about the river valley", params: { seed: 11 } };

test("same prompt and seed give the same tokens; another seed gives others", async () => {
  const a = await run(PROMPT);
  const b = await run(PROMPT);
  const c = await run({ ...PROMPT, params: { seed: 12 } });
  const d = await run({ prompt: "Tell me about the mountain", params: { seed: 11 } });
  assert.ok(a.tokens.length > 0);
  assert.deepEqual(b.tokens, a.tokens);
  assert.notEqual(c.text, a.text);
  assert.notEqual(d.text, a.text);
  for (const [i, t] of a.tokens.entries()) assert.match(t, WORDLIKE, `token ${i}`);
  assert.ok(!/^\s/.test(a.tokens[0] as string));
});

test("messages are accepted as well as a prompt", async () => {
  const r = await run({ messages: [{ role: "user", content: "write 30 words" }] });
  assert.equal(r.tokens.length, 30);
  assert.equal(r.done?.reason, "stop");
});

test("max_tokens 25 gives exactly 25 tokens, then done length with completion_tokens 25", async () => {
  const r = await run({ prompt: "write 300 words", params: { max_tokens: 25 } });
  assert.equal(r.tokens.length, 25);
  assert.equal(r.outputs.length, 26);
  assert.equal(r.done?.reason, "length");
  assert.equal(r.done?.usage.completion_tokens, 25);
  assert.ok((r.done?.usage.prompt_tokens ?? 0) > 0);
  assert.deepEqual(r.session.usage(), r.done?.usage);
});

test("without max_tokens it ends with stop at its natural length", async () => {
  const r = await run({ prompt: "write 40 words" });
  assert.equal(r.done?.reason, "stop");
  assert.equal(r.tokens.length, 40);
  assert.equal(r.done?.usage.completion_tokens, 40);
  const free = await run(PROMPT);
  assert.equal(free.done?.reason, "stop");
  assert.ok(free.tokens.length >= 60 && free.tokens.length <= 200, String(free.tokens.length));
});

test("a stop sequence ends the text right before it, with reason stop", async () => {
  const full = await run(PROMPT);
  const starts: number[] = [];
  let pos = 0;
  for (const t of full.tokens) {
    starts.push(pos);
    pos += t.length;
  }
  // A word whose first appearance anywhere in the text is at token >= 5.
  let stop: string | undefined;
  let at = -1;
  for (let i = 5; i < full.tokens.length && stop === undefined; i++) {
    const word = (full.tokens[i] as string).replace(/^\s+/, "").replace(/[.,;!?]$/, "");
    if (word.length >= 4 && full.text.indexOf(word) >= (starts[5] as number)) {
      stop = word;
      at = full.text.indexOf(word);
    }
  }
  assert.ok(stop !== undefined, "found a stop word");
  const r = await run({ ...PROMPT, params: { ...PROMPT.params, stop } });
  assert.equal(r.done?.reason, "stop");
  assert.equal(r.text, full.text.slice(0, at));
  assert.ok(!r.text.includes(stop));
  // Also as one of several stop sequences.
  const r2 = await run({ ...PROMPT, params: { ...PROMPT.params, stop: ["zzzz-never", stop] } });
  assert.equal(r2.text, full.text.slice(0, at));
  assert.equal(r2.done?.reason, "stop");
});

test("cancel: aborting after 5 tokens ends the iteration without done", async () => {
  const r = await run({ prompt: "write 300 words" }, { abortAfter: 5 });
  assert.equal(r.done, undefined);
  assert.ok(r.tokens.length >= 5 && r.tokens.length <= 6, String(r.tokens.length));
  const used = r.session.usage().completion_tokens;
  assert.ok(used >= 5 && used <= 6, String(used));
});

test("a cancel that comes while a token is paced: usage counts exactly the outputs yielded", async () => {
  for (const body of [{ prompt: "write 300 words" }, { prompt: "think first", params: { reasoning_effort: "high" as const } }]) {
    const ac = new AbortController();
    const session = new ScriptedGenerator({ tokensPerSecond: 5 }).start({ rid: "ridridrid1", body, steers: [], signal: ac.signal });
    let yielded = 0;
    for await (const out of session) {
      if (out.type === "token" || out.type === "reasoning") yielded += out.tokens;
      // The next token is 200 ms away: the abort lands while the session waits to yield it.
      if (yielded === 2) setTimeout(() => ac.abort(), 20);
    }
    assert.equal(yielded, 2);
    assert.equal(session.usage().completion_tokens, 2);
    assert.equal(session.usage().reasoning_tokens, body.params ? 2 : undefined);
  }
});

test("cancel at a slow rate stops at once too", async () => {
  const r = await run({ prompt: "write 300 words" }, { abortAfter: 3, tps: 2 });
  assert.equal(r.done, undefined);
  assert.ok(r.session.usage().completion_tokens <= 4);
});

test("steer after 10 tokens: steer output there, same prefix, different continuation with the instruction's words", async () => {
  const a = await run(PROMPT);
  const b = await run(PROMPT, { steerAfter: { tokens: 10, text: "talk about cats" } });
  assert.deepEqual(b.steerAt, [10]);
  const steerIdx = b.outputs.findIndex((o) => o.type === "steer");
  assert.deepEqual(b.outputs[steerIdx], { type: "steer", text: "talk about cats" });
  assert.equal(b.outputs.slice(0, steerIdx).filter((o) => o.type === "token").length, 10);
  assert.deepEqual(b.tokens.slice(0, 10), a.tokens.slice(0, 10));
  const afterA = a.tokens.slice(10).join("");
  const afterB = b.tokens.slice(10).join("");
  assert.ok(afterB.length > 0, "text follows the steer");
  assert.notEqual(afterB, afterA);
  assert.ok(afterB.includes("cats"), `"cats" should appear after the steer: ${afterB}`);
  assert.ok(!b.tokens.slice(0, 10).join("").includes("cats"));
  assert.equal(b.done?.reason, "stop");
  assert.equal(b.done?.usage.completion_tokens, b.tokens.length);
});

test("steers given with the job apply before the first token", async () => {
  const a = await run(PROMPT);
  const b = await run(PROMPT, { steers: ["talk about cats"] });
  assert.notEqual(b.tokens[0], a.tokens[0], "differs from token 1");
  assert.ok(b.text.includes("cats"));
  // The job's steers were already recorded by whoever began the response: no steer output.
  assert.deepEqual(b.steerAt, []);
});

test("identical inputs and steer positions give identical output (failover determinism)", async () => {
  const opts: RunOptions = { steers: ["be brief"], steerAfter: { tokens: 7, text: "now discuss bridges" } };
  const a = await run(PROMPT, opts);
  const b = await run(PROMPT, opts);
  assert.deepEqual(b.outputs, a.outputs);
  assert.deepEqual(a.steerAt, [7]);
});

test("rate 1000 tokens/s with max_tokens 20 completes", async () => {
  const r = await run({ prompt: "write 300 words" }, { tps: 1000 });
  assert.equal(r.done?.reason, "stop");
  assert.equal(r.tokens.length, 300);
  const s = await run({ prompt: "write 300 words", params: { max_tokens: 20 } }, { tps: 1000 });
  assert.equal(s.tokens.length, 20);
  assert.equal(s.done?.reason, "length");
});

test("steer() after done returns false", async () => {
  const r = await run({ prompt: "write 10 words" });
  assert.equal(r.done?.reason, "stop");
  assert.equal(r.session.steer("more please"), false);
  const l = await run({ prompt: "write 300 words", params: { max_tokens: 3 } });
  assert.equal(l.done?.reason, "length");
  assert.equal(l.session.steer("more please"), false);
});

test("steer() once max_tokens is reached returns false: nothing can follow it", async () => {
  // generator.ts: steer() is "False when the generation has produced its last token and
  // nothing can follow the instruction". With max_tokens 10, token 10 is the last one.
  const ac = new AbortController();
  const session = gen.start({
    rid: "ridridrid2",
    body: { prompt: "write 300 words", params: { max_tokens: 10 } },
    steers: [],
    signal: ac.signal,
  });
  const outputs: GenerationOutput[] = [];
  let accepted: boolean | undefined;
  let n = 0;
  for await (const out of session) {
    outputs.push(out);
    if (out.type === "token" && ++n === 10) accepted = session.steer("keep going");
  }
  assert.deepEqual(
    outputs.slice(-2).map((o) => o.type),
    ["token", "done"],
    "no steer output may come after the last token",
  );
  assert.equal(accepted, false);
});
