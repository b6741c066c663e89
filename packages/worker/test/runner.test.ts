import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { newRid } from "@unbroken/protocol";
import { Broker, silentLog, type StoredRecord, type WorkDelivery } from "@unbroken/store";
import { startNatsServer, type NatsServerHandle } from "@unbroken/testing";
import { pino } from "pino";
import { ResponseRun, type RunnerDeps } from "../src/runner.js";
import { RecordingGenerator } from "./recording-generator.js";
import { queuedRecord } from "./submit.js";

// One run against a real nats-server, with a generator that records what it was asked: a
// first delivery starts generating beside its claim, and keeps that generation only when the
// claim is its own and no steer came first.

let nats: NatsServerHandle;
let broker: Broker;

before(async () => {
  nats = await startNatsServer();
  broker = await Broker.connect({ url: nats.url, name: "runner-test", retentionMs: 3_600_000, log: silentLog });
});
after(async () => {
  await broker?.close();
  await nats?.stop();
});

function deps(generator: RecordingGenerator): RunnerDeps {
  return {
    broker,
    generator,
    workerId: "w-runner-test",
    log: pino({ level: "silent" }),
    queueTimeoutMs: 60_000,
    takeoverTimeoutMs: 10_000,
    stallTimeoutMs: 60_000,
    coalesce: { maxDelayMs: 0, delayMs: () => 0 },
  };
}

/** A first delivery of rid carrying `carried`, as the work queue hands it over; `acked` once settled so. */
function delivery(carried: StoredRecord): WorkDelivery & { acked: boolean } {
  return {
    request: { rid: carried.record.rid, record: carried.record, revision: carried.revision },
    deliveryCount: 1,
    acked: false,
    working() {},
    ack() {
      this.acked = true;
    },
    nak() {},
  };
}

/** A queued record, as an edge's generate creates it; what its request carries. */
async function queued(): Promise<StoredRecord> {
  const rid = newRid();
  const record = queuedRecord(rid, { prompt: "hi", params: { max_tokens: 3 } });
  const revision = await broker.records.create(record);
  assert.ok(revision);
  return { record, revision };
}

const kinds = async (rid: string): Promise<string[]> => (await broker.logs.readAll(rid)).map((e) => e.kind);

test("a first delivery's generation begins beside its claim and is the one kept", async () => {
  const gen = new RecordingGenerator(3);
  const carried = await queued();
  const msg = delivery(carried);
  await new ResponseRun(deps(gen), msg, carried.record.rid, carried).run();
  assert.equal(gen.runs.length, 1, "one generation");
  assert.deepEqual(gen.runs[0]?.job.steers, []);
  assert.deepEqual(await kinds(carried.record.rid), ["start", "token", "token", "token", "end"]);
  assert.ok(msg.acked);
});

test("a claim another worker won aborts the early generation, and nothing it made is written", async () => {
  const gen = new RecordingGenerator(3);
  const carried = await queued();
  const rid = carried.record.rid;
  // Another worker's claim lands after this request was queued with the record's copy.
  await broker.records.mutate(rid, (r) => ({ ...r, status: "running", worker: "w-other", epoch: 1 }));
  const msg = delivery(carried);
  await new ResponseRun(deps(gen), msg, rid, carried).run();
  assert.equal(gen.runs.length, 1);
  assert.equal(gen.runs[0]?.iterated, true, "it had begun");
  assert.equal(gen.runs[0]?.job.signal.aborted, true, "and was stopped");
  assert.ok(!(await kinds(rid)).includes("token"), "no token of it in the log");
  assert.ok(msg.acked, "the request is settled: the other worker runs the response");
});

test("a steer that reached the record while it was queued: the early generation is dropped for one that begins with it", async () => {
  const gen = new RecordingGenerator(3);
  const carried = await queued();
  const rid = carried.record.rid;
  await broker.records.mutate(rid, (r) => ({ ...r, steers: [...r.steers, "be brief"] }));
  await new ResponseRun(deps(gen), delivery(carried), rid, carried).run();
  assert.equal(gen.runs.length, 2);
  assert.equal(gen.runs[0]?.job.signal.aborted, true, "the early one is stopped");
  assert.deepEqual(gen.runs[1]?.job.steers, ["be brief"], "the kept one begins with the steer");
  assert.deepEqual(await kinds(rid), ["start", "steer", "token", "token", "token", "end"]);
});
