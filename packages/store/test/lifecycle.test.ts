import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ProtocolError, newRid, type ResponseEvent, type ResponseRecord } from "@unbroken/protocol";
import { startNatsServer, type NatsServerHandle } from "@unbroken/testing";
import { Broker, handlesOf } from "../src/broker.js";
import { ends, isGone, isStale, usageOf } from "../src/lifecycle.js";
import { silentLog } from "../src/log.js";

// Every way a response ends, against a real nats-server: one `end` per log, fenced against
// whoever wrote first, the record following the log, and usage counted in tokens.

let server: NatsServerHandle;
let broker: Broker;

before(async () => {
  server = await startNatsServer();
  broker = await Broker.connect({ url: server.url, name: "lifecycle-test", retentionMs: 3_600_000, log: silentLog });
});
after(async () => {
  await broker?.close();
  await server?.stop();
});

async function queued(createdAt = new Date()): Promise<ResponseRecord> {
  const record: ResponseRecord = {
    v: 1,
    rid: newRid(),
    owner: "alice",
    status: "queued",
    created_at: createdAt.toISOString(),
    request: { prompt: "hello" },
    steers: [],
    epoch: 0,
  };
  assert.notEqual(await broker.records.create(record), null);
  return record;
}

const START: ResponseEvent = { kind: "start", model: "scripted", created_at: new Date(0).toISOString() };
const kinds = async (rid: string) => (await broker.logs.readAll(rid)).map((e) => e.kind);

describe("ends of a response nobody runs", () => {
  test("endQueued writes the lone `end` at seq 1 and marks the record ended", async () => {
    const { rid } = await queued();
    assert.equal(await broker.lifecycle.endQueued(rid, ends.cancelled()), true);
    assert.deepEqual(await kinds(rid), ["end"]);
    assert.equal((await broker.records.get(rid))?.record.status, "ended");
    assert.equal(await broker.lifecycle.endQueued(rid, ends.cancelled()), false, "a second end is refused");
    assert.deepEqual(await kinds(rid), ["end"]);
  });

  test("endQueued loses to a worker that wrote `start` first, and leaves the record alone", async () => {
    const { rid } = await queued();
    await broker.logs.writer(rid).append(START);
    assert.equal(await broker.lifecycle.endQueued(rid, ends.noWorker()), false);
    assert.deepEqual(await kinds(rid), ["start"]);
    assert.equal((await broker.records.get(rid))?.record.status, "queued");
  });

  test("expireIfStale ends a request past QUEUE_TIMEOUT with no_worker, and nothing younger", async () => {
    const fresh = await queued();
    assert.equal(await broker.lifecycle.expireIfStale(fresh, 60_000), false);
    assert.deepEqual(await kinds(fresh.rid), []);
    const old = await queued(new Date(Date.now() - 120_000));
    assert.equal(isStale(old, 60_000), true);
    assert.equal(await broker.lifecycle.expireIfStale(old, 60_000), true);
    const [end] = await broker.logs.readAll(old.rid);
    assert.deepEqual(end?.frame.event, ends.noWorker());
  });
});

describe("the end of a response whose worker is gone", () => {
  test("endOrphan appends after the last event, with usage counted in tokens (coalesced events hold several)", async () => {
    const { rid } = await queued();
    const w = broker.logs.writer(rid);
    for (const e of [
      START,
      { kind: "token", text: "One" },
      { kind: "token", text: " two three four", n: 3 },
      { kind: "token", text: " five six", n: 2 },
    ] as ResponseEvent[]) {
      await w.append(e);
    }
    assert.equal(await broker.lifecycle.endOrphan(rid, ends.workerLost()), true);
    const log = await broker.logs.readAll(rid);
    assert.deepEqual(
      log.map((e) => e.kind),
      ["start", "token", "token", "token", "end"],
    );
    const end = log.at(-1)?.frame.event as unknown as { reason: string; error?: { code: string }; usage: { completion_tokens: number } };
    assert.equal(end.reason, "error");
    assert.equal(end.error?.code, "worker_lost");
    assert.equal(end.usage.completion_tokens, 6, "six tokens in three events");
    assert.equal((await broker.records.get(rid))?.record.status, "ended");
    await assert.rejects(w.append({ kind: "token", text: " zombie" }), /written by another writer/, "the old writer is fenced");
  });

  test("endOrphan of a log that has its end already writes nothing and brings the record to it", async () => {
    const { rid } = await queued();
    const w = broker.logs.writer(rid);
    await w.append(START);
    await w.append(ends.done("stop", { prompt_tokens: 1, completion_tokens: 0 }));
    assert.equal(await broker.lifecycle.endOrphan(rid, ends.workerLost()), false);
    assert.deepEqual(await kinds(rid), ["start", "end"]);
    assert.equal((await broker.records.get(rid))?.record.reason, "stop");
  });

  test("endIfAbandoned ends a running response no worker answers for; a queued one it leaves", async () => {
    const record = await queued();
    assert.equal(await broker.lifecycle.endIfAbandoned(record.rid, 1_000), false, "queued: not abandoned");
    await broker.records.mutate(record.rid, (r) => ({ ...r, status: "running", epoch: 1, worker: "w-gone" }));
    await broker.logs.writer(record.rid).append(START);
    assert.equal(await broker.lifecycle.endIfAbandoned(record.rid, 1_000), true);
    assert.deepEqual(await kinds(record.rid), ["start", "end"]);
  });

  test("a running response whose worker answers is not abandoned", async (t) => {
    const record = await queued();
    await broker.records.mutate(record.rid, (r) => ({ ...r, status: "running", epoch: 1 }));
    const listener = broker.control.listen(record.rid, (call) => call.respond({ ok: true }));
    t.after(() => listener.close());
    await handlesOf(broker).nc.flush();
    assert.equal(await broker.lifecycle.endIfAbandoned(record.rid, 5_000), false);
    assert.deepEqual(await kinds(record.rid), []);
  });
});

describe("expiry", () => {
  test("isGone: the next seq is gone when the first stored one is after it, or a log that had events has none", () => {
    assert.equal(isGone(1, 1, true), false);
    assert.equal(isGone(4, 3, true), true);
    assert.equal(isGone(4, 4, true), false);
    assert.equal(isGone(null, 1, true), true);
    assert.equal(isGone(null, 1, false), false, "a log that never had events is not gone (queued)");
  });

  test("assertReadable says gone for an ended response whose events expired", async () => {
    const { rid } = await queued();
    await broker.lifecycle.endQueued(rid, ends.cancelled());
    const record = (await broker.records.get(rid))?.record as ResponseRecord;
    await broker.lifecycle.assertReadable(record, 0);
    await handlesOf(broker).jsm.streams.purge("LLM_EVENTS", { filter: `llm.ev.${rid}` });
    await assert.rejects(broker.lifecycle.assertReadable(record, 0), (err: unknown) => err instanceof ProtocolError && err.code === "gone");
  });

  test("usageOf counts tokens, not events", () => {
    const e = (event: Record<string, unknown>) => ({ kind: String(event.kind), frame: { event: event as { kind: string } } });
    assert.deepEqual(
      usageOf([
        e({ kind: "start" }),
        e({ kind: "token", text: "a" }),
        e({ kind: "token", text: "b c", n: 2 }),
        e({ kind: "steer", text: "x" }),
      ]),
      {
        prompt_tokens: 0,
        completion_tokens: 3,
      },
    );
  });
});
