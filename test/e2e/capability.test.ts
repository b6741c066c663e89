// Capability tokens (docs/protocol.md "Response-scoped tokens"): a JWT with `rid`, `created_at`
// and `scope` grants exactly that access to exactly that response, whoever owns it, and nothing
// else; not to a response created later under the same rid.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { SignJWT } from "jose";
import { RawClient, type Frame } from "../helpers/raw-client.js";
import { readSse } from "../helpers/sse.js";
import { Stack } from "../helpers/stack.js";
import { within } from "../helpers/within.js";

const SECRET = "capability-secret-capability-secret";
const key = new TextEncoder().encode(SECRET);
const now = () => Math.floor(Date.now() / 1000);

/** `exp` null: no exp claim at all. */
function sign(claims: Record<string, unknown>, exp: number | string | null = "10m"): Promise<string> {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setIssuedAt();
  if (exp !== null) jwt.setExpirationTime(exp);
  return jwt.sign(key);
}
const ownerToken = (sub: string) => sign({ sub }, "1h");
/** A token for the response now under rid: its created_at as the response object shows it (0 when there is none). */
const capability = async (rid: string, scope: unknown, exp: number | string | null = "10m") =>
  sign({ rid, created_at: await createdAtOf(http, rid), scope }, exp);

/** The response's `created_at` (whole seconds) as its owner reads it: GET /v1/responses/{rid}. */
async function createdAtOf(base: string, rid: string, sub = "olivia"): Promise<number> {
  const res = await fetch(`${base}/v1/responses/${encodeURIComponent(rid)}`, { headers: bearer(await ownerToken(sub)) });
  if (res.status !== 200) return 0;
  return ((await res.json()) as { created_at: number }).created_at;
}

let stack: Stack;
let http: string;
let owner: RawClient;
let rid: string;
let otherRid: string;

const bearer = (token: string) => ({ authorization: `Bearer ${token}`, "content-type": "application/json" });
const post = (path: string, token: string, body: unknown = {}) =>
  fetch(`${http}${path}`, { method: "POST", headers: bearer(token), body: JSON.stringify(body) });

before(async () => {
  stack = await Stack.start({ edgeEnv: { AUTH: "jwt", JWT_SECRET: SECRET }, workerEnv: { SCRIPTED_TPS: "20" } });
  http = `http://127.0.0.1:${stack.edges[0]!.port}`;
  owner = await RawClient.connect(stack.url, await ownerToken("olivia"));
  rid = (await owner.request({ type: "generate", prompt: "write 2000 words to share" })).rid;
  otherRid = (await owner.request({ type: "generate", prompt: "write 2000 words kept private" })).rid;
  await owner.next((f) => f.type === "event" && f.rid === rid && f.seq >= 3);
});

after(async () => {
  for (const r of [rid, otherRid]) await owner?.request({ type: "cancel", rid: r });
  owner?.close();
  await stack?.stop();
});

describe("a read-only token", () => {
  let reader: RawClient;
  let readToken: string;
  before(async () => {
    readToken = await capability(rid, "read");
    reader = await RawClient.connect(stack.url, readToken);
  });
  after(() => reader.close());

  it("subscribes to its response over the socket, from any seq", async () => {
    assert.equal((await reader.request({ type: "subscribe", rid, after: 1 })).type, "ok");
    const ev = await reader.next((f) => f.type === "event" && f.rid === rid);
    assert.equal(ev.seq, 2);
  });

  it("reads it as Server-Sent Events", async () => {
    const read = await readSse(`${http}/v1/responses/${rid}/events`, { headers: bearer(readToken) }, (r) => r.messages.length >= 3);
    assert.equal(read.status, 200);
    // The read stops once it has 3; one chunk may bring a 4th with them.
    assert.deepEqual(
      read.messages.slice(0, 3).map((m) => Number(m.id)),
      [1, 2, 3],
    );
  });

  it("cannot steer or cancel it: forbidden, on the socket and over HTTP", async () => {
    for (const frame of [
      { type: "steer", rid, text: "be shorter" },
      { type: "cancel", rid },
    ]) {
      const err = await reader.request(frame);
      assert.equal(err.code, "forbidden", JSON.stringify(err));
      assert.match(err.message, /does not allow/);
    }
    assert.equal((await post(`/v1/responses/${rid}/steer`, readToken, { text: "x" })).status, 403);
    assert.equal((await post(`/v1/responses/${rid}/cancel`, readToken)).status, 403);
  });

  it("touches no other response and starts nothing", async () => {
    const unknown = randomBytes(16).toString("base64url");
    const errs: Frame[] = [];
    for (const r of [otherRid, unknown]) errs.push(await reader.request({ type: "subscribe", rid: r }));
    assert.deepEqual(
      errs.map((e) => e.code),
      ["forbidden", "forbidden"],
    );
    assert.equal(errs[0]!.message, errs[1]!.message, "another owner's rid and an unknown one look the same");
    const gen = await reader.request({ type: "generate", prompt: "mine now" });
    assert.equal(gen.code, "forbidden", JSON.stringify(gen));
    const again = await reader.request({ type: "generate", rid, prompt: "re-send" });
    assert.equal(again.code, "forbidden");
    assert.equal((await fetch(`${http}/v1/responses/${otherRid}/events`, { headers: bearer(readToken) })).status, 403);
    assert.equal((await post("/v1/generate", readToken, { prompt: "x" })).status, 403);
    assert.equal((await post("/v1/chat/completions", readToken, { messages: [{ role: "user", content: "x" }] })).status, 403);
  });
});

describe("scoped tokens", () => {
  it("a steer-scoped token steers (and does nothing else)", async () => {
    const c = await RawClient.connect(stack.url, await capability(rid, "steer"));
    assert.equal((await c.request({ type: "steer", rid, text: "mention bridges" })).type, "ok");
    await owner.next((f) => f.type === "event" && f.rid === rid && f.event.kind === "steer");
    assert.equal((await c.request({ type: "subscribe", rid })).code, "forbidden");
    assert.equal((await c.request({ type: "cancel", rid })).code, "forbidden");
    c.close();
  });

  it("scope may list several actions, space-separated or as an array; cancel ends it for everyone", async () => {
    const both = await RawClient.connect(stack.url, await capability(otherRid, "read steer"));
    assert.equal((await both.request({ type: "subscribe", rid: otherRid })).type, "ok");
    assert.equal((await both.request({ type: "steer", rid: otherRid, text: "shorter" })).type, "ok");
    const res = await post(`/v1/responses/${otherRid}/cancel`, await capability(otherRid, ["read", "cancel"]));
    assert.equal(res.status, 200);
    const end = (await both.untilEnd(otherRid)).at(-1)!.event;
    assert.equal(end.kind === "end" && end.reason, "cancelled");
    both.close();
  });

  const refused: Array<[string, () => Promise<string>]> = [
    ["an expired one", () => capability(rid, "read", now() - 60)],
    ["one living longer than 24 h", () => capability(rid, "read", "25h")],
    ["one without exp", () => capability(rid, "read", null)],
    ["one with an unknown scope", () => capability(rid, "read write")],
    ["one with an empty scope", () => capability(rid, "")],
    ["one with a malformed rid", () => capability("not a rid!", "read")],
    ["one with a scope but no rid", () => sign({ sub: "olivia", scope: "read" })],
    ["one without created_at (not bound to one response)", () => sign({ rid, scope: "read" })],
  ];
  for (const [name, make] of refused) {
    it(`${name} is refused: unauthorized and close 4401; 401 over HTTP`, async () => {
      const t = await make();
      const c = await RawClient.open(stack.url);
      c.send({ type: "hello", token: t });
      const err = await c.next((f) => f.type === "welcome" || f.type === "error");
      assert.equal(err.code, "unauthorized", JSON.stringify(err));
      assert.equal((await within(c.closed, "close")).code, 4401);
      assert.equal((await fetch(`${http}/v1/responses/${rid}/events`, { headers: bearer(t) })).status, 401);
    });
  }

  it("a token that expires while its socket is open stops authorizing new commands", async () => {
    const exp = now() + 2;
    const c = await RawClient.connect(stack.url, await capability(rid, "read", exp));
    while (Date.now() <= exp * 1000 + 200) await new Promise((r) => setTimeout(r, 100));
    const err = await c.request({ type: "subscribe", rid });
    assert.equal(err.code, "unauthorized", JSON.stringify(err));
    c.close();
  });

  it("subscriptions opened before exp run to their end; after exp the token opens nothing and commands nothing", async () => {
    // 80 tokens at 20 per second: it is still streaming well after exp.
    const shared = (await owner.request({ type: "generate", prompt: "write 80 words past the token's exp", params: { max_tokens: 80 } }))
      .rid;
    const exp = now() + 2;
    const token = await capability(shared, "read steer", exp);
    const viewer = await RawClient.connect(stack.url, token);
    assert.equal((await viewer.request({ type: "subscribe", rid: shared })).type, "ok");
    const sse = await fetch(`${http}/v1/responses/${shared}/events`, { headers: bearer(token) });
    assert.equal(sse.status, 200);
    const sseText = sse.text();

    while (Date.now() < exp * 1000 + 100) await new Promise((r) => setTimeout(r, 100));
    const refused = await viewer.request({ type: "steer", rid: shared, text: "too late" });
    assert.equal(refused.code, "unauthorized", JSON.stringify(refused));
    assert.match(refused.message, /expired/);
    const refusedAt = viewer.frames.indexOf(refused);
    assert.equal((await fetch(`${http}/v1/responses/${shared}/events`, { headers: bearer(token) })).status, 401);
    const late = await RawClient.open(stack.url);
    late.send({ type: "hello", token });
    assert.equal((await late.next((f) => f.type === "welcome" || f.type === "error")).code, "unauthorized");
    assert.equal((await within(late.closed, "close")).code, 4401);

    // The socket's subscription carried on past exp, to the end, with no gap.
    const events = await viewer.untilEnd(shared, 60_000);
    assert.deepEqual(
      events.map((e) => e.seq),
      events.map((_, i) => i + 1),
    );
    const end = events.at(-1)!.event;
    assert.equal(end.kind === "end" && end.reason, "length");
    const afterExp = viewer.frames.slice(refusedAt + 1).filter((f) => f.type === "event" && f.rid === shared);
    assert.ok(
      afterExp.some((f) => f.event.kind === "token"),
      "tokens kept coming after exp (precondition: it was still streaming)",
    );
    // So did the SSE stream: every event, through the end.
    const ids = [...(await within(sseText, "the SSE stream's end", 60_000)).matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    assert.deepEqual(
      ids,
      events.map((e) => e.seq),
    );
    viewer.close();
  });
});

// RETENTION=2s: a rid past retention can be created again, by anyone; a token made for the
// first response must not open the second.
describe("a rid created again after RETENTION", () => {
  let short: Stack;
  let base: string;
  before(async () => {
    short = await Stack.start({
      edgeEnv: { AUTH: "jwt", JWT_SECRET: SECRET, RETENTION: "2s" },
      workerEnv: { RETENTION: "2s", SCRIPTED_TPS: "0" },
    });
    base = `http://127.0.0.1:${short.edges[0]!.port}`;
  });
  after(async () => {
    await short?.stop();
  });

  const generate = async (sub: string, body: unknown) =>
    fetch(`${base}/v1/generate`, { method: "POST", headers: bearer(await ownerToken(sub)), body: JSON.stringify(body) });
  const token = (rid: string, createdAt: number) => sign({ rid, created_at: createdAt, scope: "read" });
  const subscribe = async (t: string, r: string) => {
    const c = await RawClient.connect(short.url, t);
    const answer = await c.request({ type: "subscribe", rid: r });
    c.close();
    return answer;
  };

  it("does not honour a token made for the response the rid named before; one made for the new response works", async () => {
    const shared = randomBytes(16).toString("base64url");
    const first = await generate("olivia", { rid: shared, prompt: "short lived", params: { max_tokens: 3 } });
    assert.equal(first.status, 202);
    const { created_at: firstAt } = (await first.json()) as { created_at: number };
    assert.equal(firstAt, await createdAtOf(base, shared), "the generate answer and the response object agree");
    const old = await token(shared, firstAt);
    assert.equal((await subscribe(old, shared)).type, "ok", "the token works while its response lives");

    // Mallory takes the rid as soon as the first record has expired.
    let again: Response;
    for (;;) {
      again = await generate("mallory", { rid: shared, prompt: "mallory's secret", params: { max_tokens: 3 } });
      if (again.status === 202) break;
      assert.equal(again.status, 403, "the rid is taken until it expires");
      await new Promise((r) => setTimeout(r, 200));
    }
    const second = (await again.json()) as { existing: boolean; created_at: number };
    assert.equal(second.existing, false);
    assert.notEqual(second.created_at, firstAt, "precondition: a new response under the same rid");

    const stale = await subscribe(old, shared);
    const unknown = await subscribe(await token(randomBytes(16).toString("base64url"), firstAt), shared);
    assert.equal(stale.code, "forbidden", JSON.stringify(stale));
    assert.equal(stale.message, unknown.message, "the same answer as a token for another rid");
    assert.equal((await fetch(`${base}/v1/responses/${shared}/events`, { headers: bearer(old) })).status, 403);
    assert.equal((await fetch(`${base}/v1/responses/${shared}`, { headers: bearer(old) })).status, 403);

    const fresh = await token(shared, second.created_at);
    assert.equal((await subscribe(fresh, shared)).type, "ok", "a token made for the new response opens it");
  });
});
