// Bad input conformance (PROTOCOL.md "Transport"): every malformed frame gets bad_request
// (with the frame's id only when that id is valid), the socket stays usable, and no other
// client is affected. Oversize frames close with 1009, invalid UTF-8 with 1007.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import WebSocket from "ws";
import { RawClient, type Frame } from "../helpers/raw-client.js";
import { Stack } from "../helpers/stack.js";
import { within } from "../helpers/within.js";

let stack: Stack;
let url: string;
let smallUrl: string;
let http: string;
/** Another client, connected throughout, that must keep being served. */
let other: RawClient;

before(async () => {
  stack = await Stack.start({ edges: 1, workers: 1 });
  url = stack.url;
  http = `http://127.0.0.1:${stack.edges[0]!.port}`;
  smallUrl = (await stack.addEdge({ MAX_FRAME_BYTES: "1024" })).url;
  other = await RawClient.connect(url);
});

after(async () => {
  other?.close();
  await stack.stop();
});

/** A generate on `c` (default: the other client) runs to its end. */
async function completesGenerate(c: RawClient = other): Promise<void> {
  const acc = await c.request({ type: "generate", prompt: "unaffected", params: { max_tokens: 3 } });
  assert.equal(acc.type, "accepted", JSON.stringify(acc));
  const events = await c.untilEnd(acc.rid);
  assert.deepEqual(
    events.map((e) => e.seq),
    events.map((_, i) => i + 1),
  );
  const end = events.at(-1)?.event;
  assert.equal(end?.kind === "end" && end.reason, "length", JSON.stringify(end));
}

/** Sends `raw` and returns the first error that follows it. */
async function errorFor(c: RawClient, raw: string | Buffer, binary = false): Promise<Frame> {
  const from = c.frames.length;
  c.sendText(raw, binary);
  return c.next((f) => f.type === "error" || f.type === "pong" || f.type === "accepted" || f.type === "ok", 10_000, from);
}

async function stillWorks(c: RawClient): Promise<void> {
  assert.equal(c.ws.readyState, WebSocket.OPEN);
  const pong = await c.request({ type: "ping" });
  assert.equal(pong.type, "pong", JSON.stringify(pong));
}

const long = (n: number, ch = "a") => ch.repeat(n);

// [name, raw frame, expected id on the error (undefined = must carry none)]
const malformed: Array<[string, string, string | undefined]> = [
  ["not JSON", "{type: ping", undefined],
  ["truncated JSON", '{"type":"ping"', undefined],
  ["empty text frame", "", undefined],
  ["a JSON array", '[{"type":"ping"}]', undefined],
  ["a JSON string", '"ping"', undefined],
  ["a JSON number", "42", undefined],
  ["JSON null", "null", undefined],
  ["unknown type", '{"type":"launch","id":"u1"}', "u1"],
  ["type not a string", '{"type":7,"id":"u2"}', "u2"],
  ["missing type", '{"id":"u3","rid":"abcdefgh12"}', "u3"],
  ["type inherited from Object.prototype", '{"type":"toString","id":"u4"}', "u4"],
  ["type __proto__", '{"type":"__proto__","id":"u5"}', "u5"],
  ["generate with messages as a string", '{"type":"generate","id":"g1","messages":"hello"}', "g1"],
  ["generate with an empty messages array", '{"type":"generate","id":"g2","messages":[]}', "g2"],
  ["generate with a bad role", '{"type":"generate","id":"g3","messages":[{"role":"root","content":"x"}]}', "g3"],
  ["generate with max_tokens as a string", '{"type":"generate","id":"g4","prompt":"x","params":{"max_tokens":"5"}}', "g4"],
  ["generate with temperature 5", '{"type":"generate","id":"g5","prompt":"x","params":{"temperature":5}}', "g5"],
  ["generate with prompt a number", '{"type":"generate","id":"g6","prompt":12}', "g6"],
  ["generate with after -1", '{"type":"generate","id":"g7","prompt":"x","after":-1}', "g7"],
  ["generate with both messages and prompt", '{"type":"generate","id":"g8","prompt":"x","messages":[{"role":"user","content":"y"}]}', "g8"],
  ["generate with neither messages nor prompt", '{"type":"generate","id":"g9","params":{"max_tokens":3}}', "g9"],
  ["subscribe with after -1", '{"type":"subscribe","id":"s1","rid":"abcdefgh12","after":-1}', "s1"],
  ["subscribe with after 1.5", '{"type":"subscribe","id":"s2","rid":"abcdefgh12","after":1.5}', "s2"],
  ["subscribe without rid", '{"type":"subscribe","id":"s3"}', "s3"],
  ["steer with empty text", '{"type":"steer","id":"t1","rid":"abcdefgh12","text":""}', "t1"],
  ["steer without text", '{"type":"steer","id":"t2","rid":"abcdefgh12"}', "t2"],
  ["hello with a numeric token", '{"type":"hello","id":"h1","token":5}', "h1"],
  ["id is a number", '{"type":"ping","id":5}', undefined],
  ["id is an object", '{"type":"ping","id":{"a":1}}', undefined],
  ["id is null", '{"type":"ping","id":null}', undefined],
  ["id of 65 characters", `{"type":"ping","id":"${long(65)}"}`, undefined],
  ["id of 65 characters on a bad frame", `{"type":"launch","id":"${long(65)}"}`, undefined],
];

describe("malformed frames get bad_request and change nothing else", () => {
  for (const [name, raw, id] of malformed) {
    it(name, async () => {
      const c = await RawClient.connect(url);
      const err = await errorFor(c, raw);
      assert.equal(err.type, "error", JSON.stringify(err));
      assert.equal(err.code, "bad_request", JSON.stringify(err));
      assert.equal(typeof err.message, "string");
      if (id === undefined) assert.ok(!("id" in err), `error must carry no id: ${JSON.stringify(err)}`);
      else assert.equal(err.id, id);
      await stillWorks(c);
      await completesGenerate(c);
      await completesGenerate();
      c.close();
    });
  }

  it("an id of exactly 64 characters is valid and echoed", async () => {
    const c = await RawClient.connect(url);
    const id = long(64, "z");
    const pong = await errorFor(c, JSON.stringify({ type: "ping", id }));
    assert.deepEqual(pong, { type: "pong", id });
    const err = await errorFor(c, JSON.stringify({ type: "launch", id }));
    assert.equal(err.code, "bad_request");
    assert.equal(err.id, id);
    c.close();
  });

  it("a binary frame gets bad_request and the socket stays open", async () => {
    const c = await RawClient.connect(url);
    const err = await errorFor(c, Buffer.from(JSON.stringify({ type: "ping", id: "bin" })), true);
    assert.equal(err.type, "error");
    assert.equal(err.code, "bad_request");
    await stillWorks(c);
    await completesGenerate();
    c.close();
  });
});

describe("bad tool shapes get bad_request naming the field, on the socket and on chat completions", () => {
  const user = { role: "user", content: "call f" };
  const f = { type: "function", function: { name: "f", parameters: { type: "object" } } };
  const call = { id: "call_1", type: "function", function: { name: "f", arguments: "{}" } };
  // [name, the generation's body, the field the message must name]
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ["a tool that is not a function", { messages: [user], tools: [{ type: "custom", custom: { name: "f" } }] }, "tools.0.type"],
    ["a function name with a dot", { messages: [user], tools: [{ type: "function", function: { name: "a.b" } }] }, "tools.0.function.name"],
    [
      "parameters that are not an object",
      { messages: [user], tools: [{ ...f, function: { name: "f", parameters: [] } }] },
      "tools.0.function.parameters",
    ],
    ["a tool message without tool_call_id", { messages: [user, { role: "tool", content: "x" }] }, "messages.1.tool_call_id"],
    [
      "a tool message answering no call",
      { messages: [user, { role: "tool", content: "x", tool_call_id: "call_9" }] },
      "messages.1.tool_call_id",
    ],
    [
      "a call without arguments",
      { messages: [user, { role: "assistant", content: null, tool_calls: [{ ...call, function: { name: "f" } }] }] },
      "messages.1.tool_calls.0.function.arguments",
    ],
    [
      "a forced function not offered",
      { messages: [user], tools: [f], tool_choice: { type: "function", function: { name: "g" } } },
      "tool_choice.function.name",
    ],
    ["an unknown tool_choice", { messages: [user], tools: [f], tool_choice: "always" }, "tool_choice"],
    ["two functions of one name", { messages: [user], tools: [f, f] }, "tools"],
    [
      "parameters nested 100 levels deep",
      {
        messages: [user],
        tools: [{ type: "function", function: { name: "f", parameters: JSON.parse(`${'{"a":'.repeat(100)}1${"}".repeat(100)}`) } }],
      },
      "tools.0.function.parameters",
    ],
  ];
  const named = (message: unknown, field: string) => typeof message === "string" && message.startsWith(`${field}: `);

  for (const [name, body, field] of cases) {
    it(name, async () => {
      const c = await RawClient.connect(url);
      const err = await c.request({ type: "generate", id: "tg", ...body });
      assert.equal(err.code, "bad_request", JSON.stringify(err));
      assert.ok(named(err.message, field), `${field} in ${JSON.stringify(err)}`);
      const res = await fetch(`${http}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "any", ...body }),
      });
      const reply = (await res.json()) as { error: { code: string; message: string } };
      assert.equal(res.status, 400, JSON.stringify(reply));
      assert.equal(reply.error.code, "bad_request");
      assert.ok(named(reply.error.message, field), `${field} in ${JSON.stringify(reply)}`);
      await stillWorks(c);
      c.close();
    });
  }

  it("an image part in a chat message is refused at its type, not dropped", async () => {
    const res = await fetch(`${http}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "data:," } }] }] }),
    });
    assert.equal(res.status, 400);
    assert.match(((await res.json()) as { error: { message: string } }).error.message, /^messages\.0\.content\.0\.type: only text parts/);
  });
});

describe("invalid rids get bad_request", () => {
  const badRids: Array<[string, unknown]> = [
    ["dots", "a.b.c.d.e"],
    ["star", "abc*defgh"],
    ["gt", "abc>defgh"],
    ["space", "has space1"],
    ["too short", "abc"],
    ["65 chars", long(65, "r")],
    ["empty", ""],
    ["a number", 12345678],
    ["unicode letters", "ünïcödé12"],
  ];
  const frameFor = (type: string, rid: unknown, id: string): Record<string, unknown> => {
    if (type === "generate") return { type, id, rid, prompt: "x", params: { max_tokens: 2 } };
    if (type === "steer") return { type, id, rid, text: "go left" };
    return { type, id, rid };
  };
  for (const type of ["subscribe", "unsubscribe", "cancel", "steer", "generate"]) {
    it(`${type} with an invalid rid`, async () => {
      const c = await RawClient.connect(url);
      for (const [label, rid] of badRids) {
        const id = `${type}-${label.replace(/ /g, "_")}`;
        const err = await errorFor(c, JSON.stringify(frameFor(type, rid, id)));
        assert.equal(err.type, "error", `${label}: ${JSON.stringify(err)}`);
        assert.equal(err.code, "bad_request", `${label}: ${JSON.stringify(err)}`);
        assert.equal(err.id, id);
        await stillWorks(c);
      }
      assert.equal(c.frames.filter((f) => f.type === "accepted" || f.type === "ok").length, 0);
      await completesGenerate(c);
      await completesGenerate();
      c.close();
    });
  }

  it("rids of 8 and 64 valid characters are accepted by the schema (not_found, not bad_request)", async () => {
    const c = await RawClient.connect(url);
    for (const rid of ["Ab_-9xyZ", `${long(60, "Q")}_-z9`]) {
      const err = await c.request({ type: "subscribe", rid });
      assert.equal(err.type, "error", JSON.stringify(err));
      assert.equal(err.code, "not_found", `${rid}: ${JSON.stringify(err)}`);
    }
    c.close();
  });
});

describe("hostile frames", () => {
  it("__proto__ and constructor keys are handled without crashing or polluting", async () => {
    const c = await RawClient.connect(url);
    const raws = [
      '{"type":"ping","id":"p1","__proto__":{"type":"hello","polluted":1}}',
      '{"__proto__":{"type":"ping"},"id":"p2"}',
      '{"type":"constructor","id":"p3"}',
      '{"type":"ping","id":"p4","constructor":{"prototype":{"polluted":1}}}',
      '{"type":"generate","id":"p5","prompt":"x","params":{"max_tokens":2,"__proto__":{"polluted":1}}}',
      '{"type":"subscribe","id":"p6","rid":"abcdefgh12","__proto__":{"rid":"a.b.c"}}',
    ];
    for (const raw of raws) {
      const reply = await errorFor(c, raw);
      const ok =
        (reply.type === "error" && reply.code === "bad_request") ||
        reply.type === "pong" ||
        reply.type === "accepted" ||
        (reply.type === "error" && reply.code === "not_found");
      assert.ok(ok, `${raw} -> ${JSON.stringify(reply)}`);
      await stillWorks(c);
    }
    assert.equal(({} as Record<string, unknown>).polluted, undefined, "Object.prototype was polluted");
    await completesGenerate(c);
    await completesGenerate();
    c.close();
  });
});

describe("transport-level violations close only the offending socket", () => {
  it("a frame over MAX_FRAME_BYTES closes that socket with 1009", async () => {
    const bystander = await RawClient.connect(smallUrl);
    const c = await RawClient.connect(smallUrl);
    const small = await c.request({ type: "ping", pad: long(500) });
    assert.equal(small.type, "pong", "a frame under the limit is fine");
    c.send({ type: "ping", id: "big", pad: long(2000) });
    const closed = await within(c.closed, "socket close");
    assert.equal(closed.code, 1009);
    assert.equal(c.frames.filter((f) => f.id === "big").length, 0);
    await stillWorks(bystander);
    await completesGenerate(bystander);
    const fresh = await RawClient.connect(smallUrl);
    await completesGenerate(fresh);
    await completesGenerate();
    bystander.close();
    fresh.close();
  });

  it("invalid UTF-8 in a text frame closes that socket with 1007", async () => {
    const c = await RawClient.connect(url);
    c.ws.send(Buffer.from([0xff, 0xfe, 0xfd]), { binary: false });
    const closed = await within(c.closed, "socket close");
    assert.equal(closed.code, 1007);
    await completesGenerate();
    const fresh = await RawClient.connect(url);
    await completesGenerate(fresh);
    fresh.close();
  });

  it("invalid UTF-8 before hello also closes with 1007", async () => {
    const c = await RawClient.open(url);
    c.ws.send(Buffer.from('{"type":"ping","id":"\xc3\x28"}', "latin1"), { binary: false });
    const closed = await within(c.closed, "socket close");
    assert.equal(closed.code, 1007);
    await completesGenerate();
  });
});
