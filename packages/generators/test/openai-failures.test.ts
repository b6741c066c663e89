// The openai generator against upstream failures: each ends with a clear code or a safe retry.
import assert from "node:assert/strict";
import { test } from "node:test";
import { CUT_CONTINUE } from "../src/openai-messages.js";
import { answer, closedPort } from "@unbroken/testing";
import type { GeneratorError } from "../src/generator.js";
import { PROMPT, assertCode, generator, run, serve } from "./openai-harness.js";

test("refused connection ends with upstream_unreachable after bounded retries", async () => {
  const port = await closedPort();
  let calls = 0;
  const counting: typeof fetch = (input, init) => {
    calls++;
    return fetch(input, init);
  };
  const r = await run(generator(`http://127.0.0.1:${port}/v1`, { maxRetries: 2, fetch: counting }), PROMPT);
  assertCode(r, "upstream_unreachable");
  // The address is the operator's: it goes to the log (the detail), not to the client.
  assert.doesNotMatch((r.error as Error).message, new RegExp(`127\\.0\\.0\\.1|${port}`));
  assert.match((r.error as GeneratorError).detail ?? "", new RegExp(`127\\.0\\.0\\.1:${port}/v1`));
  assert.equal(calls, 3, "one attempt and two retries");
  assert.deepEqual(r.tokens, []);
});

test("401 ends with upstream_unauthorized, no retry, and does not echo the body", async () => {
  const { fake, baseUrl } = await serve([
    { status: 401, body: JSON.stringify({ error: { message: "Incorrect API key provided: sk-secr****1234" } }) },
  ]);
  const r = await run(generator(baseUrl, { apiKey: "sk-secret" }), PROMPT);
  assertCode(r, "upstream_unauthorized");
  assert.equal(fake.requests.length, 1);
  assert.doesNotMatch((r.error as Error).message, /sk-/);
});

test("403 is unauthorized too", async () => {
  const { fake, baseUrl } = await serve([{ status: 403 }]);
  assertCode(await run(generator(baseUrl), PROMPT), "upstream_unauthorized");
  assert.equal(fake.requests.length, 1);
});

test("429 with Retry-After: 1, then success: completes after one retry", async () => {
  const { fake, baseUrl } = await serve([{ status: 429, headers: { "retry-after": "1" } }, { steps: answer(["ok"]) }]);
  const r = await run(generator(baseUrl, { maxRetries: 2 }), PROMPT);
  assert.equal(r.error, undefined);
  assert.equal(r.text, "ok");
  assert.equal(r.done?.reason, "stop");
  assert.equal(fake.requests.length, 2);
});

test("429 every time ends with upstream_rate_limited after maxRetries", async () => {
  const { fake, baseUrl } = await serve([{ status: 429, headers: { "retry-after": "0" } }]);
  const r = await run(generator(baseUrl, { maxRetries: 2 }), PROMPT);
  assertCode(r, "upstream_rate_limited");
  assert.equal(fake.requests.length, 3);
});

test("429 asking for a delay beyond a minute fails at once", async () => {
  const { fake, baseUrl } = await serve([{ status: 429, headers: { "retry-after": "3600" } }]);
  assertCode(await run(generator(baseUrl, { maxRetries: 2 }), PROMPT), "upstream_rate_limited");
  assert.equal(fake.requests.length, 1);
});

test("500 before any token is retried", async () => {
  const { fake, baseUrl } = await serve([{ status: 500 }, { status: 503 }, { steps: answer(["fine"]) }]);
  const r = await run(generator(baseUrl, { maxRetries: 3 }), PROMPT);
  assert.equal(r.error, undefined);
  assert.equal(r.text, "fine");
  assert.equal(fake.requests.length, 3);
  assert.deepEqual(fake.requests[2]!.body, fake.requests[0]!.body, "the same request again");
});

test("500 every time ends with upstream_error and the status; the server's body and URL only in the detail", async () => {
  const { fake, baseUrl } = await serve([{ status: 502, body: JSON.stringify({ error: { message: "bad gateway here" } }) }]);
  const r = await run(generator(baseUrl, { maxRetries: 1 }), PROMPT);
  assertCode(r, "upstream_error");
  assert.equal((r.error as Error).message, "the upstream answered HTTP 502");
  assert.match((r.error as GeneratorError).detail ?? "", /bad gateway here/);
  assert.equal(fake.requests.length, 2);
});

test("an upstream 500 whose body holds a secret and the upstream's URL: neither reaches the message", async () => {
  const marker = "SECRET-7f3a9c";
  const { baseUrl } = await serve([{ status: 500, body: JSON.stringify({ error: { message: `${marker} at http://10.1.2.3:8000/v1` } }) }]);
  const r = await run(generator(baseUrl, { maxRetries: 0 }), PROMPT);
  assertCode(r, "upstream_error");
  const message = (r.error as Error).message;
  for (const leak of [marker, "10.1.2.3", baseUrl]) assert.ok(!message.includes(leak), `${leak} in ${message}`);
  assert.match((r.error as GeneratorError).detail ?? "", new RegExp(marker));
});

test("other 4xx is upstream_rejected without retry", async () => {
  const { fake, baseUrl } = await serve([{ status: 404, body: JSON.stringify({ error: "model 'x' not found" }) }]);
  const r = await run(generator(baseUrl), PROMPT);
  assertCode(r, "upstream_rejected");
  assert.equal((r.error as Error).message, "the upstream answered HTTP 404");
  assert.match((r.error as GeneratorError).detail ?? "", /model 'x' not found/);
  assert.equal(fake.requests.length, 1);
});

test("a stream cut mid-answer is continued without duplicating text", async () => {
  const { fake, baseUrl } = await serve([
    { steps: [{ text: "One" }, { text: " two" }, { destroy: true }] },
    { steps: answer([" three."], { usage: [12, 1] }) },
  ]);
  const r = await run(generator(baseUrl), PROMPT);
  assert.equal(r.error, undefined);
  assert.deepEqual(r.tokens, ["One", " two", " three."]);
  assert.equal(r.outputs.filter((o) => o.type === "steer").length, 0);
  assert.equal(r.done?.reason, "stop");
  assert.deepEqual(r.done?.usage, { prompt_tokens: 12, completion_tokens: 3 });
  assert.deepEqual(fake.requests[1]!.body.messages, [
    { role: "user", content: PROMPT.prompt },
    { role: "assistant", content: "One two" },
    { role: "user", content: CUT_CONTINUE },
  ]);
});

test("a stream ended early without finishing (clean EOF) is continued too", async () => {
  const { fake, baseUrl } = await serve([{ steps: [{ text: "Half" }] }, { steps: answer([" whole"]) }]);
  const r = await run(generator(baseUrl), PROMPT);
  assert.equal(r.error, undefined);
  assert.equal(r.text, "Half whole");
  assert.equal(fake.requests.length, 2);
});

test("a stream cut before any token is sent again as it was", async () => {
  const { fake, baseUrl } = await serve([{ steps: [{ destroy: true }] }, { steps: answer(["Fresh"]) }]);
  const r = await run(generator(baseUrl), PROMPT);
  assert.equal(r.error, undefined);
  assert.equal(r.text, "Fresh");
  assert.deepEqual(fake.requests[1]!.body, fake.requests[0]!.body);
});

test("a stream cut every time ends with upstream_interrupted after maxRetries continuations", async () => {
  const { fake, baseUrl } = await serve([{ steps: [{ text: "x" }, { destroy: true }] }]);
  const r = await run(generator(baseUrl, { maxRetries: 2 }), PROMPT);
  assertCode(r, "upstream_interrupted");
  assert.equal(r.text, "xxx", "each request's text written once");
  assert.equal(fake.requests.length, 3);
});

test("a malformed chunk ends with upstream_bad_response", async () => {
  const { fake, baseUrl } = await serve([{ steps: [{ text: "Hi" }, { raw: "data: {not json\n\n" }, { text: "never" }] }]);
  const r = await run(generator(baseUrl), PROMPT);
  assertCode(r, "upstream_bad_response");
  assert.doesNotMatch((r.error as Error).message, /not json/);
  assert.match((r.error as GeneratorError).detail ?? "", /not json/);
  assert.deepEqual(r.tokens, ["Hi"]);
  assert.equal(fake.requests.length, 1);
});

test("an error event mid-stream after text ends with upstream_error, not a retry", async () => {
  const { fake, baseUrl } = await serve([{ steps: [{ text: "Hi" }, { chunk: { error: { message: "engine died" } } }] }]);
  const r = await run(generator(baseUrl), PROMPT);
  assertCode(r, "upstream_error");
  assert.doesNotMatch((r.error as Error).message, /engine died/);
  assert.match((r.error as GeneratorError).detail ?? "", /engine died/);
  assert.equal(fake.requests.length, 1);
});

test("an idle upstream after some tokens ends with upstream_timeout", async () => {
  const { fake, baseUrl } = await serve([{ steps: [{ text: "Hi" }, { hang: true }] }]);
  const r = await run(generator(baseUrl, { idleTimeoutMs: 300 }), PROMPT);
  assertCode(r, "upstream_timeout");
  assert.deepEqual(r.tokens, ["Hi"]);
  await fake.requests[0]!.closedByClient;
  assert.equal(fake.requests.length, 1);
});

test("an upstream that never answers ends with upstream_timeout", async () => {
  const { fake, baseUrl } = await serve([{ silent: true }]);
  const r = await run(generator(baseUrl, { idleTimeoutMs: 300 }), PROMPT);
  assertCode(r, "upstream_timeout");
  assert.equal(fake.requests.length, 1);
});

test("a JSON answer instead of a stream is upstream_bad_response", async () => {
  const { baseUrl } = await serve([{ status: 200, headers: { "content-type": "application/json" }, steps: [{ raw: "{}" }] }]);
  assertCode(await run(generator(baseUrl), PROMPT), "upstream_bad_response");
});

test("cancel during a retry wait ends the iteration without done or error", async () => {
  const { fake, baseUrl } = await serve([{ status: 429, headers: { "retry-after": "50" } }]);
  const abort = new AbortController();
  const running = run(generator(baseUrl, { maxRetries: 3 }), PROMPT, { abort });
  await fake.waitForRequests(1);
  abort.abort();
  const r = await running;
  assert.equal(r.error, undefined);
  assert.equal(r.done, undefined);
  assert.equal(fake.requests.length, 1);
});
