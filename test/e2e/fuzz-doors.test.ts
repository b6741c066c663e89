// Property-based bodies (fast-check) for every HTTP front door, near valid and with every field
// sometimes wrong: `/v1/chat/completions`, `/v1/responses` (create, retrieve, cancel, steer) and
// `/v1/generate`. Every answer is a well-formed success or error and comes (no client is left
// waiting); a refused create stores nothing (the record is looked up in NATS itself, where an
// unreadable one would show); an accepted one has a record that reads back and a log that ends;
// the edge serves on. The socket's frames are fuzzed in fuzz.test.ts.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { ERROR_CODES } from "@unbroken/protocol";
import { Broker, silentLog } from "@unbroken/store";
import { readSse } from "../helpers/sse.js";
import { Stack } from "../helpers/stack.js";

const tripped: string[] = [];
const onRejection = (err: unknown) => tripped.push(`unhandledRejection: ${err instanceof Error ? err.stack : String(err)}`);
const onException = (err: unknown) => tripped.push(`uncaughtException: ${err instanceof Error ? err.stack : String(err)}`);
process.on("unhandledRejection", onRejection);
process.on("uncaughtException", onException);

/** Any JSON value a few levels deep, prototype keys among the keys. */
const junk: fc.Arbitrary<unknown> = fc.letrec<{ v: unknown }>((tie) => ({
  v: fc.oneof(
    { depthSize: "small" },
    fc.string({ unit: "binary", maxLength: 20 }),
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie("v"), { maxLength: 3 }),
    fc.dictionary(fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom("__proto__", "constructor")), tie("v"), { maxKeys: 3 }),
  ),
})).v;
/** Mostly `arb`, sometimes anything at all: a body is wrong in a field or two, so many pass and reach the store. */
const maybe = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<unknown> => fc.oneof({ weight: 20, arbitrary: arb }, { weight: 1, arbitrary: junk });
/** Mostly `good`, sometimes `bad`. */
const mostly = <T, U>(good: fc.Arbitrary<T>, bad: fc.Arbitrary<U>): fc.Arbitrary<T | U> =>
  fc.oneof({ weight: 9, arbitrary: good }, { weight: 1, arbitrary: bad });
const text = fc.string({ maxLength: 30 });
const name = mostly(fc.stringMatching(/^[A-Za-z0-9_-]{1,12}$/), fc.string({ maxLength: 70 }));
const callId = mostly(fc.constantFrom("call_1", "call_2"), fc.string({ maxLength: 140 }));
// The empty stop strings are the hole issue 12 found: accepted, stored, unreadable.
const stop = mostly(
  fc.oneof(fc.string({ minLength: 1, maxLength: 8 }), fc.array(fc.string({ minLength: 1, maxLength: 8 }), { maxLength: 4 })),
  fc.oneof(
    fc.constantFrom("", [""], ["END", ""]),
    fc.string({ minLength: 65, maxLength: 70 }),
    fc.array(fc.string({ maxLength: 3 }), { minLength: 5, maxLength: 6 }),
  ),
);
const int = mostly(fc.integer({ min: 1, max: 8 }), fc.oneof(fc.integer({ min: -2, max: 40_000 }), fc.integer()));
const unit = mostly(fc.double({ min: 0.01, max: 1, noNaN: true }), fc.double({ min: -1, max: 3, noNaN: true }));
const effort = fc.constantFrom("none", "minimal", "low", "medium", "high", "xhigh", "max", "extreme");
const params = { type: "object", properties: { city: { type: "string" } } };
const hello = [{ role: "user", content: "hello there" }];

const chatMessage = fc.oneof(
  fc.record({
    role: fc.constantFrom("system", "developer", "user", "nobody"),
    content: fc.oneof(text, fc.array(fc.record({ type: fc.constantFrom("text", "image_url"), text }), { maxLength: 2 })),
  }),
  fc.record(
    {
      role: fc.constant("assistant"),
      content: fc.oneof(text, fc.constant(null)),
      tool_calls: fc.array(
        fc.record({ id: callId, type: fc.constant("function"), function: fc.record({ name, arguments: fc.constantFrom("{}", "{bad") }) }),
        { maxLength: 2 },
      ),
    },
    { requiredKeys: ["role"] },
  ),
  fc.record({ role: fc.constant("tool"), content: text, tool_call_id: callId }),
  junk,
);
const chatBody = fc.record(
  {
    model: maybe(mostly(text, fc.constant("m".repeat(300)))),
    messages: fc.oneof({ weight: 8, arbitrary: fc.constant(hello) }, fc.array(chatMessage, { maxLength: 4 }), junk),
    stream: maybe(fc.boolean()),
    stream_options: maybe(fc.record({ include_usage: fc.boolean() })),
    max_tokens: maybe(int),
    max_completion_tokens: maybe(int),
    temperature: maybe(unit),
    top_p: maybe(unit),
    seed: maybe(fc.integer()),
    stop: maybe(stop),
    n: maybe(mostly(fc.constant(1), fc.integer({ min: 0, max: 2 }))),
    tools: maybe(
      fc.array(
        fc.record({
          type: mostly(fc.constant("function"), fc.constant("web_search")),
          function: fc.record({ name, parameters: fc.oneof(fc.constant(params), junk) }, { requiredKeys: ["name"] }),
        }),
        { maxLength: 2 },
      ),
    ),
    tool_choice: maybe(mostly(fc.constantFrom("none", "auto"), fc.constantFrom("required", { type: "function", function: { name: "f" } }))),
    reasoning_effort: maybe(effort),
    response_format: maybe(mostly(fc.constant({ type: "text" }), fc.constant({ type: "json_object" }))),
    logprobs: maybe(mostly(fc.constant(false), fc.constant(true))),
  },
  { requiredKeys: ["messages"] },
);

const inputItem = fc.oneof(
  fc.record({
    role: fc.constantFrom("user", "system", "developer", "assistant", "tool"),
    content: fc.oneof(
      text,
      fc.array(fc.record({ type: fc.constantFrom("input_text", "output_text", "input_image"), text }), { maxLength: 2 }),
    ),
  }),
  fc.record({ type: fc.constant("function_call"), call_id: callId, name, arguments: fc.constantFrom("{}", "x") }),
  fc.record({ type: fc.constant("function_call_output"), call_id: callId, output: text }),
  fc.record({ type: fc.constant("item_reference"), id: fc.oneof(text, fc.constant("msg_nothing_0")) }),
  fc.record({ type: fc.constantFrom("reasoning", "computer_call", "__proto__") }),
  junk,
);
const responsesBody = fc.record(
  {
    model: maybe(text),
    input: fc.oneof({ weight: 8, arbitrary: text }, fc.array(inputItem, { maxLength: 3 }), junk),
    instructions: maybe(text),
    tools: maybe(
      fc.array(fc.record({ type: mostly(fc.constant("function"), fc.constant("web_search")), name, parameters: fc.constant(params) }), {
        maxLength: 2,
      }),
    ),
    tool_choice: maybe(mostly(fc.constantFrom("none", "auto"), fc.constantFrom("required", { type: "function", name: "f" }))),
    reasoning: maybe(fc.record({ effort })),
    max_output_tokens: maybe(int),
    temperature: maybe(unit),
    top_p: maybe(unit),
    stream: maybe(fc.boolean()),
    background: maybe(fc.boolean()),
    metadata: maybe(
      mostly(
        fc.dictionary(fc.string({ maxLength: 64 }), fc.string({ maxLength: 512 }), { maxKeys: 16 }),
        fc.dictionary(fc.string({ maxLength: 70 }), fc.string({ maxLength: 600 }), { minKeys: 17, maxKeys: 17 }),
      ),
    ),
    store: maybe(fc.boolean()),
    text: maybe(mostly(fc.constant({ format: { type: "text" } }), fc.constant({ format: { type: "json_schema" } }))),
    previous_response_id: maybe(mostly(fc.constant(null), fc.constant("resp_earlier1"))),
  },
  { requiredKeys: ["input"] },
);

const generateBody = fc.record(
  {
    prompt: fc.oneof({ weight: 8, arbitrary: text }, junk),
    // Exactly one of prompt and messages: messages beside a prompt is a refusal, sometimes.
    messages: mostly(fc.constant(undefined), fc.array(chatMessage, { maxLength: 3 })),
    params: maybe(
      fc.record(
        {
          max_tokens: maybe(int),
          temperature: maybe(unit),
          top_p: maybe(unit),
          seed: maybe(fc.integer()),
          stop: maybe(stop),
          reasoning_effort: maybe(effort),
        },
        { requiredKeys: [] },
      ),
    ),
    tools: maybe(fc.array(fc.record({ type: fc.constant("function"), function: fc.record({ name }) }), { maxLength: 2 })),
    tool_choice: maybe(mostly(fc.constant("auto"), fc.constantFrom("required", { type: "function", function: { name: "f" } }))),
    after: maybe(fc.nat()),
  },
  { requiredKeys: ["prompt", "messages"] },
);

let stack: Stack;
let broker: Broker;
let http: string;
let serial = 0;
/** Responses some create made, for retrieve, cancel and steer to act on. */
const made: string[] = [];
/** Creates accepted and refused in the current property: both must be common, or the property tests little. */
const tally = { accepted: 0, refused: 0 };

function assertBothCommon(what: string, runs: number): void {
  const { accepted, refused } = tally;
  // Both outcomes must be reached for the run to test anything. runs / 12 sat too close to the
  // share chat completions accepts: a CI run drew 9 of 120 accepted and failed on the draw alone.
  assert.ok(accepted >= runs / 30 && refused >= runs / 30, `${what}: ${accepted} accepted, ${refused} refused of ${runs}`);
  tally.accepted = tally.refused = 0;
}

before(async () => {
  // No pacing, answers of at most 8 tokens; no per-address rate: hundreds of requests come from one address.
  stack = await Stack.start({ edgeEnv: { MAX_TOKENS_CEILING: "8", CONNECTION_RATE: "0" }, workerEnv: { SCRIPTED_TPS: "0" } });
  http = `http://127.0.0.1:${stack.edges[0]!.port}`;
  broker = await Broker.connect({ url: stack.nats.url, name: "fuzz-doors", retentionMs: 3_600_000, log: silentLog });
});

after(async () => {
  await broker?.close();
  await stack?.stop();
  assert.deepEqual(tripped, [], "nothing unhandled, also while stopping");
  process.off("unhandledRejection", onRejection);
  process.off("uncaughtException", onException);
});

interface Answer {
  status: number;
  type: string;
  text: string;
}

/** One request, read to its end: an answer that never comes fails the test (no client waits forever). */
async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(`${http}${path}`, {
    method,
    headers: { "content-type": "application/json", ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(30_000),
  });
  return { status: res.status, type: res.headers.get("content-type") ?? "", text: await res.text() };
}

/** An error in the door's shape, with a code of ERROR_CODES; never a 5xx. */
function assertError(a: Answer, openai: boolean): string {
  assert.ok(a.status >= 400 && a.status < 500, `${a.status}: ${a.text.slice(0, 300)}`);
  const body = JSON.parse(a.text) as { code?: string; message?: string; error?: { code?: string; message?: string } };
  const e = openai ? body.error : body;
  assert.ok(e && typeof e.message === "string" && e.message.length > 0, a.text);
  assert.ok((ERROR_CODES as readonly string[]).includes(e.code ?? ""), a.text);
  return e.code as string;
}

/** A refused create stored nothing: no record, readable or not. */
async function nothingCreated(rid: string): Promise<void> {
  tally.refused++;
  assert.equal(await broker.records.read(rid), null, `a refused request left a record for ${rid}`);
}

/** An accepted create: its record reads back and its log ends. */
async function created(rid: string): Promise<void> {
  tally.accepted++;
  const stored = await broker.records.read(rid);
  assert.ok(stored && stored !== "unreadable", `record of ${rid}: ${String(stored)}`);
  const sse = await readSse(`${http}/v1/responses/${rid}/events`, {}, undefined, 30_000);
  assert.ok(sse.status === 200 || sse.status === 204, `events of ${rid}: ${sse.status}`);
  if (sse.status === 200) assert.match(sse.messages.at(-1)?.data ?? "", /"kind":"end"/);
  made.push(rid);
}

const freshRid = (prefix: string): string => `${prefix}fuzz${++serial}x${Math.random().toString(36).slice(2, 10)}`;

/** A well-formed client of each door is served after the storm. */
async function servedAfter(): Promise<void> {
  const chat = await call("POST", "/v1/chat/completions", { messages: hello });
  assert.equal(chat.status, 200, chat.text);
  assert.equal((JSON.parse(chat.text) as { object: string }).object, "chat.completion");
  const resp = await call("POST", "/v1/responses", { input: "hello" });
  assert.equal(resp.status, 200, resp.text);
  // At most 8 tokens (MAX_TOKENS_CEILING): whole, or cut at the ceiling.
  assert.match((JSON.parse(resp.text) as { status: string }).status, /^(completed|incomplete)$/);
  const gen = await call("POST", "/v1/generate", { prompt: "hello" });
  assert.equal(gen.status, 202, gen.text);
  await created((JSON.parse(gen.text) as { rid: string }).rid);
  assert.deepEqual(tripped, []);
}

describe("fuzz: HTTP front doors", () => {
  it("POST /v1/chat/completions: a completion, a stream to [DONE], or a 4xx; a refused one stores nothing", async () => {
    await fc.assert(
      fc.asyncProperty(chatBody, async (body) => {
        const rid = freshRid("chatcmpl-");
        const a = await call("POST", "/v1/chat/completions", body, { "x-unbroken-rid": rid });
        if (a.status >= 400) {
          // An answer that ended in error is the generator's word on a request it was given: the log is complete.
          if (a.status === 500 && /^generation failed: /.test((JSON.parse(a.text) as { error: { message: string } }).error.message))
            return created(rid);
          assertError(a, true);
          return nothingCreated(rid);
        }
        assert.equal(a.status, 200, a.text);
        if (a.type.includes("text/event-stream")) assert.match(a.text, /data: \[DONE\]\n\n$/);
        else assert.equal((JSON.parse(a.text) as { id: string }).id, rid);
        await created(rid);
      }),
      { numRuns: 120 },
    );
    assertBothCommon("/v1/chat/completions", 120);
    await servedAfter();
  });

  it("POST /v1/responses: a response object or a stream to its terminal event, or a 4xx; a refused one stores nothing", async () => {
    await fc.assert(
      fc.asyncProperty(responsesBody, async (body) => {
        const rid = freshRid("resp_");
        const a = await call("POST", "/v1/responses", body, { "x-unbroken-rid": rid });
        if (a.status >= 400) {
          assertError(a, true);
          return nothingCreated(rid);
        }
        assert.equal(a.status, 200, a.text);
        if (a.type.includes("text/event-stream")) assert.match(a.text, /event: response\.(completed|incomplete|failed|cancelled)\n/);
        else assert.equal((JSON.parse(a.text) as { id: string; object: string }).object, "response");
        await created(rid);
      }),
      { numRuns: 120 },
    );
    assertBothCommon("/v1/responses", 120);
    await servedAfter();
  });

  it("POST /v1/generate: 202 with the rid, or a 4xx; a refused one stores nothing", async () => {
    await fc.assert(
      fc.asyncProperty(generateBody, fc.boolean(), async (body, withRid) => {
        const rid = freshRid("gen");
        const a = await call("POST", "/v1/generate", withRid ? { ...body, rid } : body);
        if (a.status >= 400) {
          assertError(a, false);
          if (withRid) return nothingCreated(rid);
          tally.refused++;
          return;
        }
        assert.equal(a.status, 202, a.text);
        const got = JSON.parse(a.text) as { rid: string; existing: boolean };
        if (withRid) assert.equal(got.rid, rid);
        assert.equal(got.existing, false);
        await created(got.rid);
      }),
      { numRuns: 120 },
    );
    assertBothCommon("/v1/generate", 120);
    await servedAfter();
  });

  it("a malformed x-unbroken-rid is refused, not replaced by a fresh rid (a retry would run the model again)", async () => {
    for (const path of ["/v1/chat/completions", "/v1/responses"]) {
      const a = await call("POST", path, { messages: hello, input: "hi" }, { "x-unbroken-rid": "no good" });
      assert.equal(assertError(a, true), "bad_request");
      assert.match(a.text, /x-unbroken-rid/);
    }
  });

  it("retrieve, cancel and steer with any params and bodies: 2xx or a 4xx in OpenAI's shape", async () => {
    assert.ok(made.length > 0, "earlier tests made responses");
    const rid = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...made) }, fc.constantFrom("resp_nothing_here", "x", "a%2Fb"));
    const query = fc.record(
      {
        stream: fc.oneof(fc.constantFrom("true", "false", "1", ""), fc.string({ maxLength: 6 })),
        starting_after: fc.oneof(fc.integer({ min: -3, max: 30 }).map(String), fc.string({ maxLength: 8 })),
        "include[]": fc.constant("reasoning.encrypted_content"),
      },
      { requiredKeys: [] },
    );
    const op = fc.oneof(
      query.map((q) => ({ method: "GET", tail: `?${new URLSearchParams(q as Record<string, string>)}`, body: undefined as unknown })),
      maybe(fc.record({}, { requiredKeys: [] })).map((body) => ({ method: "POST", tail: "/cancel", body })),
      maybe(fc.record({ text: fc.oneof(text, fc.constant("t".repeat(5_000))) }, { requiredKeys: [] })).map((body) => ({
        method: "POST",
        tail: "/steer",
        body,
      })),
    );
    await fc.assert(
      fc.asyncProperty(rid, op, async (r, { method, tail, body }) => {
        const a = await call(method, `/v1/responses/${r}${tail}`, body);
        if (a.status >= 400) return void assertError(a, true);
        assert.equal(a.status, 200, a.text);
        // A stream (read to its end by `call`) may start past its last event: only its shape is checked.
        if (a.type.includes("text/event-stream")) assert.doesNotMatch(a.text, /^data: (?!\{)/m);
        else assert.equal((JSON.parse(a.text) as { object: string }).object, "response");
      }),
      { numRuns: 120 },
    );
    await servedAfter();
  });
});
