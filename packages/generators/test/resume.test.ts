import assert from "node:assert/strict";
import { test } from "node:test";
import type { GenerationBody } from "@unbroken/protocol";
import { answer } from "@unbroken/testing";
import { GeneratorError, type GenerationOutput, type ResumeState, type ResumedOutput } from "../src/generator.js";
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

// Typed answers: a worker lost mid-reasoning or mid-call is continued exactly from the log.

const TOOLS: GenerationBody["tools"] = [
  {
    type: "function",
    function: {
      name: "book_table",
      parameters: {
        type: "object",
        properties: { restaurant: { type: "string" }, guests: { type: "integer" }, outside: { type: "boolean" } },
        required: ["restaurant", "guests", "outside"],
      },
    },
  },
];
const CALLING: GenerationBody = { prompt: "Please book_table for four", tools: TOOLS, params: { seed: 2, reasoning_effort: "low" } };
const THINKING: GenerationBody = { prompt: "write 20 words on rivers", params: { seed: 2, reasoning_effort: "minimal" } };

type Delta = Extract<GenerationOutput, { type: "token" | "reasoning" | "tool_args" }>;
const isDelta = (o: GenerationOutput): o is Delta => o.type === "token" || o.type === "reasoning" || o.type === "tool_args";

/**
 * Runs a session; when the `at`-th generated token (counting the resumed ones) is yielded, it
 * calls steer(text). `steerFirst`: steers handed to steer() before the first output, as a
 * runner does with steers that came while a call was open in the log.
 */
async function typed(
  body: GenerationBody,
  opts: { resume?: ResumeState; steer?: { at: number; text: string }; steers?: string[]; steerFirst?: string[] } = {},
): Promise<GenerationOutput[]> {
  const session = gen.start({
    rid: "ridresume3",
    body,
    steers: opts.steers ?? [],
    signal: new AbortController().signal,
    ...(opts.resume ? { resume: opts.resume } : {}),
  });
  for (const text of opts.steerFirst ?? []) assert.equal(session.steer(text), true);
  let n = (opts.resume?.outputs ?? []).reduce((sum, o) => sum + (isDelta(o) ? o.tokens : 0), 0);
  const outputs: GenerationOutput[] = [];
  for await (const out of session) {
    outputs.push(out);
    if (!isDelta(out)) continue;
    n += out.tokens;
    if (n === opts.steer?.at) session.steer(opts.steer.text);
  }
  return outputs;
}

/** The log of the first `cut` outputs, as a takeover reads it back. */
function logOf(outputs: GenerationOutput[], cut: number): ResumeState {
  const logged = outputs.slice(0, cut).filter((o): o is Exclude<GenerationOutput, { type: "done" }> => o.type !== "done");
  return {
    tokens: logged.flatMap((o) => (o.type === "token" ? [o.text] : [])),
    steers: [],
    generated: logged.reduce((n, o) => n + (isDelta(o) ? o.tokens : 0), 0),
    outputs: logged,
  };
}

/** Whether the log's last call is open: a `tool_call` without its `tool_done` or `tool_dropped` yet. */
const openCall = (outputs: GenerationOutput[]): boolean => {
  const edges = outputs.filter((o) => o.type === "tool_call" || o.type === "tool_done" || o.type === "tool_dropped");
  return edges.at(-1)?.type === "tool_call";
};

test("scripted: cut anywhere in reasoning, a call's arguments or its text, the continuation completes the uncut answer exactly", async () => {
  for (const [name, body, steerAt] of [
    ["a call with a steer in its arguments", CALLING, 11],
    ["reasoning with a steer in it", THINKING, 2],
  ] as const) {
    const steer = { at: steerAt, text: "mind the weather" };
    const ref = await typed(body, { steer });
    const steerIndex = ref.findIndex((o) => o.type === "steer");
    assert.ok(steerIndex > 0, `${name}: the reference was steered`);
    if (body === CALLING) assert.equal(ref[steerIndex - 1]?.type, "tool_done", "the steer waited for the call's end");
    for (let cut = 0; cut < ref.length; cut++) {
      const resume = logOf(ref, cut);
      const done = resume.generated ?? 0;
      // The steer's request is answered once it is logged: a cut before that means it is sent
      // to the new worker again. Inside an open call the runner hands it to steer() (it waits
      // for the call's end); elsewhere it logs it first and gives it with the job.
      const resent = cut <= steerIndex && done >= steer.at;
      const inCall = resent && openCall(ref.slice(0, cut));
      const rest = await typed(body, {
        resume,
        ...(done < steer.at ? { steer } : {}),
        ...(resent && inCall ? { steerFirst: [steer.text] } : {}),
        ...(resent && !inCall ? { steers: [steer.text] } : {}),
      });
      const expected = ref.slice(cut).filter((_, i) => !(resent && !inCall && cut + i === steerIndex));
      assert.deepEqual(rest, expected, `${name}: cut after ${cut} outputs`);
    }
  }
});

test("scripted: a log whose reasoning and argument events each hold several tokens is continued exactly", async () => {
  const ref = await typed(CALLING);
  // Coalesce as a busy worker does: neighbouring deltas of one kind (and call), two or three to an event.
  const coalesced: ResumedOutput[] = [];
  let size = 0;
  for (const out of ref.slice(0, -1) as ResumedOutput[]) {
    const last = coalesced.at(-1);
    if (isDelta(out) && last && isDelta(last) && last.type === out.type && size < 2 + (coalesced.length % 2)) {
      coalesced[coalesced.length - 1] = { ...last, text: last.text + out.text, tokens: last.tokens + 1 };
      size++;
    } else {
      coalesced.push(out);
      size = 1;
    }
  }
  assert.ok(coalesced.length < ref.length - 3, "some events hold several tokens");
  // Cut after every event of the coalesced log: what follows is the rest of the reference.
  for (let cut = 0; cut <= coalesced.length; cut++) {
    const logged = coalesced.slice(0, cut);
    const tokens = logged.reduce((n, o) => n + (isDelta(o) ? o.tokens : 0), 0);
    const rest = await typed(CALLING, { resume: { tokens: [], steers: [], generated: tokens, outputs: logged } });
    const text = (outs: readonly GenerationOutput[]) => outs.map((o) => (isDelta(o) ? o.text : o.type)).join("|");
    assert.equal(text([...logged, ...rest]).replaceAll("|", ""), text(ref).replaceAll("|", ""), `cut after event ${cut}`);
    assert.deepEqual(rest.at(-1), ref.at(-1), "usage counts both workers' tokens");
  }
  // A log with another call id cannot be continued.
  const call = ref.findIndex((o) => o.type === "tool_call");
  const forged = [
    ...(ref.slice(0, call) as ResumedOutput[]),
    { type: "tool_call" as const, id: "call_0000000000000000", name: "book_table" },
  ];
  await assert.rejects(
    typed(CALLING, { resume: { tokens: [], steers: [], outputs: forged } }),
    (err: unknown) => err instanceof GeneratorError && err.code === "cannot_continue",
  );
});
