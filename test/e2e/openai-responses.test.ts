import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createOpenAI } from "@ai-sdk/openai";
import { jsonSchema, stepCountIs, streamText, tool } from "ai";
import OpenAI from "openai";
import type { ResponseStreamEvent } from "openai/resources/responses/responses";
import { Stack } from "../helpers/stack.js";
import { eachWithin, within } from "../helpers/within.js";

// OpenAI's Responses API at /v1/responses, driven by the official openai client, unchanged.
describe("OpenAI Responses API (/v1/responses)", () => {
  let stack: Stack;
  let openai: OpenAI;
  let base: string;
  before(async () => {
    stack = await Stack.start({ workerEnv: { SCRIPTED_TPS: "300" } });
    base = `http://127.0.0.1:${stack.edges[0]!.port}`;
    openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: "unused-with-auth-off", maxRetries: 0 });
  });
  after(() => stack.stop());

  const deltasOf = (events: ResponseStreamEvent[]) => events.map((e) => (e.type === "response.output_text.delta" ? e.delta : "")).join("");

  it("resumes a background stream after a break with starting_after: no gap, no duplicate", async () => {
    const first: ResponseStreamEvent[] = [];
    const stream = await openai.responses.create({ model: "scripted", input: "write 120 words to resume", background: true, stream: true });
    await within(
      (async () => {
        for await (const e of stream) {
          first.push(e);
          if (first.filter((x) => x.type === "response.output_text.delta").length >= 5) break; // the connection drops here
        }
      })(),
      "the first events",
    );
    const id = (first[0] as { response: { id: string } }).response.id;
    assert.equal(first[0]?.type, "response.created");
    const lastSeen = first.at(-1)!.sequence_number;
    const rest: ResponseStreamEvent[] = [];
    await eachWithin(
      await openai.responses.retrieve(id, { stream: true, starting_after: lastSeen }),
      (e) => rest.push(e),
      "the resumed stream",
    );
    const all = [...first, ...rest];
    assert.deepEqual(
      all.map((e) => e.sequence_number),
      all.map((_, i) => i),
    );
    assert.equal(all.at(-1)?.type, "response.completed");
    const final = await openai.responses.retrieve(id);
    assert.equal(final.status, "completed");
    assert.equal(final.id, id);
    assert.equal(final.background, true);
    assert.ok(final.output_text.length > 0);
    assert.equal(deltasOf(all), final.output_text);
    assert.equal(final.usage?.output_tokens, 120);
    const completed = all.at(-1) as { response: { output_text: string } };
    assert.equal(completed.response.output_text, final.output_text);
    // Every read gives the same events: a replay from the start equals what was streamed.
    const again: ResponseStreamEvent[] = [];
    await eachWithin(await openai.responses.retrieve(id, { stream: true }), (e) => again.push(e), "the replay");
    assert.deepEqual(again, all);
  });

  it("answers a non-streaming create with the completed object, instructions and items as input", async () => {
    const res = await openai.responses.create({
      model: "scripted",
      instructions: "be brief",
      input: [
        { role: "developer", content: "answer in prose" },
        { role: "user", content: [{ type: "input_text", text: "write 30 words" }] },
      ],
      metadata: { topic: "otters" },
      temperature: 0.5,
    });
    assert.equal(res.object, "response");
    assert.equal(res.status, "completed");
    assert.equal(res.instructions, "be brief");
    assert.deepEqual(res.metadata, { topic: "otters" });
    assert.equal(res.temperature, 0.5);
    assert.equal(res.output.length, 1);
    const message = res.output[0] as { type: string; status: string; content: Array<{ type: string; text: string }> };
    assert.equal(message.type, "message");
    assert.equal(message.status, "completed");
    assert.equal(message.content[0]?.text, res.output_text);
    assert.equal(res.usage?.output_tokens, 30);
    assert.deepEqual(await openai.responses.retrieve(res.id), res);
  });

  it("is idempotent with an x-unbroken-rid header: a retry gets the first answer", async () => {
    const headers = { "x-unbroken-rid": "resp_retry-0000001" };
    const first = await openai.responses.create({ model: "scripted", input: "once only", max_output_tokens: 10 }, { headers });
    const second = await openai.responses.create({ model: "scripted", input: "ignored", max_output_tokens: 3 }, { headers });
    assert.equal(first.id, "resp_retry-0000001");
    assert.deepEqual(second, first);
  });

  it("takes an item_reference to an earlier response's message as that message", async () => {
    const first = await openai.responses.create({ model: "scripted", input: "write 10 words" });
    const message = first.output[0]!;
    assert.equal(message.id, `msg_${first.id}_0`);
    const next = await openai.responses.create({
      model: "scripted",
      input: [
        { role: "user", content: "write 10 words" },
        { type: "item_reference", id: message.id! },
        { role: "user", content: "write 12 more" },
      ],
    });
    assert.equal(next.status, "completed");
    // Its prompt holds the earlier answer: more input tokens than the two user messages alone.
    const alone = await openai.responses.create({
      model: "scripted",
      input: [
        { role: "user", content: "write 10 words" },
        { role: "user", content: "write 12 more" },
      ],
    });
    assert.ok(next.usage!.input_tokens > alone.usage!.input_tokens);
    await assert.rejects(
      openai.responses.create({ model: "scripted", input: [{ type: "item_reference", id: "msg_resp_NoSuchOne0001_0" }] }),
      (err: { status?: number; error?: { message?: string } }) => err.status === 400 && (err.error?.message ?? "").startsWith("input.0.id"),
    );
  });

  it("reads any response by its rid, also one started natively (POST /v1/generate)", async () => {
    const created = await fetch(`${base}/v1/generate`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "write 20 words natively" }),
    });
    assert.equal(created.status, 202);
    const { rid } = (await created.json()) as { rid: string };
    const events: ResponseStreamEvent[] = [];
    await eachWithin(await openai.responses.retrieve(rid, { stream: true }), (e) => events.push(e), "the native response's stream");
    assert.equal(events.at(-1)?.type, "response.completed");
    const object = await openai.responses.retrieve(rid);
    assert.equal(object.usage?.output_tokens, 20);
    assert.equal(deltasOf(events), object.output_text);
  });

  it("ends incomplete at max_output_tokens", async () => {
    const res = await openai.responses.create({ model: "scripted", input: "write 80 words", max_output_tokens: 16 });
    assert.equal(res.status, "incomplete");
    assert.equal(res.incomplete_details?.reason, "max_output_tokens");
    assert.equal(res.usage?.output_tokens, 16);
  });

  it("returns a background response at once, and cancels it: status cancelled, also when read again", async () => {
    const created = await openai.responses.create({ model: "scripted", input: "write 3000 words to cancel", background: true });
    assert.ok(created.status === "queued" || created.status === "in_progress");
    assert.equal(created.output_text, "");
    // Wait until it writes, then steer it (unbroken's extension) and cancel it.
    const stream = await openai.responses.retrieve(created.id, { stream: true });
    await within(
      (async () => {
        for await (const e of stream) if (e.type === "response.output_text.delta") break;
      })(),
      "the first delta",
    );
    const steered = await fetch(`${base}/v1/responses/${created.id}/steer`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ text: "about lighthouses" }),
    });
    assert.equal(steered.status, 200);
    assert.equal(((await steered.json()) as { id: string }).id, created.id);
    const cancelled = await openai.responses.cancel(created.id);
    assert.equal(cancelled.status, "cancelled");
    assert.equal((await openai.responses.retrieve(created.id)).status, "cancelled");
    // Cancelling again returns it as it is.
    assert.equal((await openai.responses.cancel(created.id)).status, "cancelled");
  });

  it("refuses what it cannot do with an OpenAI-shaped error naming the field", async () => {
    await assert.rejects(
      openai.responses.create({ model: "scripted", input: "x", tools: [{ type: "web_search" }] }),
      (err: { status?: number; error?: { code?: string; message?: string } }) =>
        err.status === 400 && err.error?.code === "bad_request" && (err.error?.message ?? "").startsWith("tools.0.type"),
    );
    await assert.rejects(
      openai.responses.retrieve("resp_NoSuchResponse1"),
      (err: { status?: number; error?: { code?: string } }) => err.status === 404 && err.error?.code === "not_found",
    );
  });

  const weather = {
    type: "function" as const,
    name: "get_weather",
    description: "the weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"], additionalProperties: false },
    strict: true,
  };

  it("streams a function call (after reasoning) and answers its output in a follow-up", async () => {
    const events: ResponseStreamEvent[] = [];
    const stream = await openai.responses.create({
      model: "scripted",
      input: "what is the weather in Paris? use get_weather",
      tools: [weather],
      reasoning: { effort: "low" },
      stream: true,
    });
    await eachWithin(stream, (e) => events.push(e), "the streamed call");
    const types = events.map((e) => e.type);
    assert.equal(types.at(-1), "response.completed");
    assert.ok(types.indexOf("response.reasoning_text.delta") < types.indexOf("response.function_call_arguments.delta"));
    const argDeltas = events.flatMap((e) => (e.type === "response.function_call_arguments.delta" ? [e.delta] : []));
    // How many deltas depends on the worker's coalescing; together they are the whole argument text.
    assert.ok(argDeltas.length >= 1);
    const argsDone = events.find((e) => e.type === "response.function_call_arguments.done");
    assert.ok(argsDone?.type === "response.function_call_arguments.done");
    assert.equal(argsDone.name, "get_weather");
    assert.equal(argDeltas.join(""), argsDone.arguments);
    assert.deepEqual(JSON.parse(argsDone.arguments), { city: "sample" });
    const final = (events.at(-1) as { response: OpenAI.Responses.Response }).response;
    assert.equal(final.usage?.output_tokens_details.reasoning_tokens, 8);
    const call = final.output.find((i) => i.type === "function_call");
    assert.ok(call?.type === "function_call");
    assert.equal(call.status, "completed");
    assert.equal(call.id, argsDone.item_id);
    assert.deepEqual(await openai.responses.retrieve(final.id), final);

    const followUp = await openai.responses.create({
      model: "scripted",
      input: [
        { role: "user", content: "what is the weather in Paris? use get_weather" },
        call,
        { type: "function_call_output", call_id: call.call_id, output: "sunny" },
      ],
      tools: [weather],
    });
    assert.equal(followUp.status, "completed");
    assert.ok(followUp.output_text.startsWith("The result of get_weather is sunny."), followUp.output_text);
  });

  it("runs an AI SDK agent loop (streamText with @ai-sdk/openai and a tool) against the edge", async () => {
    const provider = createOpenAI({ baseURL: `${base}/v1`, apiKey: "unused-with-auth-off" });
    const calls: unknown[] = [];
    const result = streamText({
      model: provider("o4-mini"),
      prompt: "what is the weather in Paris? use get_weather",
      tools: {
        get_weather: tool({
          description: "the weather in a city",
          inputSchema: jsonSchema<{ city: string }>(weather.parameters),
          execute: async (input) => {
            calls.push(input);
            return "sunny";
          },
        }),
      },
      stopWhen: stepCountIs(2),
      // A model name the provider treats as a reasoning model, so it sends the effort; the edge runs its worker's model anyway.
      providerOptions: { openai: { reasoningEffort: "low" } },
    });
    const text = await within(Promise.resolve(result.text), "the agent loop");
    const steps = await result.steps;
    assert.deepEqual(calls, [{ city: "sample" }]);
    assert.equal(steps.length, 2);
    assert.equal(steps[0]?.finishReason, "tool-calls");
    // The effort reached the worker (it reasoned first), and step 2's reference to that reasoning item was taken.
    assert.equal(steps[0]?.usage.outputTokenDetails.reasoningTokens, 8);
    assert.equal(steps[1]?.finishReason, "stop");
    assert.ok(text.startsWith("The result of get_weather is"), text);
  });
});
