import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { startNatsServer, type NatsServerHandle } from "@unbroken/testing";
import { Broker } from "../src/broker.js";
import { silentLog } from "../src/log.js";

// The model directory on a real nats-server: workers answer with their model while they run.

let server: NatsServerHandle;
let broker: Broker;

before(async () => {
  server = await startNatsServer();
  broker = await Broker.connect({ url: server.url, name: "models-test", retentionMs: 3_600_000, log: silentLog });
});
after(async () => {
  await broker?.close();
  await server?.stop();
});

test("no worker running: an empty list, not an error", async () => {
  assert.deepEqual(await broker.models.list(500), []);
});

test("each model once, with the workers serving it and the earliest start; a worker that stops is gone", async () => {
  const unlist = [
    broker.models.serve({ model: "scripted", worker: "w1", since: 2_000 }),
    broker.models.serve({ model: "scripted", worker: "w2", since: 1_000 }),
    broker.models.serve({ model: "qwen3-8b", worker: "w3", since: 3_000 }),
  ];
  assert.deepEqual(await broker.models.list(), [
    { model: "qwen3-8b", since: 3_000, workers: 1 },
    { model: "scripted", since: 1_000, workers: 2 },
  ]);
  unlist[2]?.();
  assert.deepEqual(
    (await broker.models.list()).map((m) => m.model),
    ["scripted"],
  );
  for (const u of unlist) u();
  assert.deepEqual(await broker.models.list(500), []);
});
