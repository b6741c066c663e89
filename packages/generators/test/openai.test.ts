import assert from "node:assert/strict";
import { test } from "node:test";
import type { GenerationBody } from "@unbroken/protocol";
import { STEER_CONTINUE } from "../src/openai-messages.js";
import { answer } from "@unbroken/testing";
import { PROMPT, assertCode, generator, run, serve } from "./openai-harness.js";

test("streams tokens in order and reports the final usage chunk", async () => {
  const { fake, baseUrl } = await serve([{ steps: answer(["Hello", ",", " world", "!"], { usage: [7, 4] }) }]);
  const r = await run(generator(baseUrl, { apiKey: "sk-test" }), PROMPT);
  assert.equal(r.error, undefined);
  assert.deepEqual(r.tokens, ["Hello", ",", " world", "!"]);
  assert.deepEqual(r.done, { type: "done", reason: "stop", usage: { prompt_tokens: 7, completion_tokens: 4 } });
  assert.deepEqual(r.session.usage(), { prompt_tokens: 7, completion_tokens: 4 });
  assert.equal(fake.requests.length, 1);
  const req = fake.requests[0]!;
  assert.equal(req.method, "POST");
  assert.equal(req.url, "/v1/chat/completions");
  assert.equal(req.headers.authorization, "Bearer sk-test");
  assert.equal(req.body.model, "fake-model");
  assert.equal(req.body.stream, true);
  assert.deepEqual(req.body.stream_options, { include_usage: true });
  assert.deepEqual(req.body.messages, [{ role: "user", content: PROMPT.prompt }]);
  assert.equal(r.session.steer("too late"), false, "no steer after done");
});

test("forwards params and messages; finish_reason length ends with length; no usage counts chunks", async () => {
  const { fake, baseUrl } = await serve([{ steps: answer(["a", "b", "c"], { finish: "length", usage: null }) }]);
  const body: GenerationBody = {
    messages: [
      { role: "system", content: "You are terse." },
      { role: "user", content: "Count." },
    ],
    params: { max_tokens: 3, temperature: 0.5, top_p: 0.9, seed: 42, stop: ["\n\n", "END"] },
  };
  const r = await run(generator(baseUrl), body);
  assert.equal(r.error, undefined);
  assert.equal(r.text, "abc");
  assert.deepEqual(r.done, { type: "done", reason: "length", usage: { prompt_tokens: 0, completion_tokens: 3 } });
  const sent = fake.requests[0]!.body;
  assert.equal(fake.requests[0]!.headers.authorization, undefined, "no key, no header");
  assert.deepEqual(sent.messages, body.messages);
  assert.equal(sent.max_tokens, 3);
  assert.equal(sent.temperature, 0.5);
  assert.equal(sent.top_p, 0.9);
  assert.equal(sent.seed, 42);
  assert.deepEqual(sent.stop, ["\n\n", "END"]);
});

test("other finish reasons end with stop; a server that omits [DONE] after finishing is complete", async () => {
  const { baseUrl } = await serve([{ steps: [{ text: "x" }, { finish: "content_filter" }] }]);
  const r = await run(generator(baseUrl), PROMPT);
  assert.equal(r.error, undefined);
  assert.equal(r.done?.reason, "stop");
  assert.equal(r.text, "x");
});

test("cancel aborts the upstream request and the iteration ends without done", async () => {
  const { fake, baseUrl } = await serve([{ steps: [{ text: "one" }, { text: " two" }, { hang: true }] }]);
  const r = await run(generator(baseUrl), PROMPT, { onToken: (n, _s, abort) => n === 2 && abort() });
  assert.equal(r.error, undefined);
  assert.equal(r.done, undefined);
  assert.deepEqual(r.tokens, ["one", " two"]);
  await fake.requests[0]!.closedByClient; // the server saw the connection close
  assert.equal(fake.requests[0]!.clientClosed, true);
  assert.equal(fake.requests.length, 1);
  assert.equal(r.session.usage().completion_tokens, 2);
  assert.equal(r.session.steer("after cancel"), false);
});

test("steer stops the request, yields steer, and continues the same answer without duplicating", async () => {
  const { fake, baseUrl } = await serve([
    { steps: [{ text: "The river" }, { text: " flows" }, { hang: true }] },
    { steps: answer([" and then", " mountains rise."], { usage: [30, 2] }) },
  ]);
  const body: GenerationBody = { prompt: "Tell me about the valley", params: { max_tokens: 50, seed: 3 } };
  const r = await run(generator(baseUrl), body, {
    onToken: (n, s) => {
      if (n === 2) assert.equal(s.steer("Talk about mountains"), true);
    },
  });
  assert.equal(r.error, undefined);
  assert.deepEqual(
    r.outputs.map((o) =>
      o.type === "token" ? o.text : o.type === "steer" ? `<steer:${o.text}>` : o.type === "done" ? `<${o.reason}>` : `<${o.type}>`,
    ),
    ["The river", " flows", "<steer:Talk about mountains>", " and then", " mountains rise.", "<stop>"],
  );
  assert.equal(r.text, "The river flows and then mountains rise.");
  assert.equal(fake.requests.length, 2);
  await fake.requests[0]!.closedByClient; // the first request was aborted, not left running
  const second = fake.requests[1]!.body;
  assert.deepEqual(second.messages, [
    { role: "user", content: "Tell me about the valley" },
    { role: "assistant", content: "The river flows" },
    { role: "user", content: `Talk about mountains\n\n${STEER_CONTINUE}` },
  ]);
  assert.equal(second.max_tokens, 48, "the continuation may only spend what is left");
  assert.equal(second.seed, 3);
  // The first request reported no usage (aborted): 2 chunks; the second reported its own.
  assert.deepEqual(r.done?.usage, { prompt_tokens: 30, completion_tokens: 4 });
});

test("two steers: each continuation carries the conversation so far", async () => {
  const { fake, baseUrl } = await serve([
    { steps: [{ text: "A" }, { hang: true }] },
    { steps: [{ text: "B" }, { hang: true }] },
    { steps: answer(["C"]) },
  ]);
  const r = await run(generator(baseUrl), PROMPT, {
    onToken: (n, s) => {
      if (n === 1) assert.equal(s.steer("first"), true);
      if (n === 2) assert.equal(s.steer("second"), true);
    },
  });
  assert.equal(r.error, undefined);
  assert.equal(r.text, "ABC");
  assert.deepEqual(fake.requests[2]!.body.messages, [
    { role: "user", content: PROMPT.prompt },
    { role: "assistant", content: "A" },
    { role: "user", content: `first\n\n${STEER_CONTINUE}` },
    { role: "assistant", content: "B" },
    { role: "user", content: `second\n\n${STEER_CONTINUE}` },
  ]);
});

test("a steer while the upstream is silent takes effect at once, without waiting for a chunk", async () => {
  const { fake, baseUrl } = await serve([{ steps: [{ text: "Wait" }, { hang: true }] }, { steps: answer(["ed."]) }]);
  const r = await run(generator(baseUrl), PROMPT, {
    // Sent once the session is waiting on the (hanging) upstream for its next chunk.
    onToken: (n, s) => void (n === 1 && setTimeout(() => assert.equal(s.steer("hurry"), true), 50)),
  });
  assert.equal(r.error, undefined);
  assert.deepEqual(
    r.outputs.map((o) => o.type),
    ["token", "steer", "token", "done"],
  );
  assert.equal(r.text, "Waited.");
  await fake.requests[0]!.closedByClient;
  assert.equal(fake.requests[1]!.body.messages.at(-2).content, "Wait");
});

test("steers given before the response began go into the first request", async () => {
  const { fake, baseUrl } = await serve([{ steps: answer(["Bref."]) }]);
  const r = await run(generator(baseUrl), PROMPT, { steers: ["Be brief", "Answer in French"] });
  assert.equal(r.error, undefined);
  assert.equal(r.text, "Bref.");
  assert.equal(r.outputs.filter((o) => o.type === "steer").length, 0, "the runner records these itself");
  assert.equal(fake.requests.length, 1);
  assert.deepEqual(fake.requests[0]!.body.messages, [{ role: "user", content: `${PROMPT.prompt}\n\nBe brief\n\nAnswer in French` }]);
});

test("an invalid base URL is refused at construction", () => {
  assert.throws(() => generator("not a url"), /invalid OpenAI base URL/);
});

test("close() ends running responses with generator_closed", async () => {
  const { fake, baseUrl } = await serve([{ steps: [{ text: "a" }, { hang: true }] }]);
  const gen = generator(baseUrl);
  const r = await run(gen, PROMPT, { onToken: () => void gen.close() });
  assertCode(r, "generator_closed");
  await fake.requests[0]!.closedByClient;
});
