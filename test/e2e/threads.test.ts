// Threads (issue 13): a conversation's turns in their own log, followed live by every socket
// of its owner, hidden from everyone else, resumed by seq without a loss or a repeat.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { spawnService, type ServiceHandle } from "@unbroken/testing";
import { SignJWT } from "jose";
import { RawClient, textOf, type Frame } from "../helpers/raw-client.js";
import { Stack } from "../helpers/stack.js";

const SECRET = "thread-secret-thread-secret-thread-secret";
const key = new TextEncoder().encode(SECRET);
const newId = () => randomBytes(12).toString("base64url");
const owner = (sub: string) => new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject(sub).setExpirationTime("1h").sign(key);
const threadToken = (claims: Record<string, unknown>) =>
  new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setIssuedAt().setExpirationTime("10m").sign(key);

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const EDGE = path.join(root, "packages/cli/dist/src/edge.js");

const turns = (c: RawClient, thread: string): Frame[] => c.frames.filter((f) => f.type === "turn" && f.thread === thread);
const say = (content: string) => [{ role: "user", content }];

/** Generates in `thread` and returns the accepted frame (or the error). */
const generate = (c: RawClient, thread: string, content: string, extra: Frame = {}) =>
  c.request({ type: "generate", thread, messages: say(content), ...extra });

let stack: Stack;
let alice: string;

before(async () => {
  stack = await Stack.start({ edges: 2, workers: 1, edgeEnv: { AUTH: "jwt", JWT_SECRET: SECRET }, workerEnv: { SCRIPTED_TPS: "100" } });
  alice = await owner("alice");
});
after(() => stack.stop());

describe("follow a thread", () => {
  it("a second socket of the owner sees each turn before the first token of its answer, then reads the answer", async () => {
    const thread = newId();
    const a = await RawClient.connect(stack.edges[0]!.url, alice);
    const b = await RawClient.connect(stack.edges[1]!.url, alice);
    const first = await generate(a, thread, "write 5 words to open the thread");
    assert.equal(first.type, "accepted", JSON.stringify(first));
    await a.untilEnd(first.rid);

    // `last`: the thread holds one turn so far.
    assert.deepEqual(await b.request({ type: "follow", thread, after: 0 }), { type: "ok", thread, id: "r1", last: 1 });
    const t1 = await b.next((f) => f.type === "turn" && f.seq === 1);
    assert.deepEqual(t1.messages, say("write 5 words to open the thread"));
    assert.equal(t1.rid, first.rid);
    assert.equal(typeof t1.created_at, "number");

    const second = await generate(a, thread, "write 40 words in the second turn");
    const t2 = await b.next((f) => f.type === "turn" && f.seq === 2);
    assert.equal(t2.rid, second.rid);
    assert.equal((await b.request({ type: "subscribe", rid: t2.rid, after: 0 })).type, "ok");
    const answer = await b.untilEnd(t2.rid);
    const turnAt = b.frames.indexOf(t2);
    const firstToken = b.frames.findIndex((f) => f.type === "event" && f.rid === t2.rid && f.event.kind === "token");
    assert.ok(turnAt < firstToken, "the turn comes before the answer's first token");
    assert.equal(textOf(answer), textOf(await a.untilEnd(second.rid)));
    assert.deepEqual(
      turns(b, thread).map((t) => t.seq),
      [1, 2],
    );
    a.close();
    b.close();
  });

  it("another owner's thread and an unknown thread answer the same forbidden, and a generate into it starts nothing", async () => {
    const thread = newId();
    const a = await RawClient.connect(stack.url, alice);
    assert.equal((await generate(a, thread, "write 3 words")).type, "accepted");
    const bob = await RawClient.connect(stack.url, await owner("bob"));
    const theirs = await bob.request({ type: "follow", thread });
    const unknown = await bob.request({ type: "follow", thread: newId() });
    assert.equal(theirs.code, "forbidden");
    assert.deepEqual({ ...theirs, id: "", thread: "" }, { ...unknown, id: "", thread: "" });

    const rid = newId();
    const intruder = await generate(bob, thread, "let me in", { rid });
    assert.equal(intruder.code, "forbidden");
    assert.equal((await bob.request({ type: "subscribe", rid })).code, "forbidden");
    assert.equal((await a.request({ type: "subscribe", rid })).code, "forbidden", "no record was created for anyone");
    const follower = await RawClient.connect(stack.url, alice);
    await follower.request({ type: "follow", thread });
    await follower.next((f) => f.type === "turn" && f.seq === 1);
    assert.equal((await generate(a, thread, "write 2 words")).type, "accepted");
    await follower.next((f) => f.type === "turn" && f.seq === 2);
    assert.deepEqual(
      turns(follower, thread).map((t) => t.seq),
      [1, 2],
      "bob's attempt appended no turn",
    );
    for (const c of [a, bob, follower]) c.close();
  });

  it("a follower that drops and resumes with after gets every turn once", async () => {
    const thread = newId();
    const a = await RawClient.connect(stack.url, alice);
    let b = await RawClient.connect(stack.edges[1]!.url, alice);
    await generate(a, thread, "turn one", { params: { max_tokens: 2 } });
    await b.request({ type: "follow", thread });
    await generate(a, thread, "turn two", { params: { max_tokens: 2 } });
    await b.next((f) => f.type === "turn" && f.seq === 2);
    const seen = turns(b, thread);
    b.terminate();
    for (const n of [3, 4]) await generate(a, thread, `turn ${n}`, { params: { max_tokens: 2 } });
    b = await RawClient.connect(stack.edges[0]!.url, alice);
    await b.request({ type: "follow", thread, after: seen.at(-1)!.seq });
    await generate(a, thread, "turn 5", { params: { max_tokens: 2 } });
    await b.next((f) => f.type === "turn" && f.seq === 5);
    const all = [...seen, ...turns(b, thread)];
    assert.deepEqual(
      all.map((t) => t.seq),
      [1, 2, 3, 4, 5],
    );
    assert.deepEqual(
      all.map((t) => t.messages[0].content),
      ["turn one", "turn two", "turn 3", "turn 4", "turn 5"],
    );
    a.close();
    b.close();
  });

  it("generates in one thread at once get one turn each, numbered without a gap", async () => {
    const thread = newId();
    const sockets = await Promise.all(stack.edges.map((e) => RawClient.connect(e.url, alice)));
    const accepted = await Promise.all(
      Array.from({ length: 8 }, (_, i) => generate(sockets[i % 2]!, thread, `at once ${i}`, { params: { max_tokens: 1 } })),
    );
    assert.ok(accepted.every((f) => f.type === "accepted"));
    const f = await RawClient.connect(stack.url, alice);
    await f.request({ type: "follow", thread });
    await f.next((x) => x.type === "turn" && x.seq === 8);
    const got = turns(f, thread);
    assert.deepEqual(
      got.map((t) => t.seq),
      [1, 2, 3, 4, 5, 6, 7, 8],
    );
    assert.deepEqual(new Set(got.map((t) => t.rid)), new Set(accepted.map((x) => x.rid)));
    for (const c of [...sockets, f]) c.close();
  });

  it("a re-sent generate (same rid) appends no second turn; unfollow stops the turns", async () => {
    const thread = newId();
    const a = await RawClient.connect(stack.url, alice);
    const rid = newId();
    assert.equal((await generate(a, thread, "once", { rid, params: { max_tokens: 1 } })).existing, false);
    assert.equal((await generate(a, thread, "once", { rid, params: { max_tokens: 1 } })).existing, true);
    const f = await RawClient.connect(stack.url, alice);
    await f.request({ type: "follow", thread });
    await f.next((x) => x.type === "turn" && x.seq === 1);
    assert.deepEqual((await f.request({ type: "unfollow", thread })).type, "ok");
    await generate(a, thread, "after the unfollow", { params: { max_tokens: 1 } });
    // The next turn is seq 2, so a turn the unfollowed socket got would show as seq 2.
    await f.request({ type: "follow", thread, after: 1 });
    const t2 = await f.next((x) => x.type === "turn" && x.seq === 2);
    assert.equal(t2.messages[0].content, "after the unfollow");
    assert.equal(turns(f, thread).length, 2, "one turn 1 (before unfollow), one turn 2 (after the new follow)");
    a.close();
    f.close();
  });
});

describe("thread limits and scoped tokens", () => {
  it("MAX_TURNS_PER_THREAD and MAX_TURN_BYTES refuse with too_large naming them, and store nothing", async () => {
    const edge = await stack.addEdge({ MAX_TURNS_PER_THREAD: "2", MAX_TURN_BYTES: "300" });
    const a = await RawClient.connect(edge.url, alice);
    const thread = newId();
    const big = await generate(a, thread, "x".repeat(400));
    assert.equal(big.code, "too_large");
    assert.match(big.message, /MAX_TURN_BYTES/);
    for (const n of [1, 2]) assert.equal((await generate(a, thread, `turn ${n}`, { params: { max_tokens: 1 } })).type, "accepted");
    const third = await generate(a, thread, "turn 3");
    assert.equal(third.code, "too_large");
    assert.match(third.message, /MAX_TURNS_PER_THREAD/);
    await a.request({ type: "follow", thread });
    await a.next((x) => x.type === "turn" && x.seq === 2);
    assert.deepEqual(
      turns(a, thread).map((t) => t.messages[0].content),
      ["turn 1", "turn 2"],
    );
    a.close();
  });

  it("a thread-scoped read token follows its thread and reads its answers, and nothing else", async () => {
    const thread = newId();
    const a = await RawClient.connect(stack.url, alice);
    const inThread = await generate(a, thread, "write 4 words", { params: { max_tokens: 4 } });
    const outside = await a.request({ type: "generate", prompt: "write 4 words elsewhere", params: { max_tokens: 4 } });
    await a.request({ type: "follow", thread });
    const t1 = await a.next((x) => x.type === "turn" && x.seq === 1);
    const claims = { thread, scope: "read", created_at: t1.created_at };

    const reader = await RawClient.connect(stack.url, await threadToken(claims));
    assert.equal((await reader.request({ type: "follow", thread })).type, "ok");
    await reader.next((x) => x.type === "turn" && x.seq === 1);
    assert.equal((await reader.request({ type: "subscribe", rid: inThread.rid })).type, "ok");
    assert.equal(textOf(await reader.untilEnd(inThread.rid)), textOf(await a.untilEnd(inThread.rid)));
    assert.equal((await reader.request({ type: "subscribe", rid: outside.rid })).code, "forbidden");
    assert.equal((await reader.request({ type: "cancel", rid: inThread.rid })).code, "forbidden");
    assert.equal((await reader.request({ type: "follow", thread: newId() })).code, "forbidden");
    assert.equal((await generate(reader, thread, "may I?")).code, "forbidden");

    const stale = await RawClient.connect(stack.url, await threadToken({ ...claims, created_at: t1.created_at - 60 }));
    assert.equal((await stale.request({ type: "follow", thread })).code, "forbidden", "made for an earlier thread of this id");
    assert.equal((await stale.request({ type: "subscribe", rid: inThread.rid })).code, "forbidden");
    for (const c of [a, reader, stale]) c.close();
  });
});

describe("a thread-scoped token's expiry", () => {
  it("closes its socket at exp with 4401: a thread has no end to bound the follow", async () => {
    const thread = newId();
    const a = await RawClient.connect(stack.url, alice);
    await generate(a, thread, "write 2 words", { params: { max_tokens: 2 } });
    await a.request({ type: "follow", thread });
    const t1 = await a.next((x) => x.type === "turn" && x.seq === 1);
    const exp = Math.floor(Date.now() / 1000) + 2;
    const short = await new SignJWT({ thread, scope: "read", created_at: t1.created_at })
      .setProtectedHeader({ alg: "HS256" })
      .setExpirationTime(exp)
      .sign(key);
    const reader = await RawClient.connect(stack.url, short);
    assert.equal((await reader.request({ type: "follow", thread })).type, "ok");
    const closed = await reader.closed;
    assert.equal(closed.code, 4401);
    assert.ok(Date.now() >= exp * 1000, "not before exp");
    a.close();
  });
});

describe("an edge killed during a follow", () => {
  const services: ServiceHandle[] = [];
  after(() => Promise.allSettled(services.map((s) => s.kill())));

  it("loses no turn: the follower resumes on another edge from its last seq", async () => {
    const env = { NATS_URL: stack.nats.url, PORT: "0", AUTH: "jwt", JWT_SECRET: SECRET };
    const doomed = await spawnService({ name: "edge", script: EDGE, env, readyMsg: "listening" });
    services.push(doomed);
    const thread = newId();
    const a = await RawClient.connect(stack.url, alice);
    await generate(a, thread, "turn 1", { params: { max_tokens: 1 } });
    const b = await RawClient.connect(`ws://127.0.0.1:${doomed.port}/v1/ws`, alice);
    await b.request({ type: "follow", thread });
    await b.next((x) => x.type === "turn" && x.seq === 1);
    const writing = (async () => {
      for (let n = 2; n <= 6; n++) await generate(a, thread, `turn ${n}`, { params: { max_tokens: 1 } });
    })();
    await b.next((x) => x.type === "turn" && x.seq >= 2);
    await doomed.kill();
    await b.closed;
    const before = turns(b, thread);
    const c = await RawClient.connect(stack.edges[1]!.url, alice);
    await c.request({ type: "follow", thread, after: before.at(-1)!.seq });
    await writing;
    await c.next((x) => x.type === "turn" && x.seq === 6);
    const all = [...before, ...turns(c, thread)];
    assert.deepEqual(
      all.map((t) => t.seq),
      [1, 2, 3, 4, 5, 6],
    );
    a.close();
    c.close();
  });
});
