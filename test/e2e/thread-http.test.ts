// A thread's turns over HTTP (issue 13; docs/http.md, "Threads"): `GET /v1/threads/{thread}/turns`
// as JSON pages, and the same path as Server-Sent Events that replay, follow live, resume with
// Last-Event-ID and hold one stream slot until they close.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import type { Edge } from "@unbroken/edge";
import { SignJWT } from "jose";
import { RawClient, type Frame } from "../helpers/raw-client.js";
import { LiveSse } from "../helpers/sse.js";
import { Stack } from "../helpers/stack.js";
import { within } from "../helpers/within.js";

const SECRET = "thread-http-secret-thread-http-secret";
const key = new TextEncoder().encode(SECRET);
const newId = () => randomBytes(12).toString("base64url");
const sign = (claims: Record<string, unknown>, sub?: string) => {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setIssuedAt().setExpirationTime("10m");
  return (sub ? jwt.setSubject(sub) : jwt).sign(key);
};
const SSE = { accept: "text/event-stream" };

let stack: Stack;
let alice: string;
let bob: string;

before(async () => {
  stack = await Stack.start({ edgeEnv: { AUTH: "jwt", JWT_SECRET: SECRET }, workerEnv: { SCRIPTED_TPS: "200" } });
  [alice, bob] = await Promise.all([sign({}, "alice"), sign({}, "bob")]);
});
after(() => stack.stop());

const base = (edge: Edge = stack.edges[0]!) => `http://127.0.0.1:${edge.port}`;
const auth = (token: string | undefined): Record<string, string> => (token ? { authorization: `Bearer ${token}` } : {});
const turnsUrl = (thread: string, query = "", edge?: Edge) => `${base(edge)}/v1/threads/${thread}/turns${query}`;

/** Generates one short answer in `thread` over HTTP; returns its rid. */
async function turn(thread: string, content: string, token: string | undefined = alice, edge?: Edge): Promise<string> {
  const res = await fetch(`${base(edge)}/v1/generate`, {
    method: "POST",
    headers: { "content-type": "application/json", ...auth(token) },
    body: JSON.stringify({ thread, messages: [{ role: "user", content }], params: { max_tokens: 1 } }),
  });
  const body = (await res.json()) as { rid: string };
  assert.equal(res.status, 202, JSON.stringify(body));
  return body.rid;
}

async function getJson(url: string, token: string | undefined = alice): Promise<{ status: number; body: Frame }> {
  const res = await fetch(url, { headers: auth(token) });
  // Within a deadline: a stream answered where a page was due would never end.
  return { status: res.status, body: (await within(res.json(), `the JSON body of ${url}`)) as Frame };
}

/** A thread of `n` turns, "turn 1" … "turn n". */
async function threadOf(n: number): Promise<string> {
  const thread = newId();
  for (let i = 1; i <= n; i++) await turn(thread, `turn ${i}`);
  return thread;
}

const seqsOf = (page: Frame) => (page.data as Frame[]).map((t) => t.seq);

describe("GET /v1/threads/{thread}/turns as JSON", () => {
  it("pages by after and limit; its turns are the socket's turn frames; created_at mints a thread token", async () => {
    const thread = await threadOf(5);
    const pages: Frame[] = [];
    for (let after = 0; ; ) {
      const { status, body } = await getJson(turnsUrl(thread, `?after=${after}&limit=2`));
      assert.equal(status, 200, JSON.stringify(body));
      pages.push(body);
      if (!body.has_more) break;
      after = body.last_seq;
    }
    assert.deepEqual(pages.map(seqsOf), [[1, 2], [3, 4], [5]]);
    assert.deepEqual(
      pages.map((p) => p.has_more),
      [true, true, false],
    );
    assert.deepEqual(
      pages.map((p) => p.last_seq),
      [2, 4, 5],
    );
    const all = pages.flatMap((p) => p.data as Frame[]);
    assert.deepEqual(
      all.map((t) => t.messages[0].content),
      ["turn 1", "turn 2", "turn 3", "turn 4", "turn 5"],
    );

    const socket = await RawClient.connect(stack.url, alice);
    await socket.request({ type: "follow", thread });
    await socket.next((f) => f.type === "turn" && f.seq === 5);
    assert.deepEqual(
      all,
      socket.frames.filter((f) => f.type === "turn"),
      "the same frames as the socket's follow",
    );
    socket.close();

    const whole = (await getJson(turnsUrl(thread))).body;
    assert.deepEqual(
      { ...whole, data: seqsOf(whole) },
      { object: "list", thread, created_at: all[0]!.created_at, data: [1, 2, 3, 4, 5], has_more: false, last_seq: 5 },
    );
    for (const after of [5, 99]) {
      const past = (await getJson(turnsUrl(thread, `?after=${after}`))).body;
      assert.deepEqual(
        { data: past.data, has_more: past.has_more, last_seq: past.last_seq },
        { data: [], has_more: false, last_seq: after },
      );
    }

    const reader = await sign({ thread, scope: "read", created_at: whole.created_at });
    const read = await getJson(turnsUrl(thread, "?after=3"), reader);
    assert.equal(read.status, 200, JSON.stringify(read.body));
    assert.deepEqual(seqsOf(read.body), [4, 5]);
    const stale = await sign({ thread, scope: "read", created_at: whole.created_at - 60 });
    assert.equal((await getJson(turnsUrl(thread), stale)).status, 403, "made for an earlier thread of this id");
  });

  it("another owner's thread and an unknown one answer the same 403, as JSON and as a stream; auth off: unknown is 404", async () => {
    const thread = await threadOf(1);
    const theirs = await getJson(turnsUrl(thread), bob);
    const unknown = await getJson(turnsUrl(newId()), bob);
    assert.equal(theirs.status, 403);
    assert.equal(theirs.body.code, "forbidden");
    assert.deepEqual(theirs, unknown);
    for (const headers of [SSE, {}]) {
      const query = "accept" in headers ? "" : "?stream=true";
      const res = await fetch(turnsUrl(thread, query), { headers: { ...headers, ...auth(bob) } });
      assert.deepEqual({ status: res.status, body: await res.json() }, theirs);
    }
    assert.equal((await getJson(turnsUrl(thread), "")).status, 401, "no token");

    const open = await stack.addEdge({ AUTH: "none" });
    const missing = await getJson(turnsUrl(newId(), "", open), "");
    assert.deepEqual(missing.status, 404);
    assert.equal(missing.body.code, "not_found");
  });

  it("a bad after, limit, stream, Last-Event-ID or thread id is 400 naming it", async () => {
    const thread = await threadOf(1);
    const cases: Array<[query: string, names: RegExp]> = [
      ["?after=-1", /^after/],
      ["?after=x", /^after/],
      ["?after=1.5", /^after/],
      ["?limit=0", /^limit/],
      ["?limit=1001", /^limit/],
      ["?limit=", /^limit/],
      ["?stream=yes", /^stream/],
      ["?stream=true&after=x", /after/],
    ];
    for (const [query, names] of cases) {
      const { status, body } = await getJson(turnsUrl(thread, query));
      assert.equal(status, 400, query);
      assert.equal(body.code, "bad_request", query);
      assert.match(body.message, names, query);
    }
    const res = await fetch(turnsUrl(thread), { headers: { ...SSE, "last-event-id": "two", ...auth(alice) } });
    assert.equal(res.status, 400);
    assert.match(((await res.json()) as Frame).message, /Last-Event-ID/);
    const bad = await getJson(turnsUrl("short"));
    assert.equal(bad.status, 400);
    assert.match(bad.body.message, /^thread/);
    assert.equal((await fetch(turnsUrl(thread), { method: "POST", headers: auth(alice) })).status, 405);
  });
});

describe("GET /v1/threads/{thread}/turns as Server-Sent Events", () => {
  it("replays the stored turns, then follows live; Last-Event-ID resumes exactly after it", async () => {
    const thread = await threadOf(2);
    const live = await LiveSse.open(turnsUrl(thread), { headers: { ...SSE, ...auth(alice) } });
    try {
      assert.equal(live.res.status, 200);
      assert.match(live.res.headers.get("content-type") ?? "", /^text\/event-stream/);
      await live.next((m) => m.id === "2", "the stored turns");
      const rid = await turn(thread, "turn 3, after the stream opened");
      const third = await live.next((m) => m.id === "3", "the live turn");
      assert.equal(third.event, undefined, "no event: line, so EventSource's onmessage sees it");
      const frame = JSON.parse(third.data) as Frame;
      assert.deepEqual({ type: frame.type, thread: frame.thread, seq: frame.seq, rid: frame.rid }, { type: "turn", thread, seq: 3, rid });
      const page = (await getJson(turnsUrl(thread, "?after=2"))).body;
      assert.deepEqual(page.data, [frame], "the JSON page's turn, byte for byte the same frame");
      assert.deepEqual(
        live.messages.map((m) => m.id),
        ["1", "2", "3"],
      );
    } finally {
      await live.close();
    }

    // Last-Event-ID wins over ?after=; only later turns follow, then live ones.
    const resumed = await LiveSse.open(turnsUrl(thread, "?stream=true&after=0"), { headers: { "last-event-id": "2", ...auth(alice) } });
    try {
      assert.equal(resumed.res.status, 200);
      await resumed.next((m) => m.id === "3", "the turn after Last-Event-ID");
      await turn(thread, "turn 4");
      await resumed.next((m) => m.id === "4", "the live turn after the resume");
      assert.deepEqual(
        resumed.messages.map((m) => m.id),
        ["3", "4"],
      );
    } finally {
      await resumed.close();
    }
  });

  it("holds one stream slot while open and gives it back on close (MAX_STREAMS_PER_OWNER=1)", async () => {
    const edge = await stack.addEdge({ MAX_STREAMS_PER_OWNER: "1" });
    const thread = await threadOf(1);
    const open = () => LiveSse.open(turnsUrl(thread, "", edge), { headers: { ...SSE, ...auth(alice) } });
    const first = await open();
    await first.next((m) => m.id === "1", "the first stream's turn");
    const second = await open();
    assert.equal(second.res.status, 429);
    assert.match(((await second.res.json()) as Frame).message, /MAX_STREAMS_PER_OWNER/);
    assert.equal((await getJson(turnsUrl(thread, "", edge))).status, 200, "a JSON page holds no slot");
    await first.close();

    // The edge sees the close a moment after the client: ask until the slot is free again.
    const third = await within(
      (async () => {
        for (;;) {
          const s = await open();
          if (s.res.status === 200) return s;
          assert.equal(s.res.status, 429);
          await s.res.body?.cancel();
          await new Promise((r) => setTimeout(r, 20));
        }
      })(),
      "the slot given back after the first stream closed",
    );
    try {
      await third.next((m) => m.id === "1", "the third stream's turn");
      const fourth = await open();
      assert.equal(fourth.res.status, 429, "released once: the third stream holds the one slot again");
      await fourth.res.body?.cancel();
    } finally {
      await third.close();
    }
  });

  it("closes at its token's exp, and the reconnect with that token is refused (401)", async () => {
    const thread = await threadOf(1);
    const created_at = (await getJson(turnsUrl(thread))).body.created_at;
    // JWT times are whole seconds: this one expires within two.
    const exp = Math.floor(Date.now() / 1000) + 2;
    const short = await new SignJWT({ thread, scope: "read", created_at })
      .setProtectedHeader({ alg: "HS256" })
      .setExpirationTime(exp)
      .sign(key);
    const live = await LiveSse.open(turnsUrl(thread), { headers: { ...SSE, ...auth(short) } });
    assert.equal(live.res.status, 200);
    await live.next((m) => m.id === "1", "the turn read with the short token");
    await within(live.done, "the stream's close at exp");
    assert.ok(Date.now() >= exp * 1000, "not before exp");
    const again = await fetch(turnsUrl(thread), { headers: { ...SSE, ...auth(short) } });
    assert.equal(again.status, 401);
    await again.body?.cancel();
  });
});
