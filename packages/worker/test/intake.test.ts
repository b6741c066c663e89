import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { REQUESTS_STREAM, WORKERS_CONSUMER, newRid, requestSubject } from "@unbroken/protocol";
import { Broker, silentLog, type WorkDelivery, type WorkQueue } from "@unbroken/store";
import { NatsTools, startNatsServer, type NatsServerHandle } from "@unbroken/testing";
import { pino } from "pino";
import { Intake } from "../src/intake.js";

// The request intake against a real nats-server: it pulls only for free slots, and a workers
// consumer that the server lost is created again by the worker whose pulls fail.

let server: NatsServerHandle;
let broker: Broker;
let tools: NatsTools;
const log = pino({ level: "silent" });
const ACK_WAIT_MS = 5_000;

before(async () => {
  server = await startNatsServer();
  broker = await Broker.connect({ url: server.url, name: "intake-test", retentionMs: 3_600_000, log: silentLog });
  tools = await NatsTools.connect(server.url);
});
after(async () => {
  await tools?.close();
  await broker?.close();
  await server?.stop();
});

/** Takes requests as a worker would (acked at once), and waits for a given rid to be taken. */
function taken(): { rids: string[]; take: (d: WorkDelivery) => void; next: (rid: string, ms: number) => Promise<void> } {
  const rids: string[] = [];
  let waiter: { rid: string; resolve: () => void } | undefined;
  return {
    rids,
    take: (d) => {
      d.ack();
      rids.push(d.request.rid);
      if (waiter?.rid === d.request.rid) waiter.resolve();
    },
    next: (rid, ms) =>
      new Promise((resolve, reject) => {
        if (rids.includes(rid)) return resolve();
        const timer = setTimeout(() => reject(new Error(`${rid} not taken within ${ms} ms`)), ms);
        waiter = {
          rid,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        };
      }),
  };
}

const enqueue = (rid: string) => tools.publish(requestSubject(rid), JSON.stringify({ rid }));

test("a workers consumer the server lost is created again, and requests flow again", async () => {
  const got = taken();
  const intake = new Intake(await broker.workQueue(ACK_WAIT_MS), { concurrency: 2, repairAfterMs: 300 }, () => 0, got.take, log);
  intake.start();
  try {
    const first = newRid();
    await enqueue(first);
    await got.next(first, 15_000);
    // The ack travels on the broker's connection and the delete on the tools': wait until the
    // server has the ack, or the consumer made again would rightly deliver `first` a second time.
    while ((await tools.consumerInfo(REQUESTS_STREAM, WORKERS_CONSUMER)).num_ack_pending > 0) await sleep(10);

    await tools.deleteConsumer(REQUESTS_STREAM, WORKERS_CONSUMER);
    const second = newRid();
    await enqueue(second);
    await got.next(second, 30_000);
    assert.deepEqual(got.rids, [first, second]);
    const info = await tools.consumerInfo(REQUESTS_STREAM, WORKERS_CONSUMER);
    assert.equal(info.config.ack_wait, ACK_WAIT_MS * 1_000_000, "created again with the worker's ack wait");
  } finally {
    await intake.stop();
  }
});

test("pulls the server never answers (no 408, nothing) make the intake repair the consumer, pulling again at once meanwhile", async () => {
  let pulls = 0;
  let repairs = 0;
  // What a pull sees from a 2.9 cluster whose workers consumer has no working leader: the
  // queue ends each pull itself past its expiry, with nothing delivered. A stand-in queue: the
  // real one's silent pull is tested in store (work-queue.test).
  const silent = {
    pull: async () => {
      pulls++;
      await sleep(20);
      return { delivered: 0, silent: true };
    },
    repair: async () => {
      repairs++;
      return "created again";
    },
  } as unknown as WorkQueue;
  const intake = new Intake(
    silent,
    { concurrency: 1, repairAfterMs: 200 },
    () => 0,
    () => undefined,
    log,
  );
  intake.start();
  try {
    const deadline = Date.now() + 10_000;
    while (repairs === 0 && Date.now() < deadline) await sleep(20);
  } finally {
    await intake.stop();
  }
  assert.ok(repairs >= 1, "repaired");
  assert.ok(pulls >= 5, `pulled again without the failed pull's pause (${pulls} pulls)`);
});

test("with no free slot nothing is pulled: the request stays in the queue for another worker", async () => {
  const busy = taken();
  let active = 1;
  const intake = new Intake(await broker.workQueue(ACK_WAIT_MS), { concurrency: 1 }, () => active, busy.take, log);
  intake.start();
  const other = taken();
  const rid = newRid();
  try {
    await enqueue(rid);
    // A second intake with a free slot is the proof the request was there to take all along.
    const second = new Intake(await broker.workQueue(ACK_WAIT_MS), { concurrency: 1 }, () => 0, other.take, log);
    second.start();
    try {
      await other.next(rid, 15_000);
    } finally {
      await second.stop();
    }
    assert.deepEqual(busy.rids, [], "the full intake took nothing");
  } finally {
    active = 0;
    await intake.stop();
  }
});

test("a stopping intake gives back what its last pull brings: the request goes to another worker at once", async () => {
  const stopping = taken();
  const intake = new Intake(await broker.workQueue(ACK_WAIT_MS), { concurrency: 1 }, () => 0, stopping.take, log);
  intake.start();
  // Let its first pull reach the server, so the request below can land in a pull in flight.
  await new Promise((r) => setTimeout(r, 200));
  const stopped = intake.stop();
  const rid = newRid();
  await enqueue(rid);
  await stopped;
  const other = taken();
  const next = new Intake(await broker.workQueue(ACK_WAIT_MS), { concurrency: 1 }, () => 0, other.take, log);
  next.start();
  try {
    // Well within the ack wait: a request lost in a dropped pull would come back only after it.
    await other.next(rid, ACK_WAIT_MS - 1_000);
  } finally {
    await next.stop();
  }
  assert.deepEqual(stopping.rids, [], "the stopping intake dispatched nothing");
});
