import assert from "node:assert/strict";
import { test } from "node:test";
import { startNatsServer } from "@unbroken/testing";
import { Broker } from "../src/broker.js";
import type { Log } from "../src/log.js";

test("a broker whose NATS has no JetStream (yet) keeps trying, then gives up with the reason", async () => {
  await using server = await startNatsServer({ jetstream: false });
  const warnings: string[] = [];
  const log: Log = { debug() {}, info() {}, error() {}, warn: (_obj, msg) => void warnings.push(String(msg)) };
  const started = Date.now();
  await assert.rejects(
    Broker.connect({ url: server.url, name: "layout-test", retentionMs: 3_600_000, readyTimeoutMs: 1_500, log }),
    /not enabled|no responders/i,
  );
  assert.ok(Date.now() - started >= 1_500, "it waited readyTimeoutMs before giving up");
  assert.ok(warnings.filter((w) => /not ready; trying again/.test(w)).length >= 2, JSON.stringify(warnings));
});

test("a worker's queue opened while JetStream cannot answer waits for it, then opens", async () => {
  await using server = await startNatsServer();
  const warnings: string[] = [];
  let warned: () => void = () => undefined;
  const firstWarning = new Promise<void>((r) => {
    warned = r;
  });
  const log: Log = {
    debug() {},
    info() {},
    error() {},
    warn: (_obj, msg) => {
      warnings.push(String(msg));
      if (/not ready; trying again/.test(String(msg))) warned();
    },
  };
  const broker = await Broker.connect({ url: server.url, name: "layout-test", retentionMs: 3_600_000, log });
  try {
    // The server goes away before the queue's consumer is made: the first try fails (no answer
    // within the JetStream client's timeout), and the server comes back only after that.
    await server.kill();
    const opening = broker.workQueue(5_000);
    await Promise.race([firstWarning, opening]);
    await server.restart();
    const queue = await opening;
    let pulled = 0;
    await queue.pull(1, 1_000, () => pulled++);
    assert.equal(pulled, 0, "an empty queue, pulled without an error");
    assert.ok(
      warnings.some((w) => /not ready; trying again/.test(w)),
      JSON.stringify(warnings),
    );
  } finally {
    await broker.close();
  }
});
