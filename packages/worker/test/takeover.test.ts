import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { newRid, type HandoverEvent, type ResponseEvent } from "@unbroken/protocol";
import { Broker, FencedError, silentLog, type StoredEvent } from "@unbroken/store";
import { startNatsServer, type NatsServerHandle } from "@unbroken/testing";
import type { ResumeState, ResumedOutput } from "@unbroken/generators";
import { insideCall, takeOverLog } from "../src/takeover.js";

// Taking a log over against a real nats-server: the handover marker goes right after the
// previous worker's last event, even while that worker still writes, and fences it out.

let server: NatsServerHandle;
let broker: Broker;
let broker2: Broker;

before(async () => {
  server = await startNatsServer();
  broker = await Broker.connect({ url: server.url, name: "old-worker", retentionMs: 3_600_000, log: silentLog });
  broker2 = await Broker.connect({ url: server.url, name: "new-worker", retentionMs: 3_600_000, log: silentLog });
});
after(async () => {
  await broker2?.close();
  await broker?.close();
  await server?.stop();
});

const START: ResponseEvent = { kind: "start", model: "scripted", created_at: new Date(0).toISOString() };
const marker = (epoch: number): HandoverEvent => ({ kind: "handover", worker: "w-new", epoch, reason: "lost" });
const opts = (epoch: number) => ({
  marker: marker(epoch),
  start: START as ResponseEvent & { kind: "start" },
  deadline: Date.now() + 10_000,
});

async function readAll(rid: string): Promise<StoredEvent[]> {
  return broker.logs.readAll(rid);
}

test("the marker follows the last event; the resume state is the log's outputs, tokens and steers", async () => {
  const rid = newRid();
  const old = broker.logs.writer(rid, undefined, { epoch: 1 });
  for (const e of [
    START,
    { kind: "steer", text: "be brief" },
    { kind: "reasoning", text: "Hm.", n: 2 },
    { kind: "token", text: "One" },
    { kind: "token", text: " two" },
    { kind: "steer", text: "go on" },
    { kind: "tool_call", id: "c1", name: "f" },
    { kind: "tool_args", id: "c1", text: '{"a"', n: 3 },
  ] as ResponseEvent[]) {
    await old.append(e);
  }
  const taken = await takeOverLog(broker2, rid, opts(2));
  assert.equal(taken.kind, "resumed");
  if (taken.kind !== "resumed") return;
  assert.deepEqual(taken.resume, {
    tokens: ["One", " two"],
    steers: [
      { at: 0, text: "be brief" },
      { at: 2, text: "go on" },
    ],
    generated: 7,
    reasoningTokens: 2,
    outputs: [
      { type: "steer", text: "be brief" },
      { type: "reasoning", text: "Hm.", tokens: 2 },
      { type: "token", text: "One", tokens: 1 },
      { type: "token", text: " two", tokens: 1 },
      { type: "steer", text: "go on" },
      { type: "tool_call", id: "c1", name: "f" },
      { type: "tool_args", id: "c1", text: '{"a"', tokens: 3 },
    ],
  });
  assert.equal(taken.writer.seq, 9);
  assert.equal(await taken.writer.append({ kind: "token", text: " three" }), 10);
  await assert.rejects(old.append({ kind: "token", text: " zombie" }), FencedError);
  const log = await readAll(rid);
  assert.deepEqual(
    log.map((e) => e.frame.event.kind),
    ["start", "steer", "reasoning", "token", "token", "steer", "tool_call", "tool_args", "handover", "token"],
  );
});

test("an ended log is left alone; an empty one gets `start`", async () => {
  const ended = newRid();
  const w = broker.logs.writer(ended);
  await w.append(START);
  await w.append({ kind: "end", reason: "cancelled", usage: { prompt_tokens: 0, completion_tokens: 0 } });
  assert.deepEqual(await takeOverLog(broker2, ended, opts(2)), { kind: "ended", reason: "cancelled" });
  assert.equal((await readAll(ended)).length, 2);

  const empty = newRid();
  const fresh = await takeOverLog(broker2, empty, opts(2));
  assert.equal(fresh.kind, "fresh");
  assert.deepEqual(
    (await readAll(empty)).map((e) => e.frame.event.kind),
    ["start"],
  );
});

test("while the old worker still writes, the marker lands after its last stored token and fences it", async () => {
  for (let round = 0; round < 5; round++) {
    const rid = newRid();
    const old = broker.logs.writer(rid, undefined, { epoch: 1 });
    await old.append(START);
    const written: string[] = [];
    // The old worker writes a token every few ms (a fast model) until it is fenced, or until
    // it stops by itself, as a real one does once it hears of the higher epoch (a writer
    // faster than a log read could keep the marker out until then).
    const writing = (async () => {
      for (let i = 0; i < 60; i++) {
        try {
          await old.append({ kind: "token", text: ` t${i}` });
          written.push(` t${i}`);
        } catch (err) {
          assert.ok(err instanceof FencedError, String(err));
          return;
        }
        await new Promise((r) => setTimeout(r, 3));
      }
    })();
    await new Promise((r) => setTimeout(r, 20 * round));
    const taken = await takeOverLog(broker2, rid, opts(2));
    assert.equal(taken.kind, "resumed");
    if (taken.kind !== "resumed") return;
    await taken.writer.append({ kind: "token", text: " new" });
    await writing;
    assert.deepEqual(taken.resume.tokens, written, "the continuation starts after every token the old worker stored");
    const log = await readAll(rid);
    assert.deepEqual(
      log.map((e) => e.frame.seq),
      log.map((_, i) => i + 1),
    );
    assert.equal(log.at(-2)?.frame.event.kind, "handover");
    assert.equal(log.length, written.length + 3);
  }
});

test("insideCall: the log ends between a tool_call and its tool_done or tool_dropped", () => {
  const state = (outputs: ResumedOutput[]): ResumeState => ({ tokens: [], steers: [], outputs });
  const call: ResumedOutput = { type: "tool_call", id: "call_1", name: "f" };
  const args: ResumedOutput = { type: "tool_args", id: "call_1", text: "{", tokens: 1 };
  assert.equal(insideCall(state([])), false);
  assert.equal(insideCall(state([{ type: "token", text: "a", tokens: 1 }])), false);
  assert.equal(insideCall(state([call])), true);
  assert.equal(insideCall(state([call, args])), true);
  assert.equal(insideCall(state([call, args, { type: "tool_done", id: "call_1", arguments: "{}" }])), false);
  assert.equal(insideCall(state([call, { type: "tool_dropped", id: "call_1", reason: "cut" }])), false);
  assert.equal(insideCall({ tokens: ["a"], steers: [] }), false, "a state without outputs");
});
