import assert from "node:assert/strict";
import { test } from "node:test";
import type { GenerationBody } from "@unbroken/protocol";
import { answer } from "@unbroken/testing";
import { GeneratorError, type GenerationOutput, type ResumeState } from "../src/generator.js";
import { CUT_CONTINUE, STEER_CONTINUE, resumedConversation } from "../src/openai-messages.js";
import { ScriptedGenerator } from "../src/scripted.js";
import { generator, serve } from "./openai-harness.js";

// A worker that takes a response over gets the log so far as `job.resume`: the scripted
// generator must continue with exactly what the lost worker would have written.

const gen = new ScriptedGenerator({ tokensPerSecond: 0 });
const PROMPT: GenerationBody = { prompt: "Tell me about the river valley", params: { seed: 11 } };

interface Outputs {
  outputs: GenerationOutput[];
}

/** Runs a scripted session; after `steerAfter.tokens` tokens it calls steer(text). */
async function run(
  body: GenerationBody,
  opts: { steers?: string[]; resume?: ResumeState; steerAfter?: { tokens: number; text: string } } = {},
): Promise<Outputs> {
  const ac = new AbortController();
  const session = gen.start({
    rid: "ridresume1",
    body,
    steers: opts.steers ?? [],
    signal: ac.signal,
    ...(opts.resume ? { resume: opts.resume } : {}),
  });
  const outputs: GenerationOutput[] = [];
  let tokens = 0;
  for await (const out of session) {
    outputs.push(out);
    if (out.type === "token" && ++tokens === opts.steerAfter?.tokens) session.steer(opts.steerAfter.text);
  }
  return { outputs };
}

/**
 * The log after `cut` outputs of a reference run, as a resume state (the job's own steers
 * are in the log too, at 0). `withSteers`: steers right at the cut are in the log already.
 */
function resumeAt(jobSteers: string[], outputs: GenerationOutput[], cut: number): ResumeState {
  const state: ResumeState = { tokens: [], steers: jobSteers.map((text) => ({ at: 0, text })) };
  for (const out of outputs.slice(0, cut)) {
    if (out.type === "token") state.tokens.push(out.text);
    else if (out.type === "steer") state.steers.push({ at: state.tokens.length, text: out.text });
  }
  return state;
}

test("scripted: resumed at any point, the continuation is exactly the uninterrupted run", async () => {
  const jobSteers = ["be brief"];
  const steerAfter = { tokens: 7, text: "now discuss bridges" };
  const ref = await run(PROMPT, { steers: jobSteers, steerAfter });
  const last = ref.outputs.length - 1; // the done output
  const done = ref.outputs[last] as Extract<GenerationOutput, { type: "done" }>;
  for (const cut of [0, 1, 6, 7, 8, 9, 30, last - 1, last]) {
    const resume = resumeAt(jobSteers, ref.outputs, cut);
    // A steer given after the cut reaches the new worker by steer() once more.
    const later = cut <= 7 ? { tokens: 7 - resume.tokens.length, text: steerAfter.text } : undefined;
    const rest = await run(
      PROMPT,
      later && later.tokens > 0 ? { resume, steerAfter: later } : { resume, ...(cut === 7 ? { steers: [steerAfter.text] } : {}) },
    );
    // At cut 7 the steer came right at the resume point: the runner logs it, no steer output.
    const expected = ref.outputs.slice(cut).filter((o, i) => !(cut === 7 && i === 0 && o.type === "steer"));
    assert.deepEqual(rest.outputs, expected, `cut after ${cut} outputs`);
    assert.deepEqual(rest.outputs.at(-1), done, "usage counts both workers' tokens");
  }
});

test("scripted: max_tokens and stop sequences hold across the resume", async () => {
  const capped = { prompt: "write 300 words", params: { max_tokens: 40, seed: 3 } };
  const ref = await run(capped);
  const rest = await run(capped, { resume: resumeAt([], ref.outputs, 25) });
  assert.deepEqual(rest.outputs, ref.outputs.slice(25));
  assert.deepEqual(rest.outputs.at(-1), ref.outputs.at(-1));
  assert.equal((rest.outputs.at(-1) as { usage?: { completion_tokens: number } }).usage?.completion_tokens, 40);

  const full = await run(PROMPT);
  const word = ((full.outputs[12] as { text: string }).text.match(/[A-Za-z]{3,}/) ?? [""])[0];
  const stopped = { ...PROMPT, params: { ...PROMPT.params, stop: word } };
  const ref2 = await run(stopped);
  const n = ref2.outputs.length;
  assert.equal((ref2.outputs.at(-1) as { reason?: string }).reason, "stop");
  // Lost right after the token cut by the stop sequence, before `end`: only done follows.
  const rest2 = await run(stopped, { resume: resumeAt([], ref2.outputs, n - 1) });
  assert.deepEqual(rest2.outputs, ref2.outputs.slice(n - 1));
});

test("scripted: a log it would not have written cannot be continued", async () => {
  const resume: ResumeState = { tokens: ["Not", " what", " it", " writes"], steers: [] };
  await assert.rejects(run(PROMPT, { resume }), (err: unknown) => err instanceof GeneratorError && err.code === "cannot_continue");
});

test("openai: the log becomes the conversation, ending with a request to continue", () => {
  const resume: ResumeState = {
    tokens: ["Rivers", " flow", " far"],
    steers: [
      { at: 0, text: "be poetic" },
      { at: 2, text: "shorter" },
    ],
  };
  const convo = resumedConversation({ prompt: "Tell me about rivers" }, resume, []);
  assert.deepEqual(convo.messages(), [
    { role: "user", content: "Tell me about rivers\n\nbe poetic" },
    { role: "assistant", content: "Rivers flow" },
    { role: "user", content: `shorter\n\n${STEER_CONTINUE}` },
    { role: "assistant", content: " far" },
    { role: "user", content: CUT_CONTINUE },
  ]);
  // A steer given to the new worker joins the break where the log ends.
  const steered = resumedConversation({ prompt: "Tell me about rivers" }, resume, ["in French"]);
  assert.deepEqual(steered.messages().at(-1), { role: "user", content: `in French\n\n${STEER_CONTINUE}` });
});

test("openai: a resumed session asks for the continuation and counts the earlier tokens", async () => {
  const { fake, baseUrl } = await serve([{ steps: answer([" and", " on."], { usage: [30, 2] }) }]);
  const resume: ResumeState = { tokens: ["Rivers", " flow"], steers: [] };
  const ac = new AbortController();
  const session = generator(baseUrl).start({
    rid: "ridresume2",
    body: { prompt: "Tell me about rivers", params: { max_tokens: 10 } },
    steers: [],
    signal: ac.signal,
    resume,
  });
  const outputs: GenerationOutput[] = [];
  for await (const out of session) outputs.push(out);
  assert.deepEqual(outputs, [
    { type: "token", text: " and", tokens: 1 },
    { type: "token", text: " on.", tokens: 1 },
    { type: "done", reason: "stop", usage: { prompt_tokens: 30, completion_tokens: 4 } },
  ]);
  const sent = fake.requests[0]!.body;
  assert.equal(sent.max_tokens, 8, "max_tokens counts the earlier worker's tokens");
  assert.deepEqual(sent.messages.slice(1), [
    { role: "assistant", content: "Rivers flow" },
    { role: "user", content: CUT_CONTINUE },
  ]);
});

test("scripted: a log whose token events each hold several tokens (coalesced) is continued exactly", async () => {
  const ref = await run(PROMPT);
  const tokens = ref.outputs.filter((o): o is Extract<GenerationOutput, { type: "token" }> => o.type === "token").map((o) => o.text);
  // Group the first 40 tokens into events of 1, 2, 3, 1, 2, 3, … tokens, as a busy worker would.
  const events: string[] = [];
  for (let i = 0, size = 1; i < 40; i += size, size = (size % 3) + 1) events.push(tokens.slice(i, Math.min(40, i + size)).join(""));
  assert.ok(events.length < 40, "some events hold several tokens");
  const rest = await run(PROMPT, { resume: { tokens: events, steers: [] } });
  assert.deepEqual(rest.outputs, ref.outputs.slice(40));
  // An event that ends inside a token the generator would have written differently is refused.
  const broken = [...events.slice(0, -1), `${events.at(-1) ?? ""}x`];
  await assert.rejects(
    run(PROMPT, { resume: { tokens: broken, steers: [] } }),
    (err: unknown) => err instanceof GeneratorError && err.code === "cannot_continue",
  );
});
