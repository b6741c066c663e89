// Session with AUTH=jwt, driven directly (see session-kit.ts), on a real nats-server and a real
// Broker: refused hellos close with 4401, owners reach their own responses only, a capability
// token exactly its scope, commands sent behind hello wait for the verdict; the hello
// timeout; and an owner token expiring on an open socket.
import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { after, afterEach, before, describe, test } from "node:test";
import { CLOSE_UNAUTHORIZED, newRid } from "@unbroken/protocol";
import type { Broker } from "@unbroken/store";
import { SignJWT } from "jose";
import { type BrokerKit, startBrokerKit } from "./broker-kit.js";
import { ClientPool, type Client, serveSessions, type Frame, type SessionServer } from "./session-kit.js";

const SECRET = "session-test-secret-of-32-bytes-at-least";
const key = new TextEncoder().encode(SECRET);
const sign = (claims: Record<string, unknown>, secret = key) =>
  new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setIssuedAt().setExpirationTime("10m").sign(secret);
const ownerToken = (sub: string) => sign({ sub });
/** The whole seconds of rid's creation: what a capability token for it carries. */
const createdAt = async (rid: string) => Math.floor(Date.parse((await broker.records.get(rid))?.record.created_at ?? "") / 1000);

let kit: BrokerKit;
let broker: Broker;
let server: SessionServer;
const pool = new ClientPool();

before(async () => {
  kit = await startBrokerKit("session-auth-test");
  ({ broker } = kit);
  server = await serveSessions(broker, { auth: { mode: "jwt", secret: SECRET } });
});
afterEach(() => pool.closeAll());
after(async () => {
  await server?.close();
  await kit?.stop();
});

const open = (s = server): Promise<Client> => pool.open(s.url);
const connect = (token: string): Promise<Client> => pool.connect(server.url, token);

/** Sends `frames` in one write to the socket, so the edge reads them at once. */
function together(c: Client, frames: Frame[]): void {
  const socket = (c.ws as unknown as { _socket: Socket })._socket;
  socket.cork();
  for (const f of frames) c.send(f);
  socket.uncork();
}

describe("AUTH=jwt: refused hellos", () => {
  for (const [what, token] of [
    ["a token signed with another secret", () => sign({ sub: "alice" }, new TextEncoder().encode("another secret"))],
    ["a token that is no JWT", async () => "not-a-jwt"],
    ["no token", async () => undefined],
  ] as const) {
    test(`${what}: unauthorized, then close 4401`, async () => {
      const c = await open();
      const t = await token();
      c.send(t === undefined ? { type: "hello", id: "h" } : { type: "hello", token: t, id: "h" });
      const { code } = await c.untilClosed();
      assert.equal(code, CLOSE_UNAUTHORIZED);
      assert.equal(c.frames.length, 1, JSON.stringify(c.frames));
      assert.equal(c.frames[0]?.type, "error");
      assert.equal(c.frames[0]?.code, "unauthorized");
      assert.equal(c.frames[0]?.id, "h", "the hello's id is echoed");
    });
  }
});

describe("AUTH=jwt: principals", () => {
  test("an owner reaches its own responses; another owner's are forbidden, like an unknown rid", async () => {
    const alice = await connect(await ownerToken("alice"));
    const accepted = await alice.request({ type: "generate", prompt: "hello" });
    assert.equal(accepted.type, "accepted", JSON.stringify(accepted));
    const rid = accepted.rid as string;
    assert.equal((await broker.records.get(rid))?.record.owner, "alice");

    const bob = await connect(await ownerToken("bob"));
    const others = await bob.request({ type: "subscribe", rid });
    const unknown = await bob.request({ type: "subscribe", rid: newRid() });
    assert.equal(others.code, "forbidden");
    assert.equal(unknown.code, "forbidden");
    assert.equal(unknown.message, others.message);
    assert.equal((await bob.request({ type: "cancel", rid })).code, "forbidden");
    assert.equal((await bob.request({ type: "generate", rid, prompt: "mine now" })).code, "forbidden");
    assert.equal((await broker.records.get(rid))?.record.status, "queued", "nothing bob sent reached it");
  });

  test("a capability token: exactly its scope on its rid; it starts nothing", async () => {
    const alice = await connect(await ownerToken("alice"));
    const rid = (await alice.request({ type: "generate", prompt: "hello" })).rid as string;
    const reader = await connect(await sign({ rid, created_at: await createdAt(rid), scope: "read steer" }));
    assert.equal((await reader.request({ type: "subscribe", rid })).type, "ok");
    assert.equal((await reader.request({ type: "steer", rid, text: "be brief" })).type, "ok");
    assert.deepEqual((await broker.records.get(rid))?.record.steers, ["be brief"]);
    assert.equal((await reader.request({ type: "cancel", rid })).code, "forbidden");
    assert.equal((await reader.request({ type: "generate", prompt: "hi" })).code, "forbidden");
    const { rid: other } = await alice.request({ type: "generate", prompt: "another" });
    assert.equal((await reader.request({ type: "subscribe", rid: other })).code, "forbidden");
  });
});

describe("the verdict on hello", () => {
  test("commands sent right behind hello wait for it: welcome first, then their answers", async () => {
    const alice = await connect(await ownerToken("alice"));
    const rid = (await alice.request({ type: "generate", prompt: "hello" })).rid as string;
    const c = await open();
    // One write: the edge reads the three frames together, so the two commands come while the
    // token is being verified.
    const t = await ownerToken("alice");
    together(c, [
      { type: "hello", token: t },
      { type: "subscribe", rid, id: "s" },
      { type: "generate", prompt: "hi", id: "g" },
    ]);
    await c.next((f) => f.id === "g");
    await c.next((f) => f.id === "s");
    assert.deepEqual(
      c.frames.map((f) => f.type),
      ["welcome", "ok", "accepted"],
      JSON.stringify(c.frames),
    );
  });

  test("commands sent behind a refused hello are not run", async () => {
    const c = await open();
    const rid = newRid();
    together(c, [
      { type: "hello", token: "not-a-jwt" },
      { type: "generate", rid, prompt: "hi", id: "g" },
    ]);
    const { code } = await c.untilClosed();
    assert.equal(code, CLOSE_UNAUTHORIZED);
    assert.deepEqual(
      c.frames.map((f) => f.code),
      ["unauthorized"],
    );
    assert.equal(await broker.records.get(rid), null);
  });

  test("no hello within HELLO_TIMEOUT: unauthorized, then close 4401", async () => {
    const quick = await serveSessions(broker, { helloTimeoutMs: 100 });
    try {
      const c = await open(quick);
      const { code } = await c.untilClosed();
      assert.equal(code, CLOSE_UNAUTHORIZED);
      assert.equal(c.frames.length, 1);
      assert.equal(c.frames[0]?.code, "unauthorized");
      assert.match(c.frames[0]?.message, /no hello/);
    } finally {
      await quick.close();
    }
  });

  test("a socket that said hello in time is not refused when HELLO_TIMEOUT has passed", async () => {
    const quick = await serveSessions(broker, { helloTimeoutMs: 100 });
    try {
      const c = await pool.connect(quick.url);
      const session = [...quick.sessions.values()][0];
      assert.ok(session);
      // The bound: a socket opened after this one, never said hello on, refused by its own
      // timer, which was set after this socket's.
      const late = await open(quick);
      await late.untilClosed();
      await c.roundTrip();
      assert.equal(c.ws.readyState, c.ws.OPEN);
    } finally {
      await quick.close();
    }
  });
});

describe("an owner token expiring on an open socket", () => {
  test("commands after its exp answer unauthorized (the token has expired); ping still answers", async () => {
    let skewMs = 0;
    const skewed = await serveSessions(broker, { auth: { mode: "jwt", secret: SECRET }, clock: () => Date.now() + skewMs });
    try {
      const c = await pool.connect(skewed.url, await ownerToken("alice")); // exp in 10 min
      const accepted = await c.request({ type: "generate", prompt: "hello" });
      assert.equal(accepted.type, "accepted", JSON.stringify(accepted));
      const rid = accepted.rid as string;
      assert.equal((await c.request({ type: "subscribe", rid })).type, "ok", "before exp");
      skewMs = 11 * 60_000; // the sessions' clock is now past exp; the close timer is not
      for (const frame of [
        { type: "subscribe", rid },
        { type: "cancel", rid },
        { type: "steer", rid, text: "more" },
        { type: "generate", prompt: "again" },
        { type: "unsubscribe", rid },
      ]) {
        const answer = await c.request(frame);
        assert.equal(answer.code, "unauthorized", `${frame.type}: ${JSON.stringify(answer)}`);
        assert.equal(answer.message, "the token has expired");
      }
      await c.roundTrip();
      assert.equal((await broker.records.get(rid))?.record.status, "queued", "the refused cancel did nothing");
    } finally {
      await skewed.close();
    }
  });

  test("at its exp the socket is told (unauthorized) and closed with 4401, not before", async () => {
    const exp = Math.floor(Date.now() / 1000) + 2;
    const token = await new SignJWT({ sub: "alice" }).setProtectedHeader({ alg: "HS256" }).setIssuedAt().setExpirationTime(exp).sign(key);
    const c = await connect(token);
    const accepted = await c.request({ type: "generate", prompt: "hello" });
    assert.equal(accepted.type, "accepted", "a command before exp works");
    const { code } = await c.untilClosed();
    assert.equal(code, CLOSE_UNAUTHORIZED);
    assert.ok(Date.now() >= exp * 1000, "not closed before exp");
    const last = c.frames.at(-1);
    assert.equal(last?.type, "error", JSON.stringify(c.frames));
    assert.equal(last?.code, "unauthorized");
    assert.equal(last?.message, "the token has expired");
    assert.equal(last?.id, undefined, "it answers no command");
    // The same token opens no new socket.
    const again = await open();
    again.send({ type: "hello", token });
    assert.equal((await again.untilClosed()).code, CLOSE_UNAUTHORIZED);
  });
});
