import assert from "node:assert/strict";
import { after, before, test, type TestContext } from "node:test";
import { newRid, tokensIn, type ResponseRecord } from "@unbroken/protocol";
import { Broker, ends, silentLog } from "@unbroken/store";
import { startNatsServer, type NatsServerHandle } from "@unbroken/testing";
import { pino } from "pino";
import { workerConfigFromEnv } from "../src/config.js";
import { queuedRecord, submit, submitRequest } from "./submit.js";
import { startWorker } from "../src/worker.js";

// A worker against a real nats-server, its request queued as an edge queues it.

let nats: NatsServerHandle;
let broker: Broker;

before(async () => {
  nats = await startNatsServer();
  broker = await Broker.connect({ url: nats.url, name: "worker-test", retentionMs: 3_600_000, log: silentLog });
});
after(async () => {
  await broker?.close();
  await nats?.stop();
});

test("under coalescing, `end` usage counts generated tokens, and so do the events' `n`", async (t) => {
  // Always busy (COALESCE_BUSY 0) with a long window: tokens travel several to an event.
  const config = workerConfigFromEnv({
    NATS_URL: nats.url,
    SCRIPTED_TPS: "200",
    COALESCE_BUSY: "0",
    COALESCE_MS: "100ms",
    METRICS_PORT: "off",
  });
  const worker = await startWorker(config, pino({ level: "silent" }));
  t.after(() => worker.close());
  const rid = await submit(broker, "write 300 words about rivers", 60);
  const deadline = Date.now() + 30_000;
  while ((await broker.logs.last(rid))?.kind !== "end") {
    assert.ok(Date.now() < deadline, "the response ends within 30 s");
    await new Promise((r) => setTimeout(r, 50));
  }
  const log = await broker.logs.readAll(rid);
  const tokenEvents = log.filter((e) => e.kind === "token");
  assert.ok(tokenEvents.length < 60, `coalesced: ${tokenEvents.length} token events for 60 tokens`);
  assert.equal(
    tokenEvents.reduce((n, e) => n + tokensIn(e.frame.event), 0),
    60,
    "the events' counts add up to the tokens",
  );
  const end = log.at(-1)?.frame.event as unknown as { reason: string; usage: { completion_tokens: number } };
  assert.equal(end.reason, "length");
  assert.equal(end.usage.completion_tokens, 60);
});

test("a steer sent while a tool call streams is logged after its tool_done, never inside the call", async (t) => {
  const config = workerConfigFromEnv({ NATS_URL: nats.url, SCRIPTED_TPS: "40", METRICS_PORT: "off" });
  const worker = await startWorker(config, pino({ level: "silent" }));
  t.after(() => worker.close());
  // Twelve required parameters: about fifty argument tokens, over a second at 40 tokens/s.
  const params = Array.from({ length: 12 }, (_, i) => `field_${i}`);
  const rid = await submitRequest(broker, {
    prompt: "Please fill_form for me",
    params: { reasoning_effort: "minimal" },
    tools: [
      {
        type: "function",
        function: {
          name: "fill_form",
          parameters: { type: "object", properties: Object.fromEntries(params.map((p) => [p, { type: "string" }])), required: params },
        },
      },
    ],
  });
  const kinds = async (): Promise<string[]> => (await broker.logs.readAll(rid)).map((e) => e.kind);
  const deadline = Date.now() + 30_000;
  while (!(await kinds()).includes("tool_args")) {
    assert.ok(Date.now() < deadline, "the call begins within 30 s");
    await new Promise((r) => setTimeout(r, 20));
  }
  const reply = await broker.control.request(rid, { op: "steer", text: "be quick" }, 10_000);
  assert.deepEqual(reply, { ok: true }, "taken while the call streams");
  while ((await broker.logs.last(rid))?.kind !== "end") {
    assert.ok(Date.now() < deadline, "the response ends within 30 s");
    await new Promise((r) => setTimeout(r, 50));
  }
  const log = (await broker.logs.readAll(rid)).map((e) => e.frame.event as { kind: string; [k: string]: unknown });
  const at = (kind: string) => log.findIndex((e) => e.kind === kind);
  assert.ok(at("tool_call") > at("reasoning"), "reasoning first");
  assert.equal(at("steer"), at("tool_done") + 1, `the steer comes right after tool_done: ${log.map((e) => e.kind).join(",")}`);
  const args = log.filter((e) => e.kind === "tool_args").map((e) => e.text as string);
  assert.ok(args.length > 1);
  const done = log[at("tool_done")] as unknown as { arguments: string };
  assert.equal(done.arguments, args.join(""));
  assert.deepEqual(Object.keys(JSON.parse(done.arguments) as object), params);
  const end = log.at(-1) as unknown as { reason: string; usage: { reasoning_tokens?: number } };
  assert.equal(end.reason, "tool_calls");
  assert.equal(end.usage.reasoning_tokens, 4);
});

/** A worker with a fast scripted generator and no metrics server, closed after the test. */
async function startFastWorker(t: TestContext): Promise<void> {
  const config = workerConfigFromEnv({ NATS_URL: nats.url, SCRIPTED_TPS: "200", METRICS_PORT: "off" });
  const worker = await startWorker(config, pino({ level: "silent" }));
  t.after(() => worker.close());
}

/** Waits (up to 30 s) until rid's log ends with `end`. */
async function untilEnd(rid: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while ((await broker.logs.last(rid))?.kind !== "end") {
    assert.ok(Date.now() < deadline, "the response ends within 30 s");
    await new Promise((r) => setTimeout(r, 50));
  }
}

for (const carry of [true, false]) {
  test(`a request whose record cannot be read ends with invalid_request, never dropped (record ${carry ? "carried" : "read"})`, async (t) => {
    await startFastWorker(t);
    // Stored past the edge's check (an older or foreign writer): no reader can parse it.
    const rid = newRid();
    const record = { ...queuedRecord(rid, { prompt: "hi", params: { stop: [""] } }) };
    const revision = await broker.records.create(record);
    assert.ok(revision);
    assert.equal(await broker.records.read(rid), "unreadable");
    await broker.enqueue(carry ? { rid, record, revision } : { rid });
    await untilEnd(rid);
    const log = await broker.logs.readAll(rid);
    assert.deepEqual(
      log.map((e) => e.kind),
      ["end"],
    );
    const end = log[0]?.frame.event as unknown as { reason: string; error: { code: string } };
    assert.equal(end.reason, "error");
    assert.equal(end.error.code, "invalid_request");
  });
}

/** Waits for rid's `end` in the log, then returns the log and the record. */
async function untilEnded(rid: string): Promise<{ kinds: string[]; seqs: number[]; record: ResponseRecord | undefined }> {
  await untilEnd(rid);
  const log = await broker.logs.readAll(rid);
  return { kinds: log.map((e) => e.kind), seqs: log.map((e) => e.seq), record: (await broker.records.get(rid))?.record };
}

// The worker sends its claim and `start` together; these are the two ways its `start` can be
// refused while its claim lands.
test("a claimed request whose log holds another attempt's lone `start` is continued after it, with a handover", async (t) => {
  await startFastWorker(t);
  const rid = newRid();
  const record = queuedRecord(rid, { prompt: "write 10 words about rivers", params: { max_tokens: 10 } });
  const revision = await broker.records.create(record);
  assert.ok(revision);
  // A worker that lost the claim after its `start` landed.
  await broker.logs.writer(rid, undefined, { epoch: 1 }).append({ kind: "start", model: "scripted", created_at: new Date().toISOString() });
  await broker.enqueue({ rid, record, revision });
  const { kinds, seqs, record: after } = await untilEnded(rid);
  assert.deepEqual(kinds.slice(0, 2), ["start", "handover"]);
  assert.equal(kinds.filter((k) => k === "start").length, 1, "one start");
  assert.deepEqual(
    seqs,
    seqs.map((_, i) => i + 1),
    "seqs contiguous from 1",
  );
  assert.equal(after?.status, "ended");
  assert.equal(after?.epoch, 1);
});

test("a claimed request whose log was ended while it was queued stays ended, and its record takes the log's reason", async (t) => {
  await startFastWorker(t);
  const rid = newRid();
  const record = queuedRecord(rid, { prompt: "hi", params: { max_tokens: 10 } });
  const revision = await broker.records.create(record);
  assert.ok(revision);
  // An edge's `end` landed; its record update had not yet.
  await broker.logs.writer(rid).append(ends.noWorker());
  await broker.enqueue({ rid, record, revision });
  const deadline = Date.now() + 30_000;
  while ((await broker.records.get(rid))?.record.status !== "ended") {
    assert.ok(Date.now() < deadline, "the record is marked ended within 30 s");
    await new Promise((r) => setTimeout(r, 50));
  }
  const log = await broker.logs.readAll(rid);
  assert.deepEqual(
    log.map((e) => e.kind),
    ["end"],
  );
  assert.equal((await broker.records.get(rid))?.record.reason, "error");
});
