// Property-based fuzzing (fast-check) of the frame parser, the socket and the HTTP endpoints:
// nothing a client sends crashes the edge, rejects a promise nobody handles, pollutes a
// prototype, or spoils service for the next well-formed client. Runs are bounded.
import assert from "node:assert/strict";
import { request } from "node:http";
import { connect } from "node:net";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { ERROR_CODES, parseClientFrame } from "@unbroken/protocol";
import { RawClient, range, tokenCount, type Frame } from "../helpers/raw-client.js";
import { readSse } from "../helpers/sse.js";
import { Stack } from "../helpers/stack.js";

// The tripwire: the edge runs in this process, so any unhandled rejection or uncaught
// exception of its own lands here.
const tripped: string[] = [];
const onRejection = (err: unknown) => tripped.push(`unhandledRejection: ${err instanceof Error ? err.stack : String(err)}`);
const onException = (err: unknown) => tripped.push(`uncaughtException: ${err instanceof Error ? err.stack : String(err)}`);
process.on("unhandledRejection", onRejection);
process.on("uncaughtException", onException);

const EVIL_KEYS = ["__proto__", "constructor", "prototype"] as const;
const TYPES = [
  "hello",
  "generate",
  "subscribe",
  "unsubscribe",
  "cancel",
  "steer",
  "ping",
  "follow",
  "unfollow",
  "toString",
  "hasOwnProperty",
  ...EVIL_KEYS,
];
const SERVER_TYPES = new Set(["welcome", "accepted", "ok", "pong", "error", "event", "goaway", "turn"]);

const ridLike = fc.oneof(
  fc.stringMatching(/^[A-Za-z0-9_-]{8,64}$/),
  fc.string({ maxLength: 80 }),
  fc.constantFrom("a.b.c.d.e", "*>*>*>*>", "../../../../x", "%00%00%00%00"),
);
const evilKey = fc.constantFrom(...EVIL_KEYS);
/** Any JSON-ish value, with prototype keys among the object keys, a few levels deep. */
const value: fc.Arbitrary<unknown> = fc.letrec<{ v: unknown }>((tie) => ({
  v: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.string({ unit: "binary", maxLength: 40 }),
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie("v"), { maxLength: 4 }),
    fc.dictionary(fc.oneof(fc.string({ maxLength: 8 }), evilKey), tie("v"), { maxKeys: 4 }),
  ),
})).v;
const message = fc.record(
  { role: fc.oneof(fc.constantFrom("system", "user", "assistant"), value), content: fc.oneof(fc.string(), value) },
  { requiredKeys: [] },
);
const params = fc.record(
  {
    max_tokens: fc.oneof(fc.integer({ min: -5, max: 40_000 }), value),
    temperature: fc.oneof(fc.double(), value),
    top_p: fc.oneof(fc.double(), value),
    seed: fc.oneof(fc.integer(), value),
    stop: fc.oneof(fc.string(), fc.array(fc.string(), { maxLength: 6 }), value),
  },
  { requiredKeys: [] },
);
/** Frames close to valid ones, with every field sometimes of the wrong type. */
const frameObject = fc.record(
  {
    type: fc.oneof(fc.constantFrom(...TYPES), value),
    id: fc.oneof(fc.string({ maxLength: 70 }), value),
    rid: fc.oneof(ridLike, value),
    thread: fc.oneof(ridLike, value),
    after: fc.oneof(fc.nat(), fc.integer(), value),
    prompt: fc.oneof(fc.string({ unit: "binary", maxLength: 200 }), value),
    messages: fc.oneof(fc.array(message, { maxLength: 4 }), value),
    params: fc.oneof(params, value),
    text: fc.oneof(fc.string({ maxLength: 100 }), value),
    token: fc.oneof(fc.string(), value),
  },
  { requiredKeys: [] },
);
const nasty = fc.constantFrom(
  '{"type":"generate","__proto__":{"polluted":"yes"},"prompt":"x","params":{"max_tokens":2}}',
  '{"type":"ping","constructor":{"prototype":{"polluted":"yes"}}}',
  '{"__proto__":{"type":"ping"},"type":"subscribe","rid":"__proto__"}',
  '{"type":"generate","messages":[{"role":"user","content":"hi","__proto__":{"polluted":"yes"}}]}',
  '{"type":"steer","rid":"constructor","text":"x"}',
  '{"type":"__proto__"}',
  `{"type":"generate","prompt":"${"p".repeat(60_000)}"}`,
  `{"type":"steer","rid":"abcdefgh","text":"${"t".repeat(60_000)}"}`,
  `${"[".repeat(30_000)}${"]".repeat(30_000)}`,
  `{"type":"generate","prompt":"x","params":${'{"a":'.repeat(10_000)}1${"}".repeat(10_000)}}`,
  "null",
  "[]",
  '"type"',
  "",
);
/** One thing sent on a socket: a JSON frame, raw text, a binary frame, or bytes that are not UTF-8. */
const sendable = fc.oneof(
  { weight: 6, arbitrary: frameObject.map((f) => ({ kind: "text" as const, data: JSON.stringify(f) })) },
  { weight: 2, arbitrary: nasty.map((data) => ({ kind: "text" as const, data })) },
  { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 300 }).map((data) => ({ kind: "text" as const, data })) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((b) => ({ kind: "binary" as const, data: Buffer.from(b) })) },
  {
    weight: 1,
    arbitrary: fc
      .uint8Array({ minLength: 1, maxLength: 50 })
      .map((b) => ({ kind: "raw-text" as const, data: Buffer.concat([Buffer.from([0xc3, 0x28]), Buffer.from(b)]) })),
  },
);

function noPollution(): void {
  assert.equal(({} as Record<string, unknown>).polluted, undefined, "Object.prototype was polluted");
  assert.deepEqual(
    Object.getOwnPropertyNames(Object.prototype).filter((k) => !OBJECT_PROTO.has(k)),
    [],
  );
}
const OBJECT_PROTO = new Set(Object.getOwnPropertyNames(Object.prototype));

let stack: Stack;
let port: number;
let probes = 0;

before(async () => {
  stack = await Stack.start({ edgeEnv: { MAX_TOKENS_CEILING: "8" }, workerEnv: { SCRIPTED_TPS: "0" } });
  port = stack.edges[0]!.port;
});

after(async () => {
  await stack?.stop();
  assert.deepEqual(tripped, [], "nothing unhandled, also while stopping");
  process.off("unhandledRejection", onRejection);
  process.off("uncaughtException", onException);
});

/** A well-formed client gets full service: generate, every event, end; and over HTTP. */
async function wellFormedClientIsServed(): Promise<void> {
  const c = await RawClient.connect(stack.url);
  const acc = await c.request({ type: "generate", prompt: "after the storm", params: { max_tokens: 5 } });
  assert.equal(acc.type, "accepted", JSON.stringify(acc));
  const events = await c.untilEnd(acc.rid);
  assert.deepEqual(
    events.map((e) => e.seq),
    range(1, events.length),
  );
  assert.equal(tokenCount(events), 5);
  assert.deepEqual([events[0]?.event.kind, events.at(-1)?.event.kind], ["start", "end"]);
  c.close();
  const res = await fetch(`http://127.0.0.1:${port}/v1/generate`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: '{"prompt":"http too","params":{"max_tokens":3}}',
  });
  assert.equal(res.status, 202);
  const { rid } = (await res.json()) as { rid: string };
  const sse = await readSse(`http://127.0.0.1:${port}/v1/responses/${rid}/events`);
  // start, 3 tokens in one to three events (coalescing), end
  const ids = sse.messages.map((m) => Number(m.id));
  assert.deepEqual(ids, range(1, ids.length));
  assert.ok(ids.length >= 3 && ids.length <= 5, `${ids.length} events`);
  assert.match(sse.messages.at(-1)?.data ?? "", /"kind":"end"/);
}

function checkReplies(frames: Frame[]): void {
  for (const f of frames) {
    assert.ok(SERVER_TYPES.has(f.type), `unexpected frame ${JSON.stringify(f).slice(0, 200)}`);
    if (f.type === "error") {
      assert.ok((ERROR_CODES as readonly string[]).includes(f.code), JSON.stringify(f));
      assert.notEqual(f.code, "internal", `an internal error: ${JSON.stringify(f)}`);
    }
  }
}

describe("fuzz", () => {
  it("the frame parser: any text gives a frame or a bad_request, never a throw", () => {
    const text = fc.oneof(
      fc.string({ unit: "binary", maxLength: 500 }),
      frameObject.map((f) => JSON.stringify(f)),
      nasty,
      value.map((v) => JSON.stringify(v) ?? ""),
    );
    fc.assert(
      fc.property(text, (t) => {
        const r = parseClientFrame(t);
        if (!r.ok) assert.equal(r.error.code, "bad_request");
        else assert.ok(TYPES.includes(r.frame.type));
      }),
      { numRuns: 2_000 },
    );
    noPollution();
  });

  it("sockets: random frames before and after hello; each socket still answers ping, or was closed with 1007/1009", async () => {
    await fc.assert(
      fc.asyncProperty(fc.boolean(), fc.array(sendable, { minLength: 1, maxLength: 8 }), async (hello, sends) => {
        const probe = `fuzz-probe-${++probes}`;
        const c = hello ? await RawClient.connect(stack.url) : await RawClient.open(stack.url);
        let closed: { code: number } | undefined;
        void c.closed.then((x) => (closed = x));
        for (const s of sends) {
          if (c.ws.readyState !== c.ws.OPEN) break;
          if (s.kind === "text") c.sendText(s.data);
          else c.sendText(s.data, s.kind === "binary");
        }
        let pong: Promise<Frame | undefined> | undefined;
        if (c.ws.readyState === c.ws.OPEN) {
          c.send({ type: "ping", id: probe });
          pong = c.next((f) => f.type === "pong" && f.id === probe, 15_000).catch(() => undefined);
        }
        const outcome = await Promise.race([pong, c.closed]);
        if (outcome && "type" in outcome) assert.equal(outcome.type, "pong");
        else assert.ok(closed && [1007, 1009].includes(closed.code), `closed with ${JSON.stringify(closed)}`);
        checkReplies(c.frames);
        c.terminate();
      }),
      { numRuns: 80 },
    );
    noPollution();
    await wellFormedClientIsServed();
    assert.deepEqual(tripped, []);
  });

  it("HTTP endpoints: random methods, paths, headers and bodies get a 2xx-4xx answer, never a 5xx", async () => {
    const path = fc.oneof(
      fc.constantFrom(
        "/v1/responses",
        "/v1/generate",
        "/v1/chat/completions",
        "/healthz",
        "/readyz",
        "/",
        "/v1/ws",
        "/v1/",
        "//v1/responses",
        "/v1/responses/../../etc/passwd",
        "//[",
        "//",
      ),
      fc
        .tuple(ridLike, fc.constantFrom("events", "cancel", "steer", "", "x"))
        .map(([r, tail]) => `/v1/responses/${encodeURIComponent(r)}/${tail}`),
      fc.tuple(fc.constantFrom("/v1/responses/", "/"), fc.string({ maxLength: 40 })).map(([p, s]) => p + s.replace(/[^\x21-\x7e]/g, "%")),
    );
    const query = fc.option(
      fc.tuple(fc.constantFrom("after", "x", "__proto__"), fc.string({ maxLength: 20 })).map(([k, v]) => `?${k}=${encodeURIComponent(v)}`),
      { nil: "" },
    );
    const body = fc.oneof(
      frameObject.map((f) => JSON.stringify(f)),
      value.map((v) => JSON.stringify(v) ?? ""),
      nasty,
      fc.string({ unit: "binary", maxLength: 300 }),
      fc.constant(JSON.stringify({ messages: [{ role: "user", content: "hi" }], stream: true, max_tokens: 2 })),
    );
    const headers = fc.record(
      {
        "content-type": fc.constantFrom("application/json", "text/plain", "", "application/json; charset=utf-16"),
        "last-event-id": fc.oneof(
          fc.nat().map(String),
          fc.string({ maxLength: 20 }).map((s) => s.replace(/[^\x20-\x7e]/g, "")),
        ),
        authorization: fc.constantFrom("Bearer", "Bearer x.y.z", "Basic abc", "bearer "),
        "x-unbroken-rid": ridLike.map((s) => s.replace(/[^\x21-\x7e]/g, "")),
      },
      { requiredKeys: [] },
    );
    const method = fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD");
    await fc.assert(
      fc.asyncProperty(method, path, query, headers, body, async (m, p, q, h, b) => {
        const status = await send(m, p + q, h, m === "GET" || m === "HEAD" ? undefined : b);
        assert.ok(status >= 200 && status < 500, `${m} ${p}${q} answered ${status}`);
      }),
      { numRuns: 150 },
    );
    noPollution();
    await wellFormedClientIsServed();
    assert.deepEqual(tripped, []);
  });

  it("raw bytes on the HTTP port: the connection is answered or closed, and the edge serves on", async () => {
    const garbage = fc.oneof(
      fc.uint8Array({ maxLength: 400 }).map((b) => Buffer.from(b)),
      fc.string({ unit: "binary", maxLength: 200 }).map((s) => Buffer.from(`GET ${s} HTTP/1.1\r\nhost: x\r\n\r\n`)),
      fc
        .string({ maxLength: 200 })
        .map((s) => Buffer.from(`POST /v1/responses HTTP/1.1\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n${s}\r\n\r\n`)),
      fc
        .string({ maxLength: 60 })
        .map((s) => Buffer.from(`GET /v1/ws HTTP/1.1\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-version: ${s}\r\n\r\n`)),
    );
    await fc.assert(
      fc.asyncProperty(garbage, async (bytes) => {
        await new Promise<void>((resolve) => {
          const sock = connect(port, "127.0.0.1", () => sock.end(bytes));
          const done = () => {
            clearTimeout(timer);
            sock.destroy();
            resolve();
          };
          // A partial request is held open by the server until its own timeouts: give up on it.
          const timer = setTimeout(done, 500);
          sock.on("data", () => undefined);
          sock.on("close", done);
          sock.on("error", done);
        });
      }),
      { numRuns: 40 },
    );
    await wellFormedClientIsServed();
    assert.deepEqual(tripped, []);
  });
});

/** One HTTP request with exactly these headers; resolves with the status, not waiting for the body. */
function send(method: string, path: string, headers: Record<string, string | undefined>, body: string | undefined): Promise<number> {
  return new Promise((resolve, reject) => {
    const h: Record<string, string> = {};
    for (const [k, v] of Object.entries(headers)) if (v !== undefined && v !== "") h[k] = v;
    const req = request({ host: "127.0.0.1", port, method, path, headers: h }, (res) => {
      resolve(res.statusCode ?? 0);
      res.destroy();
    });
    req.setTimeout(15_000, () => req.destroy(new Error(`${method} ${path}: no answer`)));
    req.on("error", reject);
    req.end(body);
  });
}
