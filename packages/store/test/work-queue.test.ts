import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { REQUESTS_STREAM, WORKERS_CONSUMER, newRid, requestSubject } from "@unbroken/protocol";
import { startNatsCluster, startNatsServer, type NatsServerHandle } from "@unbroken/testing";
import { Broker, handlesOf } from "../src/broker.js";
import { silentLog } from "../src/log.js";
import type { WorkDelivery } from "../src/work-queue.js";

// The work queue on a real nats-server: requests in, deliveries out, malformed ones dropped,
// and the repair a worker runs when its pulls keep failing.

let server: NatsServerHandle;
let broker: Broker;

before(async () => {
  server = await startNatsServer();
  broker = await Broker.connect({ url: server.url, name: "work-queue-test", retentionMs: 3_600_000, log: silentLog });
});
after(async () => {
  await broker?.close();
  await server?.stop();
});

async function pullAll(max: number): Promise<WorkDelivery[]> {
  const queue = await broker.workQueue(5_000);
  const got: WorkDelivery[] = [];
  await queue.pull(max, 1_000, (d) => got.push(d));
  return got;
}

test("an enqueued request is delivered once with its body; enqueueing the same rid again adds nothing", async () => {
  const rid = newRid();
  await broker.enqueue({ rid });
  await broker.enqueue({ rid });
  const got = await pullAll(10);
  assert.deepEqual(
    got.map((d) => d.request.rid),
    [rid],
  );
  assert.equal(got[0]?.deliveryCount, 1);
  got[0]?.ack();
});

test("a request given back (nak) is delivered again, counted as a redelivery", async () => {
  const rid = newRid();
  await broker.enqueue({ rid });
  const [first] = await pullAll(1);
  first?.nak();
  const [again] = await pullAll(1);
  assert.equal(again?.request.rid, rid);
  assert.equal(again?.deliveryCount, 2);
  again?.ack();
});

test("a malformed request is dropped from the queue, not handed to the worker", async () => {
  const { js } = handlesOf(broker);
  await js.publish(requestSubject("malformed1"), "{not json");
  const rid = newRid();
  await broker.enqueue({ rid });
  const got = await pullAll(10);
  assert.deepEqual(
    got.map((d) => d.request.rid),
    [rid],
  );
  got[0]?.ack();
  assert.deepEqual(await pullAll(10), [], "nothing left: the malformed one was terminated");
});

test("a request whose carried record does not parse is handed on with its rid alone: the worker reads the record and answers", async () => {
  const { js } = handlesOf(broker);
  const rid = newRid();
  const record = {
    v: 1,
    rid,
    owner: "",
    status: "queued",
    created_at: "x",
    request: { prompt: "p", params: { stop: [""] } },
    steers: [],
    epoch: 0,
  };
  await js.publish(requestSubject(rid), JSON.stringify({ rid, record, revision: 1 }));
  const got = await pullAll(10);
  assert.deepEqual(
    got.map((d) => d.request),
    [{ rid }],
  );
  got[0]?.ack();
});

test("repair creates a consumer the server lost; on a single server it leaves one alone", async () => {
  const queue = await broker.workQueue(5_000);
  const { jsm } = handlesOf(broker);
  const before = await jsm.consumers.info(REQUESTS_STREAM, WORKERS_CONSUMER);
  assert.equal(await queue.repair(), "no leader to step down");
  assert.equal((await jsm.consumers.info(REQUESTS_STREAM, WORKERS_CONSUMER)).created, before.created);

  await jsm.consumers.delete(REQUESTS_STREAM, WORKERS_CONSUMER);
  assert.equal(await queue.repair(), "created again");
  const rid = newRid();
  await broker.enqueue({ rid });
  const got: WorkDelivery[] = [];
  await queue.pull(1, 1_000, (d) => got.push(d));
  assert.deepEqual(
    got.map((d) => d.request.rid),
    [rid],
  );
  got[0]?.ack();
});

test("on a cluster, repair asks the workers consumer's leader to step down, and another node leads it", async (t) => {
  const cluster = await startNatsCluster({ size: 3 });
  t.after(() => cluster.stop());
  const b = await Broker.connect({ url: cluster.url, name: "work-queue-cluster", retentionMs: 3_600_000, replicas: 3, log: silentLog });
  t.after(() => b.close());
  const queue = await b.workQueue(5_000);
  const { jsm } = handlesOf(b);
  const leaderNow = async (): Promise<string | undefined> => (await jsm.consumers.info(REQUESTS_STREAM, WORKERS_CONSUMER)).cluster?.leader;
  const deadline = Date.now() + 30_000;
  let before = await leaderNow();
  while (before === undefined && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    before = await leaderNow();
  }
  assert.ok(before, "the consumer has a leader");
  assert.equal(await queue.repair(), `leader ${before} stepped down`);
  let after = await leaderNow().catch(() => undefined);
  while ((after === undefined || after === before) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    after = await leaderNow().catch(() => undefined);
  }
  assert.ok(after !== undefined && after !== before, `a new leader (was ${before}, now ${after})`);
  // The queue still delivers under its new leader.
  const rid = newRid();
  await b.enqueue({ rid });
  const got: WorkDelivery[] = [];
  while (got.length === 0 && Date.now() < deadline) await queue.pull(1, 1_000, (d) => got.push(d)).catch(() => undefined);
  assert.deepEqual(
    got.map((d) => d.request.rid),
    [rid],
  );
  got[0]?.ack();
});

test("a pull the server goes silent on just before its expiry (no 408) ends soon after it, without an error, and says so", async () => {
  const queue = await broker.workQueue(5_000);
  assert.deepEqual(await queue.pull(10, 1_000, () => undefined), { delivered: 0, silent: false }, "an answered expiry (the 408)");
  const pulling = queue.pull(10, 1_000, () => undefined);
  // Stopped (not killed) just before the pull's expiry, the server sends neither the 408 that
  // ends a pull nor idle heartbeats: what a pull sees when nats-server 2.9 drops its 408.
  await new Promise((r) => setTimeout(r, 900));
  process.kill(server.pid, "SIGSTOP");
  try {
    // nats.js alone would end it only after two missed idle heartbeats, with "heartbeats
    // missed", and the worker would wait before pulling again.
    assert.deepEqual(await pulling, { delivered: 0, silent: true });
  } finally {
    process.kill(server.pid, "SIGCONT");
  }
});
