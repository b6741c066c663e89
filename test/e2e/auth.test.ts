// Auth conformance (PROTOCOL.md "Auth"): HS256 JWT hello tokens, owner isolation, and
// forbidden (never not_found) for rids one does not own when auth is on; owner tokens that
// expire on open sockets; JWT_SECRET's minimum length; JWT_ISSUER and JWT_AUDIENCE.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { UnbrokenClient, type ConnectionStatus } from "@unbroken/client";
import { edgeConfigFromEnv } from "@unbroken/edge";
import { SignJWT } from "jose";
import WebSocket from "ws";
import { RawClient, textOf, type Frame } from "../helpers/raw-client.js";
import { Stack } from "../helpers/stack.js";
import { within } from "../helpers/within.js";
import { once } from "node:events";

const SECRET = "test-secret-test-secret-test-secret";
const key = new TextEncoder().encode(SECRET);
const now = () => Math.floor(Date.now() / 1000);
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
const newRid = () => randomBytes(16).toString("base64url");

let stack: Stack;
let url: string;
let openUrl: string;

function token(sub: string | undefined, opts: { alg?: string; secret?: string; exp?: number | string; nbf?: number | string } = {}) {
  const jwt = new SignJWT({}).setProtectedHeader({ alg: opts.alg ?? "HS256" }).setIssuedAt();
  if (sub !== undefined) jwt.setSubject(sub);
  jwt.setExpirationTime(opts.exp ?? "1h");
  if (opts.nbf !== undefined) jwt.setNotBefore(opts.nbf);
  return jwt.sign(opts.secret === undefined ? key : new TextEncoder().encode(opts.secret));
}

before(async () => {
  stack = await Stack.start({ edges: 1, workers: 1, edgeEnv: { AUTH: "jwt", JWT_SECRET: SECRET }, workerEnv: { SCRIPTED_TPS: "50" } });
  url = stack.url;
  openUrl = (await stack.addEdge({ AUTH: "none" })).url;
});

after(async () => {
  await stack.stop();
});

describe("hello tokens", () => {
  it("a valid HS256 token gets welcome", async () => {
    const c = await RawClient.open(url);
    c.send({ type: "hello", token: await token("alice") });
    const w = await c.next((f) => f.type === "welcome" || f.type === "error");
    assert.equal(w.type, "welcome", JSON.stringify(w));
    assert.equal(w.protocol, 1);
    assert.equal((await c.request({ type: "ping" })).type, "pong");
    c.close();
  });

  const refused: Array<[string, () => Promise<Frame>]> = [
    ["missing token", async () => ({ type: "hello" })],
    ["empty token", async () => ({ type: "hello", token: "" })],
    ["garbage token", async () => ({ type: "hello", token: "not.a.jwt" })],
    ["token signed with another secret", async () => ({ type: "hello", token: await token("alice", { secret: "other-secret" }) })],
    ["expired token", async () => ({ type: "hello", token: await token("alice", { exp: now() - 120 }) })],
    ["token with nbf in the future", async () => ({ type: "hello", token: await token("alice", { nbf: now() + 3600 }) })],
    ["token without sub", async () => ({ type: "hello", token: await token(undefined) })],
    [
      "alg none token",
      async () => ({ type: "hello", token: `${b64({ alg: "none", typ: "JWT" })}.${b64({ sub: "alice", exp: now() + 3600 })}.` }),
    ],
    ["HS512 token with the right secret", async () => ({ type: "hello", token: await token("alice", { alg: "HS512" }) })],
    [
      "HS256 token with a tampered payload",
      async () => {
        const [h, , s] = (await token("alice")).split(".");
        return { type: "hello", token: `${h}.${b64({ sub: "mallory", exp: now() + 3600 })}.${s}` };
      },
    ],
  ];
  for (const [name, hello] of refused) {
    it(`${name}: error unauthorized, then close 4401`, async () => {
      const c = await RawClient.open(url);
      c.send({ ...(await hello()), id: "hello-1" });
      const err = await c.next((f) => f.type === "welcome" || f.type === "error");
      assert.equal(err.type, "error", JSON.stringify(err));
      assert.equal(err.code, "unauthorized");
      const closed = await within(c.closed, "socket close");
      assert.equal(closed.code, 4401);
      assert.equal(c.frames.filter((f) => f.type === "welcome").length, 0);
    });
  }

  it("a valid hello with a generate pipelined behind it: welcome, then accepted", async () => {
    const c = await RawClient.open(url);
    c.send({ type: "hello", token: await token("carol") });
    c.send({ type: "generate", id: "g", prompt: "quick", params: { max_tokens: 2 } });
    const acc = await c.next((f) => f.id === "g");
    assert.equal(acc.type, "accepted", JSON.stringify(c.frames));
    const welcomeAt = c.frames.findIndex((f) => f.type === "welcome");
    assert.ok(welcomeAt >= 0 && welcomeAt < c.frames.indexOf(acc), JSON.stringify(c.frames));
    assert.equal((await c.untilEnd(acc.rid)).at(-1)?.event.kind, "end");
    c.close();
  });

  it("a refused hello does not run commands pipelined behind it", async () => {
    const c = await RawClient.open(url);
    c.send({ type: "hello", token: "garbage" });
    c.send({ type: "generate", id: "g", prompt: "sneaky", params: { max_tokens: 2 } });
    const closed = await within(c.closed, "socket close");
    assert.equal(closed.code, 4401);
    assert.equal(c.frames.filter((f) => f.type === "accepted" || f.type === "event").length, 0, JSON.stringify(c.frames));
  });
});

describe("owner isolation", () => {
  let alice: RawClient;
  let bob: RawClient;
  let rid: string;

  before(async () => {
    alice = await RawClient.connect(url, await token("alice"));
    bob = await RawClient.connect(url, await token("bob"));
    rid = newRid();
    const acc = await alice.request({ type: "generate", rid, prompt: "write 200 words about rivers" });
    assert.equal(acc.type, "accepted", JSON.stringify(acc));
    assert.equal(acc.rid, rid);
    assert.equal(acc.existing, false);
  });

  after(() => {
    alice?.close();
    bob?.close();
  });

  const ops: Array<[string, (rid: string) => Frame]> = [
    ["subscribe", (r) => ({ type: "subscribe", rid: r })],
    ["cancel", (r) => ({ type: "cancel", rid: r })],
    ["steer", (r) => ({ type: "steer", rid: r, text: "talk about mountains instead" })],
  ];

  for (const [op, frame] of ops) {
    it(`bob's ${op} of alice's rid and of an unknown rid: forbidden with the same message`, async () => {
      const onAlice = await bob.request(frame(rid));
      assert.equal(onAlice.type, "error", JSON.stringify(onAlice));
      assert.equal(onAlice.code, "forbidden", JSON.stringify(onAlice));
      const unknown = newRid();
      const onNothing = await bob.request(frame(unknown));
      assert.equal(onNothing.type, "error", JSON.stringify(onNothing));
      assert.equal(onNothing.code, "forbidden", `auth on never says not_found: ${JSON.stringify(onNothing)}`);
      assert.equal(onNothing.message, onAlice.message, "the two refusals must be indistinguishable");
      assert.equal(bob.events(rid).length, 0, "bob received none of alice's events");
    });
  }

  it("bob's generate naming alice's rid is forbidden", async () => {
    const err = await bob.request({ type: "generate", rid, prompt: "hijack", params: { max_tokens: 2 } });
    assert.equal(err.type, "error", JSON.stringify(err));
    assert.equal(err.code, "forbidden");
    assert.equal(bob.events(rid).length, 0);
  });

  it("alice can subscribe from a second socket and reads the same log", async () => {
    const alice2 = await RawClient.connect(url, await token("alice"));
    const ok = await alice2.request({ type: "subscribe", rid });
    assert.equal(ok.type, "ok", JSON.stringify(ok));
    const mine = await alice.untilEnd(rid, 60_000);
    const theirs = await alice2.untilEnd(rid, 60_000);
    assert.deepEqual(theirs, mine);
    alice2.close();
  });

  it("alice's response was unaffected by bob: one start, no steer, ends with stop or length", async () => {
    const events = await alice.untilEnd(rid, 60_000);
    assert.deepEqual(
      events.map((e) => e.seq),
      events.map((_, i) => i + 1),
    );
    const kinds = events.map((e) => e.event.kind);
    assert.equal(kinds.filter((k) => k === "start").length, 1);
    assert.equal(kinds[0], "start");
    assert.equal(kinds.filter((k) => k === "steer").length, 0, "bob's steer must not reach alice's response");
    assert.equal(kinds.filter((k) => k === "end").length, 1);
    const end = events.at(-1)?.event;
    assert.ok(end?.kind === "end" && (end.reason === "stop" || end.reason === "length"), JSON.stringify(end));
    assert.ok(kinds.filter((k) => k === "token").length > 0);
    assert.equal(bob.events(rid).length, 0);
  });

  it("alice's re-generate of her own rid is existing and starts nothing new", async () => {
    const acc = await alice.request({ type: "generate", rid, prompt: "different body", after: 0 });
    assert.equal(acc.type, "accepted", JSON.stringify(acc));
    assert.equal(acc.existing, true);
    const c = await RawClient.connect(url, await token("alice"));
    assert.equal((await c.request({ type: "subscribe", rid })).type, "ok");
    const events = await c.untilEnd(rid, 60_000);
    assert.equal(events.filter((e) => e.event.kind === "start").length, 1);
    c.close();
  });

  it("the same sub on a new token is the same owner", async () => {
    const c = await RawClient.connect(url, await token("alice", { exp: "2h" }));
    const ok = await c.request({ type: "subscribe", rid, after: 1 });
    assert.equal(ok.type, "ok", JSON.stringify(ok));
    const events = await c.untilEnd(rid);
    assert.equal(events[0]?.seq, 2);
    c.close();
  });
});

describe("auth off and configuration", () => {
  it("with auth off, subscribe to an unknown rid is not_found", async () => {
    const c = await RawClient.connect(openUrl);
    const err = await c.request({ type: "subscribe", rid: newRid() });
    assert.equal(err.type, "error", JSON.stringify(err));
    assert.equal(err.code, "not_found");
    assert.equal(c.ws.readyState, WebSocket.OPEN);
    c.close();
  });

  it("AUTH=jwt without JWT_SECRET, or with one under 32 bytes, refuses to start, naming JWT_SECRET", () => {
    assert.throws(() => edgeConfigFromEnv({ AUTH: "jwt" }), /JWT_SECRET/);
    assert.throws(() => edgeConfigFromEnv({ AUTH: "jwt", JWT_SECRET: "" }), /JWT_SECRET/);
    assert.throws(() => edgeConfigFromEnv({ AUTH: "jwt", JWT_SECRET: "change-me" }), /JWT_SECRET must be at least 32 bytes/);
    assert.throws(() => edgeConfigFromEnv({ AUTH: "jwt", JWT_SECRET: "x".repeat(31) }), /JWT_SECRET/);
    assert.equal(edgeConfigFromEnv({ AUTH: "jwt", JWT_SECRET: "x".repeat(32) }).auth.mode, "jwt");
    // Bytes, not characters: 11 three-byte characters are 33 bytes.
    assert.equal(edgeConfigFromEnv({ AUTH: "jwt", JWT_SECRET: "€".repeat(11) }).auth.mode, "jwt");
    // With auth off the secret is not read.
    assert.equal(edgeConfigFromEnv({ AUTH: "none", JWT_SECRET: "short" }).auth.mode, "none");
  });

  it("the edge process with a short JWT_SECRET exits with 2 and says why", async () => {
    const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
    const child = spawn(process.execPath, [path.join(root, "packages/cli/dist/src/edge.js")], {
      env: { ...process.env, NATS_URL: stack.nats.url, PORT: "0", AUTH: "jwt", JWT_SECRET: "change-me" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const [code] = (await within(once(child, "exit"), "the edge exiting", 30_000)) as [number | null];
    assert.equal(code, 2, stderr);
    assert.match(stderr, /JWT_SECRET must be at least 32 bytes/);
  });
});

describe("an owner token expiring on an open socket", () => {
  it("a command before exp works; at exp: unauthorized (the token has expired), close 4401", async () => {
    const exp = now() + 2;
    const t = await token("dora", { exp });
    const c = await RawClient.connect(url, t);
    const acc = await c.request({ type: "generate", prompt: "write 30 words before exp", params: { max_tokens: 30 } });
    assert.equal(acc.type, "accepted", "a command before exp works");
    const closed = await within(c.closed, "the close at exp", 15_000);
    assert.equal(closed.code, 4401);
    assert.ok(Date.now() >= exp * 1000, "not before exp");
    const told = c.frames.filter((f) => f.type === "error");
    assert.deepEqual(
      told.map((f) => [f.code, f.message, f.id]),
      [["unauthorized", "the token has expired", undefined]],
    );
    // The same token opens no new socket (checked at hello).
    const late = await RawClient.open(url);
    late.send({ type: "hello", token: t });
    assert.equal((await late.next((f) => f.type === "welcome" || f.type === "error")).code, "unauthorized");
    assert.equal((await within(late.closed, "close")).code, 4401);
  });

  it("the client asks its token function again and resumes its answer with no gap", async () => {
    let calls = 0;
    const statuses: ConnectionStatus[] = [];
    // Each token lives 1 to 2 s; the answer streams for about 4 s (200 tokens at 50 per second).
    const client = new UnbrokenClient({
      url,
      WebSocket,
      reconnect: { minDelayMs: 20, maxDelayMs: 200 },
      token: async () => {
        calls++;
        return token("erin", { exp: now() + 2 });
      },
      onStatus: (st) => statuses.push(st),
    });
    try {
      const r = client.generate({ prompt: "write 200 words across token renewals", params: { max_tokens: 200 } });
      const seen: number[] = [];
      r.onEvent((e) => seen.push(e.seq));
      const end = await within(r.done, "the answer's end", 60_000);
      assert.equal(end.reason, "length");
      assert.ok(calls >= 2, `the token function was called again (${calls} calls)`);
      const expiries = statuses.filter((st) => st.state === "reconnecting" && /token expired/.test(st.lastError ?? ""));
      assert.ok(expiries.length >= 1, JSON.stringify(statuses));
      assert.deepEqual(
        seen,
        seen.map((_, i) => i + 1),
        "every event once, in order",
      );
      // The same log as a reader with a long-lived token sees.
      const reader = await RawClient.connect(url, await token("erin"));
      await reader.request({ type: "subscribe", rid: r.rid });
      const events = await reader.untilEnd(r.rid, 60_000);
      assert.deepEqual(
        seen,
        events.map((e) => e.seq),
      );
      assert.equal(r.text, textOf(events));
      reader.close();
    } finally {
      await client.close();
    }
  });

  it("without a token function, a 4401 at exp is final: the client closes with unauthorized", async () => {
    const client = new UnbrokenClient({ url, WebSocket, token: await token("fred", { exp: now() + 2 }) });
    try {
      const r = client.generate({ prompt: "write 200 words past exp", params: { max_tokens: 200 } });
      const err = await r.done.then(
        () => assert.fail("the answer should not end"),
        (e: { code?: string }) => e,
      );
      assert.equal(err.code, "unauthorized");
      assert.equal(client.status.state, "closed");
    } finally {
      await client.close();
    }
  });
});

describe("JWT_ISSUER and JWT_AUDIENCE", () => {
  let strictUrl: string;
  let strictHttp: string;
  before(async () => {
    const edge = await stack.addEdge({ JWT_ISSUER: "https://app.example", JWT_AUDIENCE: "unbroken" });
    strictUrl = edge.url;
    strictHttp = `http://127.0.0.1:${edge.port}`;
  });

  const claimed = (iss: string | undefined, aud: string | string[] | undefined) => {
    const jwt = new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject("gina").setIssuedAt().setExpirationTime("1h");
    if (iss !== undefined) jwt.setIssuer(iss);
    if (aud !== undefined) jwt.setAudience(aud);
    return jwt.sign(key);
  };

  it("a token with both gets welcome (and its HTTP requests pass)", async () => {
    const t = await claimed("https://app.example", ["unbroken", "other"]);
    const c = await RawClient.connect(strictUrl, t);
    assert.equal((await c.request({ type: "ping" })).type, "pong");
    c.close();
    const res = await fetch(`${strictHttp}/v1/responses/${newRid()}/events`, { headers: { authorization: `Bearer ${t}` } });
    assert.equal(res.status, 403, "past auth: an unknown rid is forbidden");
  });

  for (const [name, iss, aud] of [
    ["no iss", undefined, "unbroken"],
    ["another iss", "https://evil.example", "unbroken"],
    ["no aud", "https://app.example", undefined],
    ["another aud", "https://app.example", "other"],
  ] as const) {
    it(`a token with ${name}: unauthorized, close 4401; 401 over HTTP`, async () => {
      const t = await claimed(iss, aud);
      const c = await RawClient.open(strictUrl);
      c.send({ type: "hello", token: t });
      const err = await c.next((f) => f.type === "welcome" || f.type === "error");
      assert.equal(err.code, "unauthorized", JSON.stringify(err));
      assert.equal((await within(c.closed, "close")).code, 4401);
      const res = await fetch(`${strictHttp}/v1/responses/${newRid()}/events`, { headers: { authorization: `Bearer ${t}` } });
      assert.equal(res.status, 401);
    });
  }
});
