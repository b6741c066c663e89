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
