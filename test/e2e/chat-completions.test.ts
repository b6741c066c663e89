import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import OpenAI from "openai";
import { textOf } from "../helpers/raw-client.js";
import { readSse } from "../helpers/sse.js";
import { Stack } from "../helpers/stack.js";
import { eachWithin } from "../helpers/within.js";

// The OpenAI-compatible endpoint, driven by the official openai client.
describe("POST /v1/chat/completions", () => {
  let stack: Stack;
  let openai: OpenAI;
  let base: string;
  before(async () => {
    stack = await Stack.start({ workerEnv: { SCRIPTED_TPS: "300" } });
    base = `http://127.0.0.1:${stack.edges[0]!.port}`;
    openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: "unused-with-auth-off", maxRetries: 0 });
  });
  after(() => stack.stop());

  const nativeText = async (rid: string) =>
    textOf((await readSse(`${base}/v1/responses/${rid}/events`)).messages.map((m) => JSON.parse(m.data)));

  it("lists the models the running workers serve (models.list of the official client)", async () => {
    const models = await openai.models.list();
    assert.deepEqual(
      models.data.map((m) => [m.id, m.object, m.owned_by]),
      [["scripted", "model", "unbroken"]],
    );
    assert.ok(models.data[0]!.created > 0);
  });

  it("answers a non-streaming completion whose id is the rid", async () => {
    const { data, response } = await openai.chat.completions
      .create({ model: "any", messages: [{ role: "user", content: "say something" }], max_tokens: 12, seed: 3 })
      .withResponse();
    assert.equal(data.object, "chat.completion");
    assert.equal(data.choices[0]?.finish_reason, "length");
    assert.equal(data.usage?.completion_tokens, 12);
    assert.equal(response.headers.get("x-unbroken-rid"), data.id);
    assert.ok((data.choices[0]?.message.content ?? "").length > 0);
    assert.equal(data.choices[0]?.message.content, await nativeText(data.id));
  });

  it("streams chunks that add up to the same answer the native API replays", async () => {
    const stream = await openai.chat.completions.create({
      model: "any",
      messages: [
        { role: "system", content: "be brief" },
        { role: "user", content: [{ type: "text", text: "write 50 words" }] },
      ],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let id = "";
    let finish: string | null | undefined;
    let usage: { completion_tokens: number } | null | undefined;
    await eachWithin(
      stream,
      (chunk) => {
        id = chunk.id;
        text += chunk.choices[0]?.delta.content ?? "";
        finish = chunk.choices[0]?.finish_reason ?? finish;
        usage = chunk.usage ?? usage;
      },
      "the streamed completion's end",
    );
    assert.equal(finish, "stop");
    assert.equal(usage?.completion_tokens, 50);
    assert.ok(text.length > 0);
    assert.equal(text, await nativeText(id));
  });

  it("is idempotent with an x-unbroken-rid header: a retry follows the same answer", async () => {
    const rid = "chatcmpl-retry-0000001";
    const body = { model: "any", messages: [{ role: "user" as const, content: "once only" }], max_tokens: 20 };
    const first = await openai.chat.completions.create(body, { headers: { "x-unbroken-rid": rid } });
    const second = await openai.chat.completions.create({ ...body, max_tokens: 3 }, { headers: { "x-unbroken-rid": rid } });
    assert.equal(first.id, rid);
    assert.equal(second.id, rid);
    assert.equal(second.choices[0]?.message.content, first.choices[0]?.message.content);
    assert.equal(second.usage?.completion_tokens, 20);
  });

  it('stop: [""] gets 400 at once, naming the field, and nothing is created (no answer to wait for)', async () => {
    const rid = "chatcmpl-empty-stop-01";
    const res = await fetch(`${base}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-unbroken-rid": rid },
      body: JSON.stringify({ model: "any", messages: [{ role: "user", content: "hi" }], stop: [""] }),
    });
    assert.equal(res.status, 400);
    const { error } = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(error.code, "bad_request");
    assert.match(error.message, /^stop\.0: /);
    assert.equal((await fetch(`${base}/v1/responses/${rid}`)).status, 404, "no response under its rid");
  });

  it("refuses invalid requests with an OpenAI-shaped error", async () => {
    await assert.rejects(
      openai.chat.completions.create({ model: "any", messages: [] }),
      (err: { status?: number; error?: { code?: string } }) => err.status === 400 && err.error?.code === "bad_request",
    );
  });
});
