import assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { describe, test } from "node:test";
import { LIMITS, ProtocolError, type GenerateFrame } from "@unbroken/protocol";
import pino from "pino";
import { edgeConfigFromEnv } from "../src/config.js";
import {
  ActiveGenerations,
  MAX_SCHEMA_DEPTH,
  TokenBuckets,
  checkRequest,
  clientAddress,
  jsonDepth,
  promptBytes,
  promptSize,
} from "../src/limits.js";

const limits = edgeConfigFromEnv({}).limits;
const code = (c: string) => (e: unknown) => e instanceof ProtocolError && e.code === c;

describe("TokenBuckets", () => {
  test("a burst, then one token per 1/rate seconds, per key", () => {
    let now = 0;
    const b = new TokenBuckets(2, 3, () => now);
    assert.deepEqual([b.take("a"), b.take("a"), b.take("a"), b.take("a")], [true, true, true, false]);
    assert.equal(b.take("b"), true, "another key has its own bucket");
    now += 499;
    assert.equal(b.take("a"), false);
    now += 1;
    assert.equal(b.take("a"), true);
    now += 60_000;
    assert.deepEqual([b.take("a"), b.take("a"), b.take("a"), b.take("a")], [true, true, true, false], "refills to the burst, no more");
  });

  test("refilled buckets are swept, so the map stays as large as the recently active keys", () => {
    let now = 0;
    const b = new TokenBuckets(10, 10, () => now);
    for (let i = 0; i < 5_000; i++) b.take(`k${i}`);
    now += 2_000;
    b.take("fresh");
    assert.equal(b.size, 1);
  });
});

describe("checkRequest", () => {
  const frame = (f: Partial<GenerateFrame>): GenerateFrame => ({ type: "generate", ...f });

  test("prompt size counts UTF-8 bytes of the prompt or of all message contents", () => {
    assert.equal(promptBytes({ prompt: "é" }), 2);
    assert.equal(
      promptBytes({
        messages: [
          { role: "user", content: "ab" },
          { role: "system", content: "€" },
        ],
      }),
      5,
    );
    const l = { ...limits, maxPromptBytes: 4 };
    assert.doesNotThrow(() => checkRequest(frame({ prompt: "éé" }), l, LIMITS.maxTokens));
    assert.throws(() => checkRequest(frame({ prompt: "ééa" }), l, LIMITS.maxTokens), code("too_large"));
    assert.throws(
      () =>
        checkRequest(
          frame({
            messages: [
              { role: "user", content: "abc" },
              { role: "user", content: "de" },
            ],
          }),
          l,
          LIMITS.maxTokens,
        ),
      code("too_large"),
    );
  });

  const tool = (name: string, parameters: Record<string, unknown> = { type: "object" }) => ({
    type: "function" as const,
    function: { name, parameters },
  });

  test("prompt size counts tool calls' names and arguments, tool results, and the tools as JSON", () => {
    const tools = [tool("f")];
    const messages = [
      { role: "user" as const, content: "ab" },
      {
        role: "assistant" as const,
        content: "",
        tool_calls: [{ id: "call_1", type: "function" as const, function: { name: "f", arguments: '{"x":"é"}' } }],
      },
      { role: "tool" as const, content: "done", tool_call_id: "call_1" },
    ];
    const toolsBytes = Buffer.byteLength(JSON.stringify(tools));
    assert.deepEqual(promptSize({ messages, tools }), { messages: 2 + 1 + 10 + 4, tools: toolsBytes });
    assert.equal(promptBytes({ messages, tools }), 17 + toolsBytes);
    assert.equal(promptSize({ prompt: "x" }).tools, 0);
  });

  test("an oversized tool list is too_large naming MAX_PROMPT_BYTES, with the split between messages and tools", () => {
    const big = { type: "object", description: "d".repeat(200) };
    const f = frame({ prompt: "hi", tools: [tool("a", big), tool("b", big)] });
    const l = { ...limits, maxPromptBytes: 300 };
    assert.throws(
      () => checkRequest(f, l, LIMITS.maxTokens),
      (e: unknown) => code("too_large")(e) && /messages 2, tools \d+\); at most 300 \(MAX_PROMPT_BYTES\)/.test((e as Error).message),
    );
    assert.doesNotThrow(() => checkRequest(f, { ...limits, maxPromptBytes: promptBytes(f) }, LIMITS.maxTokens));
  });

  test("a tool's parameters nested past MAX_SCHEMA_DEPTH are bad_request naming the tool; depth is measured without recursion", () => {
    let deep: Record<string, unknown> = { type: "string" };
    for (let i = 0; i < MAX_SCHEMA_DEPTH; i++) deep = { type: "object", properties: { x: deep } };
    const f = frame({ prompt: "x", tools: [tool("ok"), tool("deep", deep)] });
    assert.throws(
      () => checkRequest(f, { ...limits, maxPromptBytes: 1_000_000 }, LIMITS.maxTokens),
      (e: unknown) => code("bad_request")(e) && /^tools\.1\.function\.parameters: nested deeper than 64/.test((e as Error).message),
    );
    let shallow: Record<string, unknown> = {};
    for (let i = 0; i < MAX_SCHEMA_DEPTH - 1; i++) shallow = { a: shallow };
    assert.doesNotThrow(() => checkRequest(frame({ prompt: "x", tools: [tool("f", shallow)] }), limits, LIMITS.maxTokens));
    // What a 64 KiB body can hold: deeper than the stack of a recursive walk.
    const nested = JSON.parse(`${"[".repeat(30_000)}${"]".repeat(30_000)}`);
    assert.equal(jsonDepth(nested, MAX_SCHEMA_DEPTH), MAX_SCHEMA_DEPTH + 1, "stops just past the limit");
    assert.equal(jsonDepth({ a: [1, { b: 2 }] }, 10), 3);
    assert.equal(jsonDepth("s", 10), 0);
  });

  test("max_tokens above the ceiling is bad_request; without one, a ceiling below the protocol's maximum applies", () => {
    const l = { ...limits, maxTokensCeiling: 100 };
    assert.throws(() => checkRequest(frame({ prompt: "x", params: { max_tokens: 101 } }), l, LIMITS.maxTokens), code("bad_request"));
    assert.equal(checkRequest(frame({ prompt: "x", params: { max_tokens: 100 } }), l, LIMITS.maxTokens).params?.max_tokens, 100);
    assert.deepEqual(checkRequest(frame({ prompt: "x", params: { seed: 1 } }), l, LIMITS.maxTokens).params, { seed: 1, max_tokens: 100 });
    assert.equal(checkRequest(frame({ prompt: "x" }), limits, LIMITS.maxTokens).params, undefined, "the default ceiling adds nothing");
  });
});

test("clientAddress: the peer, or behind TRUST_PROXY the last X-Forwarded-For entry", () => {
  const req = (xff?: string) =>
    ({ headers: xff === undefined ? {} : { "x-forwarded-for": xff }, socket: { remoteAddress: "10.0.0.1" } }) as unknown as IncomingMessage;
  assert.equal(clientAddress(req("1.1.1.1, 2.2.2.2"), false), "10.0.0.1");
  assert.equal(clientAddress(req("1.1.1.1, 2.2.2.2"), true), "2.2.2.2");
  assert.equal(clientAddress(req(), true), "10.0.0.1");
  assert.equal(clientAddress(req(" , "), true), "10.0.0.1");
});

describe("ActiveGenerations", () => {
  const log = pino({ level: "silent" });

  test("reserves under every key or none; a rid already counted passes; remove and dropKey free slots", () => {
    const g = new ActiveGenerations(async () => true, log);
    const keys = [
      ["o:x", 3],
      ["s:1", 2],
    ] as const;
    assert.equal(g.tryAdd("r1", keys), undefined);
    assert.equal(g.tryAdd("r2", keys), undefined);
    assert.equal(g.tryAdd("r3", keys), "s:1");
    assert.equal(g.count("o:x"), 2, "a refused reservation takes nothing");
    assert.equal(g.tryAdd("r1", keys), undefined, "the same rid again");
    assert.equal(
      g.tryAdd("r3", [
        ["o:x", 3],
        ["s:2", 2],
      ]),
      undefined,
    );
    assert.equal(g.tryAdd("r4", [["o:x", 3]]), "o:x");
    g.remove("r1");
    assert.equal(g.count("o:x"), 2);
    g.dropKey("s:1");
    assert.equal(g.count("s:1"), 0);
    assert.equal(g.count("o:x"), 2, "the owner's slots outlive the socket");
  });

  test("prune asks the store about confirmed slots only, and drops the ended ones", async () => {
    const live = new Set(["a"]);
    const asked: string[] = [];
    const g = new ActiveGenerations(async (rid) => {
      asked.push(rid);
      return live.has(rid);
    }, log);
    for (const rid of ["a", "b", "c"]) g.tryAdd(rid, [["o:x", 10]]);
    g.confirm("a");
    g.confirm("b");
    await g.prune("o:x");
    assert.deepEqual(asked.sort(), ["a", "b"]);
    assert.equal(g.has("o:x", "a"), true);
    assert.equal(g.has("o:x", "b"), false);
    assert.equal(g.has("o:x", "c"), true, "not yet created: not asked about");
  });
});

test("config: the limits' defaults, and invalid values name the variable", () => {
  assert.deepEqual(limits, {
    maxSocketBuffer: 1_048_576,
    maxPromptBytes: 32_768,
    maxTokensCeiling: 32_768,
    turnsPerThread: 1000,
    maxTurnBytes: 65_536,
    generationsPerSocket: 16,
    generationsPerOwner: 2048,
    subscriptionsPerSocket: 256,
    steerRate: 5,
    steerBurst: 10,
    steerRatePerOwner: 20,
    steerBurstPerOwner: 100,
    maxSteersPerResponse: 64,
    streamsPerOwner: 4096,
    streamsPerAddress: 4096,
    frameRate: 100,
    frameBurst: 1024,
    connectionRate: 100,
    connectionBurst: 20_000,
  });
  assert.equal(edgeConfigFromEnv({ STEER_RATE: "0.5", CONNECTION_RATE: "0" }).limits.steerRate, 0.5);
  assert.equal(edgeConfigFromEnv({ CAPABILITY_MAX_TTL: "1h" }).capabilityMaxTtlMs, 3_600_000);
  assert.equal(edgeConfigFromEnv({ TRUST_PROXY: "true" }).trustProxy, true);
  for (const [name, bad] of [
    ["STEER_RATE", "0"],
    ["STEER_RATE_PER_OWNER", "0"],
    ["FRAME_RATE", "fast"],
    ["MAX_STREAMS_PER_OWNER", "0"],
    ["MAX_STEERS_PER_RESPONSE", "-1"],
    ["CONNECTION_RATE", "-1"],
    ["MAX_TOKENS_CEILING", "40000"],
    ["MAX_SOCKET_BUFFER", "10"],
    ["TRUST_PROXY", "yes"],
    ["CAPABILITY_MAX_TTL", "soon"],
  ] as const) {
    assert.throws(() => edgeConfigFromEnv({ [name]: bad }), new RegExp(name));
  }
});
