// The Responses API under AUTH=jwt: the same principals, scopes and hiding as the native routes.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { SignJWT } from "jose";
import OpenAI from "openai";
import { Stack } from "../helpers/stack.js";
import { eachWithin } from "../helpers/within.js";

const key = new TextEncoder().encode("responses-secret-responses-secret");
const sign = (claims: Record<string, unknown>) =>
  new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setIssuedAt().setExpirationTime("10m").sign(key);

describe("OpenAI Responses API with auth", () => {
  let stack: Stack;
  let base: string;
  const client = (token: string) => new OpenAI({ baseURL: `${base}/v1`, apiKey: token, maxRetries: 0 });
  const status = (p: Promise<unknown>) =>
    p.then(
      () => 200,
      (err: { status?: number }) => err.status,
    );
  before(async () => {
    stack = await Stack.start({
      edgeEnv: { AUTH: "jwt", JWT_SECRET: "responses-secret-responses-secret" },
      workerEnv: { SCRIPTED_TPS: "100" },
    });
    base = `http://127.0.0.1:${stack.edges[0]!.port}`;
  });
  after(() => stack.stop());

  it("shows an owner only its own responses; another owner's id and an unknown one look the same", async () => {
    const alice = client(await sign({ sub: "alice" }));
    const bob = client(await sign({ sub: "bob" }));
    const { id } = await alice.responses.create({ model: "m", input: "alice's", max_output_tokens: 5 });
    assert.equal((await alice.responses.retrieve(id)).status, "incomplete");
    const errorOf = (p: Promise<unknown>) =>
      p.then(
        () => undefined,
        (err: { status?: number; error?: unknown }) => [err.status, err.error],
      );
    const theirs = await errorOf(bob.responses.retrieve(id));
    assert.deepEqual(theirs?.[0], 403);
    assert.deepEqual(await errorOf(bob.responses.retrieve("resp_NoSuchOne0001")), theirs);
    assert.equal(await status(bob.responses.cancel(id)), 403);
    assert.equal(await status(bob.responses.retrieve(id, { stream: true })), 403);
    assert.equal(await status(client("nonsense").responses.retrieve(id)), 401);
  });

  it("a response-scoped token: read reads, cancel cancels without seeing the answer, neither creates", async () => {
    const owner = client(await sign({ sub: "olivia" }));
    const { id, created_at } = await owner.responses.create({ model: "m", input: "write 3000 words to share", background: true });
    const reader = client(await sign({ rid: id, created_at, scope: "read" }));
    const canceller = client(await sign({ rid: id, created_at, scope: "cancel" }));
    const events: string[] = [];
    const stream = await reader.responses.retrieve(id, { stream: true });
    await eachWithin(
      (async function* () {
        for await (const e of stream) {
          yield e.type;
          if (e.type === "response.output_text.delta") break;
        }
      })(),
      (t) => events.push(t),
      "the reader's first delta",
    );
    assert.deepEqual(events.slice(0, 2), ["response.created", "response.in_progress"]);
    assert.equal(await status(reader.responses.cancel(id)), 403);
    assert.equal(await status(reader.responses.create({ model: "m", input: "x" })), 403);
    const cancelled = await canceller.responses.cancel(id);
    assert.equal(cancelled.status, "cancelled");
    assert.deepEqual([cancelled.output, cancelled.output_text], [[], ""]);
    assert.equal(await status(canceller.responses.retrieve(id)), 403);
    const read = await reader.responses.retrieve(id);
    assert.equal(read.status, "cancelled");
    assert.ok(read.output_text.length > 0);
  });
});
