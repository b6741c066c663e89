import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { REQUESTS_STREAM, WORKERS_CONSUMER, newRid, requestSubject } from "@unbroken/protocol";
import { Broker, silentLog } from "@unbroken/store";
import { startNatsServer, type NatsServerHandle } from "@unbroken/testing";
import { pino } from "pino";
import { Intake, repairWorkersConsumer, workersConsumer } from "../src/intake.js";

// The request intake against a real nats-server: pulls only for free slots, and a workers
// consumer that the server lost is created again by the worker whose pulls fail.

let server: NatsServerHandle;
let broker: Broker;
const log = pino({ level: "silent" });
const opts = { concurrency: 2, workerTimeoutMs: 5_000, repairAfterMs: 300 };

before(async () => {
  server = await startNatsServer();
  broker = await Broker.connect({ url: server.url, name: "intake-test", retentionMs: 3_600_000, log: silentLog });
});
after(async () => {
  await broker?.close();
  await server?.stop();
});


/** Takes requests as a worker would (acked at once), and waits for a given rid to be taken. */
function taken(): { rids: string[]; take: (rid: string) => void; next: (rid: string, ms: number) => Promise<void> } {
  const rids: string[] = [];
  let waiter: { rid: string; resolve: () => void } | undefined;
  return {
    rids,
    take: (rid) => {
      rids.push(rid);
      if (waiter?.rid === rid) waiter.resolve();
    },
    next: (rid, ms) =>
      new Promise((resolve, reject) => {
        if (rids.includes(rid)) return resolve();
        const timer = setTimeout(() => reject(new Error(`${rid} not taken within ${ms} ms`)), ms);
        waiter = { rid, resolve: () => (clearTimeout(timer), resolve()) };
      }),
  };
}

test("a workers consumer the server lost is created again, and requests flow again", async () => {
  const got = taken();
  const intake = new Intake(await workersConsumer(broker, opts, log), opts, () => 0, (r, m) => {
    m.ack();
    got.take(r.rid);
  }, log, () => repairWorkersConsumer(broker, opts));
  intake.start();
  try {
    const first = newRid();
    await broker.js.publish(requestSubject(first), JSON.stringify({ rid: first }));
    await got.next(first, 15_000);

    await broker.jsm.consumers.delete(REQUESTS_STREAM, WORKERS_CONSUMER);
    const second = newRid();
    await broker.js.publish(requestSubject(second), JSON.stringify({ rid: second }));
    await got.next(second, 30_000);
    assert.deepEqual(got.rids, [first, second]);
    const info = await broker.jsm.consumers.info(REQUESTS_STREAM, WORKERS_CONSUMER);
    assert.equal(info.config.ack_wait, opts.workerTimeoutMs * 1_000_000, "created again with the worker's ack wait");
  } finally {
    await intake.stop();
  }
});

test("a consumer on a single server has no leader to step down: the repair leaves it alone", async () => {
  await workersConsumer(broker, opts, log);
  const before = await broker.jsm.consumers.info(REQUESTS_STREAM, WORKERS_CONSUMER);
  assert.equal(await repairWorkersConsumer(broker, opts), "no leader to step down");
  const after = await broker.jsm.consumers.info(REQUESTS_STREAM, WORKERS_CONSUMER);
  assert.equal(after.created, before.created);
});
