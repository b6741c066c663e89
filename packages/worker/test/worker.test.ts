import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { tokensIn } from "@unbroken/protocol";
import { Broker, silentLog } from "@unbroken/store";
import { startNatsServer, type NatsServerHandle } from "@unbroken/testing";
import { pino } from "pino";
import { workerConfigFromEnv } from "../src/config.js";
import { submit } from "./submit.js";
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
